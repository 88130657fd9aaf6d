package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

// TestTrackAtRunTime: with the embedded server, sessions and rooms are tracked and
// untracked while `rollcall run` runs, through the commands and through the bucket.
// Tracking starts polling within an interval; untracking publishes no left; tracking
// again publishes once what happened meanwhile.
func TestTrackAtRunTime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	for _, s := range []string{"s0", "s1", "s2"} {
		api.StartSession(s, "room-"+s)
		join(api, s, s+"-a", s+"-b")
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	idle := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(idle, []byte(fmt.Sprintf("[nats]\nstore_dir = %q\n", filepath.Dir(idle))), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"tracked", "-config", idle}, io.Discard, io.Discard, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "no rollcall worker is running") {
		t.Errorf("tracked with no worker: %v, want it to say no worker is running", err)
	}

	dir := t.TempDir()
	config, logs := runEmbedded(t, dir, srv.URL, "[[sessions]]\nid = \"s0\"")
	rollcall := func(args ...string) (string, error) {
		var out testkit.Buffer
		err := run(context.Background(), append(args, "-config", config), &out, &out, func(string) string { return "" })
		return out.String(), err
	}

	url := waitForFile(t, filepath.Join(dir, "data", "nats.url"))
	js := natstest.JetStream(t, url)
	stream := func() []string { return participantEvents(t, js) }
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10s: %s\nstream: %v\n%s", what, stream(), logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	has := func(events ...string) func() bool {
		return func() bool {
			got := stream()
			for _, e := range events {
				if !slices.Contains(got, e) {
					return false
				}
			}
			return true
		}
	}
	waitUntil("s0, from the config, polled", has("joined s0 s0-a", "joined s0 s0-b"))
	// A URL left in another store_dir (by a worker killed with -9, say) that leads to
	// this worker's server: the commands of that other config must not touch it.
	if err := os.WriteFile(filepath.Join(filepath.Dir(idle), "nats.url"), []byte(url), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"track", "room", "not-mine", "-config", idle}, io.Discard, io.Discard, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "leads to the embedded server of another rollcall") {
		t.Errorf("track through a stale URL: %v, want it refused", err)
	}

	if out, err := rollcall("track", "session", "s1"); err != nil || !strings.Contains(out, "tracking session s1") {
		t.Fatalf("track session s1: %q, %v", out, err)
	}
	start := time.Now()
	waitUntil("s1 polled", has("joined s1 s1-a", "joined s1 s1-b"))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("s1 first polled %v after it was tracked, want within an interval", took)
	}

	// Straight into the bucket, as any NATS client may.
	kv, err := js.KeyValue(context.Background(), "ROLLCALL_TRACKING")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "room.room-s2", []byte(`{"id":"room-s2"}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil("room-s2's session polled", has("joined s2 s2-a", "joined s2 s2-b"))

	out, err := rollcall("tracked")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"room     room-s2  bucket",
		"session  s0       config",
		"session  s1       bucket",
		"session  s2       room room-s2",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("tracked does not show %q:\n%s", line, out)
		}
	}
	if !strings.Contains(out, "polling") || strings.Count(out, "following") != 1 {
		t.Errorf("tracked shows no statuses:\n%s", out)
	}

	if _, err := rollcall("untrack", "session", "s0"); err == nil || !strings.Contains(err.Error(), "tracked by the config file") {
		t.Errorf("untrack of a configured session: %v, want an error saying it comes from the config file", err)
	}
	if _, err := rollcall("untrack", "session", "s2"); err == nil || !strings.Contains(err.Error(), "followed through room room-s2") {
		t.Errorf("untrack of a session found by a room: %v, want an error naming the room", err)
	}
	if out, err := rollcall("track", "session", "s0"); err != nil || !strings.Contains(out, "tracked already, by the config file") {
		t.Errorf("track of a configured session: %q, %v", out, err)
	}
	if _, err := rollcall("untrack", "room", "room-s2"); err != nil {
		t.Fatal(err)
	}
	if _, err := rollcall("untrack", "session", "s1"); err != nil {
		t.Fatal(err)
	}
	waitUntil("s1 and s2 untracked", func() bool {
		out, _ := rollcall("tracked")
		return !strings.Contains(out, "s1") && !strings.Contains(out, "s2")
	})
	leave(api, "s1", "s1-a")
	leave(api, "s2", "s2-a")
	join(api, "s1", "s1-c")
	before := len(stream())
	time.Sleep(2500 * time.Millisecond) // two intervals and more: a loop still running would publish
	if got := stream(); len(got) != before {
		t.Errorf("events while untracked: %v", got[before:])
	}

	if _, err := rollcall("track", "session", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "room.room-s2", []byte(`{"id":"room-s2"}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil("what happened meanwhile", has("left s1 s1-a", "joined s1 s1-c", "left s2 s2-a"))
	time.Sleep(1500 * time.Millisecond)
	var dup []string
	counts := map[string]int{}
	for _, e := range stream() {
		if counts[e]++; counts[e] == 2 {
			dup = append(dup, e)
		}
	}
	if len(dup) > 0 {
		t.Errorf("published twice: %v", dup)
	}
}

// participantEvents lists the stream's participant events as "kind session participant".
func participantEvents(t *testing.T, js jetstream.JetStream) []string {
	var out []string
	for _, m := range natstest.Messages(t, js, "ROLLCALL") {
		parts := strings.Split(m.Subject, ".")
		if parts[1] != "participant" {
			continue
		}
		var e event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, parts[2]+" "+e.Data.SessionID+" "+e.Data.ParticipantID)
	}
	return out
}

// waitForFile waits for a file to exist and returns its content, trimmed.
func waitForFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
