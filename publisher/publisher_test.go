package publisher_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var (
	joinedAt   = time.Date(2023, 7, 24, 8, 28, 9, 650e6, time.UTC)
	leftAt     = time.Date(2023, 7, 24, 8, 40, 1, 5e6, time.UTC)
	observedAt = time.Date(2023, 7, 24, 8, 28, 12, 4e6, time.UTC)
	waitedFrom = time.Date(2023, 7, 24, 8, 28, 11, 2e6, time.UTC) // a left found gone then, published at observedAt
	snap       = diff.Snapshot{SessionID: "64bb3619669942e088479mm0", RoomID: "r10p-2qz8-si67", Status: "ongoing", Start: joinedAt.Add(-time.Second)}
	demo1      = diff.Participant{
		ID: "iqpq5uen", Name: "demo1", JoinedAt: joinedAt, Mode: "CONFERENCE",
		DeviceInfo:  json.RawMessage(`{"sdkType":"prebuilt"}`),
		GeoLocation: json.RawMessage(`{"city":"Surat","region":"Gujarat","country":"India"}`),
	}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestNewEvent compares events with the contract's examples in events/testdata, which follow the
// spec's example event.
func TestNewEvent(t *testing.T) {
	ended := snap
	ended.Status, ended.End = diff.StatusEnded, &leftAt
	tests := []struct {
		golden string
		snap   diff.Snapshot
		change diff.Change
	}{
		{"joined.json", snap, diff.Change{Kind: diff.Joined, Participant: demo1}},
		{"left-time-known.json", snap, diff.Change{Kind: diff.Left, Participant: demo1, LeftAt: &leftAt}},
		{"left-time-unknown.json", snap, diff.Change{Kind: diff.Left, Participant: diff.Participant{ID: "mxavzgb5", Name: "demo2", JoinedAt: joinedAt}}},
		{"joined-reconciled.json", snap, diff.Change{Kind: diff.Joined, Participant: demo1, Reconciled: true}},
		{"left-reconciled.json", snap, diff.Change{Kind: diff.Left, Participant: demo1, LeftAt: &leftAt, Reconciled: true}},
		{"left-waited.json", snap, diff.Change{Kind: diff.Left, Participant: demo1, ObservedAt: &waitedFrom}},
		{"session-started.json", snap, diff.Change{Kind: diff.SessionStarted}},
		{"session-ended.json", ended, diff.Change{Kind: diff.SessionEnded}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			e := publisher.NewEvent(tt.snap, observedAt, tt.change)
			got, err := json.MarshalIndent(e, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("..", "events", "testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), string(got)+"\n"); d != "" {
				t.Errorf("event (-want +got):\n%s", d)
			}
		})
	}
}

func TestEventID(t *testing.T) {
	j := diff.Change{Kind: diff.Joined, Participant: demo1}
	l := diff.Change{Kind: diff.Left, Participant: demo1, LeftAt: &leftAt}
	other := demo1
	other.JoinedAt = leftAt
	id := publisher.EventID(snap.SessionID, j)
	// As rollcall wrote them before 0607fa0 made EventID allocate less: an outbox
	// that a newer rollcall sends again after an upgrade must be dropped as duplicates.
	for c, want := range map[*diff.Change]string{&j: "f490a817ebe944f3d97e07aa0ad42c69", &l: "88a83cf91238b718773b40b8e2b79089",
		{Kind: diff.SessionStarted}: "b9ccf3dca3afaaf4482f5306ea0e8162"} {
		if got := publisher.EventID(snap.SessionID, *c); got != want {
			t.Errorf("EventID of a %v = %s, want %s, as before", c.Kind, got, want)
		}
	}
	for _, tt := range []struct {
		name string
		got  string
		same bool
	}{
		{"same stint and kind, other details", publisher.EventID(snap.SessionID, diff.Change{Kind: diff.Joined, Participant: diff.Participant{ID: demo1.ID, JoinedAt: joinedAt.In(time.FixedZone("IST", 19800))}}), true},
		{"left of the same stint", publisher.EventID(snap.SessionID, l), false},
		{"next stint of the same participant", publisher.EventID(snap.SessionID, diff.Change{Kind: diff.Joined, Participant: other}), false},
		{"same stint in another session", publisher.EventID("other", j), false},
	} {
		if (tt.got == id) != tt.same {
			t.Errorf("%s: id %s, joined id %s, want same=%v", tt.name, tt.got, id, tt.same)
		}
	}
}

func setup(t *testing.T) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := publisher.NewJetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, nc
}

var streamCfg = publisher.StreamConfig{Name: "ROLLCALL", Prefix: "videosdk", Replicas: 1, DuplicateWindow: 10 * time.Minute, MaxAge: 720 * time.Hour}

func TestEnsureStream(t *testing.T) {
	ctx := context.Background()
	ours := func(subjects ...string) *jetstream.StreamConfig {
		return &jetstream.StreamConfig{Name: "ROLLCALL", Description: "rollcall presence events", Subjects: subjects, Duplicates: time.Minute}
	}
	theirs := func(subjects ...string) *jetstream.StreamConfig {
		return &jetstream.StreamConfig{Name: "ROLLCALL", Subjects: subjects, Duplicates: time.Minute, MaxAge: 24 * time.Hour}
	}
	tests := []struct {
		name                string
		existing            *jetstream.StreamConfig
		wantErr             bool
		wantDup, wantMaxAge time.Duration // what the stream has afterwards
	}{
		{name: "missing: created", wantDup: 10 * time.Minute, wantMaxAge: 720 * time.Hour},
		{name: "ours: brought in line with the config", existing: ours("videosdk.>"), wantDup: 10 * time.Minute, wantMaxAge: 720 * time.Hour},
		{name: "someone else's that captures more: left as it is", existing: theirs("other", "videosdk.*.>"), wantDup: time.Minute, wantMaxAge: 24 * time.Hour},
		{name: "each kind captured apart", existing: theirs("videosdk.participant.>", "videosdk.session.*.*.*"), wantDup: time.Minute, wantMaxAge: 24 * time.Hour},
		{name: "captures only joins", existing: theirs("videosdk.participant.joined.>"), wantErr: true},
		{name: "captures another prefix", existing: theirs("zoom.>"), wantErr: true},
		{name: "captures one token too few", existing: theirs("videosdk.participant.*.*"), wantErr: true},
		{name: "captures one room only", existing: theirs("videosdk.*.*.r1.*"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, _ := setup(t)
			if tt.existing != nil {
				if _, err := js.CreateStream(ctx, *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			err := publisher.EnsureStream(ctx, js, streamCfg, quiet())
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("EnsureStream: %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			s, err := js.Stream(ctx, "ROLLCALL")
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config; got.Duplicates != tt.wantDup || got.MaxAge != tt.wantMaxAge {
				t.Errorf("stream duplicates %v, max age %v; want %v, %v", got.Duplicates, got.MaxAge, tt.wantDup, tt.wantMaxAge)
			}
		})
	}
}

func TestPublishIsIdempotentAndOrdered(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	if err := publisher.EnsureStream(ctx, js, streamCfg, quiet()); err != nil {
		t.Fatal(err)
	}
	p := publisher.New(js, "videosdk", quiet())
	demo2 := diff.Participant{ID: "mxavzgb5", Name: "demo2", JoinedAt: joinedAt.Add(time.Second)}
	changes := []diff.Change{
		{Kind: diff.SessionStarted},
		{Kind: diff.Joined, Participant: demo1}, {Kind: diff.Joined, Participant: demo2},
		{Kind: diff.Left, Participant: demo1, LeftAt: &leftAt},
	}
	// The second time is a cycle that crashed before saving its state and runs again.
	for range 2 {
		if err := p.Publish(ctx, snap, observedAt, changes); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, m := range natstest.Messages(t, js, "ROLLCALL") {
		var e events.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != e.ID {
			t.Errorf("Nats-Msg-Id %q, event id %q", m.Header.Get(jetstream.MsgIDHeader), e.ID)
		}
		got = append(got, e.Type+" "+e.Subject+" "+m.Subject)
	}
	want := []string{
		"live.videosdk.session.started  videosdk.session.started.r10p-2qz8-si67.64bb3619669942e088479mm0",
		"live.videosdk.participant.joined iqpq5uen videosdk.participant.joined.r10p-2qz8-si67.64bb3619669942e088479mm0",
		"live.videosdk.participant.joined mxavzgb5 videosdk.participant.joined.r10p-2qz8-si67.64bb3619669942e088479mm0",
		"live.videosdk.participant.left iqpq5uen videosdk.participant.left.r10p-2qz8-si67.64bb3619669942e088479mm0",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stream (-want +got):\n%s", d)
	}
}

// TestPublishWaitsForTheBroker publishes while the server is down: Publish keeps
// retrying with the same ids, returns once the restarted server acknowledged
// everything, and the stream holds each event once.
func TestPublishWaitsForTheBroker(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ns := natstest.StartIn(t, dir, -1)
	url := ns.ClientURL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := publisher.NewJetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := publisher.EnsureStream(ctx, js, streamCfg, quiet()); err != nil {
		t.Fatal(err)
	}
	tcpPort := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()

	done := make(chan error, 1)
	var logs testkit.Buffer
	go func() {
		p := publisher.New(js, "videosdk", slog.New(slog.NewTextHandler(&logs, nil)))
		done <- p.Publish(ctx, snap, observedAt, []diff.Change{{Kind: diff.Joined, Participant: demo1}})
	}()
	// Let Publish fail at least once against the absent server (its acknowledgement
	// times out) before bringing the server back.
	waitFor(t, func() bool { return strings.Contains(logs.String(), "publish failed") })
	natstest.StartIn(t, dir, tcpPort)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return after the server came back")
	}
	if n := len(natstest.Messages(t, js, "ROLLCALL")); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

// TestPublishAcknowledgements: the stream's acks, read as they come: a first
// publish stores every event; the same events again are acknowledged as duplicates,
// counted, and stored once; a subject no stream captures is said to be one.
func TestPublishAcknowledgements(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	if err := publisher.EnsureStream(ctx, js, streamCfg, quiet()); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	p := publisher.New(js, "videosdk", quiet(), publisher.WithMetrics(m))
	demo2 := diff.Participant{ID: "mxavzgb5", Name: "demo2", JoinedAt: joinedAt.Add(time.Second)}
	changes := []diff.Change{{Kind: diff.SessionStarted}, {Kind: diff.Joined, Participant: demo1}, {Kind: diff.Joined, Participant: demo2}}
	duplicates := func() float64 {
		var out dto.Metric
		if err := m.PublishDuplicate.Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetCounter().GetValue()
	}
	for i, want := range []float64{0, 3} {
		if err := p.Publish(ctx, snap, observedAt, changes); err != nil {
			t.Fatal(err)
		}
		if got := duplicates(); got != want {
			t.Errorf("publish %d: %v duplicates counted, want %v", i+1, got, want)
		}
	}
	if n := len(natstest.Messages(t, js, "ROLLCALL")); n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}

	var logs testkit.Buffer
	stray := publisher.New(js, "elsewhere", slog.New(slog.NewTextHandler(&logs, nil)))
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := stray.Publish(short, snap, observedAt, changes); err == nil {
		t.Fatal("Publish to subjects no stream captures succeeded")
	}
	if !strings.Contains(logs.String(), "no stream captures the subject") {
		t.Errorf("the retries do not say that no stream captures the subject:\n%s", logs.String())
	}
}

func TestPublishCancelled(t *testing.T) {
	js, _ := setup(t)
	// No stream captures the subjects: nothing is ever acknowledged.
	p := publisher.New(js, "videosdk", quiet())
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := p.Publish(ctx, snap, observedAt, []diff.Change{{Kind: diff.Joined, Participant: demo1}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want context.DeadlineExceeded", err)
	}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "session.with.dots" // not a valid KV key as it is
	st, rev, err := s.Load(ctx, id)
	if err != nil || rev != 0 || !st.Equal(diff.State{}) {
		t.Fatalf("Load of a new session = %+v, %d, %v; want zero state, 0, nil", st, rev, err)
	}
	want := diff.State{RoomID: "r1", Started: true, Present: []diff.Participant{demo1}}
	rev1, err := s.Save(ctx, id, want, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.Load(ctx, id)
	if err != nil || rev != rev1 {
		t.Fatalf("Load = rev %d, %v; want rev %d", rev, err, rev1)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("state (-want +got):\n%s", d)
	}
	if _, err := s.Save(ctx, id, want, 0); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("Save as new over an existing state = %v, want ErrConflict", err)
	}
	if _, err := s.Save(ctx, id, want, rev1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, id, want, rev1); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("Save at a stale revision = %v, want ErrConflict", err)
	}
}

// TestStoreLive: Live lists the sessions whose state is kept and has not ended, with
// who is present; it passes over an ended session, whether its tombstone is written
// yet or not, and a state that cannot be read.
func TestStoreLive(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	live := diff.State{RoomID: "r1", Started: true, Present: []diff.Participant{demo1}}
	if _, err := s.Save(ctx, "live.one", live, 0); err != nil {
		t.Fatal(err)
	}
	ending := diff.State{RoomID: "r1", Started: true, Ended: true}
	if _, err := s.Save(ctx, "ending", ending, 0); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Save(ctx, "ended", live, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, "ended", live, rev); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "sessions.garbled", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	reader, err := publisher.ReadStore(ctx, js, "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	got, err := reader.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []publisher.Live{{SessionID: "live.one", State: live}}
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(diff.State{}, "Saved")); d != "" {
		t.Errorf("Live (-want +got):\n%s", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPublishRefused: when the server refuses a message (here, a full stream that
// discards new messages), retrying will not help: Publish returns at once, so that one
// session's trouble does not hold up every other session's cycles.
func TestPublishRefused(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROLLCALL", Subjects: []string{"videosdk.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	p := publisher.New(js, "videosdk", quiet())
	ctx, cancel := context.WithTimeout(ctx, time.Minute) // a safety net: it must not be what ends Publish
	defer cancel()
	demo2 := diff.Participant{ID: "mxavzgb5", JoinedAt: joinedAt}
	err := p.Publish(ctx, snap, observedAt, []diff.Change{{Kind: diff.Joined, Participant: demo1}, {Kind: diff.Joined, Participant: demo2}})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Publish to a full stream: %v (context: %v), want a refusal", err, ctx.Err())
	}
}

// TestStoreLargeState: the state of a session of 5000 participants is far over the
// server's 1 MiB max_payload as JSON; it is stored compressed and comes back whole.
func TestStoreLargeState(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := diff.State{RoomID: "r1", Started: true}
	for i := range 5000 {
		p := demo1
		p.ID = fmt.Sprintf("p%05d", i)
		p.JoinedAt = joinedAt.Add(time.Duration(i) * time.Millisecond)
		p.DeviceInfo = json.RawMessage(`{"sdkType":"prebuilt","sdkVersion":"0.3.29","platform":"desktop","browserUserAgent":{"browser":{"name":"Firefox","version":"115.0"},"os":{"name":"Linux"},"platform":{"type":"desktop"}}}`)
		want.Present = append(want.Present, p)
	}
	if raw, _ := json.Marshal(want); len(raw) < 1<<20 {
		t.Fatalf("the state is only %d bytes: not a test of the limit", len(raw))
	}
	if _, err := s.Save(ctx, "big", want, 0); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Load(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	// State.Equal leaves raw JSON out; the last participant's is checked apart.
	last := len(want.Present) - 1
	if !got.Equal(want) || string(got.Present[last].DeviceInfo) != string(want.Present[last].DeviceInfo) {
		t.Errorf("the state came back different: %d participants, want %d", len(got.Present), len(want.Present))
	}
}

// TestStoreGzipsAboveTwoKiB: a state is stored as plain JSON up to 2 KiB, a session
// of a few participants, and gzipped above, as docs/state.md says; both read back.
func TestStoreGzipsAboveTwoKiB(t *testing.T) {
	ctx := context.Background()
	s, kv := openState(t)
	for _, tc := range []struct {
		present int
		gzipped bool
	}{{1, false}, {5, false}, {20, true}, {50, true}} {
		t.Run(fmt.Sprintf("present=%d", tc.present), func(t *testing.T) {
			want := diff.State{RoomID: "r1", Started: true}
			for i := range tc.present {
				p := demo1
				p.ID = fmt.Sprintf("p%05d", i)
				want.Present = append(want.Present, p)
			}
			id := fmt.Sprintf("s%d", tc.present)
			if _, err := s.Save(ctx, id, want, 0); err != nil {
				t.Fatal(err)
			}
			e, err := kv.Get(ctx, "sessions."+id)
			if err != nil {
				t.Fatal(err)
			}
			raw := e.Value()
			if gzipped := bytes.HasPrefix(raw, []byte{0x1f, 0x8b}); gzipped != tc.gzipped {
				t.Errorf("%d bytes stored (%d as JSON), gzipped: %v, want %v", len(raw), len(plainJSON(t, raw)), gzipped, tc.gzipped)
			}
			got, _, err := s.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("read back %+v, want %+v", got, want)
			}
		})
	}
}

// openState opens the store, and its bucket to look at what it writes.
func openState(t *testing.T) (*publisher.Store, jetstream.KeyValue) {
	t.Helper()
	ctx := context.Background()
	js, _ := setup(t)
	s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	return s, kv
}

// plainJSON is a stored state as JSON: gunzipped if it starts as gzip does.
func plainJSON(t *testing.T, raw []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		return raw
	}
	r, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreValuesMatchSchema: what the store writes under sessions.<token> and
// ended.<token> is what docs/state.md and docs/state.schema.json describe.
func TestStoreValuesMatchSchema(t *testing.T) {
	ctx := context.Background()
	s, kv := openState(t)
	schema := testkit.Schema(t, "state.schema.json")
	check := func(key string) {
		t.Helper()
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(plainJSON(t, e.Value())))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("%s = %s: %v", key, e.Value(), err)
		}
	}
	left := diff.Participant{ID: "gone", Name: "Gone", JoinedAt: joinedAt}
	end := joinedAt.Add(time.Hour)
	missed := diff.Participant{ID: "missed", Name: "Missed", JoinedAt: joinedAt}
	st := diff.State{RoomID: "r1", Started: true, Accounted: true, Present: []diff.Participant{demo1},
		Pending: []diff.Pending{{Participant: diff.Participant{ID: "waiting", JoinedAt: joinedAt}, Since: observedAt}},
		Gone:    map[string]time.Time{"gone": joinedAt, "missed": joinedAt},
		Outbox: &diff.Outbox{
			Session: snap, ObservedAt: observedAt,
			Changes: []diff.Change{
				{Kind: diff.SessionStarted}, {Kind: diff.Left, Participant: left, LeftAt: &end, ObservedAt: &observedAt},
				{Kind: diff.Joined, Participant: missed, Reconciled: true}, {Kind: diff.Left, Participant: missed, LeftAt: &end, Reconciled: true},
				{Kind: diff.Joined, Participant: demo1},
			},
		}}
	rev, err := s.Save(ctx, snap.SessionID, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	check("sessions." + events.EscapeToken(snap.SessionID))
	// The outbox's joined participant, written as its id and joinedAt, reads back whole.
	back, _, err := s.Load(ctx, snap.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(st.Outbox.Changes, back.Outbox.Changes, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("outbox read back (-saved +read):\n%s", d)
	}
	st.Outbox = nil
	if rev, err = s.Save(ctx, snap.SessionID, st, rev); err != nil {
		t.Fatal(err)
	}
	check("sessions." + events.EscapeToken(snap.SessionID))
	if err := s.End(ctx, snap.SessionID, st, rev); err != nil {
		t.Fatal(err)
	}
	check("ended." + events.EscapeToken(snap.SessionID))
}

// TestFewerReplicasWarned: a stream and buckets made with one replica, opened with
// nats.replicas = 3, are left as they are, each with a warning that names it.
func TestFewerReplicasWarned(t *testing.T) {
	ctx := context.Background()
	js, err := publisher.NewJetStream(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	open := func(replicas int, log *slog.Logger) {
		t.Helper()
		cfg := streamCfg
		cfg.Replicas = replicas
		if err := publisher.EnsureStream(ctx, js, cfg, log); err != nil {
			t.Fatal(err)
		}
		if _, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", replicas, time.Hour, log, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := publisher.OpenTracking(ctx, js, "ROLLCALL_TRACKING", replicas, log); err != nil {
			t.Fatal(err)
		}
		if _, err := publisher.OpenLeases(ctx, js, "ROLLCALL_LEASES", replicas, 15*time.Second, log); err != nil {
			t.Fatal(err)
		}
	}
	open(1, quiet())
	var logs testkit.Buffer
	open(3, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, name := range []string{"stream=ROLLCALL", "bucket=ROLLCALL_STATE", "bucket=ROLLCALL_TRACKING", "bucket=ROLLCALL_LEASES"} {
		if !strings.Contains(logs.String(), name+" replicas=1 nats.replicas=3") {
			t.Errorf("no warning naming %s:\n%s", name, logs.String())
		}
	}
}
