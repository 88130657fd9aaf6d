package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

// TestSecretsNeverShow: whatever form the config gives the NATS credentials in, and
// whether the server takes them, refuses them or is not there at all, no secret shows
// in what `run` logs, nor in what `check -online`, `tail`, `tracked`, `who` and `track`
// print or return.
func TestSecretsNeverShow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker against a dozen servers")
	}
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s1", "r1")
	join(api, "s1", "a")
	srv := httptest.NewServer(api)
	defer srv.Close()
	pki := natstest.NewPKI(t, t.TempDir())
	// Every secret below holds one of these, so that looking for it finds them all.
	const right, wrong = "Right-Secret-7q", "Wrong-Secret-3x"

	user := func(o *server.Options, password string) { o.Username, o.Password = "rollcall", password }
	token := func(o *server.Options, token string) { o.Authorization = token }
	forms := []struct {
		name string
		// serve sets the server up to take secret; secret(s) is the credential made of
		// the test's secret s (s itself by default).
		serve  func(o *server.Options, secret string)
		secret func(s string) string
		// url and nats are nats.url and more [nats] keys, where {secret} is the secret
		// (as written in a URL, in url) and {host} the server's host:port.
		url, nats string
		ws        bool // host:port is the server's websocket listener
	}{
		{name: "nats://user:password@host", serve: user, url: "nats://rollcall:{secret}@{host}"},
		{name: "user:password@host, no scheme", serve: user, url: "rollcall:{secret}@{host}"},
		{name: "nats://token@host", serve: token, url: "nats://{secret}@{host}"},
		{name: "token@host, no scheme", serve: token, url: "{secret}@{host}"},
		{name: "tls://user:password@host", serve: func(o *server.Options, pw string) { user(o, pw); pki.Serve(t, o, false) },
			url: "tls://rollcall:{secret}@{host}", nats: fmt.Sprintf("tls_ca = %q", pki.CA)},
		{name: "ws://user:password@host", serve: user, url: "ws://rollcall:{secret}@{host}", ws: true},
		{name: "several URLs, with spaces", serve: user, url: " nats://rollcall:{secret}@{host} ,  rollcall:{secret}@" + testkit.FreeAddr(t) + " "},
		{name: "a password with @, / and %, percent-encoded", serve: user, secret: func(s string) string { return s + "@/%:x" },
			url: "nats://rollcall:{secret}@{host}"},
		{name: "nats.user and nats.password", serve: user, url: "nats://{host}", nats: "user = \"rollcall\"\npassword = \"{secret}\""},
		{name: "nats.token", serve: token, url: "{host}", nats: "token = \"{secret}\""},
	}
	cases := []struct {
		name   string
		secret string // in the config; the server takes right
		down   bool   // no server there
	}{
		{name: "the server takes it", secret: right},
		{name: "the server refuses it", secret: wrong},
		{name: "no server there", secret: right, down: true},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			credential := func(s string) string {
				if f.secret == nil {
					return s
				}
				return f.secret(s)
			}
			ns := natstest.StartWith(t, func(o *server.Options) {
				f.serve(o, credential(right))
				if f.ws {
					o.Websocket = server.WebsocketOpts{Host: "127.0.0.1", Port: -1, NoTLS: true}
				}
			})
			addr := ns.Addr().String()
			if f.ws {
				addr = strings.TrimPrefix(ns.WebsocketURL(), "ws://")
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					host := addr
					if c.down {
						host = testkit.FreeAddr(t)
					}
					secret := credential(c.secret)
					inURL := strings.TrimPrefix(url.UserPassword("", secret).String(), ":")
					dir := t.TempDir()
					config := filepath.Join(dir, "config.toml")
					cfg := fmt.Sprintf("[videosdk]\nbase_url = %q\napi_key = %q\n[poll]\nschedule = \"@every 1s\"\n[[sessions]]\nid = \"s1\"\n"+
						"[nats]\nurl = %q\n%s\n[http]\nlisten = \"\"\n",
						srv.URL, testKey, strings.NewReplacer("{secret}", inURL, "{host}", host).Replace(f.url), strings.ReplaceAll(f.nats, "{secret}", secret))
					if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
						t.Fatal(err)
					}
					out := secretsRun(t, config, c.secret == right && !c.down)
					for _, s := range []string{right, wrong, testSecret} {
						if strings.Contains(out, s) {
							t.Errorf("a secret (%s) shows:\n%s", s, out)
						}
					}
				})
			}
		})
	}
}

// secretsRun runs `rollcall run` with config until it connects (ok) or says why it
// cannot, and the commands that read NATS meanwhile, and returns all they printed
// and returned.
func secretsRun(t *testing.T, config string, ok bool) string {
	t.Helper()
	env := func(k string) string { return map[string]string{"VIDEOSDK_SECRET": testSecret}[k] }
	var all strings.Builder
	rollcall := func(ctx context.Context, args ...string) (string, error) {
		var out testkit.Buffer
		err := run(ctx, append(args, "-config", config), &out, &out, env)
		fmt.Fprintf(&all, "$ rollcall %s\n%s", strings.Join(args, " "), out.String())
		if err != nil {
			fmt.Fprintf(&all, "error: %v\n", err)
		}
		return out.String(), err
	}

	var logs testkit.Buffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"run", "-config", config}, &logs, &logs, env) }()
	stopRun := sync.OnceValue(func() error { stop(); return <-done })
	defer func() { _ = stopRun() }() // for an early end: otherwise its error is in the transcript below
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the worker's log:\n%s", logs.String())
		}
	})
	want := "cannot reach NATS"
	if ok {
		want = "msg=polling"
	}
	testkit.Eventually(t, 20*time.Second, want, func() bool { return strings.Contains(logs.String(), want) })

	out, err := rollcall(context.Background(), "check", "-online")
	if ok != (err == nil) || !strings.Contains(out, "NATS at ") {
		t.Errorf("check -online: %v\n%s", err, out)
	}
	tailCtx, stopTail := context.WithTimeout(context.Background(), 20*time.Second)
	defer stopTail()
	var tailed testkit.Buffer
	tailDone := make(chan error, 1)
	go func() { tailDone <- run(tailCtx, []string{"tail", "-all", "-config", config}, &tailed, &tailed, env) }()
	if ok {
		testkit.Eventually(t, 20*time.Second, "tail shows a joined", func() bool { return strings.Contains(tailed.String(), "joined") })
		stopTail()
	}
	err = <-tailDone
	fmt.Fprintf(&all, "$ rollcall tail -all\n%s", tailed.String())
	if err != nil {
		fmt.Fprintf(&all, "error: %v\n", err)
	}
	if ok != (err == nil) {
		t.Errorf("tail: %v\n%s", err, tailed.String())
	}
	if out, err := rollcall(context.Background(), "tracked"); ok != (err == nil) || (ok && !strings.Contains(out, "s1")) {
		t.Errorf("tracked: %v\n%s", err, out)
	}
	_, _ = rollcall(context.Background(), "who", "s1") // in the transcript, unchecked: its answer depends on the first poll's timing
	if out, err := rollcall(context.Background(), "track", "session", "s2"); ok != (err == nil) {
		t.Errorf("track: %v\n%s", err, out)
	}
	if err := stopRun(); err != nil {
		fmt.Fprintf(&all, "run: %v\n", err)
	}
	return "$ rollcall run\n" + logs.String() + all.String()
}

// TestTailBadURL: a NATS URL that is not one, from -nats or NATS_URL, is refused
// before nats.go sees it (its parse errors quote the URL), and shows nothing of it.
func TestTailBadURL(t *testing.T) {
	const secret = "tail-secret-9"
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"-nats", []string{"tail", "-nats", "nats://rollcall:" + secret}, nil},
		{"NATS_URL", []string{"tail"}, map[string]string{"NATS_URL": "nats://rollcall:" + secret + "@host:bad"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out testkit.Buffer
			err := run(context.Background(), tt.args, &out, &out, func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), "must be a nats://") || strings.Contains(err.Error()+out.String(), secret) {
				t.Errorf("tail: %v\n%s", err, out.String())
			}
		})
	}
}
