package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/testkit"
)

// TestSimSendsWebhooks runs `rollcall sim -webhook`: the churn's changes reach the
// receiver, signed with the key the simulator serves.
func TestSimSendsWebhooks(t *testing.T) {
	type hook struct {
		body []byte
		sig  string
	}
	got := make(chan hook, 100)
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- hook{body, r.Header.Get("videosdk-signature")}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rs.Close()
	env := map[string]string{"VIDEOSDK_API_KEY": "key", "VIDEOSDK_SECRET": "secret"}
	var out testkit.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		args := []string{"sim", "-listen", "127.0.0.1:0", "-webhook", rs.URL, "-webhook-delay", "1ms-5ms"}
		done <- run(ctx, args, &out, &out, func(k string) string { return env[k] })
	}()
	testkit.Eventually(t, 10*time.Second, "the simulator says where it sends webhooks", func() bool {
		return strings.Contains(out.String(), "webhooks to "+rs.URL)
	})
	apiURL := regexp.MustCompile(`simulated VideoSDK API on (\S+)`).FindStringSubmatch(out.String())[1]

	var h hook
	select {
	case h = <-got:
	case <-time.After(20 * time.Second): // the churn changes the world about every 700 ms
		t.Fatalf("no webhook; the simulator says:\n%s", out.String())
	}
	var doc struct {
		WebhookType string
		Data        struct{ MeetingID, SessionID string }
	}
	if err := json.Unmarshal(h.body, &doc); err != nil || doc.Data.MeetingID == "" || doc.Data.SessionID == "" {
		t.Errorf("webhook %s: %v, want a type, meetingId and sessionId", h.body, err)
	}
	sig, err := base64.StdEncoding.DecodeString(h.sig)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(h.body)
	if err := rsa.VerifyPKCS1v15(simPublicKey(t, apiURL), crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("the signature of %s does not verify with the served key: %v", h.body, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Any number posted: the stop may cut short the POST whose body the receiver has
	// (its answer unread), and such a POST is not counted.
	if !regexp.MustCompile(`webhooks: \d+ posted \(0 failed\), 0 lost, 0 sent twice\n`).MatchString(out.String()) {
		t.Errorf("no count of the webhooks at the end:\n%s", out.String())
	}
}

// simPublicKey fetches the simulator's key as a receiver does: no token.
func simPublicKey(t *testing.T, apiURL string) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(apiURL + "/v2/public/rsa-public-key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ PublicKey string }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(doc.PublicKey))
	if block == nil {
		t.Fatalf("no PEM in %q", doc.PublicKey)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

func TestSimWebhookFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a URL", []string{"-webhook", "localhost:9000"}, `invalid value "localhost:9000" for flag -webhook: want an http:// or https:// URL`},
		{"delay range reversed", []string{"-webhook", "http://h/", "-webhook-delay", "200ms-20ms"}, `invalid value "200ms-20ms" for flag -webhook-delay: want a duration, or MIN-MAX with 0 <= MIN <= MAX, such as 20ms-200ms`},
		{"delay not a duration", []string{"-webhook", "http://h/", "-webhook-delay", "soon"}, `invalid value "soon" for flag -webhook-delay`},
		{"loss over 1", []string{"-webhook", "http://h/", "-webhook-loss", "1.5"}, `invalid value "1.5" for flag -webhook-loss: want a fraction from 0 to 1`},
		{"dup negative", []string{"-webhook", "http://h/", "-webhook-dup", "-0.1"}, `invalid value "-0.1" for flag -webhook-dup: want a fraction from 0 to 1`},
		{"tuning without -webhook", []string{"-webhook-loss", "0.1"}, `-webhook-delay, -webhook-loss and -webhook-dup need -webhook URL`},
	}
	env := map[string]string{"VIDEOSDK_API_KEY": "key", "VIDEOSDK_SECRET": "secret"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := run(context.Background(), append([]string{"sim", "-listen", "127.0.0.1:0"}, tt.args...), &out, &out, func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
