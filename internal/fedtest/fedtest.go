// Package fedtest runs rollcall's worker, as `rollcall run` wires it, on the simulated
// API and an embedded NATS server, so that the examples' tests read a stream fed the
// way a subscriber's is.
package fedtest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
)

// The simulated account's credentials.
const (
	APIKey = "fedtest-key"
	Secret = "fedtest-secret"
)

// NewAPI returns a simulated API that accepts the worker's tokens.
func NewAPI() *sim.Server { return sim.New(sim.Config{APIKey: APIKey, Secret: Secret}) }

// Start runs the worker on api, tracking sessions, polling each every second, with
// the default stream (ROLLCALL) and subject prefix (videosdk), until the test ends.
// It returns the NATS server's URL.
func Start(t testing.TB, api *sim.Server, sessions ...string) string {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ns := natstest.Start(t)
	cfg := worker.Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = srv.URL, APIKey, Secret
	cfg.VideoSDK.RateLimit = 0
	cfg.Poll.Schedule = "@every 1s"
	cfg.NATS.URL, cfg.HTTP.Listen = ns.ClientURL(), ""
	for _, id := range sessions {
		cfg.Sessions = append(cfg.Sessions, worker.Session{ID: id})
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the worker: %v", err)
		}
		w.Close()
	})
	return ns.ClientURL()
}

// WaitFor waits until the stream holds n events, or fails the test after 20s.
func WaitFor(t testing.TB, natsURL string, n uint64) {
	t.Helper()
	js := natstest.JetStream(t, natsURL)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := js.Stream(context.Background(), "ROLLCALL")
		if err == nil {
			if info, err := s.Info(context.Background()); err == nil && info.State.Msgs >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not reach %d events within 20s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
