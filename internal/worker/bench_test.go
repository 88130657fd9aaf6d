package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/sim"
)

// BenchmarkFirstBurst measures a start-up: the worker tracks 200 sessions of 20
// participants and polls each at once, as fast as max_concurrency (8) allows with no
// rate limit, until the stream holds every session.started and joined. It reports
// the time to the last event, and events and sessions per second.
func BenchmarkFirstBurst(b *testing.B) {
	const sessions, participants = 200, 20
	for b.Loop() {
		b.StopTimer()
		api := sim.New(sim.Config{APIKey: secKey, Secret: secSecret})
		cfg := Default()
		for i := range sessions {
			id := fmt.Sprintf("burst-%03d", i)
			api.StartSession(id, "r")
			for j := range participants {
				api.Join(id, fmt.Sprintf("p%02d", j), "name")
			}
			cfg.Sessions = append(cfg.Sessions, Session{ID: id})
		}
		srv := httptest.NewServer(api)
		ns := natstest.Start(b)
		cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = srv.URL, secKey, secSecret
		cfg.VideoSDK.RateLimit = 0
		cfg.Poll.Schedule = "@every 1h" // the first poll only
		cfg.NATS.URL, cfg.HTTP.Listen = ns.ClientURL(), ""
		nc := natstest.Connect(b, ns)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- w.Run(ctx) }()
		want := uint64(sessions * (1 + participants))
		for {
			s, err := js.Stream(ctx, "ROLLCALL")
			if err == nil && s.CachedInfo().State.Msgs >= want {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/burst")
		b.ReportMetric(float64(want)/took.Seconds(), "events/s")
		b.ReportMetric(float64(sessions)/took.Seconds(), "sessions/s")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		w.Close()
		srv.Close()
		b.StartTimer()
	}
}
