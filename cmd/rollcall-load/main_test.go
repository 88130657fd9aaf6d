package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
)

// TestMain runs the simulator and the NATS server when this test binary is started
// as one of run's parts, as the command itself does.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := childMain(role, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRun runs a small load, three pages a session, and checks that the stream holds
// one event per change the simulator made. It asserts nothing about time.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-sessions", "3", "-participants", "5", "-per-page", "2", "-latency", "0",
		"-interval", "1s", "-steady", "1", "-churn-intervals", "3", "-nats-cli", ""}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// 3 started; 15 first stints, then 1 of 5 changed per session per churn interval:
	// 9 more stints, and as many ended.
	for _, want := range []string{
		"stream 36 events (3 session.started, 24 joined, 9 left); simulator 36 changes (3 sessions, 24 stints, 9 ended): OK",
		"nats bench: skipped: no nats CLI",
		"polls per session per interval",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "level=") {
		t.Errorf("the worker logged warnings or errors:\n%s", out.String())
	}
}

// TestRunBursts: with the nats CLI, a run measures -bursts first bursts, the extra
// ones by workers of their own before the main run, and prints their median; on an
// external server (-nats), it leaves none of its workers' streams and buckets behind.
// The CLI here is a stand-in that prints a rate (testdata/fake-nats): what is tested
// is that every worker's first poll reaches its stream, not the figures.
func TestRunBursts(t *testing.T) {
	cli, err := filepath.Abs(filepath.Join("testdata", "fake-nats"))
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	var out bytes.Buffer
	err = run(context.Background(), []string{"-sessions", "3", "-participants", "5", "-latency", "0",
		"-interval", "1s", "-steady", "1", "-churn-intervals", "1", "-bursts", "3", "-nats-cli", cli, "-nats", ns.ClientURL()}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(context.Background())
	for name := range names.Name() {
		t.Errorf("stream %s left on the server", name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`first-poll burst / its floor, median of 3: [0-9.]+× \([0-9.]+×, [0-9.]+×, [0-9.]+×\)`),
		regexp.MustCompile(`events stored in the burst / nats bench's rate, median of 3: [0-9.]+×`),
		regexp.MustCompile(`: OK\n`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{1.3}, 1.3},
		{[]float64{1.3, 0.9, 1.1}, 1.1},
		{[]float64{1.4, 1.0, 1.2, 0.8}, 1.1},
	} {
		if got := median(c.xs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sessions", "0"},
		{"-participants", "-1"},
		{"-participants", "0"},
		{"-steady", "0"},
		{"-churn-intervals", "101"},
		{"-bursts", "0"},
		{"-churn", "1.5"},
		{"-per-page", "0"},
		{"-interval", "10ms"},
		{"-sessions", "100000", "-participants", "100"},
		{"extra"},
		{"-webhook-loss", "0.1"}, // without -webhooks
		{"-webhooks", "-webhook-delay", "200ms-20ms"},
		{"-webhooks", "-webhook-dup", "1.5"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run %q succeeded, want an error", args)
		}
	}
}
