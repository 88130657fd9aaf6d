package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// Shutdown budget: the spec gives 10 s from the signal to exit. The polls in flight get
// cycleGrace to finish; then they are abandoned (what they published stays in their
// sessions' outboxes, and the next run finishes it) and the connection gets the rest
// to flush.
const (
	cycleGrace   = 6 * time.Second
	abandonGrace = time.Second
	drainGrace   = 2 * time.Second
)

// NewLogger is the process logger of the config's [log].
func NewLogger(w io.Writer, c Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	}[c.Level]}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Worker is rollcall's worker: NATS (or the embedded server), the stream and
// buckets, the VideoSDK client and the Manager of one loop per tracked session and
// room. New sets it up; Run runs it until its context ends and then stops in order;
// Close releases what New opened.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	started  time.Time
	ns       *server.Server // the embedded server, if nats.url is ""
	nc       *nats.Conn
	js       jetstream.JetStream
	tracking *publisher.Tracking
	manager  *poller.Manager
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	http     net.Listener // nil if http.listen is ""
}

// New connects to NATS (starting the embedded server if nats.url is ""), sets up the
// stream and the buckets, and wires the poller. It waits for NATS until ctx ends.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Worker, err error) {
	w := &Worker{cfg: cfg, log: log, started: time.Now(), registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	w.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w.metrics = metrics.New(w.registry)
	if cfg.HTTP.Listen != "" {
		// Opened now, so that a port in use is a start-up error.
		if w.http, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("http.listen: %w", err)
		}
	}
	url := cfg.NATS.URL
	if url == "" {
		if w.ns, err = StartEmbedded(cfg.NATS.StoreDir, log); err != nil {
			return nil, err
		}
		url = w.ns.ClientURL()
	}
	if w.nc, err = connect(ctx, url, cfg.NATS, log); err != nil {
		return nil, err
	}
	js, err := publisher.NewJetStream(w.nc, cfg.VideoSDK.MaxConcurrency)
	if err != nil {
		return nil, err
	}
	w.js = js
	n := cfg.NATS
	err = publisher.EnsureStream(ctx, js, publisher.StreamConfig{
		Name: n.Stream, Prefix: n.SubjectPrefix, Replicas: n.Replicas,
		DuplicateWindow: n.DuplicateWindow.Duration, MaxAge: n.MaxAge.Duration,
	}, log)
	if err != nil {
		return nil, err
	}
	store, err := publisher.OpenStore(ctx, js, n.StateBucket, n.Replicas, n.MaxAge.Duration, log, w.metrics)
	if err != nil {
		return nil, err
	}
	if w.tracking, err = publisher.OpenTracking(ctx, js, n.TrackingBucket, n.Replicas, log); err != nil {
		return nil, err
	}
	sched, err := ParseSchedule(cfg.Poll.Schedule)
	if err != nil {
		return nil, err // validated already; kept for safety against a changed parser
	}
	discover, err := ParseSchedule(cfg.Poll.DiscoverSchedule)
	if err != nil {
		return nil, err
	}
	unfinished, err := store.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	client := newClient(cfg.VideoSDK, log, w.metrics, interval(discover))
	p := poller.New(client, store, publisher.New(js, n.SubjectPrefix, log, publisher.WithMetrics(w.metrics)),
		poller.WithExclude(cfg.Poll.ExcludeModes, cfg.Poll.ExcludeSDKTypes), poller.WithMetrics(w.metrics))
	w.manager = poller.NewManager(poller.ManagerConfig{
		Poller: p, Rooms: client, Schedule: sched, Discover: discover,
		Concurrency: cfg.VideoSDK.MaxConcurrency, Unfinished: unfinished, Log: log,
	})
	return w, nil
}

// NATSURL is the URL of the NATS server the worker publishes to, without credentials.
func (w *Worker) NATSURL() string { return w.nc.ConnectedUrlRedacted() }

// Run polls what is tracked until ctx is done: the config file's sessions and rooms,
// and the tracking bucket's as it changes; it answers `rollcall tracked`. Then it
// stops: no new polls; the polls in flight get cycleGrace to finish; publishes are
// flushed.
func (w *Worker) Run(ctx context.Context) error {
	cfg, n := w.cfg, w.cfg.NATS
	sub, err := w.serveStatus()
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if w.http != nil {
		srv := &http.Server{Handler: w.handler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelWarn)}
		go srv.Serve(w.http)
		defer srv.Close()
		w.log.Info("serving /metrics, /healthz and /readyz", "listen", w.http.Addr().String())
	}

	updates := make(chan poller.Update)
	send := func(u poller.Update) {
		select {
		case updates <- u:
		case <-ctx.Done():
		}
	}
	go send(poller.Update{Origin: OriginConfig, Sessions: cfg.SessionIDs(), Rooms: cfg.RoomIDs()})
	go w.tracking.Watch(ctx, func(sessions, rooms []string) {
		send(poller.Update{Origin: OriginBucket, Sessions: sessions, Rooms: rooms})
	})

	// Polls outlive the signal by cycleGrace, so that one in flight can finish.
	polls, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	idle := make(chan struct{})
	go func() {
		defer close(idle)
		w.manager.Run(ctx, polls, updates)
	}()
	w.log.Info("polling", "schedule", cfg.Poll.Schedule, "sessions", len(cfg.Sessions), "rooms", len(cfg.Rooms),
		"discover_schedule", cfg.Poll.DiscoverSchedule, "tracking_bucket", n.TrackingBucket)
	if len(cfg.Sessions)+len(cfg.Rooms) == 0 {
		w.log.Warn("the config file tracks nothing: add [[rooms]] or [[sessions]], or use `rollcall track`")
	}

	<-ctx.Done()
	w.log.Info("stopping: no new polls")
	select {
	case <-idle:
	case <-time.After(cycleGrace):
		w.log.Warn("abandoning the polls in flight; the next run finishes them")
		abandon()
		select {
		case <-idle:
		case <-time.After(abandonGrace):
			w.log.Warn("the abandoned polls have not returned; exiting anyway")
		}
	}
	drained := make(chan struct{})
	w.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := w.nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(drainGrace):
			w.log.Warn("NATS drain timed out")
		}
	}
	w.log.Info("stopped")
	return nil
}

// Close closes the connection and shuts the embedded server down.
func (w *Worker) Close() {
	if w.http != nil {
		w.http.Close()
	}
	if w.nc != nil {
		w.nc.Close()
	}
	if w.ns != nil {
		w.ns.Shutdown()
		w.ns.WaitForShutdown()
	}
}

// StatusSubject is where a running worker answers `rollcall tracked` with what it
// tracks. It is outside the stream's subjects, so that nothing stores the requests.
func StatusSubject(stream string) string { return "_rollcall." + stream + ".tracked" }

// StatusReply is a worker's answer on StatusSubject.
type StatusReply struct {
	// StoreDir is the embedded server's store, as an absolute path; "" when the
	// worker uses an external server. A command that found the server through
	// store_dir/nats.url checks it: a URL left by a worker killed with -9 may lead
	// to another worker's embedded server.
	StoreDir string          `json:"storeDir,omitempty"`
	Tracked  []poller.Status `json:"tracked"`
}

// serveStatus answers status requests with the Manager's tracked sessions and rooms,
// as JSON.
func (w *Worker) serveStatus() (*nats.Subscription, error) {
	var storeDir string
	if w.ns != nil {
		storeDir, _ = filepath.Abs(w.cfg.NATS.StoreDir)
	}
	sub, err := w.nc.Subscribe(StatusSubject(w.cfg.NATS.Stream), func(msg *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := w.manager.Status(ctx)
		if err != nil {
			return // stopping: no answer is the answer
		}
		body, _ := json.Marshal(StatusReply{StoreDir: storeDir, Tracked: st})
		_ = msg.Respond(body) // the asker may have gone
	})
	if err != nil {
		return nil, fmt.Errorf("serve status: %w", err)
	}
	return sub, nil
}

// Origins of tracked sessions and rooms, as `rollcall tracked` shows them.
const (
	OriginConfig = "config"
	OriginBucket = "bucket"
)

// interval is the time between two ticks of sched, as of now.
func interval(sched cron.Schedule) time.Duration {
	next := sched.Next(time.Now())
	return sched.Next(next).Sub(next)
}

// newClient is the API client of the config; a room's listing yields to polls for at
// most maxYield.
func newClient(v VideoSDK, log *slog.Logger, m *metrics.Metrics, maxYield time.Duration) *poller.Client {
	var tokens poller.Tokens = poller.Static(v.Token)
	if v.Token == "" {
		tokens = poller.NewMinter(v.APIKey, v.Secret, v.TokenTTL.Duration, nil).CountMints(m.TokenMints)
	}
	return poller.NewClient(poller.ClientConfig{
		BaseURL: v.BaseURL, Tokens: tokens, PerPage: v.PerPage, RequestTimeout: v.RequestTimeout.Duration,
		RateLimit: v.RateLimit, Log: log, Metrics: m, MaxYield: maxYield,
	})
}

// connect connects to NATS and keeps reconnecting for as long as the worker runs. It
// waits for the first connection, so that stream set-up errors are real ones.
func connect(ctx context.Context, url string, c NATS, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("rollcall"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		// A server gone without closing the connection is noticed within 15 s.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	nc, err := nats.Connect(url, append(opts, AuthOptions(c)...)...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", RedactURL(url), err)
	}
	for wait := time.Duration(0); !nc.IsConnected(); wait += 100 * time.Millisecond {
		if wait > 0 && wait%(5*time.Second) == 0 {
			log.Warn("waiting for NATS", "url", RedactURL(url))
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("nats %s: not connected: %w", RedactURL(url), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
	return nc, nil
}

// authOptions are the NATS credentials of the config, for the worker and the commands.
func AuthOptions(c NATS) []nats.Option {
	var opts []nats.Option
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	return opts
}

// redactURL hides passwords in nats://user:pass@host URLs.
func RedactURL(url string) string {
	var out []string
	for _, u := range strings.Split(url, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				u = u[:scheme+3] + "REDACTED" + u[at:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// startEmbedded starts the embedded server on NATS's usual port, so that `nats sub`
// and `rollcall tail` find it, or on any free port if that one is taken. It holds a
// lock on storeDir until the server shuts down, and writes the server's URL into
// storeDir/nats.url meanwhile, for the commands that talk to the running worker.
func StartEmbedded(storeDir string, log *slog.Logger) (*server.Server, error) {
	port := 4222
	if l, err := net.Listen("tcp", "127.0.0.1:4222"); err != nil {
		port = -1
	} else {
		l.Close()
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	unlock, err := lockDir(storeDir)
	if err != nil {
		return nil, err
	}
	ns, err := publisher.StartEmbedded("127.0.0.1", port, storeDir)
	if err != nil {
		unlock()
		return nil, err
	}
	urlFile := filepath.Join(storeDir, EmbeddedURLFile)
	if err := os.WriteFile(urlFile, []byte(ns.ClientURL()+"\n"), 0o644); err != nil {
		log.Warn("cannot write the embedded server's URL: rollcall track, untrack and tracked will not find it", "err", err)
	}
	log.Info("embedded NATS server with JetStream", "url", ns.ClientURL(), "store_dir", storeDir)
	go func() {
		ns.WaitForShutdown()
		os.Remove(urlFile)
		unlock()
	}()
	return ns, nil
}

// EmbeddedURLFile, in store_dir, holds the URL of the embedded server while it runs.
const EmbeddedURLFile = "nats.url"
