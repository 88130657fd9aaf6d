package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// Shutdown budget: the spec gives 10 s from the signal to exit. An in-flight cycle gets
// cycleGrace to finish; then it is abandoned (what it published stays in its session's
// outbox, and the next run finishes it) and the connection gets the rest to flush.
const (
	cycleGrace   = 6 * time.Second
	abandonGrace = time.Second
	drainGrace   = 2 * time.Second
)

func runWorker(ctx context.Context, path string, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	log.Info("starting", "version", version, "config", path, "sessions", len(cfg.Sessions))
	log.Debug("effective config", "config", cfg.Redacted())
	err = work(ctx, cfg, log)
	if err != nil && ctx.Err() != nil {
		// A signal during start-up (waiting for NATS, say) is a clean stop too.
		log.Info("stopped during start-up", "err", err)
		return nil
	}
	return err
}

func newLogger(w io.Writer, c Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	}[c.Level]}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// work runs the worker until ctx is done: NATS, stream and state bucket, the VideoSDK
// client, the poller on its cron schedule; then it stops in order.
func work(ctx context.Context, cfg Config, log *slog.Logger) error {
	url := cfg.NATS.URL
	if url == "" {
		ns, err := startEmbedded(cfg.NATS.StoreDir)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		url = ns.ClientURL()
		log.Info("embedded NATS server with JetStream", "url", url, "store_dir", cfg.NATS.StoreDir)
	}
	nc, err := connect(ctx, url, cfg.NATS, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := publisher.NewJetStream(nc, cfg.VideoSDK.MaxConcurrency)
	if err != nil {
		return err
	}
	err = publisher.EnsureStream(ctx, js, publisher.StreamConfig{
		Name: cfg.NATS.Stream, Prefix: cfg.NATS.SubjectPrefix, Replicas: cfg.NATS.Replicas,
		DuplicateWindow: cfg.NATS.DuplicateWindow.Duration, MaxAge: cfg.NATS.MaxAge.Duration,
	}, log)
	if err != nil {
		return err
	}
	store, err := publisher.OpenStore(ctx, js, cfg.NATS.StateBucket, cfg.NATS.Replicas)
	if err != nil {
		return err
	}

	v := cfg.VideoSDK
	var tokens poller.Tokens = poller.Static(v.Token)
	if v.Token == "" {
		tokens = poller.NewMinter(v.APIKey, v.Secret, v.TokenTTL.Duration, nil)
	}
	client := poller.NewClient(poller.ClientConfig{
		BaseURL: v.BaseURL, Tokens: tokens, PerPage: v.PerPage, RequestTimeout: v.RequestTimeout.Duration,
		RateLimit: v.RateLimit, Log: log,
	})
	ids := make([]string, len(cfg.Sessions))
	for i, s := range cfg.Sessions {
		ids[i] = s.ID
	}
	p := poller.New(client, store, publisher.New(js, cfg.NATS.SubjectPrefix, log), ids, v.MaxConcurrency, log)

	// Cycles outlive the signal by cycleGrace, so that one in flight can finish.
	cycleCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	sched, err := parseSchedule(cfg.Poll.Schedule)
	if err != nil {
		return err // validated already; kept for safety against a changed parser
	}
	cl := cronLogger{log}
	c := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cl),
		// No SkipIfStillRunning: cycles may overlap, and each skips the sessions an
		// earlier one is still polling, so that a slow session holds up no other.
		cron.WithChain(cron.Recover(cl)))
	id := c.Schedule(sched, cron.FuncJob(func() { p.Cycle(cycleCtx, ctx.Done()) }))
	c.Start()
	// The first cycle now, through the same chain. Cron's Stop does not wait for a job
	// it did not start, so this one is waited for apart.
	var first sync.WaitGroup
	first.Go(c.Entry(id).WrappedJob.Run)
	log.Info("polling", "schedule", cfg.Poll.Schedule, "sessions", len(ids))

	<-ctx.Done()
	log.Info("stopping: no new cycles")
	running := c.Stop()
	idle := make(chan struct{})
	go func() {
		<-running.Done()
		first.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-time.After(cycleGrace):
		log.Warn("abandoning the cycle in flight; the next run finishes it")
		abandon()
		select {
		case <-idle:
		case <-time.After(abandonGrace):
			log.Warn("the abandoned cycle has not returned; exiting anyway")
		}
	}
	drained := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(drainGrace):
			log.Warn("NATS drain timed out")
		}
	}
	log.Info("stopped")
	return nil
}

// connect connects to NATS and keeps reconnecting for as long as the worker runs. It
// waits for the first connection, so that stream set-up errors are real ones.
func connect(ctx context.Context, url string, c NATS, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("rollcall"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", redactURL(url), err)
	}
	for wait := time.Duration(0); !nc.IsConnected(); wait += 100 * time.Millisecond {
		if wait > 0 && wait%(5*time.Second) == 0 {
			log.Warn("waiting for NATS", "url", redactURL(url))
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("nats %s: not connected: %w", redactURL(url), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
	return nc, nil
}

// redactURL hides passwords in nats://user:pass@host URLs.
func redactURL(url string) string {
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
// lock on storeDir until the server shuts down.
func startEmbedded(storeDir string) (*server.Server, error) {
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
	go func() {
		ns.WaitForShutdown()
		unlock()
	}()
	return ns, nil
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
