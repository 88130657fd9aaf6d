package main

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/rollcall/rollcall/sim"
)

// world drives the simulator: sessions of a fixed number of present participants, a
// fraction of whom change stint at each change.
type world struct {
	api      *sim.Server
	rng      *mrand.Rand
	sessions []string
	perCycle int                 // stints that end (and as many that begin) per session per change
	present  map[string][]string // by session: who is present now
	gone     map[string][]string // by session: who left and has not come back
	next     int                 // for new participant IDs
}

// sessionID is the ID of the i-th session of the world, known to both processes.
func sessionID(i int) string { return fmt.Sprintf("%024x", 0x10ad0000+i) }

func newWorld(api *sim.Server, o options) *world {
	w := &world{
		api: api, rng: mrand.New(mrand.NewPCG(o.seed, 0x10ad)), perCycle: int(math.Round(o.churn * float64(o.participants))),
		present: make(map[string][]string), gone: make(map[string][]string),
	}
	for i := range o.sessions {
		id := sessionID(i)
		api.StartSession(id, fmt.Sprintf("load-%04d-%04d", i/10000, i%10000))
		for range o.participants {
			w.present[id] = append(w.present[id], w.join(id, ""))
		}
		w.sessions = append(w.sessions, id)
	}
	return w
}

// join makes pid join session id, or a newcomer if pid is "", and returns who joined.
func (w *world) join(id, pid string) string {
	if pid == "" {
		w.next++
		pid = fmt.Sprintf("p%07d", w.next)
	}
	w.api.Join(id, pid, "Participant "+pid)
	return pid
}

// changeOver changes every session once, session i of S at i/S of over from now, and
// returns when all have changed, or ctx is done. The changes come as a steady stream,
// as those of independent meetings do, and not all at once: a burst of thousands of
// webhooks is more than the simulator can sign in the time their delays allow on a
// small machine. It returns over after it began, so that a session's own changes
// stay at least one over apart. mu is held while a session changes.
func (w *world) changeOver(ctx context.Context, over time.Duration, mu *sync.Mutex) error {
	start := time.Now()
	for i, id := range w.sessions {
		if err := sleep(ctx, time.Until(start.Add(over*time.Duration(i)/time.Duration(len(w.sessions))))); err != nil {
			return err
		}
		mu.Lock()
		w.change(id)
		mu.Unlock()
	}
	return sleep(ctx, time.Until(start.Add(over))) // the next changes come an interval later
}

// change ends perCycle stints of session id, each among those present before the
// change, so that every stint lasts through at least one poll when changes are an
// interval apart. Each ended stint is replaced: by a newcomer, by someone who left
// earlier coming back, or by the same participant reconnecting (a second connection
// kicks the first).
func (w *world) change(id string) {
	present := w.present[id]
	for _, i := range w.rng.Perm(len(present))[:min(w.perCycle, len(present))] {
		pid := present[i]
		switch w.rng.IntN(3) {
		case 0: // reconnects
			w.join(id, pid)
		case 1: // leaves; someone who left earlier comes back
			if gone := w.gone[id]; len(gone) > 0 {
				w.api.Leave(id, pid)
				j := w.rng.IntN(len(gone))
				present[i], gone[j] = gone[j], pid
				w.join(id, present[i])
				break
			}
			fallthrough
		default: // leaves; a newcomer joins
			w.api.Leave(id, pid)
			w.gone[id] = append(w.gone[id], pid)
			present[i] = w.join(id, "")
		}
	}
}

// counts are events by kind.
type counts struct{ Total, Started, Joined, Left uint64 }

// expected returns the events the simulator's world calls for: a session.started per
// session, a joined per stint and a left per ended stint.
func (w *world) expected() counts {
	var c counts
	for _, id := range w.sessions {
		c.Started++
		for _, st := range w.api.Stints(id) {
			c.Joined++
			if st.End != nil {
				c.Left++
			}
		}
	}
	c.Total = c.Started + c.Joined + c.Left
	return c
}
