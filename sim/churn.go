package sim

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
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
	// VisitFor is the mean length of a short visit: someone joins and leaves again
	// soon, often between two polls (default Interval/2).
	VisitFor time.Duration
	Seed     uint64 // rand/v2 PCG seed; same seed => same sequence of decisions
}

// Relative weights of Churn's moves: mostly arrivals, so rooms fill up, some
// rejoins, so clients see the same participantId come back with a new stint, and
// some short visits, which polls miss.
const (
	joinWeight   = 5
	rejoinWeight = 2
	visitWeight  = 2
	leaveWeight  = 3
)

// churnStream is the second PCG word; only the seed varies between runs.
const churnStream = 0x5eed

// Churn changes the world at random until ctx is done: a new participant joins, a
// participant leaves, one who left rejoins with the same participantId, or someone
// (new, or back) comes for a short visit and leaves again after about VisitFor; with
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
	if cfg.VisitFor <= 0 {
		cfg.VisitFor = cfg.Interval / 2
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, churnStream))
	var visits []*visit // under way, soonest end first
	for {
		wait := time.Duration(rng.ExpFloat64() * float64(cfg.Interval))
		// The visits that end before the next change end first, in order: their
		// times come from rng too, so the sequence stays the seed's.
		for len(visits) > 0 && visits[0].left <= wait {
			v := visits[0]
			if !sleep(ctx, v.left) {
				return
			}
			visits = visits[1:]
			wait -= v.left
			for _, o := range visits {
				o.left -= v.left
			}
			s.endVisit(v)
		}
		if !sleep(ctx, wait) {
			return
		}
		for _, o := range visits {
			o.left -= wait
		}
		if v := s.churnStep(rng, cfg); v != nil {
			i, _ := slices.BinarySearchFunc(visits, v.left, func(o *visit, left time.Duration) int { return cmp.Compare(o.left, left) })
			visits = slices.Insert(visits, i, v)
		}
	}
}

// sleep waits d, and reports false if ctx is done first, or by then.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
	}
	// select picks at random when both are ready; checking again makes a
	// cancellation win, which keeps the number of changes deterministic.
	return ctx.Err() == nil
}

// visit is a short visit under way: its stint ends after left more.
type visit struct {
	sess  *session
	pt    *participant
	start time.Time
	left  time.Duration
}

// endVisit ends v's stint, unless it has ended already (a leave, a second join, the
// session's end) or the visitor is the last one present, who stays: Churn keeps
// someone in every session.
func (s *Server) endVisit(v *visit) {
	s.mu.Lock()
	defer s.unlock()
	last := v.pt.timelog[len(v.pt.timelog)-1]
	present := 0
	for _, pt := range v.sess.participants {
		if pt.present() {
			present++
		}
	}
	if v.sess.end == nil && last.end == nil && last.start.Equal(v.start) && present > 1 {
		s.leave(v.sess, v.pt, s.clock())
	}
}

// churnStep makes one change in one of the churned sessions, all under the lock so
// that the decision and the change see the same world.
func (s *Server) churnStep(rng *rand.Rand, cfg ChurnConfig) *visit {
	s.mu.Lock()
	defer s.unlock()
	var ongoing []*session
	for _, sess := range s.order {
		if sess.end == nil && len(ongoing) < cfg.Rooms {
			ongoing = append(ongoing, sess)
		}
	}
	if len(ongoing) == 0 {
		return nil
	}
	sess := ongoing[rng.IntN(len(ongoing))]
	if cfg.SessionEvery > 0 && rng.Float64() < float64(cfg.Interval)/float64(cfg.SessionEvery)*float64(len(ongoing)) {
		next := s.nextSession(sess.roomID)
		for range 1 + rng.IntN(3) {
			s.join(next, newParticipant(rng, next))
		}
		return nil
	}
	var present, gone []*participant
	for _, pt := range sess.participants {
		if pt.present() {
			present = append(present, pt)
		} else {
			gone = append(gone, pt)
		}
	}
	var join, rejoin, visits, leave int
	if len(present) < cfg.MaxParticipants {
		join, visits = joinWeight, visitWeight
		if len(gone) > 0 {
			rejoin = rejoinWeight
		}
	}
	if len(present) > 1 {
		leave = leaveWeight
	}
	if join+rejoin+visits+leave == 0 {
		return nil // a cap of 1 with one present: nothing may change
	}
	switch x := rng.IntN(join + rejoin + visits + leave); {
	case x < join:
		s.join(sess, newParticipant(rng, sess))
	case x < join+rejoin:
		s.join(sess, gone[rng.IntN(len(gone))].Participant)
	case x < join+rejoin+visits:
		p := newParticipant(rng, sess)
		if len(gone) > 0 && rng.IntN(2) == 0 {
			p = gone[rng.IntN(len(gone))].Participant // back for a moment
		}
		s.join(sess, p)
		pt := sess.byID[p.ID]
		return &visit{sess: sess, pt: pt, start: pt.timelog[len(pt.timelog)-1].start,
			left: time.Duration(rng.ExpFloat64() * float64(cfg.VisitFor))}
	default:
		s.leave(sess, present[rng.IntN(len(present))], s.clock())
	}
	return nil
}
