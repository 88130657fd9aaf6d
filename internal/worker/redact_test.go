package worker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nkeys"
	"github.com/rollcall/rollcall/internal/testkit"
)

// TestRedactURL: each form nats.url may give credentials in reads with them hidden,
// and every secret it holds is known to the scrubber.
func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, url, want string
		secrets         []string // URLSecrets must hold each
	}{
		{"no credentials", "nats://n1:4222", "nats://n1:4222", nil},
		{"host:port", "n1:4222", "n1:4222", nil},
		{"user and password", "nats://u:pw-1@n1:4222", "nats://u:REDACTED@n1:4222", []string{"pw-1"}},
		{"user and password, no scheme", "u:pw-1@n1:4222", "u:REDACTED@n1:4222", []string{"pw-1"}},
		{"token", "nats://tok-1@n1:4222", "nats://REDACTED@n1:4222", []string{"tok-1"}},
		{"token, no scheme", "tok-1@n1:4222", "REDACTED@n1:4222", []string{"tok-1"}},
		{"tls", "tls://u:pw-1@n1:4443", "tls://u:REDACTED@n1:4443", []string{"pw-1"}},
		{"websocket", "ws://u:pw-1@n1:8080", "ws://u:REDACTED@n1:8080", []string{"pw-1"}},
		{"secure websocket, token", "wss://tok-1@n1", "wss://REDACTED@n1", []string{"tok-1"}},
		{"several, with spaces", " nats://u:pw-1@n1:4222 , tok-2@n2:4222,tls://n3:4443 ",
			"nats://u:REDACTED@n1:4222,REDACTED@n2:4222,tls://n3:4443", []string{"pw-1", "tok-2"}},
		{"a password holding @, / and ://", "nats://u:p@s/s://x@n1:4222", "nats://u:REDACTED@n1:4222", []string{"p@s/s://x"}},
		{"a percent-encoded password", "nats://u:p%40ss%2F@n1", "nats://u:REDACTED@n1", []string{"p%40ss%2F", "p@ss/", "p%40ss%2F"}},
		{"an empty password", "nats://u:@n1", "nats://u:REDACTED@n1", nil},
		{"no host after the @", "nats://u:pw-1@", "nats://u:REDACTED@", []string{"pw-1"}},
		{"not a URL: a password with no host", "nats://u:pw-1", "REDACTED", []string{"nats://u:pw-1"}},
		{"not a URL: a bad escape", "nats://n1:4222/%zz", "REDACTED", []string{"nats://n1:4222/%zz"}},
		{"an empty entry", "nats://n1,,n2", "nats://n1,,n2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.url); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.url, got, tt.want)
			}
			got := URLSecrets(tt.url)
			for _, s := range tt.secrets {
				if !slices.Contains(got, s) {
					t.Errorf("URLSecrets(%q) = %q, lacks %q", tt.url, got, s)
				}
			}
			if scrubbed := NewSecrets(got...).Scrub("connecting to " + tt.url); tt.secrets != nil && strings.Contains(scrubbed, tt.secrets[0]) {
				t.Errorf("scrubbed: %q", scrubbed)
			}
		})
	}
}

// TestConfigSecrets: every secret a config can hold is known to the scrubber: the
// API's, NATS's in keys, in the URL, and the seeds in the nkey and creds files.
func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	if err := os.WriteFile(filepath.Join(dir, "user.nk"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.VideoSDK.Secret, c.VideoSDK.Token = "api-secret", "api-token"
	c.NATS.Password, c.NATS.Token, c.NATS.URL = "nats-password", "nats-token", "nats://u:url-password@n1,url-token@n2"
	c.NATS.NKeySeed = filepath.Join(dir, "user.nk")
	got := c.Secrets()
	for _, want := range []string{"api-secret", "api-token", "nats-password", "nats-token", "url-password", "url-token", string(seed)} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() = %q, lacks %q", got, want)
		}
	}
}

// TestSecretsLogger: no secret reaches the log, whether in the message, a string, an
// error, a group, a value shown as text or JSON, or attributes given to With, in
// either format.
func TestSecretsLogger(t *testing.T) {
	const secret = "s3cr3t-value"
	type holder struct{ URL string }
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var out testkit.Buffer
			log := NewSecrets(secret).Logger(NewLogger(&out, Log{Level: "debug", Format: format}))
			log = log.With("with", "x"+secret)
			log.Info("msg "+secret, "string", secret, "err", errors.New("dial nats://"+secret+"@h: refused"),
				slog.Group("g", "inner", secret), "value", holder{URL: "nats://" + secret + "@h"},
				"kept", holder{URL: "nats://h"}, "n", 3, "d", time.Second)
			if strings.Contains(out.String(), "s3cr3t") {
				t.Errorf("the log shows the secret:\n%s", out.String())
			}
			for _, want := range []string{"REDACTED", "nats://h"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the log lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestSecretsError: a scrubbed error keeps what it wraps for errors.Is, and an error
// with no secret is returned as it is.
func TestSecretsError(t *testing.T) {
	s := NewSecrets("pw")
	err := s.Error(errors.Join(context.Canceled, errors.New("nats://u:pw@h")))
	if strings.Contains(err.Error(), "pw") || !errors.Is(err, context.Canceled) {
		t.Errorf("Error() = %v; want it scrubbed and still context.Canceled", err)
	}
	plain := errors.New("nothing secret")
	if got := s.Error(plain); got != plain {
		t.Errorf("Error(%v) = %v, want it unchanged", plain, got)
	}
	var out strings.Builder
	if _, err := s.Writer(&out).Write([]byte("pw: pw")); err != nil || out.String() != "REDACTED: REDACTED" {
		t.Errorf("Writer wrote %q, %v", out.String(), err)
	}
	if diff := cmp.Diff("x", NewSecrets().Scrub("x")); diff != "" {
		t.Error(diff)
	}
}
