package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
)

// The demo's world: a few rooms, changes about every 700 ms (short visits among them,
// which the polls miss and reconciliations find), a new session in each room about
// every 40 s, and small pages so that every scan crosses page boundaries. Polls are
// slow, as at scale; the simulator's webhooks, 20–200 ms after each change, are hints
// to poll at once, so that events come within a second all the same.
const (
	demoRooms     = 3
	demoChurn     = 700 * time.Millisecond
	demoSessions  = 40 * time.Second
	demoPerPage   = 3
	demoSchedule  = "@every 10s"
	demoDiscover  = "@every 10s"
	demoReconcile = "@every 30s"
)

// demoWebhooks are the simulator's webhooks to the demo's worker: a little late, as
// real ones are.
var demoWebhooks = sim.WebhookOptions{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

func demoChurnConfig() sim.ChurnConfig {
	return sim.ChurnConfig{Rooms: demoRooms, Interval: demoChurn, SessionEvery: demoSessions, Seed: uint64(time.Now().UnixNano())}
}

// runDemo runs everything in one process: an embedded NATS server, the simulated API
// with churning rooms, the worker on a short schedule, and a live feed of the events.
// SIGHUP stops it as Ctrl-C does: the demo is interactive, and a hangup means that its
// terminal is gone (ignored, it would run on, unseen, holding NATS's port).
func runDemo(ctx context.Context, d time.Duration, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "rollcall-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }() // best effort: a temporary directory
	key, secret := "demo-api-key", randomSecret()
	api := sim.New(sim.Config{APIKey: key, Secret: secret})
	rooms := demoWorld(api)
	apiURL, stopAPI, err := serve(api, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopAPI()
	go api.Churn(ctx, demoChurnConfig())

	cfg := worker.Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = apiURL, key, secret
	cfg.VideoSDK.PerPage = demoPerPage
	cfg.Poll.Schedule, cfg.Poll.DiscoverSchedule, cfg.Poll.ReconcileSchedule = demoSchedule, demoDiscover, demoReconcile
	cfg.NATS.StoreDir = dir         // and url "": the embedded server
	cfg.HTTP.Listen = "127.0.0.1:0" // the presence page; any free port, not one another worker may use
	cfg.Webhook.Listen = "127.0.0.1:0"
	for _, id := range rooms {
		cfg.Rooms = append(cfg.Rooms, worker.Room{ID: id})
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// The worker's own log shows only problems, and apart from the feed, so that the
	// feed stays readable.
	logs, logPath := openDemoLog(stderr)
	defer logs.Close()
	w, err := worker.New(ctx, cfg, worker.NewLogger(logs, worker.Log{Level: "warn", Format: "text"}))
	if err != nil {
		return err
	}
	defer w.Close()
	url := w.NATSURL()
	hooks := api.SendWebhooks("http://"+w.WebhookAddr()+cfg.Webhook.Path, demoWebhooks)
	defer hooks.Close()
	removeFile, err := leaveDemoConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cannot leave the demo's config for the commands beside it (they need -config): %v\n", err)
		removeFile = func() {}
	}
	defer removeFile()

	// First, so that it is seen before the feed scrolls.
	fmt.Fprintf(stdout, "Who is here, live: http://%s/   (the presence page: open it in a browser)\n", w.HTTPAddr())
	fmt.Fprintf(stdout, "rollcall demo: NATS %s, simulated VideoSDK API %s, following %d rooms (%s): sessions polled %s, rooms listed %s.\n",
		url, apiURL, len(rooms), strings.Join(rooms, ", "), demoSchedule, demoDiscover)
	fmt.Fprintf(stdout, "The simulator sends VideoSDK's webhooks to the worker (http://%s%s): each is a hint to poll at once, so events come within a second of a change.\n",
		w.WebhookAddr(), cfg.Webhook.Path)
	server := ""
	if url != nats.DefaultURL {
		server = "-s " + url + " "
	}
	fmt.Fprintf(stdout, "Subscribe elsewhere with: nats sub %s'%s.participant.>'   or   go run ./cmd/rollcall tail -nats %s -all\n",
		server, cfg.NATS.SubjectPrefix, url)
	fmt.Fprintf(stdout, "Beside it, from here: go run ./cmd/rollcall tracked   (or who %s, track session ID, untrack ...)\n", rooms[0])
	if logPath != "" {
		fmt.Fprintf(stdout, "The worker's warnings, if any, go to %s; the feed counts them.\n", logPath)
		go logs.count(ctx, 10*time.Second, logPath, stdout)
	}
	fmt.Fprintln(stdout, "Events, as they arrive (Ctrl-C to stop):")

	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(ctx) }()

	nc, err := nats.Connect(url, nats.Name("rollcall demo feed"))
	if err != nil {
		return err
	}
	defer nc.Close()
	feedDone := make(chan error, 1)
	go func() { feedDone <- tailWhenReady(ctx, nc, cfg.NATS.Stream, true, stdout, nil) }()

	err = <-workerDone
	return errors.Join(err, <-feedDone)
}

// demoLog is where the demo's worker logs: a file, whose new lines the feed counts.
type demoLog struct {
	io.Writer
	file  *os.File // nil: the lines go to stderr as they come
	mu    sync.Mutex
	lines int
}

// openDemoLog opens demo.log beside the demo's config, emptied, and returns it with
// its path; stderr itself, and "", if it cannot.
func openDemoLog(stderr io.Writer) (*demoLog, string) {
	if path := demoFile(); path != "" {
		path = filepath.Join(filepath.Dir(path), "demo.log")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				return &demoLog{Writer: f, file: f}, path
			}
		}
	}
	return &demoLog{Writer: stderr}, ""
}

func (l *demoLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines += bytes.Count(p, []byte("\n"))
	return l.Writer.Write(p)
}

// count says on out, at most once every every, how many lines came since it last said.
func (l *demoLog) count(ctx context.Context, every time.Duration, path string, out io.Writer) {
	t := time.NewTicker(every)
	defer t.Stop()
	said := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		n := l.lines
		l.mu.Unlock()
		if n > said {
			fmt.Fprintf(out, "%s  (the worker logged %d more %s: see %s)\n", time.Now().Format("15:04:05.000"), n-said, plural(n-said, "warning or error", "warnings or errors"), path)
			said = n
		}
	}
}

// Close closes the file, if there is one.
func (l *demoLog) Close() {
	if l.file != nil {
		_ = l.file.Close() // a log kept for reading: nothing to do if it fails
	}
}

// runSim serves the simulated API with a churning demo world until ctx is done, and
// sends its webhooks if asked.
func runSim(ctx context.Context, listen string, hooks simWebhooks, stdout io.Writer, getenv func(string) string) error {
	key, secret := getenv("VIDEOSDK_API_KEY"), getenv("VIDEOSDK_SECRET")
	if key == "" || secret == "" {
		return errors.New("set VIDEOSDK_API_KEY and VIDEOSDK_SECRET: the simulated API accepts tokens signed with them")
	}
	if hooks.url == "" && hooks.tuned {
		return errors.New("-webhook-delay, -webhook-loss and -webhook-dup need -webhook URL")
	}
	api := sim.New(sim.Config{APIKey: key, Secret: secret})
	rooms := demoWorld(api)
	url, stop, err := serve(api, listen)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "simulated VideoSDK API on %s\nrooms (each gets a new session now and then):\n", url)
	for _, id := range rooms {
		fmt.Fprintf(stdout, "  %s\n", id)
	}
	if hooks.url != "" {
		hooks.opts.Seed = uint64(time.Now().UnixNano())
		w := api.SendWebhooks(hooks.url, hooks.opts)
		defer func() {
			w.Close()
			st := w.Stats()
			fmt.Fprintf(stdout, "webhooks: %d posted (%d failed), %d lost, %d sent twice\n", st.Posted, st.Failed, st.Lost, st.Duplicated)
		}()
		fmt.Fprintf(stdout, "webhooks to %s, signed with the key at %s/v2/public/rsa-public-key\n", hooks.url, url)
	}
	api.Churn(ctx, demoChurnConfig())
	return nil
}

// demoWorld creates the demo's world and returns its rooms.
func demoWorld(api *sim.Server) []string {
	var rooms []string
	for _, id := range api.DemoWorld(demoRooms) {
		rooms = append(rooms, api.RoomOf(id))
	}
	return rooms
}

// serve serves h on addr and returns its base URL and a stop function.
func serve(h http.Handler, addr string) (string, func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := httpserver.New(h, slog.NewLogLogger(slog.DiscardHandler, 0))
	// Until stopped; if it failed sooner, the polls would fail, and say so.
	go func() { _ = httpserver.Serve(srv, l) }()
	return "http://" + l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // best effort: the demo is ending
	}, nil
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// plural is one if n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
