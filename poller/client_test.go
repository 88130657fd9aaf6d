package poller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

const (
	apiKey  = "test-key"
	secret  = "test-secret"
	session = "64bb3619669942e088479mm0"
	room    = "r10p-2qz8-si67"
)

// newClock is the clock of the simulator and the token minter in tests: the time of
// the API docs' example session.
func newClock() *sim.Clock { return sim.NewClock(time.Date(2023, 7, 24, 8, 28, 9, 0, time.UTC)) }

// countingTokens counts the tokens dropped after a 401.
type countingTokens struct {
	poller.Tokens
	mu          sync.Mutex
	invalidated int
}

func (c *countingTokens) Invalidate(t poller.Token) {
	c.mu.Lock()
	c.invalidated++
	c.mu.Unlock()
	c.Tokens.Invalidate(t)
}

type world struct {
	api    *sim.Server
	url    string
	clock  *sim.Clock
	tokens *countingTokens
}

// newWorld serves a simulated API with one session holding the given participants,
// each joined a second after the one before.
func newWorld(t *testing.T, participants ...string) *world {
	t.Helper()
	clk := newClock()
	api := sim.New(sim.Config{APIKey: apiKey, Secret: secret, Now: clk.Now})
	api.StartSession(session, room)
	for _, id := range participants {
		clk.Add(time.Second)
		api.Join(session, id, "name-"+id)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &world{api: api, url: srv.URL, clock: clk, tokens: &countingTokens{Tokens: poller.NewMinter(apiKey, secret, time.Hour, clk.Now)}}
}

func (w *world) client(perPage int) *poller.Client {
	return w.clientTimeout(perPage, 2*time.Second)
}

func (w *world) clientTimeout(perPage int, requestTimeout time.Duration) *poller.Client {
	return poller.NewClient(poller.ClientConfig{
		BaseURL: w.url, Tokens: w.tokens, PerPage: perPage, RequestTimeout: requestTimeout,
		Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
}

func ids(s diff.Snapshot) []string {
	var out []string
	for _, p := range s.Participants {
		out = append(out, p.ID)
	}
	return out
}

func TestSnapshotFetchesEveryPage(t *testing.T) {
	tests := []struct {
		name      string
		present   []string
		perPage   int
		legacy    bool
		wantPages int
	}{
		{name: "one page", present: []string{"a", "b"}, perPage: 20, wantPages: 1},
		{name: "three pages, the last one short", present: []string{"a", "b", "c", "d", "e", "f", "g"}, perPage: 3, wantPages: 3},
		{name: "exactly two full pages", present: []string{"a", "b", "c", "d"}, perPage: 2, wantPages: 2},
		{name: "empty session", perPage: 20, wantPages: 1},
		{name: "older shape: data an object, no pageInfo", present: []string{"a", "b", "c"}, perPage: 2, legacy: true, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.present...)
			w.api.SetLegacyShape(tt.legacy)
			got, err := w.client(tt.perPage).Snapshot(context.Background(), nil, session)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.present, ids(got)); d != "" {
				t.Errorf("participants (-want +got):\n%s", d)
			}
			if !got.Complete || got.RoomID != room || got.Status != "ongoing" {
				t.Errorf("snapshot complete=%v room=%q status=%q, want true %q ongoing", got.Complete, got.RoomID, got.Status, room)
			}
			if n := w.api.Requests(); n != tt.wantPages {
				t.Errorf("%d requests, want %d", n, tt.wantPages)
			}
		})
	}
}

func TestSnapshotStintIsTheOpenTimelogEntry(t *testing.T) {
	w := newWorld(t, "a")
	first := w.clock.Now()
	w.clock.Add(10 * time.Second)
	w.api.Leave(session, "a")
	w.clock.Add(5 * time.Second)
	w.api.Join(session, "a", "name-a")
	got, err := w.client(20).Snapshot(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Participants[0]
	if !p.JoinedAt.Equal(w.clock.Now()) || len(p.Timelog) != 2 || !p.Timelog[0].Start.Equal(first) {
		t.Errorf("JoinedAt %v, timelog %+v; want the rejoin at %v after a stint from %v", p.JoinedAt, p.Timelog, w.clock.Now(), first)
	}
}

// TestSnapshotRetries covers the answers that a retry can mend, and those it cannot.
func TestSnapshotRetries(t *testing.T) {
	retryAfter := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	tests := []struct {
		name         string
		faults       []sim.Fault
		wantErr      error         // nil: the snapshot must succeed
		wantErrText  string        // and contain this
		wantRequests int           // in the whole scan of two pages
		wantDropped  int           // tokens dropped after a 401
		timeout      time.Duration // request_timeout; default 2s
	}{
		{name: "429 with Retry-After", faults: []sim.Fault{{Status: 429, Header: retryAfter("1")}}, wantRequests: 3},
		{name: "429 with an HTTP-date Retry-After in the past", faults: []sim.Fault{{Status: 429, Header: retryAfter("Mon, 24 Jul 2023 08:28:09 GMT")}}, wantRequests: 3},
		{name: "429 without Retry-After", faults: []sim.Fault{{Status: 429}}, wantRequests: 3},
		{name: "500", faults: []sim.Fault{{Status: 500, Body: `{"statusCode":500}`}}, wantRequests: 3},
		{name: "502 with an HTML page", faults: []sim.Fault{{Status: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>Bad Gateway</html>"}}, wantRequests: 3},
		{name: "503 twice", faults: []sim.Fault{{Status: 503, Times: 2}}, wantRequests: 4},
		{name: "slower than request_timeout", faults: []sim.Fault{{Delay: 5 * time.Second}}, timeout: 300 * time.Millisecond, wantRequests: 3},
		{name: "a 401 for a token the server stopped accepting: minted afresh once", faults: []sim.Fault{{Status: 401}}, wantRequests: 3, wantDropped: 1},
		{name: "401 again after a fresh token", faults: []sim.Fault{{Status: 401, Times: 2}}, wantErrText: "http 401", wantRequests: 2, wantDropped: 2},
		{name: "500 on every attempt", faults: []sim.Fault{{Status: 500, Times: 3}}, wantErrText: "http 500", wantRequests: 3},
		{name: "404: unknown session, not retried", faults: []sim.Fault{{Status: 404}}, wantErr: poller.ErrNotFound, wantRequests: 1},
		{name: "400 is not retried", faults: []sim.Fault{{Status: 400}}, wantErrText: "http 400", wantRequests: 1},
		{name: "200 with a truncated body", faults: []sim.Fault{{Status: 200, Body: `{"pageInfo":{"currentPage":1,`}}, wantErr: poller.ErrMalformed, wantRequests: 1},
		{name: "200 with an HTML body", faults: []sim.Fault{{Status: 200, Body: "<html>maintenance</html>"}}, wantErr: poller.ErrMalformed, wantRequests: 1},
		{name: "200 with a body over the cap", faults: []sim.Fault{{Status: 200, Body: `{"data":"` + strings.Repeat("x", poller.MaxBody) + `"}`}}, timeout: 10 * time.Second, wantErr: poller.ErrTooLarge, wantRequests: 1},
		{name: "a failure on the last page fails the whole scan", faults: []sim.Fault{{Page: 2, Status: 500, Times: 3}}, wantErrText: "http 500", wantRequests: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a", "b", "c")
			for _, f := range tt.faults {
				w.api.InjectFault(f)
			}
			c := w.client(2)
			if tt.timeout != 0 {
				c = w.clientTimeout(2, tt.timeout)
			}
			got, err := c.Snapshot(context.Background(), nil, session)
			switch {
			case tt.wantErr == nil && tt.wantErrText == "":
				if err != nil {
					t.Fatalf("Snapshot: %v", err)
				}
				if d := cmp.Diff([]string{"a", "b", "c"}, ids(got)); d != "" || !got.Complete {
					t.Errorf("complete=%v, participants (-want +got):\n%s", got.Complete, d)
				}
			case err == nil:
				t.Fatalf("Snapshot succeeded, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Snapshot: %v, want %v", err, tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantErrText):
				t.Errorf("Snapshot: %v, want an error containing %q", err, tt.wantErrText)
			}
			if err != nil && len(got.Participants) > 0 {
				t.Errorf("a failed scan returned %d participants", len(got.Participants))
			}
			if n := w.api.Requests(); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			if w.tokens.invalidated != tt.wantDropped {
				t.Errorf("%d tokens dropped, want %d", w.tokens.invalidated, tt.wantDropped)
			}
		})
	}
}

// TestTooManyRequestsHoldsEveryRequest: the rate limit is the account's, so a 429 with
// Retry-After holds back the requests of every session, not only the one that got it.
func TestTooManyRequestsHoldsEveryRequest(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("other", "r2")
	var mu sync.Mutex
	arrivals := map[string]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals[r.URL.Path] = time.Now()
		mu.Unlock()
		w.api.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	w.api.InjectFault(sim.Fault{PathContains: session, Status: 429, Header: http.Header{"Retry-After": {"1"}}})
	c := poller.NewClient(poller.ClientConfig{BaseURL: srv.URL, Tokens: w.tokens, Attempts: 1})
	if _, err := c.Snapshot(context.Background(), nil, session); err == nil {
		t.Fatal("Snapshot succeeded through a 429 with no retry allowed")
	}
	mu.Lock()
	limited := arrivals["/v2/sessions/"+session+"/participants/active"]
	mu.Unlock()
	if _, err := c.Snapshot(context.Background(), nil, "other"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	next := arrivals["/v2/sessions/other/participants/active"]
	mu.Unlock()
	if held := next.Sub(limited); held < time.Second {
		t.Errorf("the other session's request came %v after the 429, want at least the Retry-After of 1s", held)
	}
}

// TestRateLimitIsShared: rate_limit bounds the requests of all sessions together. At 5
// requests per second with a burst of 1, no more than 1 + 0.5*5 requests fit in half
// a second, however many sessions ask at once.
func TestRateLimitIsShared(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e", "f")
	w.api.StartSession("other", "r2")
	for _, id := range []string{"x", "y", "z"} {
		w.api.Join("other", id, id)
	}
	c := poller.NewClient(poller.ClientConfig{BaseURL: w.url, Tokens: w.tokens, PerPage: 1, RateLimit: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range []string{session, "other"} {
		wg.Go(func() { _, _ = c.Snapshot(ctx, nil, id) })
	}
	wg.Wait()
	if n := w.api.Requests(); n < 1 || n > 3 {
		t.Errorf("%d requests in 500ms at 5/s across two sessions, want 1 to 3", n)
	}
}

// TestTooManyRequestsHoldsRequestsWaitingForTheLimiter: a request already waiting for
// the rate limiter when a 429 arrives waits out the Retry-After too.
func TestTooManyRequestsHoldsRequestsWaitingForTheLimiter(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("other", "r2")
	var mu sync.Mutex
	var limitedAt, otherAt time.Time
	arrived := make(chan struct{})
	w.api.InjectFault(sim.Fault{PathContains: session, Status: 429, Delay: 300 * time.Millisecond,
		Header: http.Header{"Retry-After": {"2"}}, AfterServe: func() {
			mu.Lock()
			limitedAt = time.Now()
			mu.Unlock()
		}})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, session) {
			close(arrived)
		} else {
			mu.Lock()
			otherAt = time.Now()
			mu.Unlock()
		}
		w.api.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	// One request a second: the other session's request waits for the limiter while
	// the first one's 429 is on its way.
	c := poller.NewClient(poller.ClientConfig{BaseURL: srv.URL, Tokens: w.tokens, Attempts: 1, RateLimit: 1})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Snapshot(context.Background(), nil, session) })
	<-arrived
	if _, err := c.Snapshot(context.Background(), nil, "other"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if held := otherAt.Sub(limitedAt); held < 2*time.Second {
		t.Errorf("the waiting request went out %v after the 429, want at least the Retry-After of 2s", held)
	}
}

// swappable are tokens minted with a secret that the test can change.
type swappable struct{ m atomic.Pointer[poller.Minter] }

func (s *swappable) Token() (poller.Token, error) { return s.m.Load().Token() }
func (s *swappable) Invalidate(t poller.Token)    { s.m.Load().Invalidate(t) }

// TestClientSaysRejectedCredentialsOnce: a wrong API secret is said once, as the one
// error, for all of five sessions' polls, and once when it is right again.
func TestClientSaysRejectedCredentialsOnce(t *testing.T) {
	w := newWorld(t, "a")
	tokens := &swappable{}
	tokens.m.Store(poller.NewMinter(apiKey, "a wrong secret", time.Hour, w.clock.Now))
	var logs testkit.Buffer
	c := poller.NewClient(poller.ClientConfig{BaseURL: w.url, Tokens: tokens, Attempts: 2, Backoff: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ids := []string{session}
	for i := range 4 {
		id := fmt.Sprintf("s%d", i)
		w.api.StartSession(id, "r")
		ids = append(ids, id)
	}
	snapshots := func() (errs []error) {
		var wg sync.WaitGroup
		errs = make([]error, len(ids))
		for i, id := range ids {
			wg.Go(func() { _, errs[i] = c.Snapshot(context.Background(), quiet(), id) })
		}
		wg.Wait()
		return errs
	}
	for range 2 {
		for i, err := range snapshots() {
			if !errors.Is(err, poller.ErrUnauthorized) {
				t.Fatalf("%s: %v, want ErrUnauthorized", ids[i], err)
			}
		}
	}
	if n := strings.Count(logs.String(), "rejects the credentials"); n != 1 {
		t.Errorf("%d lines about the credentials for 10 polls, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d errors logged, want the one about the credentials:\n%s", n, logs.String())
	}
	tokens.m.Store(poller.NewMinter(apiKey, secret, time.Hour, w.clock.Now))
	for i, err := range append(snapshots(), snapshots()...) {
		if err != nil {
			t.Fatalf("%s with the right secret: %v", ids[i%len(ids)], err)
		}
	}
	if n := strings.Count(logs.String(), "accepts the credentials again"); n != 1 {
		t.Errorf("%d lines say the credentials work again, want 1:\n%s", n, logs.String())
	}
}
