package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
)

// TestTailWaitsForTheStream: a tail started before the worker says once that it
// waits for the stream, naming the server without its password, says when the
// stream is there, and then prints its events.
func TestTailWaitsForTheStream(t *testing.T) {
	const password = "tail-pw-7"
	ns := natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = "rollcall", password })
	host := strings.TrimPrefix(ns.ClientURL(), "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, notices testkit.Buffer // stdout, stderr
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"tail", "-nats", "nats://rollcall:" + password + "@" + host, "-stream", "EVENTS"}, &out, &notices, func(string) string { return "" })
	}()

	waiting := "waiting for stream EVENTS on nats://rollcall:REDACTED@" + host + ": the worker creates it when it starts\n"
	eventually(t, "the waiting notice", func() bool { return strings.Contains(notices.String(), waiting) })
	// Each retry asks the JetStream API for a consumer: a few more, and still one notice.
	asked := apiRequests(t, ns)
	eventually(t, "3 retries", func() bool { return apiRequests(t, ns) >= asked+3 })

	js := natstest.JetStream(t, ns.ClientURL(), nats.UserInfo("rollcall", password))
	err := publisher.EnsureStream(ctx, js, publisher.StreamConfig{Name: "EVENTS", Prefix: "videosdk", DuplicateWindow: time.Minute}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	at := events.Time{Time: time.Date(2023, 7, 24, 8, 28, 9, 650e6, time.UTC)}
	data, err := json.Marshal(events.ParticipantData{SessionID: "s1", RoomID: "r1", ParticipantID: "p1", Name: "Ada", JoinedAt: &at,
		ObservedAt: at, Detection: events.DetectionPoll, DeviceInfo: json.RawMessage("{}"), GeoLocation: json.RawMessage("{}")})
	if err != nil {
		t.Fatal(err)
	}
	event, err := json.Marshal(events.Event{SpecVersion: events.SpecVersion, ID: "e1", Source: "/v2/sessions/s1", Type: events.TypeJoined,
		Subject: "p1", Time: at, DataContentType: events.ContentType, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	// Published before the tail sees the stream, as a worker's first events are:
	// they came after the tail started, so it shows them.
	if _, err := js.Publish(ctx, "videosdk.participant.joined.r1.s1", event); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream is there", func() bool { return strings.Contains(notices.String(), "stream EVENTS is there\n") })
	eventually(t, "the event", func() bool { return strings.Contains(out.String(), "joined   Ada (p1)") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail: %v", err)
	}
	if n := strings.Count(notices.String(), "waiting for stream"); n != 1 || strings.Contains(notices.String()+out.String(), password) || strings.Contains(out.String(), "stream EVENTS") {
		t.Errorf("%d waiting notices on stderr, want 1, none on stdout, and no password:\n%s\n%s", n, notices.String(), out.String())
	}
}

// apiRequests is how many JetStream API requests ns has answered.
func apiRequests(t *testing.T, ns *server.Server) uint64 {
	t.Helper()
	jsz, err := ns.Jsz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jsz.API.Total
}
