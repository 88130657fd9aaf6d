// Command rollcall-load measures rollcall against what it cannot avoid: the API's
// round trips with their JSON, and what the broker can take.
//
// In one run, with S sessions of P participants behind the simulated API (every
// answer delayed by a latency L), it measures:
//
//   - the worker, wired as `rollcall run` wires it and tracking the sessions from its
//     config: the first poll of every session (the burst of session.started and
//     joined), then some intervals in which nothing changes (the steady state), then
//     some in which the world churns, after which the stream must match the
//     simulator's truth exactly;
//   - a fetch-only baseline: the same requests, with the same concurrency, rate limit
//     and connection pool, decoded with encoding/json into the fields events need,
//     and nothing else;
//   - a publish-only run of rollcall's publisher, and `nats bench js pub async --dedup`
//     for as many messages of the same size on the same server;
//   - with the nats CLI, -bursts first bursts in all, the extra ones before the rest
//     by workers in processes of their own, each followed by a fetch-only cycle and
//     nats bench: the burst's ratios are the median of their ratios.
//
// With -webhooks, the simulator also sends VideoSDK's signed webhooks for every change
// to the worker's webhook listener (late, lost and doubled as the -webhook-* flags
// say), each a hint to poll that session at once. In every mode the run reports the
// latency of each change of the churn, from the change to its event's stream
// timestamp, apart for the changes whose webhook arrived and for the others, and the
// requests per session per hour the simulator served.
//
// The simulator and (unless -nats names a server) a NATS server run in processes of
// their own, so that the CPU time and memory measured are the worker's alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

// Bounds on the flags, so that a typo cannot start a run that never ends or fills
// the memory.
const (
	maxSessions     = 100_000
	maxParticipants = 10_000
	maxPresent      = 1_000_000
	maxIntervals    = 100
)

var discard = slog.New(slog.DiscardHandler)

func main() {
	if role := os.Getenv(childEnv); role != "" {
		if err := childMain(role, os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "rollcall-load (%s): %v\n", role, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if errors.As(err, new(errUsage)) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "rollcall-load:", err)
		stop()
		os.Exit(1)
	}
}

// errUsage is a flag the flag package refused, and has said so.
type errUsage struct{ error }

func (e errUsage) Unwrap() error { return e.error }

type options struct {
	sessions, participants, perPage, concurrency int
	steady, churnIntervals, bursts               int
	rateLimit, churn                             float64
	latency, interval, timeout                   time.Duration
	natsURL, natsCLI, cpuProfile                 string
	seed                                         uint64
	webhooks                                     bool               // the simulator sends webhooks to the worker
	hooks                                        sim.WebhookOptions // how, with webhooks
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("rollcall-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.sessions, "sessions", 2000, "tracked sessions")
	fs.IntVar(&o.participants, "participants", 50, "participants present in each session")
	fs.IntVar(&o.perPage, "per-page", 100, "videosdk.per_page")
	fs.DurationVar(&o.latency, "latency", 20*time.Millisecond, "the simulated API's delay before each answer")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, `poll.schedule is "@every" this`)
	fs.IntVar(&o.concurrency, "concurrency", 64, "videosdk.max_concurrency")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "videosdk.rate_limit in requests/s (0: unlimited)")
	fs.IntVar(&o.steady, "steady", 3, "intervals measured in the steady state, when nothing changes")
	fs.IntVar(&o.churnIntervals, "churn-intervals", 3, "intervals in which the world changes, before the check")
	fs.IntVar(&o.bursts, "bursts", 3, "first bursts measured, each beside its floor (a fetch-only cycle, nats bench); the burst's ratios are their median (the extra ones before the main run, by workers in processes of their own)")
	fs.Float64Var(&o.churn, "churn", 0.1, "fraction of each session's participants whose stint changes per churn interval")
	fs.StringVar(&o.natsURL, "nats", "", `NATS server URL ("": an embedded server in a process of its own)`)
	fs.StringVar(&o.natsCLI, "nats-cli", "nats", "the NATS CLI, for nats bench")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write CPU profiles of the burst, the steady state and the churn, and a heap profile of the steady state, into this directory")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the changes the world makes, and of the webhooks' fates")
	var tuned bool
	webhookFlags(fs, &o, &tuned)
	if err := fs.Parse(args); err != nil {
		return o, errUsage{err} // the flag package has said what is wrong, with the usage
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.sessions < 1 || o.sessions > maxSessions:
		return o, fmt.Errorf("-sessions must be in 1..%d", maxSessions)
	case o.participants < 1 || o.participants > maxParticipants:
		return o, fmt.Errorf("-participants must be in 1..%d", maxParticipants)
	case o.sessions*o.participants > maxPresent:
		return o, fmt.Errorf("-sessions × -participants must be at most %d", maxPresent)
	case o.perPage < 1 || o.perPage > 1000:
		return o, errors.New("-per-page must be in 1..1000")
	case o.steady < 1 || o.steady > maxIntervals:
		return o, fmt.Errorf("-steady must be in 1..%d", maxIntervals)
	case o.churnIntervals < 0 || o.churnIntervals > maxIntervals:
		return o, fmt.Errorf("-churn-intervals must be in 0..%d", maxIntervals)
	case o.bursts < 1 || o.bursts > maxIntervals:
		return o, fmt.Errorf("-bursts must be in 1..%d", maxIntervals)
	case o.concurrency < 1:
		return o, errors.New("-concurrency must be at least 1")
	case o.rateLimit < 0 || math.IsNaN(o.rateLimit) || math.IsInf(o.rateLimit, 0):
		return o, errors.New("-rate-limit must be 0 or more")
	case !(o.churn >= 0 && o.churn <= 1):
		return o, errors.New("-churn must be in 0..1")
	case o.latency < 0 || o.interval < time.Second || o.timeout <= 0:
		return o, errors.New("-latency must be 0 or more, -interval at least 1s, -timeout positive")
	case tuned && !o.webhooks:
		return o, errors.New("-webhook-delay, -webhook-loss and -webhook-dup need -webhooks")
	case o.natsURL != "":
		return o, worker.CheckNATSURL("-nats", o.natsURL)
	}
	return o, nil
}

// run is the whole program. Its report goes to stdout, and so do the warnings and
// errors the worker logs, so that a failed poll is seen next to the figures.
//
// No secret of -nats shows in what it prints or returns.
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	stdout = &lockedWriter{w: stdout} // the parts write their errors to it too
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	secrets := worker.NewSecrets(worker.URLSecrets(o.natsURL)...)
	defer func() { err = secrets.Error(err) }()
	stdout = secrets.Writer(stdout)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	problems := &countingHandler{Handler: slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelWarn}), n: new(atomic.Int64)}
	log := slog.New(problems)

	api, err := startChild(ctx, childSim, args, stdout)
	if err != nil {
		return err
	}
	defer api.stop()
	natsURL, where := o.natsURL, worker.RedactURL(o.natsURL)
	parts := []*child{api}
	if natsURL == "" {
		ns, err := startChild(ctx, childNATS, args, stdout)
		if err != nil {
			return err
		}
		defer ns.stop()
		natsURL, where = ns.url, "embedded, in a process of its own"
		parts = append(parts, ns)
	}
	fmt.Fprintf(stdout, "rollcall-load: %d sessions × %d participants, per_page %d, latency %s, poll.schedule @every %s, max_concurrency %d, rate_limit %s, NATS %s, webhooks %s\n",
		o.sessions, o.participants, o.perPage, o.latency, o.interval, o.concurrency, rateText(o.rateLimit), where, webhooksText(o))

	trials, err := extraBursts(ctx, o, args, api.url, natsURL, stdout)
	if err != nil {
		return err
	}
	wm, err := measureWorker(ctx, o, api.url, natsURL, log, parts)
	if err != nil {
		return err
	}
	wm.problems = problems.n.Load()
	bm, err := measureBaseline(ctx, o, api.url, natsURL, parts)
	if err != nil {
		return err
	}
	if bm.benchRate > 0 {
		trials = append(trials, trial{wm.burst, percentile(bm.cycles, 50), benchTime(wm.burstEvents, bm.benchRate)})
	}
	st, err := simClient{api.url}.stats(ctx)
	if err != nil {
		return err
	}
	return report(stdout, o, wm, bm, trials, st)
}

// workerRun is what the worker's part of a run measured.
type workerRun struct {
	burst       time.Duration // from Run to the last event of the first polls
	burstEvents uint64
	burstCPU    time.Duration
	steadyCPU   time.Duration
	// CPU time of the simulator and the NATS server (unless it is external)
	burstOthers, steadyOthers time.Duration
	steadyPolls               float64
	pollP50, pollP99          time.Duration // of the steady state's polls
	rssBefore, rssNow         uint64        // before New, and after the steady state
	liveHeap, stacks          uint64        // after the steady state, after a GC: live heap, goroutine stacks
	peakRSS                   uint64
	got, want                 counts
	problems                  int64
	// API requests by endpoint, in the steady state and from the churn's start to
	// the check, and how long each took.
	steadyRequests, churnRequests map[string]float64
	burstSaves, churnSaves        float64 // state writes: by the time the first polls are stored; from the churn's start to the check
	steadyTook, churnTook         time.Duration
	// Requests the simulator served in those phases, all endpoints.
	steadyServed, churnServed int64
	latency                   latencies   // of the churn's changes
	hooks                     *webhookLog // with -webhooks
}

// measureWorker runs the worker on the simulated API and measures its burst, its
// steady state and its truth after churn.
func measureWorker(ctx context.Context, o options, apiURL, natsURL string, log *slog.Logger, parts []*child) (workerRun, error) {
	var m workerRun
	cfg := loadConfig(o, apiURL, natsURL)
	if o.webhooks {
		cfg.Webhook.Listen = "127.0.0.1:0"
	}
	debug.FreeOSMemory()
	m.rssBefore = procStatus("VmRSS")
	w, stream, cleanUp, err := startWorker(ctx, cfg, log)
	if err != nil {
		return m, err
	}
	defer cleanUp()
	js, n := w.JetStream(), &cfg.NATS
	sc := simClient{apiURL}
	if o.webhooks {
		// The listener is open: webhooks wait in its backlog until Run serves them.
		if err := sc.sendWebhooks(ctx, "http://"+w.WebhookAddr()+cfg.Webhook.Path); err != nil {
			return m, err
		}
	}

	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	stopProfile, err := startProfile(o.cpuProfile, "burst.pprof")
	if err != nil {
		stopRun()
		return m, err
	}
	cpu0, others0, start := cpuTime(), partsCPU(parts), time.Now()
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		stopRun()
		<-done //nolint:errcheck // waits for Run to return: it logs the error that stops it, and waitFor reports one before the stop
	}()
	m.burstEvents = uint64(o.sessions * (1 + o.participants))
	err = waitFor(ctx, stream, m.burstEvents, done)
	m.burst, m.burstCPU, m.burstOthers = time.Since(start), cpuTime()-cpu0, partsCPU(parts)-others0
	m.burstSaves = gatherCounter(w.Metrics(), "rollcall_state_saves_total")
	profileErr := stopProfile()
	if err != nil {
		return m, fmt.Errorf("first poll: %w", err)
	}
	if profileErr != nil {
		return m, profileErr
	}

	// The steady state: whole intervals in which nothing changes, once the loops have
	// settled on their ticks, from every session's third poll: its second still
	// writes, to clear the first's outbox. Under a rate limit, the first polls delay
	// the ticks that fall during the burst: as long again as the burst took lets
	// them drain.
	if err := sleep(ctx, 2*o.interval+m.burst); err != nil {
		return m, err
	}
	if stopProfile, err = startProfile(o.cpuProfile, "steady.pprof"); err != nil {
		return m, err
	}
	polls0, hist0 := gatherPolls(w.Metrics())
	served0, err := sc.stats(ctx)
	if err != nil {
		return m, err
	}
	requests0, steady0 := gatherRequests(w.Metrics()), time.Now()
	cpu0, others0 = cpuTime(), partsCPU(parts)
	if err := sleep(ctx, time.Duration(o.steady)*o.interval); err != nil {
		return m, err
	}
	m.steadyCPU, m.steadyOthers = cpuTime()-cpu0, partsCPU(parts)-others0
	m.steadyRequests, m.steadyTook = minusRequests(gatherRequests(w.Metrics()), requests0), time.Since(steady0)
	served1, err := sc.stats(ctx)
	if err != nil {
		return m, err
	}
	m.steadyServed = served1.Requests - served0.Requests
	polls1, hist1 := gatherPolls(w.Metrics())
	if err := stopProfile(); err != nil {
		return m, err
	}
	m.steadyPolls = polls1 - polls0
	m.pollP50, m.pollP99 = hist1.minus(hist0).quantile(0.5), hist1.minus(hist0).quantile(0.99)
	m.rssNow, m.peakRSS = procStatus("VmRSS"), procStatus("VmHWM")
	runtime.GC() // after the RSS is read: the live heap, for a sense of where the RSS goes
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	m.liveHeap, m.stacks = mem.HeapAlloc, mem.StackInuse
	if o.cpuProfile != "" {
		if err := writeHeapProfile(filepath.Join(o.cpuProfile, "heap.pprof")); err != nil {
			return m, err
		}
	}

	// Churn, then the truth: every stint once, every ended stint's left once.
	if served0, err = sc.stats(ctx); err != nil {
		return m, err
	}
	if stopProfile, err = startProfile(o.cpuProfile, "churn.pprof"); err != nil {
		return m, err
	}
	requests0, saves0, churn0 := gatherRequests(w.Metrics()), gatherCounter(w.Metrics(), "rollcall_state_saves_total"), time.Now()
	for range o.churnIntervals {
		if err := sc.change(ctx, o.interval); err != nil {
			return m, err
		}
	}
	if err := stopProfile(); err != nil {
		return m, err
	}
	if m.want, err = sc.expected(ctx); err != nil {
		return m, err
	}
	settle, cancelSettle := context.WithTimeout(ctx, 2*o.interval+10*time.Second)
	defer cancelSettle()
	if err := waitFor(settle, stream, m.want.Total, done); err != nil && settle.Err() == nil {
		return m, err
	}
	m.churnRequests, m.churnTook = minusRequests(gatherRequests(w.Metrics()), requests0), time.Since(churn0)
	m.churnSaves = gatherCounter(w.Metrics(), "rollcall_state_saves_total") - saves0
	if served1, err = sc.stats(ctx); err != nil {
		return m, err
	}
	m.churnServed = served1.Requests - served0.Requests
	// A moment for anything extra (a duplicate that should not be) to show.
	if err := sleep(ctx, time.Second); err != nil {
		return m, err
	}
	if m.got, err = streamCounts(ctx, stream, n.SubjectPrefix); err != nil {
		return m, err
	}

	// The latency of each change of the churn, by whether its webhook arrived. The
	// simulator's clock is the wall clock, as the NATS server's: the times compare.
	stored, err := storedSince(ctx, js, n.Stream, n.SubjectPrefix, churn0)
	if err != nil {
		return m, fmt.Errorf("read the churn's events: %w", err)
	}
	if o.webhooks {
		hooks, err := sc.webhooks(ctx)
		if err != nil {
			return m, err
		}
		m.hooks = &hooks
	}
	m.latency = measureLatencies(stored, churn0, m.hooks)
	return m, nil
}

// loadConfig is the config of a worker of the run: the world's sessions, and a
// stream and buckets of its own.
func loadConfig(o options, apiURL, natsURL string) worker.Config {
	cfg := worker.Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = apiURL, apiKey, apiSecret
	cfg.VideoSDK.PerPage, cfg.VideoSDK.MaxConcurrency, cfg.VideoSDK.RateLimit = o.perPage, o.concurrency, o.rateLimit
	cfg.Poll.Schedule = "@every " + o.interval.String()
	for i := range o.sessions {
		cfg.Sessions = append(cfg.Sessions, worker.Session{ID: sessionID(i)})
	}
	id := runID()
	n := &cfg.NATS
	n.URL, n.Stream, n.SubjectPrefix = natsURL, "ROLLCALL_LOAD_"+id, "load"+id
	n.StateBucket, n.TrackingBucket, n.LeaseBucket = "ROLLCALL_LOAD_STATE_"+id, "ROLLCALL_LOAD_TRACKING_"+id, "ROLLCALL_LOAD_LEASES_"+id
	cfg.HTTP.Listen = ""
	return cfg
}

// startWorker makes the worker of cfg, not yet running, and returns it with its
// stream and what deletes them once it is closed.
func startWorker(ctx context.Context, cfg worker.Config, log *slog.Logger) (*worker.Worker, jetstream.Stream, func(), error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, nil, err
	}
	// The worker waits for NATS as long as it is asked to; a load run gives up soon.
	connect, cancelConnect := context.WithTimeout(ctx, 15*time.Second)
	w, err := worker.New(connect, cfg, log)
	cancelConnect()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the worker did not start within 15s: %w", err)
	}
	cleanUp := func() {
		w.Close()
		if err := deleteRun(context.WithoutCancel(ctx), cfg.NATS); err != nil {
			log.Warn("the run's stream and buckets are left on the server", "err", err)
		}
	}
	stream, err := w.JetStream().Stream(ctx, cfg.NATS.Stream)
	if err != nil {
		cleanUp()
		return nil, nil, nil, err
	}
	return w, stream, cleanUp, nil
}

// deleteRun deletes the stream and buckets of a worker of the run, on a connection of
// its own: the worker's has been drained by the time it stops.
func deleteRun(ctx context.Context, n worker.NATS) error {
	nc, err := nats.Connect(n.URL, nats.Name("rollcall-load clean-up"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	errs := []error{js.DeleteStream(ctx, n.Stream)}
	for _, b := range []string{n.StateBucket, n.TrackingBucket, n.LeaseBucket} {
		errs = append(errs, js.DeleteKeyValue(ctx, b))
	}
	for i, err := range errs {
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
			errs[i] = nil // never made: a run without leases has no lease bucket
		}
	}
	return errors.Join(errs...)
}

// trial is one first burst and its floor, measured one after the other: a
// fetch-only cycle, and nats bench's time for as many messages.
type trial struct{ burst, fetch, bench time.Duration }

func (t trial) ratio() float64 { return t.burst.Seconds() / (t.fetch + t.bench).Seconds() }

// events is the burst's rate of events stored, against nats bench's.
func (t trial) events() float64 { return t.bench.Seconds() / t.burst.Seconds() }

// benchTime is how long nats bench takes for msgs messages at its rate.
func benchTime(msgs uint64, rate float64) time.Duration {
	return time.Duration(float64(msgs) / rate * float64(time.Second))
}

// extraBursts measures o.bursts-1 first bursts before the main run, each followed
// by its floor: a fetch-only cycle and nats bench for as many messages. The burst
// and the cycle run in a process of their own (burstTrial), so that this one's
// memory stays the main run's. On a shared machine one burst against one floor moves
// by a third from run to run (the other jobs' load comes and goes); the median of
// several, each beside its own floor, moves much less. Without the nats CLI there is
// no floor, and no extra burst.
func extraBursts(ctx context.Context, o options, args []string, apiURL, natsURL string, stderr io.Writer) ([]trial, error) {
	if o.bursts < 2 {
		return nil, nil
	}
	if _, err := exec.LookPath(o.natsCLI); err != nil {
		return nil, nil
	}
	msgs := o.sessions * (1 + o.participants)
	var trials []trial
	for range o.bursts - 1 {
		c, err := startChild(ctx, childBurst, args, stderr, envAPI+"="+apiURL, envNATS+"="+natsURL)
		if err != nil {
			return nil, err
		}
		c.stop()
		var t trial
		var size int
		if _, err := fmt.Sscan(c.url, &t.burst, &t.fetch, &size); err != nil {
			return nil, fmt.Errorf("the burst's process said %q: %w", c.url, err)
		}
		rate, _, _, err := natsBench(ctx, o.natsCLI, natsURL, msgs, size)
		if err != nil {
			return nil, err
		}
		t.bench = benchTime(uint64(msgs), rate)
		trials = append(trials, t)
	}
	return trials, nil
}

// burstTrial is a burst's process: a first burst by a worker of its own, then a
// fetch-only cycle; it returns their durations in nanoseconds and the events' mean
// size, as one line.
func burstTrial(ctx context.Context, o options, apiURL, natsURL string, log *slog.Logger) (string, error) {
	f, err := newFetcher(o, apiURL)
	if err != nil {
		return "", err
	}
	// As many sessions as open every connection first, as the worker's will have.
	if _, err := f.cycle(ctx, min(o.concurrency, o.sessions)); err != nil {
		return "", fmt.Errorf("fetch-only: %w", err)
	}
	sample, err := f.sample(ctx)
	if err != nil {
		return "", fmt.Errorf("sample: %w", err)
	}
	size, err := eventSize(sample)
	if err != nil {
		return "", err
	}
	burst, err := burstOnly(ctx, o, apiURL, natsURL, log)
	if err != nil {
		return "", err
	}
	start := time.Now()
	if _, err := f.cycle(ctx, o.sessions); err != nil {
		return "", fmt.Errorf("fetch-only: %w", err)
	}
	return fmt.Sprint(int64(burst), int64(time.Since(start)), size), nil
}

// burstOnly runs a worker of its own until the stream holds every event of the first
// polls, and returns how long that took from Run.
func burstOnly(ctx context.Context, o options, apiURL, natsURL string, log *slog.Logger) (time.Duration, error) {
	w, stream, cleanUp, err := startWorker(ctx, loadConfig(o, apiURL, natsURL), log)
	if err != nil {
		return 0, err
	}
	defer cleanUp()
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(runCtx) }()
	err = waitFor(ctx, stream, uint64(o.sessions*(1+o.participants)), done)
	took := time.Since(start)
	stopRun()
	<-done //nolint:errcheck // as in measureWorker
	if err != nil {
		return 0, fmt.Errorf("first poll: %w", err)
	}
	return took, nil
}

// partsCPU is the CPU time the parts have used so far.
func partsCPU(parts []*child) time.Duration {
	var d time.Duration
	for _, c := range parts {
		d += processCPU(c.cmd.Process.Pid)
	}
	return d
}

// waitFor waits until the stream holds at least msgs messages, or Run returns.
func waitFor(ctx context.Context, s jetstream.Stream, msgs uint64, done <-chan error) error {
	for {
		info, err := s.Info(ctx)
		if err == nil && info.State.Msgs >= msgs {
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("the worker stopped: %v", err)
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// baselineRun is what the baselines measured.
type baselineRun struct {
	cycles               []time.Duration // fetch-only, after a first that opens the connections
	lists                int             // lists of all participants read, as the worker's reconciliation does
	listsCPU             time.Duration   // this process's, reading them
	cpu, cpuOthers       time.Duration   // of those cycles: this process's, the parts'
	benchCPU             time.Duration   // nats bench's own
	benchOthers          time.Duration   // the parts', during nats bench
	read                 int             // participants read in them
	publish              time.Duration   // rollcall's publisher, publish only
	eventSize            int             // mean, in bytes, of an event of the first poll
	benchRate            float64         // nats bench, messages/s; 0 if not run
	benchLine, benchNote string
}

func measureBaseline(ctx context.Context, o options, apiURL, natsURL string, parts []*child) (baselineRun, error) {
	var b baselineRun
	f, err := newFetcher(o, apiURL)
	if err != nil {
		return b, err
	}
	// As many sessions as open every connection first, as the worker's have been.
	if _, err := f.cycle(ctx, min(o.concurrency, o.sessions)); err != nil {
		return b, fmt.Errorf("fetch-only: %w", err)
	}
	cpu0, others0 := cpuTime(), partsCPU(parts)
	for range max(o.steady, 2) {
		start := time.Now()
		n, err := f.cycle(ctx, o.sessions)
		if err != nil {
			return b, fmt.Errorf("fetch-only: %w", err)
		}
		b.cycles, b.read = append(b.cycles, time.Since(start)), b.read+n
	}
	b.cpu, b.cpuOthers = cpuTime()-cpu0, partsCPU(parts)-others0
	// The steady state's requests also read each session's list of all participants
	// once per poll.reconcile_schedule: as many as the worker reads in as many
	// intervals, timed apart from the cycles, which stand for a first poll too.
	reads := int(math.Round(float64(len(b.cycles)*o.sessions) * o.interval.Seconds() / reconcileEvery(worker.Default()).Seconds()))
	cpu0 = cpuTime()
	if err := f.lists(ctx, reads); err != nil {
		return b, fmt.Errorf("fetch-only, lists of all participants: %w", err)
	}
	b.lists, b.listsCPU = reads, cpuTime()-cpu0

	sample, err := f.sample(ctx)
	if err != nil {
		return b, fmt.Errorf("sample: %w", err)
	}
	nc, err := nats.Connect(natsURL, nats.Name("rollcall-load publish-only"))
	if err != nil {
		return b, err
	}
	defer nc.Close()
	js, err := publisher.NewJetStream(nc)
	if err != nil {
		return b, err
	}
	if b.publish, b.eventSize, err = publishOnly(ctx, js, o, sample); err != nil {
		return b, fmt.Errorf("publish-only: %w", err)
	}
	msgs := o.sessions * (1 + o.participants)
	others0 = partsCPU(parts)
	b.benchRate, b.benchLine, b.benchCPU, err = natsBench(ctx, o.natsCLI, natsURL, msgs, b.eventSize)
	b.benchOthers = partsCPU(parts) - others0
	switch {
	case errors.Is(err, errNoCLI):
		b.benchNote = "skipped: no nats CLI (go install github.com/nats-io/natscli/nats@v0.5.0)"
	case err != nil:
		return b, err
	}
	return b, nil
}

// report prints the figures and the ratios, and fails if the stream's events do not
// match the simulator's truth.
func report(w io.Writer, o options, m workerRun, b baselineRun, trials []trial, st simStats) error {
	participants := float64(o.sessions * o.participants)
	perPoll := func(cpu time.Duration, polls float64) float64 {
		return float64(cpu.Microseconds()) / (polls * float64(o.participants))
	}
	burstRate := float64(m.burstEvents) / m.burst.Seconds()
	fmt.Fprintf(w, "worker:    first poll: %d events (%d B each) stored in %s, %.0f events/s; CPU %s (simulator and NATS server: %s)\n",
		m.burstEvents, b.eventSize, ms(m.burst), burstRate, ms(m.burstCPU), ms(m.burstOthers))
	steadyCPU := perPoll(m.steadyCPU, m.steadyPolls)
	pollsPer := m.steadyPolls / float64(o.sessions*o.steady)
	fmt.Fprintf(w, "           steady, %d intervals: %.0f polls, %.3f per session per interval; poll p50 %s, p99 %s; CPU %s, %.2f µs per participant-poll (simulator and NATS server: %s)\n",
		o.steady, m.steadyPolls, pollsPer, ms(m.pollP50), ms(m.pollP99), ms(m.steadyCPU), steadyCPU, ms(m.steadyOthers))
	rssPer := float64(m.rssNow-min(m.rssBefore, m.rssNow)) / participants
	fmt.Fprintf(w, "           memory: peak RSS %s; RSS %s before the worker, %s in the steady state: %.0f B per tracked participant; live heap %s (%.0f B per participant), stacks %s\n",
		mib(m.peakRSS), mib(m.rssBefore), mib(m.rssNow), rssPer, mib(m.liveHeap), float64(m.liveHeap)/participants, mib(m.stacks))
	if m.problems > 0 {
		fmt.Fprintf(w, "           log: %d warnings or errors (above)\n", m.problems)
	}
	fetch := percentile(b.cycles, 50)
	baseCPU := float64((b.cpu + b.listsCPU).Microseconds()) / float64(max(b.read, 1))
	fmt.Fprintf(w, "fetch-only: %d cycles: p50 %s, p99 %s; with %d lists of all participants (reconcile_schedule's), CPU %.2f µs per participant-poll\n",
		len(b.cycles), ms(fetch), ms(percentile(b.cycles, 99)), b.lists, baseCPU)
	fmt.Fprintf(w, "publish:   rollcall's publisher alone: %d events in %s, %.0f events/s\n",
		m.burstEvents, ms(b.publish), float64(m.burstEvents)/b.publish.Seconds())
	if b.benchRate > 0 {
		fmt.Fprintf(w, "           nats bench js pub async --dedup --size %d: %s\n", b.eventSize, b.benchLine)
	} else {
		fmt.Fprintf(w, "           nats bench: %s\n", b.benchNote)
	}
	fmt.Fprintf(w, "api:       %d requests, %d connections opened\n", st.Requests, st.Conns)
	for _, phase := range []struct {
		name     string
		requests map[string]float64
		took     time.Duration
	}{{"steady", m.steadyRequests, m.steadyTook}, {"churn", m.churnRequests, m.churnTook}} {
		all, active := phase.requests[metrics.EndpointAll], phase.requests[metrics.EndpointActive]
		fmt.Fprintf(w, "           %s, %s: %.0f active-list requests, %.0f for the lists of all participants (%.1f%% more; %.0f per session per hour)\n",
			phase.name, ms(phase.took), active, all, 100*all/max(active, 1), all/float64(o.sessions)/phase.took.Hours())
	}
	fmt.Fprintf(w, "state:     writes by the time the first polls are stored: %.0f (%.2f per session); in the churn: %.0f (%.2f per session per interval)\n",
		m.burstSaves, m.burstSaves/float64(o.sessions), m.churnSaves, m.churnSaves/float64(o.sessions*max(o.churnIntervals, 1)))
	perHour := func(n int64, took time.Duration) float64 { return float64(n) / float64(o.sessions) / took.Hours() }
	fmt.Fprintf(w, "           requests per session per hour, as the simulator counts them (every endpoint): steady %.0f, churn %.0f\n",
		perHour(m.steadyServed, m.steadyTook), perHour(m.churnServed, m.churnTook))
	fmt.Fprintf(w, "ratios:    steady CPU per participant-poll: %.2f× fetch-only (target ≤ 1.0)\n", steadyCPU/baseCPU)
	if len(trials) > 0 {
		last := trials[len(trials)-1]
		fmt.Fprintf(w, "           first-poll burst: %s / (fetch-only %s + nats bench %s) = %.2f×\n",
			ms(last.burst), ms(last.fetch), ms(last.bench), last.ratio())
		ratios, rates := make([]float64, len(trials)), make([]float64, len(trials))
		for i, t := range trials {
			ratios[i], rates[i] = t.ratio(), t.events()
		}
		fmt.Fprintf(w, "           first-poll burst / its floor, median of %d: %.2f× (%s) (target ≤ 1.2)\n", len(trials), median(ratios), list(ratios))
		fmt.Fprintf(w, "           events stored in the burst / nats bench's rate, median of %d: %.2f× (%s) (target ≥ 0.5)\n", len(trials), median(rates), list(rates))
	}
	fmt.Fprintf(w, "           RSS per tracked participant: %.0f B (target < 1024); polls per session per interval: %.3f (target 0.95–1.05)\n", rssPer, pollsPer)
	if b.benchRate > 0 {
		// On a machine whose cores are all busy in the burst, overlapping fetching and
		// publishing gains nothing: what counts is the CPU spent, by every process.
		fetchCPU := (b.cpu + b.cpuOthers) / time.Duration(len(b.cycles))
		benchCPU := b.benchCPU + b.benchOthers
		burstCPU := m.burstCPU + m.burstOthers
		fmt.Fprintf(w, "           CPU of the burst, all processes: %s / (a fetch-only cycle %s + nats bench %s) = %.2f×\n",
			ms(burstCPU), ms(fetchCPU), ms(benchCPU), burstCPU.Seconds()/(fetchCPU+benchCPU).Seconds())
	}
	if o.churnIntervals > 0 {
		reportLatencies(w, o, m.latency, m.hooks)
	}
	verdict := "OK"
	if m.got != m.want {
		verdict = "MISMATCH"
	}
	fmt.Fprintf(w, "check:     stream %d events (%d session.started, %d joined, %d left); simulator %d changes (%d sessions, %d stints, %d ended): %s\n",
		m.got.Total, m.got.Started, m.got.Joined, m.got.Left, m.want.Total, m.want.Started, m.want.Joined, m.want.Left, verdict)
	if m.got != m.want {
		return errors.New("the stream's events do not match the simulator's truth")
	}
	return nil
}

// streamCounts counts the stream's events, by kind.
func streamCounts(ctx context.Context, s jetstream.Stream, prefix string) (counts, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return counts{}, err
	}
	c := counts{Total: info.State.Msgs}
	for _, k := range []struct {
		n       *uint64
		subject string
	}{{&c.Started, "session.started"}, {&c.Joined, "participant.joined"}, {&c.Left, "participant.left"}} {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+"."+k.subject+".>"))
		if err != nil {
			return counts{}, err
		}
		for _, n := range info.State.Subjects {
			*k.n += n
		}
	}
	return c, nil
}

// startProfile writes a CPU profile to dir/name until the returned function is
// called, which says if the file could not be completed; with no dir, it does
// nothing.
func startProfile(dir, name string) (stop func() error, err error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // the error to report is the one above
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close() // the error to report is the one above
		return err
	}
	return f.Close()
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// countingHandler counts the records it handles.
type countingHandler struct {
	slog.Handler
	n *atomic.Int64
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(as), n: h.n}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithGroup(name), n: h.n}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// percentile returns the p-th percentile of ds by the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// median is the middle value of xs, or the mean of the two in the middle.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

// list writes ratios as "1.10×, 0.98×, 1.21×", in the order measured.
func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f×", x)
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

func mib(b uint64) string {
	if b == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g/s", r)
}
