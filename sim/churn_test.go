package sim

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// countingClock ticks one second on every read and cancels after limit reads. Every
// change of the world reads the clock once, so a Churn run driven by it stops after
// exactly the same change every time, however fast the machine.
type countingClock struct {
	mu     sync.Mutex
	t      time.Time
	reads  int
	limit  int
	cancel context.CancelFunc
}

func (c *countingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reads++; c.reads == c.limit {
		c.cancel()
	}
	c.t = c.t.Add(time.Second)
	return c.t
}

var churnSessions = []string{"s1", "s2", "s3", "s4"}

// churn runs Churn over four sessions of one participant each until about 300
// changes have happened, and returns every stint.
func churn(t *testing.T, cfg ChurnConfig) []Stint {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock := &countingClock{t: t0, limit: 300, cancel: cancel}
	s := New(Config{APIKey: testKey, Secret: testSecret, Now: clock.Now})
	for _, id := range churnSessions {
		startWith(s, id, "founder")
	}
	cfg.Interval = time.Microsecond
	s.Churn(ctx, cfg)
	var all []Stint
	for _, id := range churnSessions {
		all = append(all, s.Stints(id)...)
	}
	return all
}

func TestChurnIsDeterministic(t *testing.T) {
	first := churn(t, ChurnConfig{Seed: 7})
	if d := cmp.Diff(first, churn(t, ChurnConfig{Seed: 7})); d != "" {
		t.Errorf("same seed, different worlds (-first +second):\n%s", d)
	}
	if cmp.Equal(first, churn(t, ChurnConfig{Seed: 8})) {
		t.Error("seeds 7 and 8 gave the same world")
	}
}

func TestChurnInvariants(t *testing.T) {
	const maxParticipants = 3
	stints := churn(t, ChurnConfig{Rooms: 3, MaxParticipants: maxParticipants, Seed: 1})
	bySession := map[string][]Stint{}
	for _, st := range stints {
		bySession[st.SessionID] = append(bySession[st.SessionID], st)
	}
	for _, id := range churnSessions[:3] {
		var joins, leaves, rejoins int
		count := map[string]int{}
		delta := map[time.Time]int{}
		for _, st := range bySession[id] {
			if count[st.ParticipantID]++; count[st.ParticipantID] == 1 {
				joins++
			} else {
				rejoins++
			}
			delta[st.Start]++
			if st.End != nil {
				leaves++
				delta[*st.End]--
			}
		}
		if joins < 3 || leaves < 3 || rejoins < 3 {
			t.Errorf("%s: %d first joins, %d leaves, %d rejoins; want several of each", id, joins, leaves, rejoins)
		}
		// Replay the session: after every instant, between 1 and the cap present,
		// which also means it never ended.
		present := 0
		for _, at := range slices.SortedFunc(maps.Keys(delta), time.Time.Compare) {
			present += delta[at]
			if present < 1 || present > maxParticipants {
				t.Fatalf("%s: %d present at %s, want 1 to %d", id, present, at.Format(timeLayout), maxParticipants)
			}
		}
	}
	if got := bySession["s4"]; len(got) != 1 || got[0].End != nil {
		t.Errorf("s4, beyond Rooms, was churned: %v", got)
	}
}

// TestChurnShortVisits: some stints end before the world's next change, most of
// them short visits, which polls would miss.
func TestChurnShortVisits(t *testing.T) {
	stints := churn(t, ChurnConfig{Rooms: 3, MaxParticipants: 5, Seed: 3, VisitFor: time.Nanosecond})
	short := 0
	for _, st := range stints {
		// Ended at the clock's next read: nothing else happened during the stint.
		if st.End != nil && st.End.Sub(st.Start) == time.Second {
			short++
		}
	}
	if short < 10 {
		t.Errorf("%d stints ended at the next change, of %d; want short visits", short, len(stints))
	}
}

func TestDemoWorld(t *testing.T) {
	newDemo := func() (*Server, []string) {
		clock := NewClock(at("08:00:00"))
		s := New(Config{APIKey: testKey, Secret: testSecret, Now: clock.Now})
		return s, s.DemoWorld(3)
	}
	s, ids := newDemo()
	twin, twinIDs := newDemo()
	if d := cmp.Diff(ids, twinIDs); d != "" {
		t.Errorf("session IDs differ between runs (-first +second):\n%s", d)
	}
	for _, id := range ids {
		if d := cmp.Diff(s.Stints(id), twin.Stints(id)); d != "" {
			t.Errorf("%s: participants differ between runs (-first +second):\n%s", id, d)
		}
	}

	ts := httptest.NewServer(s)
	defer ts.Close()
	var list struct {
		Data []struct{ ID, RoomID, Status string }
	}
	getJSON(t, ts, "/v2/sessions/", &list)
	sessionPattern := regexp.MustCompile(`^[0-9a-f]{24}$`)
	roomPattern := regexp.MustCompile(`^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$`)
	rooms := map[string]bool{}
	for _, sess := range list.Data {
		rooms[sess.RoomID] = true
		if !sessionPattern.MatchString(sess.ID) || !roomPattern.MatchString(sess.RoomID) || sess.Status != "ongoing" {
			t.Errorf("session %+v: want a 24-hex-digit id, a xxxx-xxxx-xxxx roomId, ongoing", sess)
		}
		if n := len(s.Active(sess.ID)); n < 2 || n > 4 {
			t.Errorf("session %s: %d present, want 2 to 4", sess.ID, n)
		}
	}
	if len(list.Data) != 3 || len(rooms) != 3 {
		t.Errorf("%d sessions in %d rooms, want 3 in 3", len(list.Data), len(rooms))
	}

	more := s.DemoWorld(1)
	if slices.Contains(ids, more[0]) {
		t.Errorf("a second DemoWorld call reused session %s", more[0])
	}
	if status, _, _ := get(t, ts, "/v2/sessions/"+more[0], validToken(t)); status != http.StatusOK {
		t.Errorf("new demo session: status %d", status)
	}
}
