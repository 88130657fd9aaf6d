package worker

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
)

// TestPresencePageServed: http.listen serves the presence page at / (and only there:
// other paths are not swallowed by it), with who is present in the config's session
// and every followed room, the tracking bucket's included. HTTPAddr says where port 0
// landed.
func TestPresencePageServed(t *testing.T) {
	ns := natstest.Start(t)
	cfg := securityConfig(t, ns.ClientURL())
	cfg.Rooms = []Room{{ID: "r-config"}}
	cfg.HTTP.Listen = "127.0.0.1:0"
	js := natstest.JetStream(t, ns.ClientURL())
	tracking, err := publisher.OpenTracking(context.Background(), js, cfg.NATS.TrackingBucket, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := tracking.Track(context.Background(), "room", "r-bucket"); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	w, err := New(context.Background(), cfg, NewLogger(&logs, Log{Level: "info", Format: "text"}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := w.HTTPAddr()
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("HTTPAddr %q", addr)
	}
	var page string
	eventually(t, "the page shows a in s1", func() bool {
		code, body := httpGet(t, addr, "/")
		page = body
		return code == 200 && strings.Contains(body, `data-session-id="s1" data-room-id="r1"`) && strings.Contains(body, `data-participant-id="a"`)
	})
	for _, room := range []string{"r-config", "r-bucket", "r1"} {
		if !strings.Contains(page, `data-room="`+room+`"`) {
			t.Errorf("room %s not on the page:\n%s", room, page)
		}
	}
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 200, "/index.html": 404, "/favicon.ico": 404} {
		if code, body := httpGet(t, addr, path); code != want {
			t.Errorf("GET %s: %d, want %d: %.200s", path, code, want, body)
		}
	}
}
