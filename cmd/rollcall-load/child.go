package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/sim"
)

// childEnv names the part a child process plays: the simulator and the embedded NATS
// server run in processes of their own (this program again), so that the CPU and
// memory this process measures are the worker's alone.
const childEnv = "ROLLCALL_LOAD_CHILD"

const (
	childSim   = "sim"
	childNATS  = "nats"
	childBurst = "burst" // a worker's first burst (extraBursts), on the API and NATS server of these
	envAPI     = "ROLLCALL_LOAD_API"
	envNATS    = "ROLLCALL_LOAD_NATS"
)

// Simulator endpoints besides the API, for the measuring process.
const (
	pathChange   = "/_load/change"   // POST ?over=D: change every session once, spread over D
	pathExpected = "/_load/expected" // GET: counts the world calls for
	pathStats    = "/_load/stats"    // GET: requests served, connections accepted
	pathWebhooks = "/_load/webhooks" // POST: send webhooks to the URL in the body; GET: the webhookLog
)

// apiKey and apiSecret are the simulated account's; the simulator runs on loopback.
const apiKey, apiSecret = "load-api-key", "load-api-secret"

type simStats struct{ Requests, Conns int64 }

// childMain runs the part named by role until its standard input closes (the parent
// is done, or dead), having printed the URL it serves on as its first line; a burst
// prints what it measured (burstTrial).
func childMain(role string, args []string) error {
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		return err
	}
	var url string
	var stop func()
	switch role {
	case childSim:
		url, stop, err = serveSim(o)
	case childNATS:
		url, stop, err = serveNATS()
	case childBurst:
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		url, err = burstTrial(context.Background(), o, os.Getenv(envAPI), os.Getenv(envNATS), log)
		stop = func() {}
	default:
		err = fmt.Errorf("%s=%q: unknown part", childEnv, role)
	}
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println(url)
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// serveSim serves the simulated API, every answer delayed by o.latency as a distant
// API would be, with the world of o in it.
func serveSim(o options) (string, func(), error) {
	api := sim.New(sim.Config{APIKey: apiKey, Secret: apiSecret})
	w := newWorld(api, o)
	var mu sync.Mutex // the world's own state
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathChange, func(rw http.ResponseWriter, r *http.Request) {
		over, err := time.ParseDuration(r.URL.Query().Get("over"))
		if err != nil || over < 0 {
			http.Error(rw, "over: want a duration", http.StatusBadRequest)
			return
		}
		// The answer comes once the changes are spread over over: an interval of
		// 30 s or more outlasts the server's write timeout.
		_ = http.NewResponseController(rw).SetWriteDeadline(time.Now().Add(over + httpserver.WriteTimeout)) // the server's own holds otherwise
		if err := w.changeOver(r.Context(), over, &mu); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable) // the run that asked is gone
		}
	})
	mux.HandleFunc("GET "+pathExpected, func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(rw).Encode(w.expected()) // a failed answer fails the run that asked
	})
	mux.HandleFunc("GET "+pathStats, func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(simStats{Requests: int64(api.Requests()), Conns: conns.Load()}) // likewise
	})
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		time.Sleep(o.latency)
		api.ServeHTTP(rw, r)
	})
	stopHooks := func() {}
	if o.webhooks {
		stopHooks = serveWebhooks(mux, api, o)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := httpserver.New(mux, slog.NewLogLogger(slog.DiscardHandler, 0))
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	// No connection cap: it would throttle the load measured. Serve stops when srv is
	// closed; if it failed sooner, the polls would fail, and the run with them.
	go func() { _ = srv.Serve(l) }()

	return "http://" + l.Addr().String(), func() { stopHooks(); _ = srv.Close() }, nil
}

// serveNATS runs a NATS server with JetStream on a loopback port, storing in a
// temporary directory that it removes when it stops.
func serveNATS() (string, func(), error) {
	dir, err := os.MkdirTemp("", "rollcall-load-nats-")
	if err != nil {
		return "", nil, err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		_ = os.RemoveAll(dir)
		return "", nil, errors.New("the NATS server did not start within 10s")
	}
	return ns.ClientURL(), func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}, nil
}

// child is a running part.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

// startChild starts the part role with the same arguments as this run and env added
// to its environment, its errors going to stderr, and returns once it serves.
func startChild(ctx context.Context, role string, args []string, stderr io.Writer, env ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+role), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s: %w", role, err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		// The error to report is the one above; the part's own went to stderr.
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the %s did not start: %w", role, err)
	}
	return &child{cmd: cmd, stdin: stdin, url: strings.TrimSpace(line)}, nil
}

// stop asks the part to stop, and kills it if it has not within 10s. The part's
// errors go to stderr: its exit status says nothing more.
func (c *child) stop() {
	_ = c.stdin.Close() // the part stops when its stdin closes
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill() // it fails only if the part has exited
		<-done
	}
}

// simClient talks to the simulator's own endpoints.
type simClient struct{ url string }

func (s simClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// change changes every session of the world once, spread over over, and returns
// once all have changed.
func (s simClient) change(ctx context.Context, over time.Duration) error {
	return s.do(ctx, http.MethodPost, pathChange+"?over="+over.String(), nil)
}

func (s simClient) expected(ctx context.Context) (c counts, err error) {
	return c, s.do(ctx, http.MethodGet, pathExpected, &c)
}

func (s simClient) stats(ctx context.Context) (st simStats, err error) {
	return st, s.do(ctx, http.MethodGet, pathStats, &st)
}
