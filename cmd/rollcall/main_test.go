package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rollcall/rollcall/internal/testkit"
)

func TestRunBadConfigNamesTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[videosdk]\ntoken = \"t\"\ncolour = \"blue\"\n[[sessions]]\nid = \"s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"run", "-config", path}, &stderr, &stderr, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), `unknown key "videosdk.colour"`) {
		t.Fatalf("run with a bad config: %v, want an error naming videosdk.colour", err)
	}
}

func TestTokenCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[[sessions]]\nid = \"s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VIDEOSDK_API_KEY": "key", "VIDEOSDK_SECRET": "secret"}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-config", path}, &out, &out, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimSpace(out.String()), claims, func(*jwt.Token) (any, error) { return []byte("secret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token %q: %v", out.String(), err)
	}
	if claims["apikey"] != "key" {
		t.Errorf("apikey claim %v, want key", claims["apikey"])
	}
}

// TestDemo runs the demo briefly: it must show joins in readable lines on its own,
// after the presence page's URL, first, which shows the live sessions.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for seconds")
	}
	home := t.TempDir() // where the demo leaves its config and log
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	var out, errs testkit.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"demo", "-for", "20s"}, &out, &errs, os.Getenv) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "  joined   ") {
		if time.Now().After(deadline) {
			t.Fatalf("no joined line within 20s:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	page, ok := strings.CutPrefix(first, "Who is here, live: ")
	page, _, _ = strings.Cut(page, " ")
	if !ok || !strings.HasPrefix(page, "http://127.0.0.1:") {
		t.Errorf("the first line is not the presence page's URL: %q", first)
	} else if code, body := get(t, strings.Trim(strings.TrimPrefix(page, "http://"), "/"), "/"); code != 200 || !strings.Contains(body, `data-session-id="`) {
		t.Errorf("GET %s: %d, no live session:\n%s", page, code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v\n%s", err, errs.String())
	}
	if strings.Contains(out.String(), "level=") {
		t.Errorf("the worker's log in the feed:\n%s", out.String())
	}
}

// TestDemoLogCounted: the worker's lines go to the demo's log, not the feed; the feed
// says how many came, at most once every ten seconds, and nothing when none did.
func TestDemoLogCounted(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		var file, out testkit.Buffer
		l := &demoLog{Writer: &file}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go l.count(ctx, 10*time.Second, "demo.log", &out)
		fmt.Fprintln(l, "level=WARN msg=a")
		fmt.Fprintln(l, "level=WARN msg=b")
		time.Sleep(25 * time.Second)
		fmt.Fprintln(l, "level=ERROR msg=c")
		time.Sleep(10 * time.Second)
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		want := []string{"  (the worker logged 2 more warnings or errors: see demo.log)", "  (the worker logged 1 more warning or error: see demo.log)"}
		if len(lines) != len(want) || !strings.HasSuffix(lines[0], want[0]) || !strings.HasSuffix(lines[1], want[1]) {
			t.Errorf("the feed says:\n%s\nwant lines ending:\n%s", out.String(), strings.Join(want, "\n"))
		}
		if n := strings.Count(file.String(), "level="); n != 3 {
			t.Errorf("%d lines in the log, want 3", n)
		}
	})
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out, os.Getenv); err != nil || !strings.HasPrefix(out.String(), "rollcall ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}

// TestTokenCommandWithoutConfig: with no config.toml where it looks by default, the
// environment's key and secret are enough.
func TestTokenCommandWithoutConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	env := map[string]string{"VIDEOSDK_API_KEY": "key", "VIDEOSDK_SECRET": "secret"}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token"}, &out, &out, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(out.String()), "."); n != 2 {
		t.Errorf("token %q is not a JWT", out.String())
	}
	if err := run(context.Background(), []string{"token"}, &out, &out, func(string) string { return "" }); err == nil {
		t.Error("token with no config and no credentials succeeded")
	}
}

// TestTrackRefusesAnIDTooLong: an ID rollcall could not follow (it would not fit a
// subject) is refused before anything is asked of NATS, with the reason.
func TestTrackRefusesAnIDTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[nats]\nstore_dir = \""+filepath.Dir(path)+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"track", "untrack"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{cmd, "session", strings.Repeat("s", 300), "-config", path}, &out, &out, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "300 bytes, more than 256") {
			t.Errorf("%s: %v, want the ID refused as too long", cmd, err)
		}
	}
}
