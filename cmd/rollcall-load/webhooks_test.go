package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/sim"
)

// TestMeasureLatencies checks the classification and the arithmetic on a hand-made
// churn: each change's latency is its event's stream timestamp less its joinedAt or
// leftAt, and a change is "lost" only if the webhook of that very change (type,
// session, participant and time) was dropped.
func TestMeasureLatencies(t *testing.T) {
	since := time.Date(2026, 12, 1, 10, 0, 0, 400_000, time.UTC) // 0.4 ms past the API's millisecond
	at := func(ms int) *time.Time {
		return new(since.Truncate(time.Millisecond).Add(time.Duration(ms) * time.Millisecond))
	}
	stored := func(ms int) time.Time { return *at(ms) }
	joined := func(session, participant string, join *time.Time, storedAt time.Time) storedEvent {
		return storedEvent{Type: events.TypeJoined, SessionID: session, ParticipantID: participant, JoinedAt: join, Detection: events.DetectionPoll, Stored: storedAt}
	}
	left := func(session, participant string, join, leave *time.Time, storedAt time.Time) storedEvent {
		return storedEvent{Type: events.TypeLeft, SessionID: session, ParticipantID: participant, JoinedAt: join, LeftAt: leave, Detection: events.DetectionPoll, Stored: storedAt}
	}
	key := func(typ, session, participant string, t *time.Time) hookKey {
		return hookKey{Type: typ, SessionID: session, ParticipantID: participant, At: t.UnixMilli()}
	}
	reconciled := left("s1", "r", at(100), at(200), stored(10_000))
	reconciled.Detection = events.DetectionReconciled
	evs := []storedEvent{
		joined("s1", "before", at(-5_000), stored(100)), // joined before the churn: not one of its changes
		joined("s1", "a", at(0), stored(150)),           // in since's millisecond: measured; webhook arrived
		left("s1", "b", at(-5_000), at(1_000), stored(1_300)),
		// b reconnects twice; the second join's webhook is lost, the first's not.
		joined("s1", "b", at(1_000), stored(1_250)),
		left("s1", "b", at(1_000), at(3_000), stored(3_400)),
		joined("s1", "b", at(3_000), stored(9_000)),
		left("s2", "c", at(-5_000), nil, stored(4_000)), // no leftAt
		reconciled,
		joined("s2", "d", at(2_000), stored(2_500)),
	}
	hooks := &webhookLog{
		Lost: []hookKey{
			key(sim.ParticipantJoined, "s1", "b", at(3_000)),
			key(sim.ParticipantLeft, "s1", "b", at(1_000)),
			key(sim.ParticipantJoined, "s3", "e", at(500)), // no event: counted
		},
		Answered: []hookAnswer{
			{key(sim.ParticipantJoined, "s1", "a", at(0)), stored(100)},
			{key(sim.ParticipantJoined, "s1", "b", at(1_000)), stored(1_200)},
			{key(sim.ParticipantLeft, "s1", "b", at(3_000)), stored(3_500)},
			{key(sim.ParticipantJoined, "s2", "d", at(2_000)), stored(2_050)},
		},
	}
	ms := func(ds ...int) []time.Duration {
		out := make([]time.Duration, len(ds))
		for i, d := range ds {
			out[i] = time.Duration(d) * time.Millisecond
		}
		return out
	}
	got := measureLatencies(evs, since, hooks)
	want := latencies{
		webhooks:  true,
		arrived:   ms(150, 250, 400, 500),
		rest:      ms(300, 6_000),
		hookDelay: ms(100, 200, 500, 50),
		// b's first left is lost, and found by the poll its joined's webhook hints;
		// its second left is stored by a scheduled poll before its webhook came.
		hinted:        ms(50, 100, 50, 5_500, 450),
		unhinted:      1,
		noLeftAt:      1,
		reconciled:    1,
		lostUnmatched: 1,
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(latencies{})); d != "" {
		t.Errorf("with webhooks (-want +got):\n%s", d)
	}

	// Without webhooks, every measured change is of the rest.
	got = measureLatencies(evs, since, nil)
	want = latencies{rest: ms(150, 300, 250, 400, 6_000, 500), noLeftAt: 1, reconciled: 1}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(latencies{})); d != "" {
		t.Errorf("without webhooks (-want +got):\n%s", d)
	}

	var out bytes.Buffer
	reportLatencies(&out, options{interval: 10 * time.Second, webhooks: true, hooks: sim.WebhookOptions{MaxDelay: time.Second}}, measureLatencies(evs, since, hooks), hooks)
	for _, line := range []string{
		"webhook arrived: 4 changes, p50 250ms, p99 500ms, max 500ms (target ≤ 1s)",
		"webhook lost:    2 changes, p50 300ms, p99 6s, max 6s (target ≤ interval + 1s = 11s)",
		"not measured: 1 lefts without leftAt, 1 reconciled",
		"first copy answered after its change: p50 100ms, p99 500ms, max 500ms",
		"answered since the change: p50 100ms, p99 5.5s, max 5.5s; 1 changes stored before any",
		"0 arrived changes with no answer on record, 1 lost webhooks with no poll event",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, out.String())
		}
	}
}

// TestWebhookRecorder checks what the simulator's side keeps: participant webhooks
// only, each loss, and the first answer of a webhook sent twice.
func TestWebhookRecorder(t *testing.T) {
	r := &webhookRecorder{answered: map[hookKey]time.Time{}}
	at := time.Date(2026, 12, 1, 10, 0, 0, 123_456_789, time.UTC)
	joined := sim.Webhook{Type: sim.ParticipantJoined, SessionID: "s", ParticipantID: "p", At: at}
	r.onWebhook(sim.Webhook{Type: sim.SessionStarted, SessionID: "s", At: at}, false)
	r.onWebhook(joined, true)
	first := r.answered[hookKey{sim.ParticipantJoined, "s", "p", at.UnixMilli()}]
	r.onWebhook(joined, true)
	left := joined
	left.Type = sim.ParticipantLeft
	r.onWebhook(left, false)
	if d := cmp.Diff([]hookKey{{sim.ParticipantLeft, "s", "p", at.UnixMilli()}}, r.lost); d != "" {
		t.Errorf("lost (-want +got):\n%s", d)
	}
	if len(r.answered) != 1 || first.IsZero() || !r.answered[hookKey{sim.ParticipantJoined, "s", "p", at.UnixMilli()}].Equal(first) {
		t.Errorf("answered = %v, want the first answer of the joined alone (%v)", r.answered, first)
	}
}

// TestRunWebhooks runs a small load with webhooks, half of them lost and half of the
// others doubled, and checks that every change of the churn is measured once, in
// the class its webhook's fate says. It asserts nothing about time.
func TestRunWebhooks(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-sessions", "3", "-participants", "5", "-per-page", "2", "-latency", "0",
		"-interval", "1s", "-steady", "1", "-churn-intervals", "3", "-nats-cli", "",
		"-webhooks", "-webhook-delay", "0-50ms", "-webhook-loss", "0.5", "-webhook-dup", "0.5", "-seed", "7"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	number := func(pattern string) int {
		t.Helper()
		m := regexp.MustCompile(pattern).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("output lacks %q:\n%s", pattern, text)
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	arrived := number(`webhook arrived: (\d+) changes`)
	lost := number(`webhook lost: +(\d+) changes`)
	unmeasured := number(`not measured: (\d+) lefts without leftAt`) + number(`lefts without leftAt, (\d+) reconciled`)
	// As in TestRun: 9 stints begin and 9 end in the churn, each a change with a
	// webhook; nothing else changes once the simulator sends them.
	if got := arrived + lost + unmeasured; got != 18 {
		t.Errorf("%d arrived + %d lost + %d not measured = %d changes, want 18:\n%s", arrived, lost, unmeasured, got, text)
	}
	if calledFor := number(`webhooks: +(\d+) called for`); calledFor != 18 {
		t.Errorf("%d webhooks called for, want 18:\n%s", calledFor, text)
	}
	if dropped := number(`called for: (\d+) lost`); unmeasured == 0 && dropped != lost {
		t.Errorf("the simulator dropped %d webhooks, %d changes are classified lost:\n%s", dropped, lost, text)
	}
	if lost == 0 || arrived == 0 {
		t.Errorf("with half the webhooks lost, want changes of both kinds:\n%s", text)
	}
	for _, bad := range []string{"no answer on record", "stored before their change", "level="} {
		if strings.Contains(text, bad) {
			t.Errorf("output has %q:\n%s", bad, text)
		}
	}
}
