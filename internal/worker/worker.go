package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/internal/presence"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// Shutdown budget: the spec gives 10 s from the signal to exit. The webhooks under way
// get webhookGrace to be answered; the polls in flight get cycleGrace to finish; then
// they are abandoned (what they published stays in their sessions' outboxes, and the
// next run finishes it) and the connection gets the rest to flush.
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
		opts.ReplaceAttr = durationString
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationString writes a duration as the text handler does, "1.5s", where the JSON
// handler would write an integer of nanoseconds. It is called for the attributes in
// groups too.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// Worker is rollcall's worker: NATS (or the embedded server), the stream and
// buckets, the VideoSDK client and the Manager of one loop per tracked session and
// room. New sets it up; Run runs it until its context ends and then stops in order;
// Close releases what New opened.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	secrets  *Secrets // cfg's, hidden from what it shows
	started  time.Time
	ns       *server.Server // the embedded server, if nats.url is ""
	stopNS   func()         // shuts it down, removes nats.url, unlocks store_dir
	nc       *nats.Conn
	closed   <-chan struct{} // closed if the connection is closed for good
	js       jetstream.JetStream
	tracking *publisher.Tracking
	manager  *poller.Manager
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	http     *http.Server // nil if http.listen is ""
	httpAddr string       // where it listens
	page     *presence.Page
	cause    *natsCause  // why NATS cannot be reached, if it cannot
	wired    atomic.Bool // New is done: the fields above are set, the handlers may use them
	replica  string      // this replica's name in the lease bucket
	host     string      // the host in replica, a default name; "" for $ROLLCALL_REPLICA

	// The webhook receiver, nil if webhook.listen is "", and its listener, opened by
	// New and served by Run.
	hook         *http.Server
	hookListener net.Listener
	follow       chan string // rooms to follow, from UnknownRoom; nil unless webhook.follow_rooms

	feed *presence.Feed // GET /events on http.listen; set before wired
}

// replicaName names this process among the replicas: $ROLLCALL_REPLICA, if set, which
// must be unique among the live replicas and stable across restarts (a StatefulSet's
// pod name, say) so that a replica restarted after a crash takes its leases back at
// once; else its host and a random suffix, so that two processes on one host are two
// replicas, and a restarted process takes over from its predecessor on the host once
// that one no longer answers (see vanished). host is "" for a name from the
// environment.
func replicaName() (name, host string) {
	if name := os.Getenv("ROLLCALL_REPLICA"); name != "" {
		return name, ""
	}
	host, err := os.Hostname()
	if err != nil {
		host = "rollcall"
	}
	b := make([]byte, suffixBytes)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b), host
}

const suffixBytes = 3 // of a default replica name, after its host

// vanished reports whether replica is a predecessor of this worker on its host (a
// default name, of this host, another suffix) that no longer listens on its
// ReplicaSubject: a worker killed without giving its leases up, restarted here
// under a new name. Any other replica, or one that may only be slow to answer, is
// not gone: its leases expire on their own.
func (w *Worker) vanished(ctx context.Context, replica string) bool {
	suffix, ok := strings.CutPrefix(replica, w.host+"-")
	if w.host == "" || !ok || replica == w.replica || len(suffix) != 2*suffixBytes {
		return false
	}
	if _, err := hex.DecodeString(suffix); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := w.nc.RequestWithContext(ctx, ReplicaSubject(w.cfg.NATS.Stream, replica), nil)
	return errors.Is(err, nats.ErrNoResponders)
}

// ReplicaSubject is where replica answers while it runs, so that its successor on
// its host can tell it is gone.
func ReplicaSubject(stream, replica string) string {
	return "_rollcall." + stream + ".replica." + events.EscapeToken(replica)
}

// Replica is this worker's name among the replicas sharing the lease bucket.
func (w *Worker) Replica() string { return w.replica }

// New connects to NATS (starting the embedded server if nats.url is ""), sets up the
// stream and the buckets, and wires the poller. It waits for NATS until ctx ends.
// Neither what it logs, through log, nor its errors show cfg's secrets.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Worker, err error) {
	secrets := NewSecrets(cfg.Secrets()...)
	log = secrets.Logger(log)
	w := &Worker{cfg: cfg, log: log, secrets: secrets, started: time.Now(), registry: prometheus.NewRegistry()}
	w.replica, w.host = replicaName()
	defer func() {
		if err != nil {
			w.Close()
			err = secrets.Error(err)
		}
	}()
	w.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w.metrics = metrics.New(w.registry)
	url := cfg.NATS.URL
	w.cause = &natsCause{log: log, url: RedactURL(url), hint: authHint(cfg.NATS)}
	if cfg.HTTP.Listen != "" {
		// Served from now on, so that a port in use is a start-up error, and health
		// checks answer while the worker waits for NATS.
		l, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return nil, fmt.Errorf("http.listen: %w", err)
		}
		w.httpAddr = l.Addr().String()
		w.http = httpserver.New(w.handler(), slog.NewLogLogger(log.Handler(), slog.LevelWarn))
		go func() {
			// The event feed's clients hold their connections: they come on top of
			// what the other endpoints need.
			if err := w.http.Serve(httpserver.LimitListener(l, httpserver.MaxConns+presence.DefaultMaxClients)); !errors.Is(err, http.ErrServerClosed) {
				log.Error("no longer serving /, /events, /metrics, /healthz and /readyz", "err", err)
			}
		}()
		log.Info("serving /, /events, /metrics, /healthz and /readyz", "listen", l.Addr().String())
	}
	if url == "" {
		if w.ns, w.stopNS, err = StartEmbedded(cfg.NATS.StoreDir, log); err != nil {
			return nil, err
		}
		url = w.ns.ClientURL()
	}
	if w.nc, w.closed, err = connect(ctx, url, cfg.NATS, log, w.cause); err != nil {
		return nil, err
	}
	js, err := publisher.NewJetStream(w.nc)
	if err != nil {
		return nil, err
	}
	w.js = js
	n := cfg.NATS
	var store *publisher.Store
	var leases poller.LeaseStore
	err = retrySetup(ctx, log, func() error {
		err := publisher.EnsureStream(ctx, js, publisher.StreamConfig{
			Name: n.Stream, Prefix: n.SubjectPrefix, Replicas: n.Replicas,
			DuplicateWindow: n.DuplicateWindow.Duration, MaxAge: n.MaxAge.Duration,
		}, log)
		if err != nil {
			return err
		}
		if store, err = publisher.OpenStore(ctx, js, n.StateBucket, n.Replicas, n.MaxAge.Duration, log, w.metrics); err != nil {
			return err
		}
		store.RebuildFrom(js, n.Stream, n.SubjectPrefix)
		if w.tracking, err = publisher.OpenTracking(ctx, js, n.TrackingBucket, n.Replicas, log); err != nil {
			return err
		}
		// The embedded server is this process's own: no other replica can share
		// its store, so a worker on it polls everything, as one always did, without
		// leases.
		if w.ns == nil {
			if leases, err = publisher.OpenLeases(ctx, js, n.LeaseBucket, n.Replicas, n.LeaseTTL.Duration, log); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
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
	reconcile, err := ParseSchedule(cfg.Poll.ReconcileSchedule)
	if err != nil {
		return nil, err
	}
	// The page reads the states apart from the poller's store: a page view must
	// neither count as the poller's loads nor rebuild a state.
	states, err := publisher.ReadStore(ctx, js, n.StateBucket)
	if err != nil {
		return nil, err
	}
	w.page = presence.NewPage(presence.PageConfig{JetStream: js, Stream: n.Stream, States: states, Followed: w.followed, Log: log})
	unfinished, err := store.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	client := newClient(cfg.VideoSDK, log, w.metrics, interval(discover))
	pl := poller.New(client, store, publisher.New(js, n.SubjectPrefix, log, publisher.WithMetrics(w.metrics)),
		poller.WithExclude(cfg.Poll.ExcludeModes, cfg.Poll.ExcludeSDKTypes), poller.WithMetrics(w.metrics),
		poller.WithConcurrency(cfg.VideoSDK.MaxConcurrency), poller.WithLeftTimeWait(cfg.Poll.LeftTimeWait.Duration))
	var unknownRoom func(string)
	if cfg.Webhook.FollowRooms {
		w.follow = make(chan string, followQueued)
		unknownRoom = w.unknownRoom
	}
	w.manager = poller.NewManager(poller.ManagerConfig{
		Poller: pl, Rooms: client, Schedule: sched, Discover: discover, Reconcile: reconcile,
		Unfinished: unfinished, Log: log, UnknownRoom: unknownRoom,
		Leases: leases, Replica: w.replica, LeaseTTL: n.LeaseTTL.Duration, Vanished: w.vanished, Metrics: w.metrics,
		PollsAtOnce: pl.AtOnce(),
	})
	w.feed = presence.NewFeed(js, n.Stream, n.SubjectPrefix, presence.FeedOptions{Metrics: w.metrics, Log: log})
	if cfg.Webhook.Listen != "" {
		// Last, so that a webhook is only ever answered by a worker that can act on it.
		if err := w.listenWebhooks(); err != nil {
			return nil, err
		}
	}
	w.wired.Store(true)
	return w, nil
}

// retrySetup runs setup (the stream and buckets) until it succeeds, an error other
// than a timeout comes, or ctx ends: a cluster just started, or electing leaders,
// answers JetStream requests late for a while, and a worker that gave up at once
// would need its supervisor to start it again.
func retrySetup(ctx context.Context, log *slog.Logger, setup func() error) error {
	wait := 200 * time.Millisecond
	for said := false; ; said = true {
		err := setup()
		if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) || ctx.Err() != nil {
			return err
		}
		if !said {
			log.Warn("setting up the stream and buckets timed out: trying again until the server answers", "err", err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// NATSURL is the URL of the NATS server the worker publishes to, without credentials.
func (w *Worker) NATSURL() string { return RedactURL(w.nc.ConnectedUrl()) }

// WebhookAddr is the address the webhook receiver listens on ("" without one): the
// port chosen, for webhook.listen with port 0.
func (w *Worker) WebhookAddr() string {
	if w.hookListener == nil {
		return ""
	}
	return w.hookListener.Addr().String()
}

// HTTPAddr is the address http.listen listens on ("" without one): the port chosen,
// for a listen address with port 0.
func (w *Worker) HTTPAddr() string { return w.httpAddr }

// followed is what the presence page shows: the rooms and sessions of the config file
// and of the tracking bucket, which every replica reads alike.
func (w *Worker) followed(ctx context.Context) (rooms, sessions []string, err error) {
	sessions, rooms, err = w.tracking.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	return append(rooms, w.cfg.RoomIDs()...), append(sessions, w.cfg.SessionIDs()...), nil
}

// Metrics gathers the worker's metrics, as /metrics serves them.
func (w *Worker) Metrics() prometheus.Gatherer { return w.registry }

// JetStream is the worker's JetStream context.
func (w *Worker) JetStream() jetstream.JetStream { return w.js }

// Run polls what is tracked until ctx is done: the config file's sessions and rooms,
// and the tracking bucket's as it changes; it answers `rollcall tracked`. Then it
// stops: no new polls; the polls in flight get cycleGrace to finish; publishes are
// flushed.
func (w *Worker) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	cfg, n := w.cfg, w.cfg.NATS
	sub, err := w.serveStatus()
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	// Before any lease is taken, and until the last is given up.
	alive, err := w.nc.Subscribe(ReplicaSubject(n.Stream, w.replica), func(msg *nats.Msg) { _ = msg.Respond(nil) })
	if err != nil {
		return fmt.Errorf("answer on %s: %w", ReplicaSubject(n.Stream, w.replica), err)
	}
	defer alive.Unsubscribe()
	// Every replica takes hints, whether it receives webhooks or not: the one that
	// holds a session's lease may not be the one VideoSDK reaches.
	hints, err := w.nc.Subscribe(HintSubject(n.Stream), w.takeHint)
	if err != nil {
		return fmt.Errorf("take hints on %s: %w", HintSubject(n.Stream), err)
	}
	defer hints.Unsubscribe()

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
		"discover_schedule", cfg.Poll.DiscoverSchedule, "reconcile_schedule", cfg.Poll.ReconcileSchedule,
		"left_time_wait", cfg.Poll.LeftTimeWait.Duration, "tracking_bucket", n.TrackingBucket)
	if w.ns == nil {
		w.log.Info("sharing the sessions with the other replicas", "replica", w.replica, "lease_bucket", n.LeaseBucket, "lease_ttl", n.LeaseTTL.Duration)
	}
	if len(cfg.Sessions)+len(cfg.Rooms) == 0 {
		w.log.Warn("the config file tracks nothing: add [[rooms]] or [[sessions]], or use `rollcall track`")
	}
	if w.follow != nil {
		go w.followRooms(ctx)
	}
	if w.hook != nil {
		w.serveWebhooks()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case <-w.closed:
		// nats.go gave up on the connection: exit, so that a supervisor restarts us,
		// rather than fail every poll for good.
		runErr = fmt.Errorf("the NATS connection was closed for good: %v", w.nc.LastError())
		w.log.Error("stopping: the NATS connection was closed for good", "err", w.nc.LastError())
		stop()
	}
	w.log.Info("stopping: no new polls")
	if w.hook != nil {
		w.stopWebhooks()
	}
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
	if err := w.nc.Drain(); err == nil {
		select {
		case <-w.closed:
		case <-time.After(drainGrace):
			w.log.Warn("NATS drain timed out")
		}
	}
	w.log.Info("stopped")
	return runErr
}

// Close closes the connection and shuts the embedded server down; when it returns,
// store_dir/nats.url is gone.
func (w *Worker) Close() {
	if w.feed != nil {
		w.feed.Close() // ends its responses, which would hold the server's connections
	}
	if w.http != nil {
		_ = w.http.Close() // it fails only on closing its listener, which is let go either way
	}
	if w.hook != nil {
		_ = w.hook.Close()
		_ = w.hookListener.Close() // if Run never served it; closed already otherwise
	}
	if w.nc != nil {
		w.nc.Close()
	}
	if w.stopNS != nil {
		w.stopNS()
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

// connect connects to NATS and keeps reconnecting for as long as the worker runs,
// authorization errors included (they may be mended on the server). It waits for the
// first connection, so that stream set-up errors are real ones, and says why it
// waits. closed is closed if the connection is closed for good by anyone but Close.
func connect(ctx context.Context, url string, c NATS, log *slog.Logger, cause *natsCause) (nc *nats.Conn, closed <-chan struct{}, err error) {
	auth, err := AuthOptions(c)
	if err != nil {
		return nil, nil, err
	}
	gone := make(chan struct{})
	denied := &denials{log: log}
	opts := append(auth,
		nats.Name("rollcall"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(time.Second),
		// A server gone without closing the connection is noticed within 15 s.
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { cause.note(err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cause.note(nil)
			log.Info("NATS reconnected", "url", RedactURL(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// What nats.go would otherwise print to stderr by itself. A refusal while
			// reconnecting comes here too, at every attempt: said once per cause.
			switch {
			case errors.Is(err, nats.ErrPermissionViolation):
				// The connection is fine; the server refuses one publish or
				// subscription (the publish itself only times out).
				denied.note(err)
			case sub == nil:
				cause.note(err)
			case errors.Is(err, nats.ErrConsumerNotActive):
				// An ordered consumer (the tracking bucket's watch) missing its
				// heartbeats while NATS is away; nats.go rebuilds it.
				log.Debug("NATS error", "err", err, "subject", sub.Subject)
			default:
				log.Warn("NATS error", "err", err, "subject", sub.Subject)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(gone) }),
	)
	nc, err = nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats %s: %w", RedactURL(url), err)
	}
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, nil, fmt.Errorf("nats %s: not connected: %w", RedactURL(url), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	log.Info("connected to NATS", "url", RedactURL(nc.ConnectedUrl()))
	return nc, gone, nil
}

// natsCause logs why NATS cannot be reached, in words, once when it starts and once
// each time the reason changes, not at every attempt; readiness reads it.
type natsCause struct {
	log  *slog.Logger
	url  string
	hint string // what to check when authorization is refused
	mu   sync.Mutex
	last string
}

func (c *natsCause) note(err error) {
	if errors.Is(err, nats.ErrNoServers) {
		return // nats.go's summary of failed attempts: the attempts say why
	}
	why := ""
	if err != nil {
		why = NATSCause(err)
		if strings.HasPrefix(why, causeAuthorization) {
			why = causeAuthorization + ": " + c.hint
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if why == c.last {
		return
	}
	c.last = why
	if why != "" {
		c.log.Error("cannot reach NATS; retrying every second", "url", c.url, "cause", why, "err", err)
	}
}

// current is the cause last noted; "" once connected.
func (c *natsCause) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

const causeAuthorization = "authorization refused"

// denials logs each permission the server denies, once, naming it.
type denials struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]bool
}

// maxDenials bounds the denials logged one by one: a publish's subject holds its
// session's IDs.
const maxDenials = 20

func (d *denials) note(err error) {
	what := cmp.Or(permissionDenied(err), err.Error())
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = make(map[string]bool)
	}
	switch {
	case d.seen[what]:
		return
	case len(d.seen) < maxDenials:
		d.log.Error("NATS denies a permission: grant it to the user rollcall connects as (see docs/operations.md)", "denied", what, "err", err)
	case len(d.seen) == maxDenials:
		d.log.Error("NATS denies more permissions than are logged one by one", "logged", maxDenials)
	default:
		return
	}
	d.seen[what] = true
}

var permissionRE = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// permissionDenied says what a permission denial from the server denies, as
// `publish to "subject"` or `subscribe to "subject"`; "" if err does not say.
func permissionDenied(err error) string {
	m := permissionRE.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	op := "publish"
	if strings.EqualFold(m[1], "subscription") {
		op = "subscribe"
	}
	return op + " to " + strconv.Quote(m[2])
}

// authHint says what to check when the server refuses the configured credentials.
func authHint(n NATS) string {
	switch {
	case n.Creds != "":
		return "check nats.creds (NATS_CREDS) and that the server trusts its operator and account"
	case n.NKeySeed != "":
		return "check nats.nkey_seed and that the server knows its public key"
	case n.User != "":
		return "check nats.user and nats.password (NATS_USER, NATS_PASSWORD)"
	case n.Token != "":
		return "check nats.token"
	}
	return "the server requires credentials: set nats.creds, nats.nkey_seed, nats.user and nats.password, or nats.token"
}

// NATSCause says in words why a connection to NATS failed.
func NATSCause(err error) string {
	var dns *net.DNSError
	var tlsErr *tls.CertificateVerificationError
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(msg, "permissions violation"):
		if what := permissionDenied(err); what != "" {
			return "permission denied: the user may not " + what
		}
		return "permission denied: " + err.Error()
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(msg, "authorization violation") || strings.Contains(msg, "authentication"):
		return causeAuthorization + ": check nats.creds, nats.nkey_seed, nats.user and nats.password (NATS_USER, NATS_PASSWORD, NATS_CREDS) or nats.token"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: no NATS server listens there"
	case errors.As(err, &dns):
		return "no such host"
	case errors.As(err, &tlsErr) || strings.Contains(msg, "x509") || strings.Contains(msg, "tls"):
		return "TLS failed: check nats.tls_ca, nats.tls_cert and nats.tls_key"
	case errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(msg, "timeout"):
		return "no answer in time"
	case errors.Is(err, nats.ErrNoServers):
		return "no server took the connection"
	case strings.Contains(msg, "info") || strings.Contains(msg, "protocol"):
		return "not a NATS server"
	}
	return err.Error()
}

// AuthOptions are the NATS credentials and TLS settings of the config, for the worker
// and the commands; the secrets stay in them, never in errors.
func AuthOptions(c NATS) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed %s: not an NKey user seed file", c.NKeySeed)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// StartEmbedded starts the embedded server on NATS's usual port, so that `nats sub`
// and `rollcall tail` find it, or on any free port if that one is taken. It holds a
// lock on storeDir, and writes the server's URL into storeDir/nats.url, for the
// commands that talk to the running worker, until stop is called: stop shuts the
// server down, removes the file and unlocks the store before it returns, so that a
// process that exits right after leaves no URL behind.
func StartEmbedded(storeDir string, log *slog.Logger) (ns *server.Server, stop func(), err error) {
	port := 4222
	if l, err := net.Listen("tcp", "127.0.0.1:4222"); err != nil {
		port = -1
	} else {
		_ = l.Close() // a probe: the embedded server listens on the port next
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	unlock, err := lockDir(storeDir)
	if err != nil {
		return nil, nil, err
	}
	ns, err = publisher.StartEmbedded("127.0.0.1", port, storeDir)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	urlFile := filepath.Join(storeDir, EmbeddedURLFile)
	if err := os.WriteFile(urlFile, []byte(ns.ClientURL()+"\n"), 0o644); err != nil {
		log.Warn("cannot write the embedded server's URL: rollcall track, untrack and tracked will not find it", "err", err)
	}
	log.Info("embedded NATS server with JetStream", "url", ns.ClientURL(), "store_dir", storeDir)
	return ns, sync.OnceFunc(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		if err := os.Remove(urlFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot remove the embedded server's URL", "err", err)
		}
		unlock()
	}), nil
}

// EmbeddedURLFile is the file, in store_dir, that holds the URL of the embedded
// server while it runs.
const EmbeddedURLFile = "nats.url"
