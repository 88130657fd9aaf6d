package poller_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// sameCounter counts the scans that stopped at a page the poll already had; metrics
// are the poller's.
type sameCounter struct {
	poller.Source
	same    atomic.Int64
	metrics *metrics.Metrics
}

func (s *sameCounter) SnapshotSince(ctx context.Context, log *slog.Logger, id string, since uint64) (diff.Snapshot, uint64, error) {
	snap, sum, err := s.Source.SnapshotSince(ctx, log, id, since)
	if err == nil && since != 0 && sum == since {
		s.same.Add(1)
	}
	return snap, sum, err
}

// samePageRig is a session of participants, read perPage at a time, polled with a
// loop's cache that reconciles every reconcile (0: never), 5 s apart; lefts wait a
// minute for their end.
func samePageRig(t *testing.T, reconcile time.Duration, perPage int, participants ...string) (*world, *rig, *sameCounter, func() poller.Result) {
	t.Helper()
	w := newWorld(t, participants...)
	r := newRig(t, w, true)
	src := &sameCounter{Source: w.client(perPage), metrics: metrics.New(prometheus.NewRegistry())}
	r.poller = r.with(src, poller.WithClock(w.clock.Now), poller.WithLeftTimeWait(time.Minute), poller.WithMetrics(src.metrics))
	var sched = every(reconcile)
	if reconcile == 0 {
		sched = nil
	}
	cache := poller.NewCache(session, every(5*time.Second), sched, w.clock.Now())
	poll := func() poller.Result {
		t.Helper()
		w.clock.Add(5 * time.Second)
		res, err := r.poller.PollCached(context.Background(), quiet(), session, &cache)
		if err != nil {
			t.Fatal(err)
		}
		res.Fetching = 0
		return res
	}
	return w, r, src, poll
}

// settle polls polls times, the first with the joins, and checks that stops of them
// stopped at the same page.
func settle(t *testing.T, r *rig, src *sameCounter, poll func() poller.Result, polls int, stops int64) {
	t.Helper()
	for range polls {
		poll()
	}
	r.newEvents(t)
	if n := src.same.Load(); n != stops {
		t.Fatalf("%d of %d polls stopped at the same page, want %d", n, polls, stops)
	}
	var counted dto.Metric
	if err := src.metrics.SamePage.Write(&counted); err != nil {
		t.Fatal(err)
	}
	if n := counted.GetCounter().GetValue(); n != float64(stops) {
		t.Errorf("rollcall_polls_same_page_total %v, want %d", n, stops)
	}
}

// TestPollCachedStopsAtTheSamePage: once a poll has found nothing to do with a
// session's one page, the next polls that read the same page, byte for byte, stop
// there, with the same result; a page that changes is read whole, and its changes
// published.
func TestPollCachedStopsAtTheSamePage(t *testing.T) {
	w, r, src, poll := samePageRig(t, 0, 100, "a", "b")
	poll()             // joins
	quietRes := poll() // clears the outbox, and finds nothing to do
	r.newEvents(t)
	for range 3 {
		if d := gocmp.Diff(quietRes, poll()); d != "" {
			t.Errorf("a poll of the same page (-before +now):\n%s", d)
		}
	}
	if n := src.same.Load(); n != 3 {
		t.Errorf("%d polls stopped at the same page, want 3", n)
	}
	w.api.Join(session, "c", "name-c")
	poll()
	if d := gocmp.Diff([]string{"participant.joined c@27"}, r.newEvents(t)); d != "" {
		t.Errorf("a changed page (-want +got):\n%s", d)
	}
	poll() // clears the outbox
	if n := src.same.Load(); n != 3 {
		t.Errorf("%d polls stopped at the same page, want still 3: the page changed, then a poll cleared its outbox", n)
	}
	if res := poll(); res.Present != 3 || src.same.Load() != 4 {
		t.Errorf("a poll of the same page again: %d present, %d stopped in all; want 3 and 4", res.Present, src.same.Load())
	}
}

// TestPollCachedSamePageStillReconciles: c joins and leaves between two polls, and
// the session's page stays the same, byte for byte; the reconciliation that falls
// due reads the list of all participants all the same, and publishes c's stint.
func TestPollCachedSamePageStillReconciles(t *testing.T) {
	w, r, src, poll := samePageRig(t, 30*time.Second, 100, "a", "b")
	settle(t, r, src, poll, 3, 1)
	w.api.Join(session, "c", "name-c")
	w.clock.Add(time.Second)
	w.api.Leave(session, "c")
	var got []string
	for range 8 { // 40 s: a reconciliation falls due
		poll()
		got = append(got, r.newEvents(t)...)
	}
	want := []string{"participant.joined c@17 reconciled", "participant.left c@17 until 18 reconciled"}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("the reconciliation (-want +got):\n%s", d)
	}
	if src.same.Load() == 0 {
		t.Error("no poll stopped at the same page: this is not the test of one")
	}
	// A reconciliation that finds nothing leaves the polls after it stopping.
	before := src.same.Load()
	for range 12 { // 60 s: two reconciliations
		poll()
	}
	if n := src.same.Load() - before; n != 10 {
		t.Errorf("%d of 12 polls stopped at the same page, want 10: all but the two reconciliations", n)
	}
}

// TestPollCachedSamePageLeftStillWaits: b leaves, and the list of all participants
// shows its end only 20 s later. That list is two pages (d came and went before), read
// every other poll; the active list, a alone, one page that stays the same. The left
// goes out once the end shows, as the clock says, whatever the page.
func TestPollCachedSamePageLeftStillWaits(t *testing.T) {
	w, r, src, poll := samePageRig(t, 0, 2, "a", "b", "d")
	w.api.Leave(session, "d")
	w.api.SetListLag(20 * time.Second)
	settle(t, r, src, poll, 4, 2)
	w.api.Leave(session, "b")
	var got []string
	for range 8 { // 40 s
		poll()
		got = append(got, r.newEvents(t)...)
	}
	want := []string{"participant.joined d@3 reconciled", "participant.left d@3 until 3 reconciled", // the list's first reading
		"participant.left b@2 until 23"}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("b's left (-want +got):\n%s", d)
	}
}

// TestPollCachedReadsEveryPageOfALongerList: a list of two pages is read whole on
// every poll, even when its first page stays the same: d's join, on page 2, is
// published.
func TestPollCachedReadsEveryPageOfALongerList(t *testing.T) {
	w, r, src, poll := samePageRig(t, 0, 2, "a", "b", "c")
	settle(t, r, src, poll, 4, 0)
	w.api.Join(session, "d", "name-d")
	poll()
	if d := gocmp.Diff([]string{"participant.joined d@23"}, r.newEvents(t)); d != "" {
		t.Errorf("a join on page 2 (-want +got):\n%s", d)
	}
	if n := src.same.Load(); n != 0 {
		t.Errorf("%d polls of a list of two pages stopped at page 1", n)
	}
}

// TestPollCachedSamePageAfterAChange: c joins, and leaves two polls later; the page
// is then what it was before c came, byte for byte, but the state is not: the poll
// reads it, and c's left goes out.
func TestPollCachedSamePageAfterAChange(t *testing.T) {
	w, r, src, poll := samePageRig(t, 0, 100, "a", "b")
	settle(t, r, src, poll, 4, 2)
	w.api.Join(session, "c", "name-c")
	poll()
	poll() // clears the outbox
	w.api.Leave(session, "c")
	poll()
	want := []string{"participant.joined c@22", "participant.left c@22 until 32"}
	if d := gocmp.Diff(want, r.newEvents(t)); d != "" {
		t.Errorf("c's stint (-want +got):\n%s", d)
	}
	if n := src.same.Load(); n != 2 {
		t.Errorf("%d polls stopped at the same page, want 2, before c came", n)
	}
}

// TestSnapshotSince: the sum of a one-page list; at that sum again, an empty snapshot
// (nothing decoded); another sum once the page changes; none for two pages.
func TestSnapshotSince(t *testing.T) {
	w := newWorld(t, "a", "b")
	c := w.client(2)
	ctx := context.Background()
	scan := func(since uint64) (diff.Snapshot, uint64) {
		t.Helper()
		snap, sum, err := c.SnapshotSince(ctx, nil, session, since)
		if err != nil {
			t.Fatal(err)
		}
		return snap, sum
	}
	snap, sum := scan(0)
	if sum == 0 || len(snap.Participants) != 2 {
		t.Fatalf("one page: sum %x, %d participants; want a sum, and both", sum, len(snap.Participants))
	}
	if again, same := scan(sum); same != sum || len(again.Participants) != 0 || again.SessionID != session {
		t.Errorf("the same page: sum %x (want %x), %+v; want an empty snapshot of the session", same, sum, again)
	}
	w.api.Leave(session, "b")
	snap, changed := scan(sum)
	if changed == 0 || changed == sum || len(snap.Participants) != 1 {
		t.Errorf("a page that changed: sum %x (was %x), %d participants; want a new sum, and a", changed, sum, len(snap.Participants))
	}
	w.api.Join(session, "b", "name-b")
	w.api.Join(session, "c", "name-c")
	if snap, sum := scan(changed); sum != 0 || len(snap.Participants) != 3 {
		t.Errorf("two pages: sum %x, %d participants; want none, and all 3", sum, len(snap.Participants))
	}
}

// TestPollCachedSamePageAfterAGlitch: b vanishes from one answer, and its left waits
// for its end; the next answer shows b again, in the same stint, byte for byte the page
// of the quiet polls before. That poll reads it all the same (the state is not what it
// was then): b is present again, and no left goes out.
func TestPollCachedSamePageAfterAGlitch(t *testing.T) {
	w, r, src, poll := samePageRig(t, 0, 100, "a", "b")
	w.api.SetListLag(20 * time.Second)
	settle(t, r, src, poll, 3, 1)
	w.api.InjectFault(sim.Fault{PathContains: "/participants/active", Rewrite: func(body []byte) []byte {
		var page map[string]any
		if err := json.Unmarshal(body, &page); err != nil {
			t.Error(err)
			return body
		}
		doc := page["data"].([]any)[0].(map[string]any)
		doc["participants"] = slices.DeleteFunc(doc["participants"].([]any), func(p any) bool { return p.(map[string]any)["participantId"] == "b" })
		page["pageInfo"].(map[string]any)["total"] = 1
		out, err := json.Marshal(page)
		if err != nil {
			t.Error(err)
		}
		return out
	}})
	if res := poll(); res.Present != 1 || res.Waiting != 1 {
		t.Fatalf("without b: %d present, %d waiting; want 1 and 1", res.Present, res.Waiting)
	}
	if res := poll(); res.Present != 2 || res.Waiting != 0 {
		t.Errorf("b shown again: %d present, %d waiting; want 2 and 0", res.Present, res.Waiting)
	}
	for range 20 { // 100 s: past the list's lag and the left's wait
		poll()
	}
	if got := r.newEvents(t); len(got) != 0 {
		t.Errorf("events for a participant who never left: %v", got)
	}
}
