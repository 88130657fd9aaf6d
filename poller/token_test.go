package poller_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/poller"
)

func TestMinterClaims(t *testing.T) {
	clk := newClock()
	tok, err := poller.NewMinter(apiKey, secret, 2*time.Hour, clk.Now).Token()
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(string(tok), claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	want := jwt.MapClaims{
		"apikey": apiKey, "permissions": []any{"allow_join"}, "version": 2.0, "roles": []any{"crawler"},
		"iat": float64(clk.Now().Unix()), "exp": float64(clk.Now().Add(2 * time.Hour).Unix()),
	}
	if d := cmp.Diff(want, claims); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
}

func TestMinterRenewsBeforeExpiry(t *testing.T) {
	clk := newClock()
	m := poller.NewMinter(apiKey, secret, time.Hour, clk.Now)
	first, _ := m.Token()
	steps := []struct {
		name    string
		advance time.Duration
		fresh   bool
	}{
		{"reused while far from expiry", 58 * time.Minute, false},
		{"renewed a minute before expiry", time.Minute, true},
		{"reused again", time.Second, false},
	}
	prev := first
	for _, s := range steps {
		clk.Add(s.advance)
		got, err := m.Token()
		if err != nil {
			t.Fatal(err)
		}
		if (got != prev) != s.fresh {
			t.Errorf("%s: fresh token = %v, want %v", s.name, got != prev, s.fresh)
		}
		prev = got
	}
	clk.Add(time.Second)
	m.Invalidate(prev)
	if got, _ := m.Token(); got == prev {
		t.Error("Token after Invalidate returned the dropped token")
	}
}

// TestExpiredPreMintedToken: a pre-minted token cannot be renewed, so a 401 is a clear
// error rather than an endless retry.
func TestExpiredPreMintedToken(t *testing.T) {
	w := newWorld(t, "a")
	old := newClock()
	old.Add(-2 * time.Hour)
	expired, err := poller.NewMinter(apiKey, secret, time.Hour, old.Now).Mint()
	if err != nil {
		t.Fatal(err)
	}
	c := poller.NewClient(poller.ClientConfig{BaseURL: w.url, Tokens: poller.Static(expired), Backoff: time.Millisecond})
	_, err = c.Snapshot(context.Background(), nil, session)
	if err == nil || !strings.Contains(err.Error(), "http 401") {
		t.Fatalf("Snapshot with an expired token: %v, want an http 401 error", err)
	}
	if n := w.api.Requests(); n != 2 {
		t.Errorf("%d requests, want 2 (one retry after the 401)", n)
	}
}

func TestTokenNeverLogged(t *testing.T) {
	tok, err := poller.NewMinter(apiKey, secret, time.Hour, nil).Token()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("token", "token", tok, "formatted", tok.String())
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("token", "token", tok)
	if strings.Contains(buf.String(), string(tok)) || strings.Contains(buf.String(), secret) {
		t.Errorf("log shows the token or secret:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log does not say REDACTED:\n%s", buf.String())
	}
}
