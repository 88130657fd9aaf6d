package sim

import (
	"context"
	"math/rand/v2"
	"time"
)

// ChurnConfig configures Churn. Zero fields take their defaults.
type ChurnConfig struct {
	Rooms           int           // sessions churned: the oldest ongoing ones (default 3)
	MaxParticipants int           // per session cap (default 8)
	Interval        time.Duration // mean time between world changes (default 1s)
	// SessionEvery is the mean time between two sessions of the churned rooms: a
	// churned session ends and its room's next one starts, with one to three
	// participants. 0: sessions never end.
	SessionEvery time.Duration
	Seed         uint64 // rand/v2 PCG seed; same seed => same sequence of decisions
}

// Relative weights of Churn's moves: mostly arrivals, so rooms fill up, and some
// rejoins, so clients see the same participantId come back with a new stint.
const (
	joinWeight   = 5
	rejoinWeight = 2
	leaveWeight  = 3
)

// churnStream is the second PCG word; only the seed varies between runs.
const churnStream = 0x5eed

// Churn changes the world at random until ctx is done: a new participant joins, a
// participant leaves, or one who left rejoins with the same participantId; with
// SessionEvery, now and then a session ends and its room's next one starts. It keeps
// every churned session between 1 and MaxParticipants present.
// Waits are exponential with mean Interval. Sessions must already exist (see
// DemoWorld). With the same seed, clock and world, the same sequence of changes
// happens; a cancellation always stops Churn before its next change.
func (s *Server) Churn(ctx context.Context, cfg ChurnConfig) {
	if cfg.Rooms <= 0 {
		cfg.Rooms = 3
	}
	if cfg.MaxParticipants <= 0 {
		cfg.MaxParticipants = 8
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, churnStream))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.ExpFloat64() * float64(cfg.Interval))):
		}
		// select picks at random when both are ready; checking again makes a
		// cancellation win, which keeps the number of changes deterministic.
		if ctx.Err() != nil {
			return
		}
		s.churnStep(rng, cfg)
	}
}

// churnStep makes one change in one of the churned sessions, all under the lock so
// that the decision and the change see the same world.
func (s *Server) churnStep(rng *rand.Rand, cfg ChurnConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ongoing []*session
	for _, sess := range s.order {
		if sess.end == nil && len(ongoing) < cfg.Rooms {
			ongoing = append(ongoing, sess)
		}
	}
	if len(ongoing) == 0 {
		return
	}
	sess := ongoing[rng.IntN(len(ongoing))]
	if cfg.SessionEvery > 0 && rng.Float64() < float64(cfg.Interval)/float64(cfg.SessionEvery)*float64(len(ongoing)) {
		next := s.nextSession(sess.roomID)
		for range 1 + rng.IntN(3) {
			s.join(next, newParticipant(rng, next))
		}
		return
	}
	var present, gone []*participant
	for _, pt := range sess.participants {
		if pt.present() {
			present = append(present, pt)
		} else {
			gone = append(gone, pt)
		}
	}
	var join, rejoin, leave int
	if len(present) < cfg.MaxParticipants {
		join = joinWeight
		if len(gone) > 0 {
			rejoin = rejoinWeight
		}
	}
	if len(present) > 1 {
		leave = leaveWeight
	}
	if join+rejoin+leave == 0 {
		return // a cap of 1 with one present: nothing may change
	}
	switch x := rng.IntN(join + rejoin + leave); {
	case x < join:
		s.join(sess, newParticipant(rng, sess))
	case x < join+rejoin:
		s.join(sess, gone[rng.IntN(len(gone))].Participant)
	default:
		present[rng.IntN(len(present))].close(s.clock())
	}
}
