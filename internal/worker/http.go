package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/poller"
)

// handler serves the presence page, /, and the event feed, /events, beside /metrics,
// /healthz and /readyz.
func (w *Worker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		if !w.wired.Load() {
			http.Error(rw, "starting: not connected to NATS yet", http.StatusServiceUnavailable)
			return
		}
		w.page.ServeHTTP(rw, r)
	})
	metricsHandler := promhttp.HandlerFor(w.registry, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, r *http.Request) {
		if !w.wired.Load() {
			w.metrics.Ready.Set(0)
		} else if list, err := w.status(r.Context()); err == nil {
			w.gauge(list)
			ready := 0.0
			if _, ok := w.ready(r.Context()); ok {
				ready = 1
			}
			w.metrics.Ready.Set(ready)
		}
		metricsHandler.ServeHTTP(rw, r)
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		if !w.wired.Load() {
			fmt.Fprintln(rw, "ok: starting") // alive, waiting for NATS
			return
		}
		// Alive, and the manager, which every loop reports to, answers.
		if _, err := w.status(r.Context()); err != nil {
			http.Error(rw, "the manager does not answer: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /events", func(rw http.ResponseWriter, r *http.Request) {
		if !w.wired.Load() {
			rw.Header().Set("Retry-After", "1")
			http.Error(rw, "starting: not connected to NATS yet", http.StatusServiceUnavailable)
			return
		}
		w.feed.ServeHTTP(rw, r)
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		checks, ready := w.ready(r.Context())
		rw.Header().Set("Content-Type", "application/json")
		if !ready {
			rw.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(rw).Encode(struct {
			Ready  bool              `json:"ready"`
			Checks map[string]string `json:"checks"`
		}{ready, checks})
	})
	return mux
}

func (w *Worker) status(ctx context.Context) ([]poller.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return w.manager.Status(ctx)
}

// gauge sets the gauges that describe what is tracked, as of now.
func (w *Worker) gauge(list []poller.Status) {
	now := time.Now()
	counts := map[string]float64{poller.StatusPolling: 0, poller.StatusNotFound: 0, poller.StatusEnded: 0}
	var rooms, present, waiting float64
	var oldest time.Duration
	for _, s := range list {
		if s.Kind == poller.KindRoom {
			rooms++
			continue
		}
		counts[s.Status]++
		present += float64(s.Present)
		waiting += float64(s.Waiting)
		if s.Status == poller.StatusPolling {
			last := s.Last
			if last.IsZero() {
				last = w.started
			}
			oldest = max(oldest, now.Sub(last))
		}
	}
	for status, n := range counts {
		w.metrics.TrackedSessions.WithLabelValues(metricsLabel(status)).Set(n)
	}
	w.metrics.TrackedRooms.Set(rooms)
	w.metrics.Present.Set(present)
	w.metrics.LeftsWaiting.Set(waiting)
	w.metrics.OldestPoll.Set(oldest.Seconds())
}

// metricsLabel writes a status as a label value: not_found, not "not found".
func metricsLabel(status string) string {
	if status == poller.StatusNotFound {
		return metrics.OutcomeNotFound
	}
	return status
}

// ready checks what readiness means: connected to NATS, the stream and buckets there,
// and polls completing (some session's poll completed within pollsStale, if any
// session is being polled). Each check is "ok" or why not.
func (w *Worker) ready(ctx context.Context) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	checks := map[string]string{"nats": "ok", "jetstream": "ok", "polls": "ok"}
	if !w.wired.Load() {
		why := "starting: not connected yet"
		if c := w.cause.current(); c != "" {
			why = "not connected: " + c
		}
		checks["nats"], checks["jetstream"], checks["polls"] = why, "unknown: not connected to NATS", "unknown: starting"
		return checks, false
	}
	if !w.nc.IsConnected() {
		why := "not connected"
		if c := w.cause.current(); c != "" {
			why += ": " + c
		} else if err := w.nc.LastError(); err != nil {
			why += ": " + NATSCause(err)
		}
		checks["nats"], checks["jetstream"] = why, "unknown: not connected to NATS"
	} else {
		n := w.cfg.NATS
		if _, err := w.js.Stream(ctx, n.Stream); err != nil {
			checks["jetstream"] = fmt.Sprintf("stream %s: %v", n.Stream, err)
		}
		for _, b := range []string{n.StateBucket, n.TrackingBucket} {
			if _, err := w.js.KeyValue(ctx, b); err != nil {
				checks["jetstream"] = fmt.Sprintf("bucket %s: %v", b, err)
			}
		}
	}
	if list, err := w.manager.Status(ctx); err != nil {
		checks["polls"] = "the manager does not answer: " + err.Error()
	} else if stale := w.pollsStale(list); stale != "" {
		checks["polls"] = stale
	}
	ready := true
	for k, v := range checks {
		checks[k] = w.secrets.Scrub(v)
		ready = ready && v == "ok"
	}
	return checks, ready
}

// pollsStale says why polls are not completing: none of the sessions being polled
// has completed one in the last three intervals (and 30 s at least), counting from
// start-up. "" if they are, or if nothing is being polled.
func (w *Worker) pollsStale(list []poller.Status) string {
	sched, err := ParseSchedule(w.cfg.Poll.Schedule)
	if err != nil {
		return err.Error()
	}
	bound := max(3*interval(sched), 30*time.Second)
	polling := 0
	latest := w.started
	for _, s := range list {
		if s.Kind == poller.KindSession && s.Status == poller.StatusPolling {
			polling++
			if s.Last.After(latest) {
				latest = s.Last
			}
		}
	}
	if since := time.Since(latest); polling > 0 && since > bound {
		return fmt.Sprintf("no complete poll of any of %d sessions for %s", polling, since.Round(time.Second))
	}
	return ""
}
