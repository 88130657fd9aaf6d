package sim

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rollcall/rollcall/internal/testkit"
)

// received is one POST a webhook receiver got.
type received struct {
	contentType, signature string
	body                   []byte
}

// newReceiver serves a webhook endpoint that answers 204 and hands each POST to the
// returned channel, which holds up to 1000 of them.
func newReceiver(t *testing.T) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 1000)
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost {
			t.Errorf("receiver: %s, %v", r.Method, err)
		}
		got <- received{r.Header.Get("Content-Type"), r.Header.Get("videosdk-signature"), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rs.Close)
	return rs, got
}

// receive returns the next n POSTs, in the order they came.
func receive(t *testing.T, got <-chan received, n int) []received {
	t.Helper()
	var out []received
	for range n {
		select {
		case r := <-got:
			out = append(out, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d webhooks received, want %d", len(out), n)
		}
	}
	return out
}

// report is one OnWebhook call.
type report struct {
	h    Webhook
	sent bool
}

// reporter returns an OnWebhook that hands its calls to the returned channel, which
// holds up to 1000 of them.
func reporter() (func(Webhook, bool), <-chan report) {
	ch := make(chan report, 1000)
	return func(h Webhook, sent bool) { ch <- report{h, sent} }, ch
}

// awaitReports returns the next n OnWebhook calls. A sent one is reported once its
// POST is answered, so by then the receiver has it.
func awaitReports(t *testing.T, ch <-chan report, n int) []report {
	t.Helper()
	var out []report
	for range n {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d OnWebhook calls, want %d", len(out), n)
		}
	}
	return out
}

func TestJoinSendsASignedWebhook(t *testing.T) {
	s, _, ts := newTestServer(t)
	rs, got := newReceiver(t)
	startWith(s, sessionID) // before SendWebhooks: no webhook
	w := s.SendWebhooks(rs.URL, WebhookOptions{})
	defer w.Close()

	s.Join(sessionID, "iqpq5uen", "demo1")
	r := receive(t, got, 1)[0]
	want := `{"webhookType":"participant-joined","data":{"meetingId":"r10p-2qz8-si67","sessionId":"64bb3619669942e088479mm0","participantId":"iqpq5uen","participantName":"demo1"}}`
	if string(r.body) != want {
		t.Errorf("body\n%s\nwant\n%s", r.body, want)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type %q, want application/json", r.contentType)
	}
	verify(t, fetchPublicKey(t, ts), r.body, r.signature)
	if r.signature != s.Sign(r.body) {
		t.Errorf("signature %q, want Sign's %q", r.signature, s.Sign(r.body))
	}
}

// TestWebhooksOfEveryChange runs a session through each kind of change and compares
// the bodies received, in any order: delivery promises none.
func TestWebhooksOfEveryChange(t *testing.T) {
	s, clock, _ := newTestServer(t)
	rs, got := newReceiver(t)
	onWebhook, reports := reporter()
	w := s.SendWebhooks(rs.URL, WebhookOptions{OnWebhook: onWebhook})
	defer w.Close()

	step := func(t string, f func()) { clock.Set(at(t)); f() }
	step("08:28:09.215", func() { s.StartSession(sessionID, roomID) })
	step("08:28:09.650", func() { s.Join(sessionID, "iqpq5uen", "demo1") })
	step("08:28:27.185", func() { s.Join(sessionID, "mxavzgb5", "demo2") })
	step("08:30:00", func() { s.Leave(sessionID, "mxavzgb5") })
	step("08:31:00", func() { s.Join(sessionID, "iqpq5uen", "demo1") }) // a second connection kicks the first
	step("09:00:00", func() { s.EndSession(sessionID) })
	step("09:01:00", func() { s.Join(sessionID, "late0001", "late") }) // an ended session: no change

	participant := func(typ, id, name string) string {
		return fmt.Sprintf(`{"webhookType":%q,"data":{"meetingId":%q,"sessionId":%q,"participantId":%q,"participantName":%q}}`,
			typ, roomID, sessionID, id, name)
	}
	want := []string{
		`{"webhookType":"session-started","data":{"meetingId":"r10p-2qz8-si67","sessionId":"64bb3619669942e088479mm0","start":"2023-07-24T08:28:09.215Z"}}`,
		participant(ParticipantJoined, "iqpq5uen", "demo1"),
		participant(ParticipantJoined, "mxavzgb5", "demo2"),
		participant(ParticipantLeft, "mxavzgb5", "demo2"),
		participant(ParticipantLeft, "iqpq5uen", "demo1"), // kicked
		participant(ParticipantJoined, "iqpq5uen", "demo1"),
		participant(ParticipantLeft, "iqpq5uen", "demo1"), // the session's end
		`{"webhookType":"session-ended","data":{"meetingId":"r10p-2qz8-si67","sessionId":"64bb3619669942e088479mm0","start":"2023-07-24T08:28:09.215Z","end":"2023-07-24T09:00:00.000Z"}}`,
	}
	awaitReports(t, reports, len(want))
	w.Close()
	var bodies []string
	for _, r := range receive(t, got, len(want)) {
		bodies = append(bodies, string(r.body))
	}
	if d := cmp.Diff(want, bodies, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("webhooks (-want +got):\n%s", d)
	}
	if st, want := w.Stats(), (WebhookStats{Webhooks: 8, Posted: 8}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if len(got) != 0 {
		t.Errorf("%d webhooks more than the changes", len(got))
	}
}

// TestWebhookLossAndDuplicates makes 201 changes whose webhooks all differ, and
// checks, for the seed, the exact losses and duplicates, against what the receiver
// and OnWebhook saw.
func TestWebhookLossAndDuplicates(t *testing.T) {
	const n = 100 // participants: each joins, then leaves
	s, _, _ := newTestServer(t)
	rs, got := newReceiver(t)
	onWebhook, reports := reporter()
	w := s.SendWebhooks(rs.URL, WebhookOptions{MaxDelay: 2 * time.Millisecond, Loss: 0.2, Duplicate: 0.3, Seed: 19, OnWebhook: onWebhook})
	defer w.Close()

	startWith(s, sessionID)
	for i := range n {
		s.Join(sessionID, fmt.Sprintf("p%03d", i), "someone")
	}
	for i := range n {
		s.Leave(sessionID, fmt.Sprintf("p%03d", i))
	}
	// Drawn at the change, so exact at once: of 2n+1 webhooks (the session's start
	// too), about 20% lost, and about 30% of the others twice.
	const lost, duplicated = 43, 41
	st := w.Stats()
	if st.Webhooks != 2*n+1 || st.Lost != lost || st.Duplicated != duplicated {
		t.Fatalf("stats %+v, want %d webhooks, %d lost, %d duplicated", st, 2*n+1, lost, duplicated)
	}
	posted := st.Webhooks - lost + duplicated
	lostBodies := map[string]bool{}
	sent := 0
	for _, r := range awaitReports(t, reports, lost+posted) {
		if r.sent {
			sent++
		} else {
			lostBodies[string(r.h.body())] = true
		}
	}
	w.Close()
	if want := (WebhookStats{Webhooks: 2*n + 1, Lost: lost, Duplicated: duplicated, Posted: posted}); w.Stats() != want {
		t.Errorf("stats after Close %+v, want %+v", w.Stats(), want)
	}
	if sent != posted || len(lostBodies) != lost {
		t.Errorf("OnWebhook: %d sent, %d distinct lost; want %d, %d", sent, len(lostBodies), posted, lost)
	}
	copies := map[string]int{}
	for _, r := range receive(t, got, posted) {
		copies[string(r.body)]++
	}
	twice := 0
	for body, c := range copies {
		if c == 2 {
			twice++
		}
		if lostBodies[body] {
			t.Errorf("lost, yet received: %s", body)
		}
	}
	if len(copies)+lost != st.Webhooks || twice != duplicated {
		t.Errorf("received %d distinct webhooks, %d of them twice; want %d, %d", len(copies), twice, st.Webhooks-lost, duplicated)
	}
}

// handlerTransport serves requests with a handler in-process: real sockets are not
// virtual time's, so synctest cannot wait for them.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestWebhookDelays checks, in virtual time, that every copy is posted within the
// delay range after its change, and that the delays reorder webhooks.
func TestWebhookDelays(t *testing.T) {
	const minDelay, maxDelay = 20 * time.Millisecond, 200 * time.Millisecond
	testkit.Bubble(t, func(t *testing.T) {
		s := New(Config{}) // its clock is the bubble's
		var mu sync.Mutex
		var lags []time.Duration
		var order []time.Time // the changes' times, in the order their webhooks came
		client := &http.Client{Transport: handlerTransport{http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})}}
		w := s.SendWebhooks("http://receiver.test/hook", WebhookOptions{
			MinDelay: minDelay, MaxDelay: maxDelay, Duplicate: 0.5, Seed: 4, Client: client,
			OnWebhook: func(h Webhook, _ bool) {
				mu.Lock()
				defer mu.Unlock()
				lags = append(lags, time.Since(h.At))
				order = append(order, h.At)
			},
		})
		s.StartSession(sessionID, roomID)
		for i := range 100 {
			time.Sleep(10 * time.Millisecond)
			s.Join(sessionID, fmt.Sprintf("p%03d", i), "someone")
		}
		time.Sleep(maxDelay)
		synctest.Wait()
		w.Close()

		st := w.Stats()
		if st.Posted != st.Webhooks+st.Duplicated || len(lags) != st.Posted {
			t.Fatalf("stats %+v, %d OnWebhook calls: want every copy posted", st, len(lags))
		}
		reordered := 0
		for i, lag := range lags {
			if lag < minDelay || lag > maxDelay {
				t.Errorf("a webhook posted %v after its change, want %v to %v", lag, minDelay, maxDelay)
			}
			if i > 0 && order[i].Before(order[i-1]) {
				reordered++
			}
		}
		if reordered == 0 {
			t.Error("delays 20 ms to 200 ms apart for changes 10 ms apart reordered no webhook")
		}
	})
}

// TestCloseStopsTheSender shows that a receiver that never answers holds up neither
// the changes nor Close, and that nothing is left running after Close.
func TestCloseStopsTheSender(t *testing.T) {
	s, _, _ := newTestServer(t)
	arrived := make(chan struct{}, 10)
	rs := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// Read to the end, so that the server watches the connection and cancels
		// r's context when the sender hangs up.
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done() // never answers
	}))
	defer rs.Close()
	w := s.SendWebhooks(rs.URL, WebhookOptions{})
	held := s.SendWebhooks(rs.URL, WebhookOptions{MinDelay: time.Hour, MaxDelay: time.Hour})

	startWith(s, sessionID, "a", "b")
	for range 3 {
		<-arrived // w's three POSTs are stuck in the receiver
	}
	s.Leave(sessionID, "a") // the world still changes
	<-arrived
	w.Close()
	held.Close()
	if got, want := w.Stats(), (WebhookStats{Webhooks: 4}); got != want {
		t.Errorf("stats %+v, want %+v: POSTs cut short by Close are not counted", got, want)
	}
	if got, want := held.Stats(), (WebhookStats{Webhooks: 4}); got != want {
		t.Errorf("held sender's stats %+v, want %+v", got, want)
	}
	s.Join(sessionID, "c", "c") // no sender left: nothing is sent
	select {
	case <-arrived:
		t.Error("a webhook after Close")
	case <-time.After(50 * time.Millisecond):
	}
}

// TestOnWebhookMayUseTheServer: the hook runs outside the Server's lock.
func TestOnWebhookMayUseTheServer(t *testing.T) {
	s, _, _ := newTestServer(t)
	rs, _ := newReceiver(t)
	active := make(chan []string, 10)
	w := s.SendWebhooks(rs.URL, WebhookOptions{OnWebhook: func(h Webhook, _ bool) {
		if h.Type == ParticipantJoined {
			active <- s.Active(h.SessionID)
		}
	}})
	defer w.Close()
	startWith(s, sessionID, "a")
	select {
	case got := <-active:
		if d := cmp.Diff([]string{"a"}, got); d != "" {
			t.Errorf("active (-want +got):\n%s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnWebhook call")
	}
}
