package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/sim"
)

// rewriteDoc is a fault that edits the session document of every answer of a
// session's active list.
func rewriteDoc(t *testing.T, session string, edit func(doc map[string]any)) sim.Fault {
	return sim.Fault{PathContains: "/" + session + "/participants/active", Times: 1 << 30, Rewrite: func(b []byte) []byte {
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			return b // an error answer: as it is
		}
		if list, ok := body["data"].([]any); ok && len(list) > 0 {
			edit(list[0].(map[string]any))
		}
		out, err := json.Marshal(body)
		if err != nil {
			t.Errorf("rewrite: %v", err)
		}
		return out
	}}
}

// TestRunHostile: `rollcall run` tracks a healthy session beside one whose API
// answers carry odd values (a start in year 10000 in UTC, an ID of 300 bytes) and one
// whose roomId is 10 KB, which would make a subject longer than NATS's control line.
// The worker lives on, the healthy session's stream is exact, the odd session's sound
// participants are announced, nothing is published for the 10 KB one, and `rollcall
// tracked` says what is set aside and what fails.
func TestRunHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker for several seconds")
	}
	e := newE2E(t, map[string]string{"good": "room-good"})
	e.elsewhere = map[string]bool{"odd": true, "toxic": true}
	e.api.StartSession("odd", "room-odd")
	e.api.StartSession("toxic", "room-toxic")
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n[[sessions]]\nid = \"odd\"\n[[sessions]]\nid = \"toxic\"\n")
	if cerr := f.Close(); err != nil || cerr != nil {
		t.Fatal(err)
	}
	e.api.InjectFault(rewriteDoc(t, "odd", func(doc map[string]any) {
		for _, p := range doc["participants"].([]any) {
			switch p := p.(map[string]any); p["participantId"] {
			case "late":
				p["timelog"].([]any)[0].(map[string]any)["start"] = "9999-12-31T23:00:00-05:00"
			case "long":
				p["participantId"] = strings.Repeat("L", 300)
			}
		}
	}))
	e.api.InjectFault(rewriteDoc(t, "toxic", func(doc map[string]any) { doc["roomId"] = strings.Repeat("R", 10_000) }))
	join(e.api, "good", "g1", "g2")
	join(e.api, "odd", "ok", "late", "long")
	join(e.api, "toxic", "t1")

	stop := e.start()
	defer stop()
	e.settle("first cycle")
	leave(e.api, "good", "g1")
	join(e.api, "good", "g3")
	e.settle("the healthy session changes")
	e.hold("two cycles later")

	var oddJoined []string
	for _, ev := range e.events() {
		switch ev.Data.SessionID {
		case "toxic":
			t.Errorf("an event of the session with a 10 KB roomId: %s on %s", ev.Type, ev.Subject)
		case "odd":
			if ev.Type == "live.videosdk.participant.joined" {
				oddJoined = append(oddJoined, ev.Data.ParticipantID)
			}
		}
	}
	if len(oddJoined) != 1 || oddJoined[0] != "ok" {
		t.Errorf("joined in the odd session: %v, want ok alone", oddJoined)
	}
	if logs := e.logs.String(); strings.Contains(logs, "maximum control line") || strings.Contains(logs, "connection closed") {
		t.Errorf("the NATS connection was closed:\n%s", logs)
	}

	var out bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for {
		out.Reset()
		err := run(context.Background(), []string{"tracked", "-config", e.config}, &out, &out, func(string) string { return "" })
		if err == nil && strings.Contains(out.String(), "session odd: 2 records of its last answer set aside") &&
			strings.Contains(out.String(), "session toxic: failing: ") && strings.Contains(out.String(), "roomId: 10000 bytes, more than 256") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollcall tracked: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(e.logs.String(), "a record of the API's answer is set aside"); n != 2 {
		t.Errorf("%d log lines for the records set aside over many polls, want 2 (each once)", n)
	}
}
