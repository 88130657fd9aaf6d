package sim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPublicKeyRoute(t *testing.T) {
	tests := []struct {
		name        string
		pkcs1, bare bool
		wantType    string // the PEM block's
		wantCT      string
	}{
		{"PKIX in JSON (default)", false, false, "PUBLIC KEY", "application/json"},
		{"PKCS#1 in JSON", true, false, "RSA PUBLIC KEY", "application/json"},
		{"bare PKIX", false, true, "PUBLIC KEY", "text/plain; charset=utf-8"},
		{"bare PKCS#1", true, true, "RSA PUBLIC KEY", "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{APIKey: testKey, Secret: testSecret, PublicKeyPKCS1: tt.pkcs1, PublicKeyBare: tt.bare})
			ts := httptest.NewServer(s)
			defer ts.Close()
			// No token: VideoSDK's route is public.
			status, header, body := get(t, ts, publicKeyPath, "")
			if status != http.StatusOK {
				t.Fatalf("status %d, want 200 (body %s)", status, body)
			}
			if ct := header.Get("Content-Type"); ct != tt.wantCT {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantCT)
			}
			if !tt.bare {
				var doc struct{ PublicKey string }
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatalf("%v in %s", err, body)
				}
				body = []byte(doc.PublicKey)
			}
			block, rest := pem.Decode(body)
			if block == nil || len(rest) != 0 {
				t.Fatalf("not one PEM block: %q", body)
			}
			if block.Type != tt.wantType {
				t.Errorf("PEM type %q, want %q", block.Type, tt.wantType)
			}
			var pub any
			var err error
			if tt.pkcs1 {
				pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
			} else {
				pub, err = x509.ParsePKIXPublicKey(block.Bytes)
			}
			if err != nil {
				t.Fatal(err)
			}
			verify(t, pub.(*rsa.PublicKey), []byte(`{"webhookType":"x"}`), s.Sign([]byte(`{"webhookType":"x"}`)))
		})
	}
}

func TestConfigKeyIsServedAndSigns(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Key: key})
	ts := httptest.NewServer(s)
	defer ts.Close()
	pub := fetchPublicKey(t, ts)
	if !pub.Equal(&key.PublicKey) {
		t.Error("the route serves another key than Config.Key")
	}
	body := []byte(`{"webhookType":"participant-joined"}`)
	verify(t, &key.PublicKey, body, s.Sign(body))
}

// fetchPublicKey reads the Server's public key from its route, in the default shape.
func fetchPublicKey(t *testing.T, ts *httptest.Server) *rsa.PublicKey {
	t.Helper()
	var doc struct{ PublicKey string }
	if status := getJSON(t, ts, publicKeyPath, &doc); status != http.StatusOK {
		t.Fatalf("GET %s: status %d", publicKeyPath, status)
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

// verify checks sig as a receiver of VideoSDK's webhooks does.
func verify(t *testing.T, pub *rsa.PublicKey, body []byte, sig string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
		t.Errorf("signature of %s does not verify: %v", body, err)
	}
}
