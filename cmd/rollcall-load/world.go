package main

import (
	"fmt"
	"math"
	mrand "math/rand/v2"

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

// change ends perCycle stints in every session, each among those present before the
// change, so that every stint lasts through at least one poll when changes are an
// interval apart. Each ended stint is replaced: by a newcomer, by someone who left
// earlier coming back, or by the same participant reconnecting (a second connection
// kicks the first).
func (w *world) change() {
	for _, id := range w.sessions {
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
