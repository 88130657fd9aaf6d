package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/internal/webhook"
	"github.com/rollcall/rollcall/sim"
)

// recorder forwards webhooks to the worker once it listens, and keeps each as it came,
// for replays.
type recorder struct {
	target atomic.Pointer[string]
	mu     sync.Mutex
	got    []recorded
	status map[int]int
}

type recorded struct{ body, sig string }

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	sig := req.Header.Get(webhook.SignatureHeader)
	r.mu.Lock()
	r.got = append(r.got, recorded{string(body), sig})
	r.mu.Unlock()
	target := r.target.Load()
	if target == nil {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	r.post(w, *target, body, sig)
}

// post sends a webhook on to the worker; w, if not nil, gets its answer.
func (r *recorder) post(w http.ResponseWriter, url string, body []byte, sig string) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, sig)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if w != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
		return
	}
	_ = resp.Body.Close()
	r.mu.Lock()
	r.status[resp.StatusCode]++
	r.mu.Unlock()
	if w != nil {
		w.WriteHeader(resp.StatusCode)
	}
}

// TestRunWebhooks: with the simulator's webhooks lost (30 %), doubled (30 %) and
// reordered (0–300 ms late each), and every one of them replayed in a shuffled
// order once the world is calm, the stream is exactly the world's: one joined per
// stint, one left per ended stint with its end, nothing else. Polls are 5 s apart,
// so most events come from hints.
func TestRunWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"s1": "room-1", "s2": "room-2", "s3": "room-3"})
	rec := &recorder{status: map[int]int{}}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`schedule = "@every 1s"`), []byte(`schedule = "@every 5s"`), 1)
	cfg = append(cfg, []byte("\n[webhook]\nlisten = \"127.0.0.1:0\"\n")...)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	hooks := e.api.SendWebhooks(proxy.URL, sim.WebhookOptions{MaxDelay: 300 * time.Millisecond, Loss: 0.3, Duplicate: 0.3, Seed: 7})
	defer hooks.Close()
	stop := e.start()
	defer stop()
	addr := e.logged("receiving webhooks: hints to poll now\" listen=")
	target := "http://" + addr + "/webhook"
	rec.target.Store(&target)
	e.settle("first polls")

	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 40 {
		s := []string{"s1", "s2", "s3"}[rng.IntN(3)]
		p := string(rune('a' + rng.IntN(5)))
		if rng.IntN(2) == 0 {
			e.api.Join(s, p, "name-"+p)
		} else {
			e.api.Leave(s, p)
		}
		if i == 30 {
			e.api.EndSession("s3")
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	}
	e.settle("the world calm")
	st := hooks.Stats()
	t.Logf("webhooks: %d changes, %d lost, %d doubled, %d posted", st.Webhooks, st.Lost, st.Duplicated, st.Posted)
	if st.Lost == 0 || st.Duplicated == 0 {
		t.Fatalf("webhooks neither lost nor doubled: %+v", st)
	}

	rec.mu.Lock()
	replays := append([]recorded(nil), rec.got...)
	rec.mu.Unlock()
	rng.Shuffle(len(replays), func(i, j int) { replays[i], replays[j] = replays[j], replays[i] })
	for _, r := range replays {
		rec.post(nil, target, []byte(r.body), r.sig)
	}
	e.hold("after every webhook replayed")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.status[http.StatusNoContent] < len(replays) || len(rec.status) != 1 {
		t.Errorf("the worker answered %v, want 204 to every signed webhook", rec.status)
	}
	if r := e.republished(); len(r) > 0 {
		t.Errorf("events published more than once: %v", r)
	}
}

// logged waits for the worker's log to hold prefix, and returns the rest of its line.
func (e *e2e) logged(prefix string) string {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, rest, ok := strings.Cut(e.logs.String(), prefix); ok {
			v, _, _ := strings.Cut(rest, " ")
			return strings.TrimSpace(v)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not in the worker's log: %q\n%s", prefix, e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunWebhooksShortSession: a room's session that starts, has a visit and ends
// within a second, with the room listed only every hour, is published whole: its
// session-started webhook lists the room at once.
func TestRunWebhooksShortSession(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, nil, "room-x")
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`discover_schedule = "@every 1s"`), []byte(`discover_schedule = "@every 1h"`), 1)
	cfg = append(cfg, []byte("\n[webhook]\nlisten = \"127.0.0.1:0\"\n")...)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := e.start()
	defer stop()
	addr := e.logged("receiving webhooks: hints to poll now\" listen=")
	hooks := e.api.SendWebhooks("http://"+addr+"/webhook", sim.WebhookOptions{MinDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond})
	defer hooks.Close()
	time.Sleep(time.Second) // the room's first listing, of no session, is done

	id := e.api.NextSession("room-x")
	e.sessions[id] = "room-x"
	e.api.Join(id, "v", "name-v")
	time.Sleep(300 * time.Millisecond)
	e.api.Leave(id, "v")
	e.api.EndSession(id)
	e.settle("the short session") // long before the next listing
	if got := e.sessionEvents(); !cmp.Equal(got, []string{"started " + id, "ended " + id}) {
		t.Errorf("session events %v, want it started and ended", got)
	}
}
