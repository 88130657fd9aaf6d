package poller_test

import (
	"context"
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
	for _, list := range []poller.List{poller.ListIfNeeded, poller.ListNow} {
		w.clock.Add(5 * time.Second)
		if _, err := r.poller.PollCached(context.Background(), quiet(), session, &poller.Cache{}, list); err != nil {
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

// TestManagerReadsBeforeTheWaitIsOver: the list of all participants fails for 3.3 s of
// a 4.5 s left_time_wait, so its readings back off (at 0, 0.2, 0.6, 1.4 and 3 s, the
// next 3.2 s later, past the wait); it works again before the wait is over, and is
// read once more two intervals before it: the left goes out with its end, not without.
func TestManagerReadsBeforeTheWaitIsOver(t *testing.T) {
	w := newWorld(t, "a", "b")
	r := newRig(t, w, true)
	r.poller = r.with(w.client(2), poller.WithLeftTimeWait(4500*time.Millisecond))
	m := r.manage(t, func(c *poller.ManagerConfig) { c.Schedule = every(100 * time.Millisecond) })
	m.track("config", []string{session}, nil)
	eventually(t, "the first poll", func() bool { return len(streamEvents(t, r.js)) == 3 })

	w.api.InjectFault(sim.Fault{PathSuffix: "/participants", Status: 500, Times: 1 << 20})
	w.api.Leave(session, "b")
	time.Sleep(3300 * time.Millisecond)
	w.api.ClearFaults()
	eventually(t, "b's left", func() bool { return len(streamEvents(t, r.js)) == 4 })
	if got := streamEvents(t, r.js)[3]; got != "participant.left b@2 until 2" {
		t.Errorf("b's left: %q, want it with its end", got)
	}
}
