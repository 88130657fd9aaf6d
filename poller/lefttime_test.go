package poller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// lastLeft returns the last left event of participant id in the rig's stream,
// decoded by the contract.
func lastLeft(t *testing.T, r *rig, id string) (events.Event, events.ParticipantData) {
	t.Helper()
	msgs := natstest.Messages(t, r.js, "ROLLCALL")
	for i := len(msgs) - 1; i >= 0; i-- {
		e, err := events.Decode(msgs[i].Data)
		if err != nil {
			t.Fatalf("%s: %v", msgs[i].Data, err)
		}
		if e.Type == events.TypeLeft && e.Subject == id {
			d, err := e.Participant()
			if err != nil {
				t.Fatal(err)
			}
			return e, d
		}
	}
	t.Fatal("no left in the stream")
	return events.Event{}, events.ParticipantData{}
}

// waitingRig is a session of a and b, polled once, whose lefts wait a minute for
// their end; the list of all participants shows ends lag late.
func waitingRig(t *testing.T, lag time.Duration) (*world, *rig) {
	t.Helper()
	w := newWorld(t, "a", "b")
	w.api.SetListLag(lag)
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(time.Minute))
	r.poll(t)
	r.newEvents(t)
	return w, r
}

// TestPollLeftWaitsForItsEnd: the list of all participants shows b's end only ten
// seconds after b left. The left waits, in the state (each Poll reads it from the
// store), and goes out once the end shows, with that end, observed when b was first
// found gone.
func TestPollLeftWaitsForItsEnd(t *testing.T) {
	w, r := waitingRig(t, 10*time.Second)

	w.clock.Add(5 * time.Second) // 7
	w.api.Leave(session, "b")
	gone := w.clock.Now()
	for range 2 {
		if got := r.poll(t); len(got) != 0 {
			t.Fatalf("events while b's end does not show: %v", got)
		}
		w.clock.Add(5 * time.Second) // 12, then 17: the end shows from 17
	}
	if d := gocmp.Diff([]string{"participant.left b@2 until 7"}, r.poll(t)); d != "" {
		t.Errorf("once the end shows (-want +got):\n%s", d)
	}
	e, d := lastLeft(t, r, "b")
	if !d.ObservedAt.Equal(gone) || !e.Time.Equal(d.LeftAt.Time) || d.Detection != events.DetectionPoll {
		t.Errorf("observedAt %v (want %v, when b was found gone), time %v (want leftAt %v), detection %q", d.ObservedAt, gone, e.Time, d.LeftAt, d.Detection)
	}
	w.clock.Add(time.Minute)
	if got := r.poll(t); len(got) != 0 {
		t.Errorf("events after the left: %v", got)
	}
}

// TestPollLeftWithoutItsEnd: the list of all participants fails for longer than
// left_time_wait. b's left is published once the wait is over, with leftAt null and
// time its observedAt, when b was found gone; once the list works again, nothing is
// published again, with or without an end.
func TestPollLeftWithoutItsEnd(t *testing.T) {
	w, r := waitingRig(t, 0)

	w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Status: 500, Times: 1000})
	w.clock.Add(5 * time.Second) // 7
	w.api.Leave(session, "b")
	gone := w.clock.Now()
	for _, step := range []time.Duration{30 * time.Second, 29 * time.Second} { // until 66
		if got := r.poll(t); len(got) != 0 {
			t.Fatalf("events while the list fails, within the wait: %v", got)
		}
		w.clock.Add(step)
	}
	if got := r.poll(t); len(got) != 0 {
		t.Fatalf("events at 59s of the minute's wait: %v", got)
	}
	w.clock.Add(time.Second) // 67: the minute is over
	if d := gocmp.Diff([]string{"participant.left b@2"}, r.poll(t)); d != "" {
		t.Errorf("once the wait is over (-want +got):\n%s", d)
	}
	e, d := lastLeft(t, r, "b")
	if d.LeftAt != nil || !d.ObservedAt.Equal(gone) || !e.Time.Equal(gone) {
		t.Errorf("leftAt %v (want null), observedAt %v and time %v (want %v, when b was found gone)", d.LeftAt, d.ObservedAt, e.Time, gone)
	}

	// The list works again and shows b's end: nothing more, even on a reconciliation.
	w.api.ClearFaults()
	// The first poll starts the cache's reconciliations, and the second is one.
	cache := poller.NewCache(session, every(time.Nanosecond), every(time.Second), w.clock.Now())
	for range 2 {
		w.clock.Add(5 * time.Second)
		if _, err := r.poller.PollCached(context.Background(), quiet(), session, &cache); err != nil {
			t.Fatal(err)
		}
		if got := r.newEvents(t); len(got) != 0 {
			t.Errorf("events after the list came back: %v", got)
		}
	}
}

// TestPollEndedSessionWaitsForEnds: b leaves a moment before the session ends, and the
// list of all participants shows ends ten seconds late. The session's end is not b's:
// b's left waits for its own end, and session.ended waits for it; a, there when the
// session ended, leaves at its own end too once it shows.
func TestPollEndedSessionWaitsForEnds(t *testing.T) {
	w, r := waitingRig(t, 10*time.Second)

	w.clock.Add(5 * time.Second) // 7
	w.api.Leave(session, "b")
	left := w.clock.Now()
	w.clock.Add(300 * time.Millisecond)
	w.api.EndSession(session) // 7.3
	ended := w.clock.Now()
	res, err := r.poller.Poll(context.Background(), quiet(), session)
	if err != nil || res.Ended || res.Waiting != 2 {
		t.Fatalf("the poll that sees the end = %+v, %v; want not ended yet, two lefts waiting", res, err)
	}
	if got := r.newEvents(t); len(got) != 0 {
		t.Fatalf("events before the ends show: %v", got)
	}
	w.clock.Add(10 * time.Second) // 17.3: both ends show
	want := []string{"participant.left b@2 until 7", "participant.left a@1 until 7", "session.ended"}
	if d := gocmp.Diff(want, r.poll(t)); d != "" {
		t.Errorf("once the ends show (-want +got):\n%s", d)
	}
	for id, end := range map[string]time.Time{"b": left, "a": ended} {
		if _, d := lastLeft(t, r, id); d.LeftAt == nil || !d.LeftAt.Equal(end) {
			t.Errorf("%s's leftAt %v, want %v", id, d.LeftAt, end)
		}
	}
}

// loopRig is a rig whose poller runs on the world's clock, as a session's loop
// polling every interval runs it: pollAfter moves the clock on by an interval and
// polls with the loop's cache, the list-reading budget in it.
type loopRig struct {
	*rig
	cache    poller.Cache
	interval time.Duration
}

func newLoopRig(t *testing.T, w *world, interval, leftTimeWait time.Duration) *loopRig {
	t.Helper()
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(leftTimeWait))
	return &loopRig{rig: r, cache: poller.NewCache(session, every(interval), nil, w.clock.Now()), interval: interval}
}

func (r *loopRig) pollAfter(t *testing.T) {
	t.Helper()
	r.clock.Add(r.interval)
	if _, err := r.poller.PollCached(context.Background(), quiet(), session, &r.cache); err != nil {
		t.Fatal(err)
	}
}

// TestPollReadsBeforeTheWaitIsOver: the list of all participants fails for 3.3 s of
// a 4.5 s left_time_wait, polls 0.1 s apart, so its readings back off (at 0, 0.2,
// 0.6, 1.4 and 3 s, the next 3.2 s later, past the wait); it works again before the
// wait is over, and is read once more two intervals before it: the left goes out with
// its end, not without.
func TestPollReadsBeforeTheWaitIsOver(t *testing.T) {
	w := newWorld(t, "a", "b")
	r := newLoopRig(t, w, 100*time.Millisecond, 4500*time.Millisecond)
	r.pollAfter(t)
	r.newEvents(t)

	w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Status: 500, Times: 1 << 20})
	w.api.Leave(session, "b")
	for range 33 {
		r.pollAfter(t)
	}
	w.api.ClearFaults()
	var got []string
	for range 15 { // 1.5 s: the wait is over
		r.pollAfter(t)
		got = append(got, r.newEvents(t)...)
	}
	if d := gocmp.Diff([]string{"participant.left b@2 until 2"}, got); d != "" {
		t.Errorf("b's left (-want +got):\n%s", d)
	}
	// 49 polls of a one-page active list, and six readings of the list (five
	// failing, of 3 attempts each): read every poll, it would be 33 readings.
	if n := w.api.Requests(); n > 49+6*3 {
		t.Errorf("%d requests, want at most 67: the failing list was not read less often", n)
	}
}

// TestPollBoundsLongLists: a session whose list of all participants is 30 pages long
// (60 came, 55 went; two to a page), in which someone leaves before every poll. Read
// on every such poll, the list would cost 30 requests a poll; a loop's budget reads it
// at most once per 30 intervals, so it costs about one request a poll, and the lefts
// wait for the next reading. Once the world is calm, every left has gone out, each
// with its end.
func TestPollBoundsLongLists(t *testing.T) {
	w := newWorld(t)
	for i := range 60 {
		w.api.Join(session, fmt.Sprintf("old%02d", i), "old")
		if i >= 5 {
			w.api.Leave(session, fmt.Sprintf("old%02d", i))
		}
	}
	r := newLoopRig(t, w, time.Second, time.Hour)
	reqs := r.logged(t)
	r.poller = r.with(r.client(2), poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(time.Hour))
	r.pollAfter(t)
	for i := range 30 { // a new participant each interval, the one before gone
		w.api.Join(session, fmt.Sprintf("new%02d", i), "new")
		if i > 0 {
			w.api.Leave(session, fmt.Sprintf("new%02d", i-1))
		}
		r.pollAfter(t)
	}
	const polls = 31
	list := reqs.count("/participants?")
	t.Logf("%d polls: %d requests for the active list, %d for the list of all participants (30 pages and more)",
		polls, reqs.count("/participants/active"), list)
	if limit := polls + 32; list > limit {
		t.Errorf("%d requests for the list of all participants in %d polls, want at most %d (one a poll, and a reading's worth)", list, polls, limit)
	}
	lefts := func() (n, timed int) {
		for _, e := range streamEvents(t, r.js) {
			if strings.HasPrefix(e, "participant.left new") {
				n++
				if strings.Contains(e, " until ") {
					timed++
				}
			}
		}
		return n, timed
	}
	for range 100 {
		if n, _ := lefts(); n == 29 {
			break
		}
		r.pollAfter(t)
	}
	if n, timed := lefts(); n != 29 || timed != 29 {
		t.Errorf("%d lefts, %d of them with their end, after 100 calm polls; want all 29 with their end", n, timed)
	}
}
