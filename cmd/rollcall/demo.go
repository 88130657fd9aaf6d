package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
)

// The demo's world: a few rooms, changes about every 700 ms (short visits among them,
// which the polls miss and reconciliations find), a new session in each room about
// every 40 s, and small pages so that every scan crosses page boundaries.
const (
	demoRooms    = 3
	demoChurn    = 700 * time.Millisecond
	demoSessions = 40 * time.Second
	demoPerPage  = 3
	demoSchedule = "@every 1s"
	demoDiscover = "@every 2s"
	// demoReconcile: a reconciliation every few seconds, so that the feed shows the
	// visits the polls missed soon after them.
	demoReconcile = "@every 5s"
)

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
	cfg.NATS.StoreDir = dir // and url "": the embedded server
	cfg.HTTP.Listen = ""    // no /metrics: a demo must not take a port another worker may use
	for _, id := range rooms {
		cfg.Rooms = append(cfg.Rooms, worker.Room{ID: id})
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// The worker's own log shows only problems, so that the feed stays readable.
	w, err := worker.New(ctx, cfg, worker.NewLogger(stderr, worker.Log{Level: "warn", Format: "text"}))
	if err != nil {
		return err
	}
	defer w.Close()
	url := w.NATSURL()

	fmt.Fprintf(stdout, "rollcall demo: NATS %s, simulated VideoSDK API %s, following %d rooms (%s): sessions polled %s, rooms listed %s.\n",
		url, apiURL, len(rooms), strings.Join(rooms, ", "), demoSchedule, demoDiscover)
	server := ""
	if url != nats.DefaultURL {
		server = "-s " + url + " "
	}
	fmt.Fprintf(stdout, "Subscribe elsewhere with: nats sub %s'%s.participant.>'   or   go run ./cmd/rollcall tail -nats %s -all\n",
		server, cfg.NATS.SubjectPrefix, url)
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

// runSim serves the simulated API with a churning demo world until ctx is done.
func runSim(ctx context.Context, listen string, stdout io.Writer, getenv func(string) string) error {
	key, secret := getenv("VIDEOSDK_API_KEY"), getenv("VIDEOSDK_SECRET")
	if key == "" || secret == "" {
		return errors.New("set VIDEOSDK_API_KEY and VIDEOSDK_SECRET: the simulated API accepts tokens signed with them")
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
