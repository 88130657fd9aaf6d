package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/fedtest"
	"github.com/rollcall/rollcall/internal/natstest"
)

// TestNotify: the webhook hears once that the chosen participant, or anyone, joined the
// chosen room, and nothing of others, nor of that participant in another room. At
// start, notify says what it waits for and where, credentials left out.
func TestNotify(t *testing.T) {
	for _, tt := range []struct {
		name   string
		args   []string
		whom   string // as the first line says
		notice string // its start; each ends with "(session s1)"
	}{
		{"participant", []string{"-participant", "vip"}, "participant vip", "Very Important (vip) joined room room-1 at "},
		{"anyone", nil, "anyone", "Other (other) joined room room-1 at "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := fedtest.NewAPI()
			api.StartSession("s1", "room-1")
			api.StartSession("s2", "room-2")
			api.Join("s1", "someone", "Someone")
			url := fedtest.Start(t, api, "s1", "s2")
			fedtest.WaitFor(t, url, 3) // two session.started, one joined

			posts := make(chan string, 10)
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body struct{ Text string }
				b, _ := io.ReadAll(r.Body)
				if json.Unmarshal(b, &body) != nil || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("webhook got %s", b)
				}
				posts <- body.Text
			}))
			defer hook.Close()
			// The server has no users: credentials are accepted, and must not show.
			withUser := strings.Replace(url, "nats://", "nats://someone:s3cr3t@", 1)
			args := append([]string{"-nats", withUser, "-room", "room-1", "-webhook", hook.URL, "-n", "1"}, tt.args...)
			var stderr bytes.Buffer // read once run has returned
			done := make(chan error, 1)
			go func() { done <- run(context.Background(), args, io.Discard, &stderr) }()
			// Its consumer delivers new events only: wait until it is there.
			js := natstest.JetStream(t, url)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				s, err := js.Stream(context.Background(), "ROLLCALL")
				if err == nil && s.CachedInfo().State.Consumers > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("notify made no consumer within 10s")
				}
			}

			api.Join("s2", "vip", "Very Important") // the other room
			api.Join("s1", "other", "Other")        // the other participant
			fedtest.WaitFor(t, url, 5)
			api.Join("s1", "vip", "Very Important")
			select {
			case text := <-posts:
				if !strings.HasPrefix(text, tt.notice) || !strings.HasSuffix(text, "(session s1)") {
					t.Errorf("notice %q, want %q…(session s1)", text, tt.notice)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no notice within 15s")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			select {
			case text := <-posts:
				t.Errorf("a second notice: %q", text)
			default:
			}
			want := "notify: waiting for " + tt.whom + " to join room room-1: new events on videosdk.participant.joined.room-1.* in stream ROLLCALL on " + url + "\n"
			if stderr.String() != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
			}
		})
	}
}
