package worker

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/internal/webhook"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

// signer signs webhooks as VideoSDK does, until the simulator does it itself.
type signer struct{ key *rsa.PrivateKey }

func newSigner(t testing.TB) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k}
}

func (s signer) sign(t testing.TB, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// pem is the public key as VideoSDK's key URL serves it.
func (s signer) pem(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// hookAPI serves a simulated API and, at webhook.KeyPath, a signer's public key,
// counting the API's requests and the key's fetches apart.
type hookAPI struct {
	*sim.Server
	url      string
	requests atomic.Int32
	fetches  atomic.Int32
}

func newHookAPI(t testing.TB, s signer) *hookAPI {
	t.Helper()
	a := &hookAPI{Server: sim.New(sim.Config{APIKey: secKey, Secret: secSecret})}
	key := s.pem(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == webhook.KeyPath {
			a.fetches.Add(1)
			_, _ = w.Write(key)
			return
		}
		a.requests.Add(1)
		a.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// webhookConfig is a valid config for a worker on nats url, polling api on a schedule
// so long that only a hint makes it poll again, and receiving webhooks.
func webhookConfig(t testing.TB, api *hookAPI, url string) Config {
	t.Helper()
	cfg := Default()
	cfg.VideoSDK.BaseURL, cfg.VideoSDK.APIKey, cfg.VideoSDK.Secret = api.url, secKey, secSecret
	cfg.Poll.Schedule, cfg.Poll.ReconcileSchedule = "@every 1h", "@every 1h"
	cfg.NATS.URL, cfg.HTTP.Listen = url, ""
	cfg.Webhook.Listen = testkit.FreeAddr(t)
	return cfg
}

// joinedHook is a participant-joined webhook as VideoSDK's docs show it.
func joinedHook(room, session, participant string) []byte {
	return fmt.Appendf(nil, `{"webhookType":"participant-joined","data":{"meetingId":%q,"sessionId":%q,"participantId":%q,"participantName":"Ada"}}`,
		room, session, participant)
}

// postHook sends a webhook to the worker's receiver and returns the status.
func postHook(t testing.TB, cfg Config, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+cfg.Webhook.Listen+cfg.Webhook.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// participants are the participant IDs of the participant events in the stream, in order.
func participants(t testing.TB, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, m := range natstest.Messages(t, js, "ROLLCALL") {
		var e struct {
			Data struct {
				ParticipantID string `json:"participantId"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m.Subject, ".participant.") {
			ids = append(ids, e.Data.ParticipantID)
		}
	}
	return ids
}

// TestWebhookHint: a verified webhook for a followed session has it polled at once,
// long before its next scheduled poll (an hour away): its events come within
// seconds. Forged and malformed webhooks are refused and cause no API request, and
// no event. The key is fetched from videosdk.base_url, once, without credentials.
func TestWebhookHint(t *testing.T) {
	vsdk, forger := newSigner(t), newSigner(t)
	api := newHookAPI(t, vsdk)
	api.StartSession("s1", "r1")
	api.Join("s1", "a", "name-a")
	ns := natstest.Start(t)
	cfg := webhookConfig(t, api, ns.ClientURL())
	cfg.Sessions = []Session{{ID: "s1"}}
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	js := natstest.JetStream(t, ns.ClientURL())
	eventually(t, "the first poll's joined", func() bool { return slices.Equal(participants(t, js), []string{"a"}) })
	eventually(t, "the receiver's address logged", func() bool {
		return strings.Contains(logs.String(), "receiving webhooks") && strings.Contains(logs.String(), cfg.Webhook.Listen)
	})

	api.Join("s1", "b", "name-b")
	body := joinedHook("r1", "s1", "b")
	before := api.requests.Load()
	for _, f := range []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"signed by another key", body, forger.sign(t, body), 401},
		{"unsigned", body, "", 401},
		{"the signature of another body", body, vsdk.sign(t, joinedHook("r1", "s1", "c")), 401},
		{"not a webhook", []byte(`{"data":{}}`), vsdk.sign(t, []byte(`{"data":{}}`)), 400},
	} {
		if got := postHook(t, cfg, f.body, f.sig); got != f.want {
			t.Errorf("%s: %d, want %d", f.name, got, f.want)
		}
	}
	time.Sleep(time.Second) // what a hint would have done by now
	if n := api.requests.Load() - before; n != 0 {
		t.Errorf("refused webhooks made %d API requests, want none", n)
	}
	if got := participants(t, js); !slices.Equal(got, []string{"a"}) {
		t.Errorf("events after refused webhooks: %v, want the first poll's only", got)
	}

	sent := time.Now()
	if got := postHook(t, cfg, body, vsdk.sign(t, body)); got != http.StatusNoContent {
		t.Fatalf("verified: %d, want 204", got)
	}
	eventually(t, "b's joined, after the hint", func() bool { return slices.Equal(participants(t, js), []string{"a", "b"}) })
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("b's joined came %v after the webhook, want a poll at once", took)
	}
	if n := api.fetches.Load(); n != 1 {
		t.Errorf("the key was fetched %d times, want once", n)
	}
}

// TestWebhookHintTravels: with several replicas, a hint received by one that does
// not hold the session's lease is polled by the one that does: the hint travels
// over NATS. Replica A, without a webhook listener, holds the lease; B receives the
// webhook.
func TestWebhookHintTravels(t *testing.T) {
	vsdk := newSigner(t)
	api := newHookAPI(t, vsdk)
	api.StartSession("s1", "r1")
	api.Join("s1", "a", "name-a")
	ns := natstest.Start(t)
	js := natstest.JetStream(t, ns.ClientURL())
	nc := natstest.Connect(t, ns)

	cfgA := webhookConfig(t, api, ns.ClientURL())
	cfgA.Sessions, cfgA.Webhook.Listen = []Session{{ID: "s1"}}, ""
	var logsA testkit.Buffer
	stopA := runWorker(t, cfgA, &logsA)
	defer stopA()
	eventually(t, "A's first poll", func() bool { return slices.Equal(participants(t, js), []string{"a"}) })
	holder := pollerOf(t, nc, "s1")
	if holder == "" {
		t.Fatal("no replica polls s1")
	}

	cfgB := webhookConfig(t, api, ns.ClientURL())
	cfgB.Sessions = []Session{{ID: "s1"}}
	var logsB testkit.Buffer
	stopB := runWorker(t, cfgB, &logsB)
	defer stopB()
	eventually(t, "B receiving webhooks", func() bool { return strings.Contains(logsB.String(), "receiving webhooks") })

	api.Join("s1", "b", "name-b")
	body := joinedHook("r1", "s1", "b")
	if got := postHook(t, cfgB, body, vsdk.sign(t, body)); got != http.StatusNoContent {
		t.Fatalf("verified, to B: %d, want 204", got)
	}
	eventually(t, "b's joined, after the hint", func() bool { return slices.Equal(participants(t, js), []string{"a", "b"}) })
	if got := pollerOf(t, nc, "s1"); got != holder {
		t.Errorf("s1 is polled by %q after the hint, want %q, the replica that held its lease", got, holder)
	}
}

// pollerOf asks the running replicas which one polls a session; "" if none says so.
func pollerOf(t testing.TB, nc *nats.Conn, session string) string {
	t.Helper()
	for _, s := range askStatus(t, nc) {
		if s.Kind == poller.KindSession && s.ID == session && s.Status == poller.StatusPolling {
			return s.Replica
		}
	}
	return ""
}

// askStatus gathers the replicas' answers on StatusSubject for a moment.
func askStatus(t testing.TB, nc *nats.Conn) []poller.Status {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(StatusSubject("ROLLCALL"), inbox, nil); err != nil {
		t.Fatal(err)
	}
	var all []poller.Status
	for {
		msg, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			return all
		}
		var r StatusReply
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r.Tracked...)
	}
}

// TestWebhookFollowRooms: with follow_rooms, a flood of verified webhooks from a room
// no one tracks makes the worker follow it: one write into the tracking bucket, with
// origin webhook, said in the log, and the room's session polled; untracking it stops
// that. The key is pinned from public_key_file, and never fetched.
func TestWebhookFollowRooms(t *testing.T) {
	vsdk := newSigner(t)
	api := newHookAPI(t, vsdk)
	api.StartSession("s9", "r9")
	api.Join("s9", "x", "name-x")
	ns := natstest.Start(t)
	cfg := webhookConfig(t, api, ns.ClientURL())
	cfg.Webhook.PublicKeyFile = filepath.Join(t.TempDir(), "videosdk.pem")
	if err := os.WriteFile(cfg.Webhook.PublicKeyFile, vsdk.pem(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Webhook.FollowRooms = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	js := natstest.JetStream(t, ns.ClientURL())
	nc := natstest.Connect(t, ns)
	eventually(t, "receiving webhooks", func() bool { return strings.Contains(logs.String(), "receiving webhooks") })

	body := joinedHook("r9", "s9", "x")
	sig := vsdk.sign(t, body)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got := postHook(t, cfg, body, sig); got != http.StatusNoContent {
				t.Errorf("verified: %d, want 204", got)
			}
		})
	}
	wg.Wait()
	eventually(t, "x's joined, from the room followed", func() bool { return slices.Equal(participants(t, js), []string{"x"}) })
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cfg.NATS.TrackingBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "room.r9")
	if err != nil || string(e.Value()) != `{"id":"r9","origin":"webhook"}` {
		t.Fatalf("room.r9 in the tracking bucket: %v, %v; want {\"id\":\"r9\",\"origin\":\"webhook\"}", e, err)
	}
	for range 10 { // followed now: these write nothing
		if got := postHook(t, cfg, body, sig); got != http.StatusNoContent {
			t.Errorf("verified: %d, want 204", got)
		}
	}
	time.Sleep(500 * time.Millisecond)
	s, err := js.Stream(ctx, "KV_"+cfg.NATS.TrackingBucket)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.LastSeq != 1 {
		t.Errorf("writes into the tracking bucket: %+v, %v; want 1", info.State, err)
	}
	if n := strings.Count(logs.String(), "following a room because a verified webhook came from it"); n != 1 {
		t.Errorf("%d log lines say the room is followed, want 1:\n%s", n, logs.String())
	}
	if api.fetches.Load() != 0 {
		t.Error("a pinned key was fetched")
	}
	room := func() []poller.Status {
		return slices.DeleteFunc(askStatus(t, nc), func(s poller.Status) bool { return s.Kind != poller.KindRoom })
	}
	if got := room(); len(got) != 1 || got[0].ID != "r9" || !slices.Equal(got[0].From, []string{OriginBucket}) {
		t.Errorf("rooms tracked: %+v, want r9 from the bucket", got)
	}

	tracking, err := publisher.OpenTracking(ctx, js, cfg.NATS.TrackingBucket, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := tracking.Untrack(ctx, poller.KindRoom, "r9"); !ok || err != nil {
		t.Fatalf("untrack room r9: %v, %v", ok, err)
	}
	eventually(t, "r9 no longer followed", func() bool { return len(room()) == 0 })
	if _, rooms, err := tracking.List(ctx); err != nil || len(rooms) != 0 {
		t.Errorf("rooms in the bucket after untrack: %v, %v; want none", rooms, err)
	}
	if d := cmp.Diff([]string{"x"}, participants(t, js)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}
