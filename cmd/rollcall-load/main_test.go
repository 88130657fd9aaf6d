package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
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

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sessions", "0"},
		{"-participants", "-1"},
		{"-participants", "0"},
		{"-steady", "0"},
		{"-churn-intervals", "101"},
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
