package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

// TestWho: `rollcall who` answers from rollcall's state for a session, for a room, for
// a session that ended, and says so for an ID it does not know.
func TestWho(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s-live", "room-a")
	join(api, "s-live", "ann", "bob")
	api.StartSession("s-end", "room-b")
	join(api, "s-end", "cid")
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	config, logs := runEmbedded(t, dir, srv.URL, "[[sessions]]\nid = \"s-live\"\n[[sessions]]\nid = \"s-end\"")
	who := func(args ...string) (string, error) {
		var out testkit.Buffer
		err := run(context.Background(), append(append([]string{"who"}, args...), "-config", config), &out, &out, func(string) string { return "" })
		return out.String(), err
	}
	js := natstest.JetStream(t, waitForFile(t, filepath.Join(dir, "data", "nats.url")))
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10s: %s\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("everyone announced", func() bool {
		got := participantEvents(t, js)
		return slices.Contains(got, "joined s-live ann") && slices.Contains(got, "joined s-live bob") && slices.Contains(got, "joined s-end cid")
	})
	api.EndSession("s-end")
	waitFor("s-end's end announced", func() bool { return slices.Contains(participantEvents(t, js), "left s-end cid") })

	out, err := who("s-live")
	if err != nil || !strings.Contains(out, "session s-live (room room-a): 2 present") ||
		!strings.Contains(out, "name-ann  ann") || !strings.Contains(out, "name-bob  bob") || !strings.Contains(out, "CONFERENCE") {
		t.Errorf("who s-live: %v\n%s", err, out)
	}
	if out, err := who("room-a"); err != nil || !strings.Contains(out, "session s-live (room room-a): 2 present") {
		t.Errorf("who room-a: %v\n%s", err, out)
	}
	out, err = who("-json", "s-live")
	var got []whoSession
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 || len(got[0].Present) != 2 ||
		got[0].Present[0].ParticipantID != "ann" || got[0].Present[0].JoinedAt.IsZero() || got[0].Ended {
		t.Errorf("who -json s-live: %v\n%s", err, out)
	}
	waitFor("s-end's tombstone", func() bool {
		out, err := who("s-end")
		return err == nil && strings.Contains(out, "session s-end (room room-b) has ended: no one is present")
	})
	if out, err := who("nobody"); err == nil || !strings.Contains(err.Error(), "nobody: neither a session nor the room of a live session") {
		t.Errorf("who nobody: %v\n%s", err, out)
	}
}
