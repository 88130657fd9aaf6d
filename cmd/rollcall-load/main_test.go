package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRun runs a small load, two pages a session, and checks that the stream holds
// one event per change the simulator made. It asserts nothing about time.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-sessions", "3", "-participants", "5", "-per-page", "2", "-cycles", "3"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// 3 started; 15 first stints, then 1 of 5 changed per session per cycle: 6 more
	// stints, and as many ended.
	want := "stream 30 events (3 session.started, 21 joined, 6 left); simulator 30 changes (3 sessions, 21 stints, 6 ended): OK"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "level=") {
		t.Errorf("the worker logged warnings or errors:\n%s", out.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sessions", "0"},
		{"-participants", "-1"},
		{"-cycles", "10001"},
		{"-churn", "1.5"},
		{"-per-page", "0"},
		{"-sessions", "100000", "-participants", "100"},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run %q succeeded, want an error", args)
		}
	}
}
