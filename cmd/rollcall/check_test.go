package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

// TestCheck: `rollcall check` validates as run does, prints the config with its
// secrets redacted, and with -online says, a line per check, what the API and NATS
// answer; any failed check is a non-zero exit. A room the API lists no session of
// (nosuchroom: the API does not know it) is a warning, not a failure. One session a
// page, the newest ended: r1's count is of every page, not only of the live ones.
func TestCheck(t *testing.T) {
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s1", "r1")
	api.StartSession("s0", "r1")
	api.EndSession("s0")
	srv := httptest.NewServer(api)
	defer srv.Close()
	ns := natstest.Start(t)
	stopped := testkit.FreeAddr(t) // nothing listens there
	tests := []struct {
		name    string
		secret  string
		nats    string
		extra   string // more [nats] keys
		online  bool
		wantErr string
		want    []string
		notWant []string
	}{
		{name: "a good config", secret: testSecret, nats: ns.ClientURL(), extra: "user = \"u\"\npassword = \"pw-9\"\n",
			want:    []string{"is valid", `secret = "REDACTED"`, `password = "REDACTED"`, "[webhook]\n  listen = \"\"\n  path = \"/webhook\"\n  public_key_file = \"\"\n  follow_rooms = false\n"},
			notWant: []string{testSecret, "pw-9"}},
		{name: "online: everything answers", secret: testSecret, nats: ns.ClientURL(), online: true,
			want: []string{"✓ mint an API token", "✓ the API lists 2 sessions of room r1 (1 ongoing)\n",
				"! the API lists no session of room nosuchroom: a mistyped ID, or a room nobody has met in yet (the API lists none for a room it does not know)\n",
				"✓ the API answers for session s1", "- stream ROLLCALL is missing: `run` creates it"}},
		{name: "online: NATS stopped", secret: testSecret, nats: "nats://" + stopped, online: true, wantErr: "1 check failed",
			want: []string{"✗ NATS at nats://" + stopped + " and its stream and buckets: connection refused"}},
		{name: "online: the API rejects the key", secret: "not the secret", nats: ns.ClientURL(), online: true, wantErr: "3 checks failed",
			want: []string{"✗ the API lists the sessions of room r1: get /v2/sessions/: the API rejects the credentials"}, notWant: []string{"not the secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			cfg := fmt.Sprintf("[videosdk]\nbase_url = %q\napi_key = %q\nsecret = %q\nper_page = 1\n[[rooms]]\nid = \"r1\"\n[[rooms]]\nid = \"nosuchroom\"\n[[sessions]]\nid = \"s1\"\n[nats]\nurl = %q\n%s",
				srv.URL, testKey, tt.secret, tt.nats, tt.extra)
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"check", "-config", path}
			if tt.online {
				args = append(args, "-online")
			}
			var out testkit.Buffer
			err := run(context.Background(), args, &out, &out, func(string) string { return "" })
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("check: %v, want error %q\n%s", err, tt.wantErr, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output shows %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("a bad config", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(path, []byte("[videosdk]\ntoken = \"t\"\ncolour = \"red\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(context.Background(), []string{"check", "-config", path}, &testkit.Buffer{}, &testkit.Buffer{}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), `unknown key "videosdk.colour"`) {
			t.Errorf("check of a bad config: %v", err)
		}
	})
}

// TestHealthcheck: `rollcall healthcheck` asks the running worker's /healthz (and
// /readyz with -ready), and fails when nothing answers.
func TestHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker")
	}
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s1", "room-1")
	srv := httptest.NewServer(api)
	defer srv.Close()
	addr := testkit.FreeAddr(t)
	dir := t.TempDir()
	config, _ := runEmbedded(t, dir, srv.URL, "[[sessions]]\nid = \"s1\"", addr)
	healthcheck := func(args ...string) (string, error) {
		var out testkit.Buffer
		err := run(context.Background(), append([]string{"healthcheck", "-config", config}, args...), &out, &out, func(string) string { return "" })
		return out.String(), err
	}
	eventually(t, "healthy", func() bool { _, err := healthcheck(); return err == nil })
	eventually(t, "ready", func() bool { _, err := healthcheck("-ready"); return err == nil })
	idle := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(idle, []byte(fmt.Sprintf("[http]\nlisten = %q\n", testkit.FreeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"healthcheck", "-config", idle}, &testkit.Buffer{}, &testkit.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("healthcheck with no worker: %v, want connection refused", err)
	}
}
