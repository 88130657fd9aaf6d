package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// demoSeed fixes the demo world: the same rooms, sessions and people on every run.
const demoSeed = 0xde30

var (
	firstNames = []string{
		"Aarav", "Priya", "Rahul", "Ananya", "Jacques", "Maya", "Liam", "Sofia", "Kenji", "Amara",
		"Mateo", "Chloe", "Omar", "Fatima", "Lucas", "Ingrid", "Wei", "Zara", "Diego", "Nadia",
	}
	lastNames = []string{
		"Shah", "Patel", "Mehta", "Dubois", "Chen", "Okafor", "Rossi", "Kim",
		"Silva", "Haddad", "Novak", "Larsen", "Garcia", "Tanaka", "Kowalski", "Mensah",
	}
)

// DemoWorld creates rooms rooms, each with one ongoing session and two to four
// participants already in, and returns the session IDs. IDs look like VideoSDK's:
// 24 hex digits for a session, "xxxx-xxxx-xxxx" for a room. The world is the same on
// every run; a second call adds further rooms.
func (s *Server) DemoWorld(rooms int) []string {
	s.mu.Lock()
	defer s.unlock()
	ids := make([]string, 0, rooms)
	for range rooms {
		// Seeded by the number of sessions so far, so that each room differs and a
		// second call does not recreate the first call's rooms.
		rng := rand.New(rand.NewPCG(demoSeed, uint64(len(s.order))))
		sessionID := fmt.Sprintf("%08x%016x", rng.Uint32(), rng.Uint64())
		roomID := strings.Join([]string{randomAlnum(rng, 4), randomAlnum(rng, 4), randomAlnum(rng, 4)}, "-")
		sess := s.startSession(sessionID, roomID)
		for range 2 + rng.IntN(3) {
			s.join(sess, newParticipant(rng, sess))
		}
		ids = append(ids, sessionID)
	}
	return ids
}

// newParticipant invents someone joining sess for the first time, with an
// auto-generated style participantId (8 lowercase alphanumerics, like "iqpq5uen").
func newParticipant(rng *rand.Rand, sess *session) Participant {
	id := randomAlnum(rng, 8)
	for sess.byID[id] != nil {
		id = randomAlnum(rng, 8)
	}
	p := Participant{
		ID:      id,
		Name:    firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))],
		Mode:    "CONFERENCE",
		SDKType: "prebuilt",
	}
	// Now and then a livestream viewer, so that mode filters have something to do.
	if rng.IntN(8) == 0 {
		p.Mode = "VIEWER"
	}
	return p
}

func randomAlnum(rng *rand.Rand, n int) string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[rng.IntN(len(alnum))]
	}
	return string(b)
}
