package poller

import (
	"log/slog"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Token is a VideoSDK API token. It logs as REDACTED.
type Token string

// LogValue keeps the token out of logs.
func (Token) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String keeps the token out of formatted errors and prints.
func (Token) String() string { return "REDACTED" }

// Tokens supplies the token for each request. Invalidate is called after a 401, so
// that the next Token is a fresh one if the source can mint.
type Tokens interface {
	Token() (Token, error)
	Invalidate(Token)
}

// Static is a pre-minted token; it cannot be renewed.
type Static Token

// Token returns the token.
func (s Static) Token() (Token, error) { return Token(s), nil }

// Invalidate does nothing: a pre-minted token is all there is.
func (Static) Invalidate(Token) {}

// Minter mints HS256 tokens with the "crawler" role from an API key and secret, and
// reuses each until shortly before it expires.
type Minter struct {
	apiKey string
	secret []byte
	ttl    time.Duration
	now    func() time.Time

	mints prometheus.Counter // nil: not counted

	mu      sync.Mutex
	current Token
	renewAt time.Time
}

// CountMints counts each token minted in c.
func (m *Minter) CountMints(c prometheus.Counter) *Minter {
	m.mints = c
	return m
}

// NewMinter returns a Minter of tokens that live for ttl. now may be nil (time.Now).
func NewMinter(apiKey, secret string, ttl time.Duration, now func() time.Time) *Minter {
	if now == nil {
		now = time.Now
	}
	return &Minter{apiKey: apiKey, secret: []byte(secret), ttl: ttl, now: now}
}

// Mint makes a new token valid from now for ttl.
func (m *Minter) Mint() (Token, error) {
	now := m.now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"apikey":      m.apiKey,
		"permissions": []string{"allow_join"},
		"version":     2,
		"roles":       []string{"crawler"},
		"iat":         now.Unix(),
		"exp":         now.Add(m.ttl).Unix(),
	}).SignedString(m.secret)
	if err != nil {
		return "", err
	}
	if m.mints != nil {
		m.mints.Inc()
	}
	return Token(s), nil
}

// Token returns the current token, minting a new one when it is within a tenth of its
// lifetime (at most a minute) of expiring, so that no request carries a token that
// expires in flight.
func (m *Minter) Token() (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.current != "" && now.Before(m.renewAt) {
		return m.current, nil
	}
	t, err := m.Mint()
	if err != nil {
		return "", err
	}
	m.current, m.renewAt = t, now.Add(m.ttl-min(m.ttl/10, time.Minute))
	return t, nil
}

// Invalidate drops t if it is still the current token.
func (m *Minter) Invalidate(t Token) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == t {
		m.current = ""
	}
}
