// Command rollcall-load measures rollcall end to end on one machine. It serves the
// simulated VideoSDK API over loopback HTTP, starts an embedded NATS server with
// JetStream (or connects to one), wires a poller exactly as `rollcall run` does, and
// runs a fixed number of cycles back to back, changing the world between cycles. It
// prints throughput, cycle durations and memory, and checks that the stream holds one
// event per change the simulator made.
//
// Everything runs in this one process, simulator and (by default) NATS server
// included: the figures are those of the whole, on loopback, with no network delay.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

// Bounds on the flags, so that a typo cannot start a run that never ends or fills
// the disk: at most a million present participants and ten thousand cycles.
const (
	maxSessions     = 100_000
	maxParticipants = 10_000
	maxPresent      = 1_000_000
	maxCycles       = 10_000
)

// step is how far the simulator's clock moves between two cycles: a poll schedule's
// interval, so that events carry plausible times.
const step = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "rollcall-load:", err)
		stop()
		os.Exit(1)
	}
}

type options struct {
	sessions, participants, perPage, cycles, concurrency int
	rateLimit, churn                                     float64
	natsURL, cpuProfile, memProfile                      string
	timeout                                              time.Duration
	seed                                                 uint64
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("rollcall-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.sessions, "sessions", 200, "tracked sessions")
	fs.IntVar(&o.participants, "participants", 50, "participants present in each session")
	fs.IntVar(&o.perPage, "per-page", 20, "videosdk.per_page")
	fs.IntVar(&o.cycles, "cycles", 10, "cycles to run, back to back")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "videosdk.rate_limit in requests/s (0: unlimited)")
	fs.IntVar(&o.concurrency, "concurrency", 8, "videosdk.max_concurrency")
	fs.Float64Var(&o.churn, "churn", 0.1, "fraction of each session's participants whose stint changes between cycles")
	fs.StringVar(&o.natsURL, "nats", "", `NATS server URL ("": an embedded server in a temporary directory)`)
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the cycles to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile, taken after the last cycle, to this file")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the changes made between cycles")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.sessions < 1 || o.sessions > maxSessions:
		return o, fmt.Errorf("-sessions must be in 1..%d", maxSessions)
	case o.participants < 0 || o.participants > maxParticipants:
		return o, fmt.Errorf("-participants must be in 0..%d", maxParticipants)
	case o.sessions*o.participants > maxPresent:
		return o, fmt.Errorf("-sessions × -participants must be at most %d", maxPresent)
	case o.perPage < 1 || o.perPage > 1000:
		return o, errors.New("-per-page must be in 1..1000")
	case o.cycles < 1 || o.cycles > maxCycles:
		return o, fmt.Errorf("-cycles must be in 1..%d", maxCycles)
	case o.concurrency < 1:
		return o, errors.New("-concurrency must be at least 1")
	case o.rateLimit < 0 || math.IsNaN(o.rateLimit) || math.IsInf(o.rateLimit, 0):
		return o, errors.New("-rate-limit must be 0 or more")
	case !(o.churn >= 0 && o.churn <= 1):
		return o, errors.New("-churn must be in 0..1")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	return o, nil
}

// run is the whole program. Its report goes to stdout, and so do the warnings and
// errors the worker logs, so that a failed cycle is seen next to the figures.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	problems := &countingHandler{Handler: slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelWarn}), n: new(atomic.Int64)}
	log := slog.New(problems)

	// The simulated API on a loopback port, on a clock that moves only between cycles.
	clk := sim.NewClock(time.Now().UTC().Truncate(time.Millisecond))
	key, secret := "load-api-key", runID()
	api := sim.New(sim.Config{APIKey: key, Secret: secret, Now: clk.Now})
	w := newWorld(api, o, mrand.New(mrand.NewPCG(o.seed, 0x10ad)))
	var conns atomic.Int64
	apiURL, stopAPI, err := serve(api, &conns)
	if err != nil {
		return err
	}
	defer stopAPI()

	// The worker as `rollcall run` wires it, with its defaults; its polls are driven
	// here, cycle after cycle, rather than on a schedule.
	out, closeWorker, err := openWorker(ctx, o, apiURL, key, secret, log)
	if err != nil {
		return err
	}
	defer closeWorker()
	p := out.worker.Poller()
	caches := make(map[string]*poller.Cache, len(w.sessions)) // each session's, as its loop keeps it
	for _, id := range w.sessions {
		caches[id] = new(poller.Cache)
	}

	fmt.Fprintf(stdout, "rollcall-load: %d sessions × %d participants, per_page %d, %d cycles, concurrency %d, rate_limit %s, churn %.2f, NATS %s\n",
		o.sessions, o.participants, o.perPage, o.cycles, o.concurrency, rateText(o.rateLimit), o.churn, out.where)
	m, err := measure(ctx, o, func(c int) {
		if c > 1 {
			clk.Add(step)
			w.change()
		}
	}, func(ctx context.Context) { cycle(ctx, p, caches, o.concurrency, log) })
	if err != nil {
		return err
	}
	got, err := out.counts(ctx)
	if err != nil {
		return err
	}
	m.requests, m.conns, m.problems = int64(api.Requests()), conns.Load(), problems.n.Load()
	return report(stdout, m, got, w.expected())
}

// cycle polls every session once, concurrency at a time, each with its own cache of
// state, as the worker's loops do when their ticks fall together; cycles run back to
// back measure the worker's throughput.
func cycle(ctx context.Context, p *poller.Poller, caches map[string]*poller.Cache, concurrency int, log *slog.Logger) {
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for id, cache := range caches {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			log := log.With("session_id", id)
			if _, err := p.PollCached(ctx, log, id, cache); err != nil {
				log.Error("cycle failed", "err", err)
			}
		})
	}
	wg.Wait()
}

// sink is where the events and states go: a stream and buckets named for the run,
// so that a shared server's other streams are left alone.
type sink struct {
	worker         *worker.Worker
	js             jetstream.JetStream
	stream, prefix string
	where          string
}

// openWorker starts the worker on the simulated API at apiURL, publishing to o.natsURL
// or, if that is "", to its embedded server in a temporary directory. The returned
// function closes it and removes what it made.
func openWorker(ctx context.Context, o options, apiURL, key, secret string, log *slog.Logger) (*sink, func(), error) {
	cfg := worker.Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = apiURL, key, secret
	// Tokens are minted on the real clock and checked on the simulator's, which runs
	// ahead by a step each cycle: a day covers the longest run.
	cfg.VideoSDK.TokenTTL.Duration = 24 * time.Hour
	cfg.VideoSDK.PerPage, cfg.VideoSDK.MaxConcurrency, cfg.VideoSDK.RateLimit = o.perPage, o.concurrency, o.rateLimit
	id := runID()
	n := &cfg.NATS
	n.URL, n.Stream, n.SubjectPrefix = o.natsURL, "ROLLCALL_LOAD_"+id, "load"+id
	n.StateBucket, n.TrackingBucket = "ROLLCALL_LOAD_STATE_"+id, "ROLLCALL_LOAD_TRACKING_"+id
	cfg.HTTP.Listen = ""
	where := "at " + worker.RedactURL(o.natsURL)
	var cleanups []func()
	cleanup := func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}
	if o.natsURL == "" {
		dir, err := os.MkdirTemp("", "rollcall-load-")
		if err != nil {
			return nil, nil, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		n.StoreDir, where = dir, "embedded"
	}
	if err := cfg.Validate(); err != nil {
		cleanup()
		return nil, nil, err
	}
	w, err := worker.New(ctx, cfg, log)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cleanups = append(cleanups, w.Close)
	s := &sink{worker: w, js: w.JetStream(), stream: n.Stream, prefix: n.SubjectPrefix, where: where}
	if o.natsURL != "" {
		cleanups = append(cleanups, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.js.DeleteStream(ctx, n.Stream)
			_ = s.js.DeleteKeyValue(ctx, n.StateBucket)
			_ = s.js.DeleteKeyValue(ctx, n.TrackingBucket)
		})
	}
	return s, cleanup, nil
}

// measured is what a run measured.
type measured struct {
	durations                 []time.Duration // of each cycle
	busy                      time.Duration   // in cycles, in all
	peakHeap                  uint64
	mem                       runtime.MemStats // after the last cycle
	requests, conns, problems int64
}

// measure runs o.cycles cycles back to back, calling before(c) ahead of cycle c
// (1-based) outside the time measured.
func measure(ctx context.Context, o options, before func(c int), cycle func(context.Context)) (measured, error) {
	var m measured
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return m, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return m, err
		}
		defer pprof.StopCPUProfile()
	}
	heap := sampleHeap(ctx)
	for c := 1; c <= o.cycles; c++ {
		before(c)
		start := time.Now()
		cycle(ctx)
		d := time.Since(start)
		m.durations, m.busy = append(m.durations, d), m.busy+d
		if ctx.Err() != nil {
			heap()
			return m, fmt.Errorf("cycle %d: %w", c, context.Cause(ctx))
		}
	}
	pprof.StopCPUProfile()
	m.peakHeap = heap()
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return m, err
		}
	}
	runtime.ReadMemStats(&m.mem)
	return m, nil
}

// report prints the figures and the check, and fails if the stream's events do not
// match the simulator's changes.
func report(w io.Writer, m measured, got, want counts) error {
	ds, secs := m.durations, m.busy.Seconds()
	fmt.Fprintf(w, "cycles:   first (everyone joins) %s; all %d: p50 %s, p99 %s, max %s; total %s\n",
		ms3(ds[0]), len(ds), ms3(percentile(ds, 50)), ms3(percentile(ds, 99)), ms3(slices.Max(ds)), ms3(m.busy))
	if rest := ds[1:]; len(rest) > 0 {
		fmt.Fprintf(w, "          after the first: p50 %s, p99 %s, max %s\n", ms3(percentile(rest, 50)), ms3(percentile(rest, 99)), ms3(slices.Max(rest)))
	}
	fmt.Fprintf(w, "http:     %d requests, %.0f requests/s, %d connections opened\n", m.requests, float64(m.requests)/secs, m.conns)
	fmt.Fprintf(w, "events:   %d published, %.0f events/s\n", got.total, float64(got.total)/secs)
	fmt.Fprintf(w, "memory:   peak RSS %s, Go heap peak %s (sampled every 10ms), heap now %s, allocated %s in all, %d GCs\n",
		mib(peakRSS()), mib(m.peakHeap), mib(m.mem.HeapAlloc), mib(m.mem.TotalAlloc), m.mem.NumGC)
	if m.problems > 0 {
		fmt.Fprintf(w, "log:      %d warnings or errors (above)\n", m.problems)
	}
	verdict := "OK"
	if got != want {
		verdict = "MISMATCH"
	}
	fmt.Fprintf(w, "check:    stream %d events (%d session.started, %d joined, %d left); simulator %d changes (%d sessions, %d stints, %d ended): %s\n",
		got.total, got.started, got.joined, got.left, want.total, want.started, want.joined, want.left, verdict)
	if got != want {
		return errors.New("the stream's events do not match the simulator's changes")
	}
	return nil
}

// world drives the simulator: sessions of a fixed number of present participants, a
// fraction of whom change stint between cycles.
type world struct {
	api      *sim.Server
	rng      *mrand.Rand
	sessions []string
	perCycle int                 // stints that end (and as many that begin) per session per cycle
	present  map[string][]string // by session: who is present now
	gone     map[string][]string // by session: who left and has not come back
	next     int                 // for new participant IDs
}

func newWorld(api *sim.Server, o options, rng *mrand.Rand) *world {
	w := &world{
		api: api, rng: rng, perCycle: int(math.Round(o.churn * float64(o.participants))),
		present: make(map[string][]string), gone: make(map[string][]string),
	}
	for i := range o.sessions {
		id := fmt.Sprintf("%024x", 0x10ad0000+i)
		api.StartSession(id, fmt.Sprintf("load-%04d-%04d", i/10000, i%10000))
		for range o.participants {
			w.present[id] = append(w.present[id], w.join(id, ""))
		}
		w.sessions = append(w.sessions, id)
	}
	return w
}

// join makes pid join session id, or a newcomer if pid is "", and returns who joined.
func (w *world) join(id, pid string) string {
	if pid == "" {
		w.next++
		pid = fmt.Sprintf("p%07d", w.next)
	}
	w.api.Join(id, pid, "Participant "+pid)
	return pid
}

// change ends perCycle stints in every session, each among those present before the
// change, so that every stint lasts through at least one cycle and polling can see it.
// Each ended stint is replaced: by a newcomer, by someone who left earlier coming
// back, or by the same participant reconnecting (a second connection kicks the first).
func (w *world) change() {
	for _, id := range w.sessions {
		present := w.present[id]
		for _, i := range w.rng.Perm(len(present))[:min(w.perCycle, len(present))] {
			pid := present[i]
			switch w.rng.IntN(3) {
			case 0: // reconnects
				w.join(id, pid)
			case 1: // leaves; someone who left earlier comes back
				if gone := w.gone[id]; len(gone) > 0 {
					w.api.Leave(id, pid)
					j := w.rng.IntN(len(gone))
					present[i], gone[j] = gone[j], pid
					w.join(id, present[i])
					break
				}
				fallthrough
			default: // leaves; a newcomer joins
				w.api.Leave(id, pid)
				w.gone[id] = append(w.gone[id], pid)
				present[i] = w.join(id, "")
			}
		}
	}
}

// counts are events by kind.
type counts struct{ total, started, joined, left uint64 }

// expected returns the events the simulator's world calls for: a session.started per
// session, a joined per stint and a left per ended stint.
func (w *world) expected() counts {
	var c counts
	for _, id := range w.sessions {
		c.started++
		for _, st := range w.api.Stints(id) {
			c.joined++
			if st.End != nil {
				c.left++
			}
		}
	}
	c.total = c.started + c.joined + c.left
	return c
}

// counts counts the stream's events, by kind.
func (s *sink) counts(ctx context.Context) (counts, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return counts{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return counts{}, fmt.Errorf("stream %s: %w", s.stream, err)
	}
	c := counts{total: info.State.Msgs}
	for _, k := range []struct {
		n       *uint64
		subject string
	}{{&c.started, "session.started"}, {&c.joined, "participant.joined"}, {&c.left, "participant.left"}} {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.prefix+"."+k.subject+".>"))
		if err != nil {
			return counts{}, fmt.Errorf("stream %s: %w", s.stream, err)
		}
		for _, n := range info.State.Subjects {
			*k.n += n
		}
	}
	return c, nil
}

// serve serves h on a loopback port, counting the connections accepted, and returns
// its base URL and a stop function.
func serve(h http.Handler, conns *atomic.Int64) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
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

// sampleHeap samples the heap (MemStats.HeapAlloc: live objects and those not yet
// swept) every 10 ms until ctx ends or the returned function is called, which returns
// the peak seen. Each sample stops the world for a few microseconds.
func sampleHeap(ctx context.Context) func() uint64 {
	var peak atomic.Uint64
	read := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > peak.Load() {
			peak.Store(ms.HeapAlloc)
		}
	}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		stop()
		<-done
		read()
		return peak.Load()
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the profile shows what is live after the cycles
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// peakRSS returns the process's peak resident set size (VmHWM), or 0 if unknown.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// percentile returns the p-th percentile of ds by the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms3(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

func mib(b uint64) string {
	if b == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func rateText(r float64) string {
	if r == 0 {
		return "0 (unlimited)"
	}
	return fmt.Sprintf("%g/s", r)
}

func runID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
