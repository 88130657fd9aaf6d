package webhook

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/internal/testkit"
)

// newKey is a fresh RSA key of VideoSDK's size.
func newKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign is the videosdk-signature of body with key.
func sign(t testing.TB, key *rsa.PrivateKey, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func pemPKIX(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func pemPKCS1(key *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}))
}

// joined is a participant-joined webhook as VideoSDK's docs show it.
func joined(room, session, participant string) []byte {
	return fmt.Appendf(nil, `{"webhookType":"participant-joined","data":{"meetingId":%q,"sessionId":%q,"participantId":%q,"participantName":"Ada"}}`,
		room, session, participant)
}

// keyServer serves a public key as VideoSDK's key URL would, counting the fetches.
type keyServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    string
	status  int
	delay   time.Duration
	fetches atomic.Int32
}

func newKeyServer(t testing.TB, body string) *keyServer {
	t.Helper()
	ks := &keyServer{body: body, status: http.StatusOK}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		if r.URL.Path != KeyPath || r.Method != http.MethodGet || r.Header.Get("Authorization") != "" {
			t.Errorf("key fetched with %s %s, Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		ks.mu.Lock()
		body, status, delay := ks.body, ks.status, ks.delay
		ks.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(body string, status int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body, ks.status = body, status
}

// slow makes each answer wait d.
func (ks *keyServer) slow(d time.Duration) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.delay = d
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rig is a Receiver served over HTTP, with the hints it handed on and its metrics.
type rig struct {
	url   string
	reg   *prometheus.Registry
	logs  *testkit.Buffer
	mu    sync.Mutex
	hints []Hint
}

// newRig serves a Receiver of cfg (Path, Hint, Log and Metrics filled in).
func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}}
	cfg.Path = "/webhook"
	cfg.Hint = func(h Hint) { r.mu.Lock(); r.hints = append(r.hints, h); r.mu.Unlock() }
	cfg.Log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Metrics = metrics.New(r.reg)
	recv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/webhook"
	return r
}

// post sends body with signature sig ("" for none) and returns the status.
func (r *rig) post(t testing.TB, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (r *rig) handed() []Hint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Hint(nil), r.hints...)
}

// counts is rollcall_webhooks_total by result, as /metrics would show it.
func (r *rig) counts() map[string]int {
	families, err := r.reg.Gather()
	if err != nil {
		panic(err)
	}
	out := make(map[string]int)
	for _, f := range families {
		if f.GetName() != "rollcall_webhooks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = int(m.GetCounter().GetValue())
		}
	}
	return out
}

// TestAnswers: each answer of the receiver, and its count. Only a verified webhook
// of a type that hints reaches the callback; the body is checked before the
// signature, so that a malformed one is a 400 signed or not.
func TestAnswers(t *testing.T) {
	key, other := newKey(t), newKey(t)
	good := joined("r1", "s1", "p1")
	long := strings.Repeat("x", 257)
	tests := []struct {
		name    string
		method  string
		path    string
		body    []byte
		sig     string // "good": good signed with key
		want    int
		result  string // "" for none counted
		hint    bool
		allowed string // the Allow header wanted
	}{
		{name: "verified", body: good, sig: "good", want: 204, result: metrics.WebhookVerified, hint: true},
		{name: "verified, of a type rollcall does not use", body: []byte(`{"webhookType":"recording-started","data":{"meetingId":7}}`),
			sig: "good", want: 204, result: metrics.WebhookVerified},
		{name: "session-ended, verified", body: []byte(`{"webhookType":"session-ended","data":{"meetingId":"r1","sessionId":"s1","start":"x","end":"y"}}`),
			sig: "good", want: 204, result: metrics.WebhookVerified, hint: true},
		{name: "no signature", body: good, want: 401, result: metrics.WebhookRejected},
		{name: "signature not base64", body: good, sig: "%%%", want: 401, result: metrics.WebhookRejected},
		{name: "signed by another key", body: good, sig: sign(t, other, good), want: 401, result: metrics.WebhookRejected},
		{name: "signature of another body", body: good, sig: sign(t, key, joined("r1", "s1", "p2")), want: 401, result: metrics.WebhookRejected},
		{name: "GET", method: http.MethodGet, want: 405, result: metrics.WebhookMalformed, allowed: "POST"},
		{name: "PUT, signed", method: http.MethodPut, body: good, sig: "good", want: 405, result: metrics.WebhookMalformed, allowed: "POST"},
		{name: "another path", path: "/other", body: good, sig: "good", want: 404},
		{name: "over 64 KiB", body: append(append([]byte(`{"webhookType":"x","pad":"`), bytes.Repeat([]byte("a"), MaxBody)...), `"}`...),
			want: 413, result: metrics.WebhookMalformed},
		{name: "not JSON", body: []byte("hello"), want: 400, result: metrics.WebhookMalformed},
		{name: "empty", want: 400, result: metrics.WebhookMalformed},
		{name: "a JSON array", body: []byte(`[{"webhookType":"participant-joined"}]`), want: 400, result: metrics.WebhookMalformed},
		{name: "null", body: []byte(`null`), want: 400, result: metrics.WebhookMalformed},
		{name: "no webhookType", body: []byte(`{"data":{}}`), want: 400, result: metrics.WebhookMalformed},
		{name: "webhookType not a string", body: []byte(`{"webhookType":7}`), want: 400, result: metrics.WebhookMalformed},
		{name: "no data", body: []byte(`{"webhookType":"participant-left"}`), want: 400, result: metrics.WebhookMalformed},
		{name: "sessionId not a string", body: []byte(`{"webhookType":"participant-left","data":{"meetingId":"r1","sessionId":5}}`),
			want: 400, result: metrics.WebhookMalformed},
		{name: "no sessionId, signed", body: []byte(`{"webhookType":"session-started","data":{"meetingId":"r1"}}`), sig: "good",
			want: 400, result: metrics.WebhookMalformed},
		{name: "meetingId of 257 bytes, signed", body: joined(long, "s1", "p1"), sig: "good", want: 400, result: metrics.WebhookMalformed},
		{name: "participantId of 257 bytes, signed", body: joined("r1", "s1", long), sig: "good", want: 400, result: metrics.WebhookMalformed},
	}
	r := newRig(t, Config{Key: &key.PublicKey})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, hints := r.counts(), len(r.handed())
			sig := tt.sig
			if sig == "good" {
				sig = sign(t, key, tt.body)
			}
			url := r.url
			if tt.path != "" {
				url = strings.TrimSuffix(url, "/webhook") + tt.path
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, url, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if sig != "" {
				req.Header.Set(SignatureHeader, sig)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if got := resp.Header.Get("Allow"); got != tt.allowed {
				t.Errorf("Allow: %q, want %q", got, tt.allowed)
			}
			want := before
			if tt.result != "" {
				want = map[string]int{}
				for k, v := range before {
					want[k] = v
				}
				want[tt.result]++
			}
			if d := cmp.Diff(want, r.counts()); d != "" {
				t.Errorf("rollcall_webhooks_total (-want +got):\n%s", d)
			}
			wantHints := hints
			if tt.hint {
				wantHints++
			}
			if got := len(r.handed()); got != wantHints {
				t.Errorf("%d hints handed on, want %d", got-hints, wantHints-hints)
			}
		})
	}
	want := []Hint{{Type: "participant-joined", RoomID: "r1", SessionID: "s1", ParticipantID: "p1"}, {Type: "session-ended", RoomID: "r1", SessionID: "s1"}}
	if d := cmp.Diff(want, r.handed()); d != "" {
		t.Errorf("hints (-want +got):\n%s", d)
	}
}

// TestKeyFormats: the fetched key is read in each shape VideoSDK's documentation and
// public code show: PKIX and PKCS#1 PEM, bare and wrapped in {"publicKey": …}, with
// real line breaks or \n escaped once more; the pinned key from a file the same.
func TestKeyFormats(t *testing.T) {
	key := newKey(t)
	escaped, _ := json.Marshal(map[string]string{"publicKey": strings.ReplaceAll(pemPKIX(t, key), "\n", `\n`)})
	wrap := func(p string) string { b, _ := json.Marshal(map[string]string{"publicKey": p}); return string(b) }
	for _, tt := range []struct{ name, body string }{
		{"PKIX, bare", pemPKIX(t, key)},
		{"PKCS#1, bare", pemPKCS1(key)},
		{"PKIX, in JSON", wrap(pemPKIX(t, key))},
		{"PKCS#1, in JSON", wrap(pemPKCS1(key))},
		{"PKIX, in JSON with literal \\n", string(escaped)},
		{"PKCS#1, bare, on one line with literal \\n", strings.ReplaceAll(pemPKCS1(key), "\n", `\n`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ks := newKeyServer(t, tt.body)
			r := newRig(t, Config{KeyURL: ks.URL + KeyPath})
			body := joined("r1", "s1", "p1")
			if got := r.post(t, body, sign(t, key, body)); got != 204 {
				t.Errorf("status %d, want 204; log:\n%s", got, r.logs.String())
			}
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			pinned, err := ReadKeyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !pinned.Equal(&key.PublicKey) {
				t.Error("ReadKeyFile read another key")
			}
		})
	}
}

// TestParseKeyErrors: what is not an RSA public key says what it is instead.
func TestParseKeyErrors(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tt := range []struct{ name, body, want string }{
		{"empty", "", "no PEM block"},
		{"not PEM", "hello", "no PEM block"},
		{"JSON without publicKey", `{"key":"x"}`, "a JSON object without publicKey"},
		{"JSON, publicKey not a string", `{"publicKey":7}`, "not a JSON object with a string publicKey"},
		{"a private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), `a PEM block of type "PRIVATE KEY"`},
		{"an EC key", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "PUBLIC KEY: a *ecdsa.PublicKey, not an RSA key"},
		{"a broken PKCS#1 key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{1, 2}})), "RSA PUBLIC KEY: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseKey([]byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseKey: %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("ReadKeyFile of a missing file: %v, want an error naming it", err)
	}
}

// TestCompactForm: a webhook whose signature is over its compact JSON (as VideoSDK's
// Node sample, JSON.stringify of the parsed body) verifies however it is spaced.
func TestCompactForm(t *testing.T) {
	key := newKey(t)
	r := newRig(t, Config{Key: &key.PublicKey})
	compact := joined("r1", "s1", "p1")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	if got := r.post(t, pretty.Bytes(), sign(t, key, compact)); got != 204 {
		t.Errorf("pretty body signed in compact form: %d, want 204", got)
	}
	if got := r.post(t, pretty.Bytes(), sign(t, key, joined("r1", "s1", "p2"))); got != 401 {
		t.Errorf("pretty body, another body's compact signature: %d, want 401", got)
	}
	if n := len(r.handed()); n != 1 {
		t.Errorf("%d hints, want 1", n)
	}
}

// TestKeyRotation: the key is fetched at the first webhook and cached. When VideoSDK
// rotates it, a webhook signed with the new key fetches it again (if the last fetch
// is a minute old) and verifies; within the minute it is a 401, and the old key no
// longer verifies once the new one is fetched.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	ks := newKeyServer(t, pemPKIX(t, oldKey))
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	r := newRig(t, Config{KeyURL: ks.URL + KeyPath, Now: clk.Now})
	body := joined("r1", "s1", "p1")
	step := func(what string, key *rsa.PrivateKey, want int, fetches int32) {
		t.Helper()
		if got := r.post(t, body, sign(t, key, body)); got != want {
			t.Errorf("%s: status %d, want %d", what, got, want)
		}
		if got := ks.fetches.Load(); got != fetches {
			t.Errorf("%s: %d fetches in all, want %d", what, got, fetches)
		}
	}
	step("the first webhook", oldKey, 204, 1)
	step("the next", oldKey, 204, 1)
	ks.set(pemPKCS1(newKey), http.StatusOK) // rotated
	clk.Add(30 * time.Second)
	step("the new key, 30 s after the last fetch", newKey, 401, 1)
	clk.Add(30 * time.Second)
	step("the new key, a minute after it", newKey, 204, 2)
	step("the new key again", newKey, 204, 2)
	step("the old key", oldKey, 401, 2)
	if !strings.Contains(r.logs.String(), "public key changed") {
		t.Errorf("the rotation is not logged:\n%s", r.logs.String())
	}
}

// TestFlood: a flood of badly signed webhooks fetches the key at most once a minute,
// however many come and however many at once; concurrent requests share one fetch.
func TestFlood(t *testing.T) {
	key, forger := newKey(t), newKey(t)
	ks := newKeyServer(t, pemPKIX(t, key))
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	r := newRig(t, Config{KeyURL: ks.URL + KeyPath, Now: clk.Now})
	body := joined("r1", "s1", "p1")
	forged := sign(t, forger, body)
	flood := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if got := r.post(t, body, forged); got != 401 {
					t.Errorf("forged: %d, want 401", got)
				}
			})
		}
		wg.Wait()
	}
	ks.slow(50 * time.Millisecond) // so that the first requests wait for one fetch together
	flood(100)
	if got := ks.fetches.Load(); got != 1 {
		t.Errorf("100 forged webhooks at start: %d fetches, want 1", got)
	}
	clk.Add(59 * time.Second)
	flood(100)
	if got := ks.fetches.Load(); got != 1 {
		t.Errorf("100 more within the minute: %d fetches in all, want 1", got)
	}
	clk.Add(time.Second)
	flood(100)
	if got := ks.fetches.Load(); got != 2 {
		t.Errorf("100 more a minute after the first fetch: %d fetches in all, want 2", got)
	}
	if n := len(r.handed()); n != 0 {
		t.Errorf("%d hints from forged webhooks", n)
	}
	if c := r.counts(); c[metrics.WebhookRejected] != 300 {
		t.Errorf("counts %v, want 300 rejected", c)
	}
}

// TestKeyFetchFails: while the key cannot be fetched, webhooks are answered 401, the
// failure is logged once (not per webhook, nor per fetch), and the key is asked for
// again at most once a minute; once it answers, webhooks verify.
func TestKeyFetchFails(t *testing.T) {
	key := newKey(t)
	ks := newKeyServer(t, "")
	ks.set("down for maintenance", http.StatusServiceUnavailable)
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	r := newRig(t, Config{KeyURL: ks.URL + KeyPath, Now: clk.Now})
	body := joined("r1", "s1", "p1")
	sig := sign(t, key, body)
	for range 3 {
		if got := r.post(t, body, sig); got != 401 {
			t.Errorf("while the key cannot be fetched: %d, want 401", got)
		}
	}
	clk.Add(time.Minute)
	ks.set("<html>not a key</html>", http.StatusOK)
	if got := r.post(t, body, sig); got != 401 {
		t.Errorf("while the key URL answers no key: %d, want 401", got)
	}
	if got, logs := ks.fetches.Load(), r.logs.String(); got != 2 || strings.Count(logs, "cannot fetch VideoSDK's webhook public key") != 1 {
		t.Errorf("%d fetches, want 2, and one warning:\n%s", got, logs)
	}
	clk.Add(time.Minute)
	ks.set(pemPKIX(t, key), http.StatusOK)
	if got := r.post(t, body, sig); got != 204 {
		t.Errorf("once the key is there: %d, want 204", got)
	}
	if !strings.Contains(r.logs.String(), "fetched VideoSDK's webhook public key") {
		t.Errorf("the recovery is not logged:\n%s", r.logs.String())
	}
}

// TestConcurrent: verified, forged and malformed webhooks at once, from many clients,
// before the key is fetched: one fetch, every verified one handed on once, nothing
// else handed on.
func TestConcurrent(t *testing.T) {
	key, forger := newKey(t), newKey(t)
	ks := newKeyServer(t, pemPKIX(t, key))
	ks.slow(50 * time.Millisecond)
	r := newRig(t, Config{KeyURL: ks.URL + KeyPath})
	const clients, each = 20, 15
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				body := joined("r1", fmt.Sprintf("s%d-%d", c, i), "p1")
				var sig string
				want := 204
				switch i % 3 {
				case 0:
					sig = sign(t, key, body)
				case 1:
					sig, want = sign(t, forger, body), 401
				default:
					body, want = []byte(`{"webhookType":`), 400
				}
				if got := r.post(t, body, sig); got != want {
					t.Errorf("client %d, webhook %d: %d, want %d", c, i, got, want)
				}
			}
		})
	}
	wg.Wait()
	if got := ks.fetches.Load(); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
	seen := make(map[string]bool)
	for _, h := range r.handed() {
		if seen[h.SessionID] {
			t.Errorf("%s handed on twice", h.SessionID)
		}
		seen[h.SessionID] = true
	}
	if want := clients * each / 3; len(seen) != want {
		t.Errorf("%d hints, want %d", len(seen), want)
	}
	want := map[string]int{metrics.WebhookVerified: clients * each / 3, metrics.WebhookRejected: clients * each / 3, metrics.WebhookMalformed: clients * each / 3}
	if d := cmp.Diff(want, r.counts()); d != "" {
		t.Errorf("counts (-want +got):\n%s", d)
	}
}
