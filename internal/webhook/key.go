package webhook

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// KeyPath is where VideoSDK serves the public key of its webhooks' signatures, under
// its API's base URL. It needs no Authorization.
const KeyPath = "/v2/public/rsa-public-key"

const (
	// RefetchAfter is the least time between two fetches of the key: a signature that
	// does not verify fetches it again (VideoSDK may have rotated it) only if the last
	// fetch is at least this old, so that a flood of forged webhooks costs VideoSDK's
	// API one request a minute, not one each.
	RefetchAfter = time.Minute
	// FetchTimeout bounds one fetch of the key. The webhooks that wait for it wait no
	// longer, well within the time a sender gives a webhook to be answered.
	FetchTimeout = 5 * time.Second
	// maxKeyBody bounds the answer read from the key's URL: a PEM RSA key is 1–3 KB.
	maxKeyBody = 64 << 10
)

// ReadKeyFile reads an RSA public key in PEM from a file; see ParseKey.
func ReadKeyFile(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // names the path
	}
	key, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// ParseKey reads an RSA public key as VideoSDK's key URL may give it: a JSON object
// {"publicKey": "<PEM>"} or a bare PEM; the PEM a PKIX "PUBLIC KEY" or a PKCS#1 "RSA
// PUBLIC KEY" (its documentation shows both), with real line breaks or literal \n
// escapes (a JSON string escaped twice).
func ParseKey(b []byte) (*rsa.PublicKey, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var wrapped struct {
			PublicKey string `json:"publicKey"`
		}
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return nil, fmt.Errorf("not a JSON object with a string publicKey: %w", err)
		}
		if wrapped.PublicKey == "" {
			return nil, errors.New("a JSON object without publicKey")
		}
		b = []byte(wrapped.PublicKey)
	}
	// Neither base64 nor PEM's armour holds a backslash: any \n is an escape.
	b = bytes.ReplaceAll(b, []byte(`\n`), []byte("\n"))
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New(`no PEM block: want "-----BEGIN PUBLIC KEY-----" or "-----BEGIN RSA PUBLIC KEY-----"`)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC KEY: %w", err)
		}
		rsaKey, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PUBLIC KEY: a %T, not an RSA key", k)
		}
		return rsaKey, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("RSA PUBLIC KEY: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf(`a PEM block of type %q: want "PUBLIC KEY" or "RSA PUBLIC KEY"`, block.Type)
}

// keys hands out the key to verify with: the pinned one, or the one fetched from
// url, fetched when the first webhook comes and again, at most once per
// RefetchAfter, when a signature does not verify with it. Requests that need a fetch
// while one is under way wait for that one.
type keys struct {
	url    string // "": key is pinned
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	key      *rsa.PublicKey // nil until a fetch succeeds
	fetched  time.Time      // when the last fetch started; zero: never
	inflight *fetch
	failing  bool // the last fetch failed, and that was logged
}

// fetch is one fetch of the key, which concurrent requests share.
type fetch struct {
	done chan struct{}
	key  *rsa.PublicKey // set before done is closed
	err  error
}

var (
	errNoKey   = errors.New("no key: its fetch failed; fetched again at most once a minute")
	errTimeout = errors.New("gave up waiting for the key's fetch")
)

// get returns the key to verify with. failed is the key a signature just failed
// with, or nil: then get returns another key if there is one (fetched by another
// request since, or by a fetch get starts, if the last is RefetchAfter old), else
// failed itself.
func (k *keys) get(ctx context.Context, failed *rsa.PublicKey) (*rsa.PublicKey, error) {
	k.mu.Lock()
	if f := k.inflight; f != nil {
		k.mu.Unlock()
		select {
		case <-f.done:
			return f.key, f.err
		case <-ctx.Done():
			return nil, errTimeout
		}
	}
	switch {
	case k.url == "" || (k.key != nil && k.key != failed):
		defer k.mu.Unlock()
		return k.key, nil
	case !k.fetched.IsZero() && k.now().Sub(k.fetched) < RefetchAfter:
		defer k.mu.Unlock()
		if k.key == nil {
			return nil, errNoKey
		}
		return k.key, nil
	}
	f := &fetch{done: make(chan struct{})}
	k.inflight, k.fetched = f, k.now()
	k.mu.Unlock()

	// The fetch outlives a request whose client gives up: others may wait for it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
	key, err := k.fetch(fctx)
	cancel()

	k.mu.Lock()
	switch {
	case err != nil:
		if !k.failing {
			k.log.Warn("cannot fetch VideoSDK's webhook public key: webhooks are answered 401 until it is fetched; trying again at most once a minute, when one comes",
				"url", k.url, "err", err)
		}
		k.failing = true
	case k.key != nil && key.Equal(k.key):
		k.failing = false // the same key: keep the one handed out, which callers compare
	default:
		if k.key != nil {
			k.log.Info("VideoSDK's webhook public key changed: verifying with the new one", "url", k.url)
		} else {
			k.log.Info("fetched VideoSDK's webhook public key", "url", k.url)
		}
		k.key, k.failing = key, false
	}
	f.key, f.err = k.key, err
	if f.key != nil {
		f.err = nil // a failed refetch leaves the key that was
	}
	k.inflight = nil
	k.mu.Unlock()
	close(f.done)
	return f.key, f.err
}

// fetch asks url for the key.
func (k *keys) fetch(ctx context.Context) (*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", KeyPath, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBody))
	if err != nil {
		return nil, err
	}
	return ParseKey(b)
}
