package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/fedtest"
	"github.com/rollcall/rollcall/internal/natstest"
)

// TestSubscriber: the subscriber stops after two events, and restarts after a crash
// that left the third handled but not acknowledged: over both runs each event is
// handled once, none is lost, and the consumer has nothing left to deliver. Then a
// replay from before the first event prints all four.
func TestSubscriber(t *testing.T) {
	before := time.Now().Add(-time.Second)
	api := fedtest.NewAPI()
	api.StartSession("s1", "room-1")
	for _, p := range []string{"p1", "p2", "p3"} {
		api.Join("s1", p, "name-"+p)
	}
	url := fedtest.Start(t, api, "s1")
	fedtest.WaitFor(t, url, 4) // session.started, three joined
	var all []string
	for _, m := range natstest.Messages(t, natstest.JetStream(t, url), "ROLLCALL") {
		e, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, line(e))
	}
	third, err := events.Decode(natstest.Messages(t, natstest.JetStream(t, url), "ROLLCALL")[2].Data)
	if err != nil {
		t.Fatal(err)
	}

	seen := filepath.Join(t.TempDir(), "seen")
	subscribe := func(args ...string) []string {
		t.Helper()
		var out, errs bytes.Buffer
		if err := run(context.Background(), append([]string{"-nats", url, "-seen", seen}, args...), &out, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	first := subscribe("-n", "2")
	// A crash after the third was handled and remembered, before its acknowledgement.
	f, err := os.OpenFile(seen, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(third.ID + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	second := subscribe("-n", "1")

	got := append(append(slices.Clone(first), line(third)), second...)
	if !slices.Equal(got, all) {
		t.Errorf("handled, in order:\n%s\nwant each once:\n%s", strings.Join(got, "\n"), strings.Join(all, "\n"))
	}
	c, err := natstest.JetStream(t, url).Consumer(context.Background(), "ROLLCALL", "rollcall-subscriber")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer: %+v, %v; want nothing pending", info, err)
	}

	if replayed := subscribe("-since", before.Format(time.RFC3339Nano)); !slices.Equal(replayed, all) {
		t.Errorf("replay:\n%s\nwant:\n%s", strings.Join(replayed, "\n"), strings.Join(all, "\n"))
	}
}

// TestSubscriberDefaultSeen: without -seen, the ids go to the user's cache directory,
// not the working directory, in a file per durable consumer: a second consumer
// handles the events the first did.
func TestSubscriberDefaultSeen(t *testing.T) {
	cache := t.TempDir()
	// os.UserCacheDir's variable on Linux, macOS and Windows.
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	t.Setenv("LocalAppData", cache)
	dir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())

	api := fedtest.NewAPI()
	api.StartSession("s1", "room-1")
	url := fedtest.Start(t, api, "s1")
	fedtest.WaitFor(t, url, 1) // session.started
	started, err := events.Decode(natstest.Messages(t, natstest.JetStream(t, url), "ROLLCALL")[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, durable := range []string{"rollcall-subscriber", "other"} {
		// A consumer that skipped the event would wait for another for ever.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out, errs bytes.Buffer
		if err := run(ctx, []string{"-nats", url, "-durable", durable, "-n", "1"}, &out, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		if got := strings.TrimSpace(out.String()); got != line(started) {
			t.Errorf("consumer %s handled %q, want %q", durable, got, line(started))
		}
		path := filepath.Join(dir, "rollcall", "subscriber", durable+".seen")
		if ids, err := os.ReadFile(path); err != nil || string(ids) != started.ID+"\n" {
			t.Errorf("%s: %q, %v; want the id handled", path, ids, err)
		}
		if !strings.Contains(errs.String(), path) {
			t.Errorf("stderr does not say where the ids go:\n%s", errs.String())
		}
	}
	if left, _ := os.ReadDir("."); len(left) != 0 {
		t.Errorf("the working directory holds %v, want nothing", left)
	}
}
