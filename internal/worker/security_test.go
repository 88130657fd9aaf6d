package worker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

const (
	secKey    = "security-key"
	secSecret = "security-secret"
)

// TestNATSSecurity: against real servers that require each kind of credential, and
// TLS with and without client certificates, the worker connects with nats.go's own
// options and publishes.
func TestNATSSecurity(t *testing.T) {
	dir := t.TempDir()
	pki := natstest.NewPKI(t, dir)
	tests := []struct {
		name   string
		server func(*server.Options)
		client func(*NATS)
	}{
		{"user and password", func(o *server.Options) { o.Username, o.Password = "rollcall", "pw-1" },
			func(n *NATS) { n.User, n.Password = "rollcall", "pw-1" }},
		{"a user with no more permissions than docs/operations.md lists", func(o *server.Options) {
			o.Users = []*server.User{{Username: "rollcall", Password: "pw-1", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{"videosdk.>", "$JS.API.>", "$KV.ROLLCALL_STATE.>", "$KV.ROLLCALL_TRACKING.>",
					"$KV.ROLLCALL_LEASES.>", "_rollcall.ROLLCALL.>", "_INBOX.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "_rollcall.ROLLCALL.>"}},
			}}}
		}, func(n *NATS) { n.User, n.Password = "rollcall", "pw-1" }},
		{"token", func(o *server.Options) { o.Authorization = "tok-1" },
			func(n *NATS) { n.Token = "tok-1" }},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nkeyUser(t, dir)}} },
			func(n *NATS) { n.NKeySeed = filepath.Join(dir, "user.nk") }},
		{"creds", func(o *server.Options) { operatorMode(t, o, dir) },
			func(n *NATS) { n.Creds = filepath.Join(dir, "user.creds") }},
		{"TLS, the server verified", func(o *server.Options) { pki.Serve(t, o, false) },
			func(n *NATS) { n.TLSCA = pki.CA }},
		{"mutual TLS", func(o *server.Options) { pki.Serve(t, o, true) },
			func(n *NATS) { n.TLSCA, n.TLSCert, n.TLSKey = pki.CA, pki.ClientCert, pki.ClientKey }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.StartWith(t, tt.server)
			cfg := securityConfig(t, ns.ClientURL())
			tt.client(&cfg.NATS)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			auth, err := AuthOptions(cfg.NATS)
			if err != nil {
				t.Fatal(err)
			}
			js := natstest.JetStream(t, ns.ClientURL(), auth...)
			// In operator mode the account's JetStream comes up a moment after the
			// server: a worker started before would fail to create its stream.
			eventually(t, "JetStream for the account", func() bool {
				_, err := js.AccountInfo(context.Background())
				return err == nil
			})
			var logs testkit.Buffer
			stop := runWorker(t, cfg, &logs)
			defer stop()
			eventually(t, "session.started and a joined in the stream", func() bool {
				return len(natstest.Messages(t, js, "ROLLCALL")) == 2
			})
			if strings.Contains(logs.String(), "NATS denies") {
				t.Error("a permission denied")
			}
		})
	}
}

// TestNATSWrongPassword: a wrong password at start-up is one clear line naming what
// to check, never the password; the worker is not ready, and it connects by itself,
// without a restart, once the server accepts the password.
func TestNATSWrongPassword(t *testing.T) {
	var opts *server.Options
	ns := natstest.StartWith(t, func(o *server.Options) {
		o.Username, o.Password = "rollcall", "right-password"
		opts = o
	})
	cfg := securityConfig(t, ns.ClientURL())
	cfg.NATS.User, cfg.NATS.Password = "rollcall", "wrong-password"
	cfg.HTTP.Listen = testkit.FreeAddr(t)
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	eventually(t, "the cause logged", func() bool {
		return strings.Contains(logs.String(), "authorization refused: check nats.user and nats.password (NATS_USER, NATS_PASSWORD)")
	})
	// While it waits for NATS at start-up, it is alive and says why it is not ready.
	if code, body := httpGet(t, cfg.HTTP.Listen, "/healthz"); code != 200 {
		t.Errorf("/healthz while waiting for NATS: %d %s", code, body)
	}
	if code, body := httpGet(t, cfg.HTTP.Listen, "/readyz"); code != 503 || !strings.Contains(body, `"nats":"not connected: authorization refused`) {
		t.Errorf("/readyz while waiting for NATS: %d %s", code, body)
	}
	if code, body := httpGet(t, cfg.HTTP.Listen, "/events"); code != 503 {
		t.Errorf("/events while waiting for NATS: %d %s", code, body)
	}
	time.Sleep(2 * time.Second) // two more refusals, which must not be logged again
	if n := strings.Count(logs.String(), "cannot reach NATS"); n != 1 {
		t.Errorf("%d lines about the refusal, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "wrong-password") {
		t.Error("the log shows the password")
	}
	reload := *opts
	reload.Password = "wrong-password" // the operator fixes the server's side
	if err := ns.ReloadOptions(&reload); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected once the server accepts it", func() bool { return strings.Contains(logs.String(), "connected to NATS") })
}

// httpGet fetches http://addr+path; code 0 if nothing answered.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// securityConfig is a valid config for a worker on nats url, polling a simulator with
// one session that one participant is in.
func securityConfig(t *testing.T, url string) Config {
	t.Helper()
	api := sim.New(sim.Config{APIKey: secKey, Secret: secSecret})
	api.StartSession("s1", "r1")
	api.Join("s1", "a", "name-a")
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg := Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = srv.URL, secKey, secSecret
	cfg.Poll.Schedule = "@every 1s"
	cfg.Sessions = []Session{{ID: "s1"}}
	cfg.NATS.URL = url
	cfg.HTTP.Listen = ""
	return cfg
}

// runWorker runs a worker with cfg until the returned stop is called.
func runWorker(t *testing.T, cfg Config, logs *testkit.Buffer) (stop func()) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the worker's log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		w, err := New(ctx, cfg, NewLogger(logs, Log{Level: "info", Format: "text"}))
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("worker.New: %v", err) // said now: the test may wait a while first
			}
			done <- nil
			return
		}
		defer w.Close()
		done <- w.Run(ctx)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("worker: %v", err)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, what, cond)
}

// nkeyUser writes an NKey user seed to dir/user.nk and returns its public key.
func nkeyUser(t *testing.T, dir string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.WriteFile(filepath.Join(dir, "user.nk"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub
}

// operatorMode sets o up as a server of an operator whose account may use JetStream,
// and writes a user's credentials of that account to dir/user.creds.
func operatorMode(t *testing.T, o *server.Options, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	resolver := &server.MemAccResolver{}
	account := func(js bool) (nkeys.KeyPair, string) {
		akp, err := nkeys.CreateAccount()
		must(err)
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		must(err)
		must(resolver.Store(apub, ajwt))
		return akp, apub
	}
	_, sys := account(false)
	akp, _ := account(true)
	ukp, err := nkeys.CreateUser()
	must(err)
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	must(err)
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	must(err)
	must(os.WriteFile(filepath.Join(dir, "user.creds"), creds, 0o600))
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.AccountResolver = resolver
	o.SystemAccount = sys
}

// TestNATSUserRemovedMidRun: the worker's user is removed from the server mid-run,
// then restored. The refusal is logged once, the worker is not ready meanwhile, and it
// recovers by itself: no loop of "connection closed", no restart needed.
//
// The user is removed as a reload that drops it would: the server refuses it from
// then on, and closes its connections. Not with ReloadOptions itself: nats-server
// v2.15.2 reads its options unlocked in every direct get (the worker's KV reads),
// and the race detector fails the test on a reload that comes during one.
func TestNATSUserRemovedMidRun(t *testing.T) {
	users := &switchableUser{username: "rollcall", password: "pw"}
	users.allowed.Store(true)
	ns := natstest.StartWith(t, func(o *server.Options) { o.CustomClientAuthentication = users })
	cfg := securityConfig(t, ns.ClientURL())
	cfg.NATS.User, cfg.NATS.Password = "rollcall", "pw"
	cfg.HTTP.Listen = testkit.FreeAddr(t)
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	ready := func() bool { code, _ := httpGet(t, cfg.HTTP.Listen, "/readyz"); return code == 200 }
	eventually(t, "ready", ready)

	users.allowed.Store(false)
	connz, err := ns.Connz(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range connz.Conns {
		if err := ns.DisconnectClientByID(c.Cid); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the refusal logged", func() bool { return strings.Contains(logs.String(), "authorization refused") })
	eventually(t, "not ready", func() bool { return !ready() })
	time.Sleep(2 * time.Second)
	users.allowed.Store(true)
	eventually(t, "ready again", ready)
	if n := strings.Count(logs.String(), "cannot reach NATS"); n != 1 {
		t.Errorf("%d lines about the refusal, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "connection closed"); n > 0 {
		t.Errorf("%d lines say the connection is closed:\n%s", n, logs.String())
	}
}

// switchableUser lets one user in while allowed.
type switchableUser struct {
	username, password string
	allowed            atomic.Bool
}

func (u *switchableUser) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	return u.allowed.Load() && o.Username == u.username && o.Password == u.password
}

// TestNATSPermissionDenied: a server that denies the worker's user a permission it
// needs is logged as a denial naming the permission, never as NATS out of reach.
func TestNATSPermissionDenied(t *testing.T) {
	tests := []struct {
		name   string
		denied server.Permissions
		want   string // in the log
	}{
		{"publishing events", server.Permissions{Publish: &server.SubjectPermission{Deny: []string{"videosdk.>"}}},
			`denied="publish to \"videosdk.session.started.r1.s1\""`},
		{"creating the stream", server.Permissions{Publish: &server.SubjectPermission{Deny: []string{"$JS.API.STREAM.CREATE.>"}}},
			`denied="publish to \"$JS.API.STREAM.CREATE.ROLLCALL\""`},
		{"subscribing to its status subject", server.Permissions{Subscribe: &server.SubjectPermission{Deny: []string{"_rollcall.>"}}},
			`denied="subscribe to \"_rollcall.ROLLCALL.tracked\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.StartWith(t, func(o *server.Options) {
				o.Users = []*server.User{{Username: "rollcall", Password: "pw", Permissions: &tt.denied}}
			})
			cfg := securityConfig(t, ns.ClientURL())
			cfg.NATS.User, cfg.NATS.Password = "rollcall", "pw"
			var logs testkit.Buffer
			stop := runWorker(t, cfg, &logs)
			defer stop()
			eventually(t, "the denial logged", func() bool {
				return strings.Contains(logs.String(), "NATS denies a permission") && strings.Contains(logs.String(), tt.want)
			})
			if strings.Contains(logs.String(), "cannot reach NATS") {
				t.Error("a denial logged as NATS out of reach")
			}
		})
	}
}
