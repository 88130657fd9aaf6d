package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollcall/rollcall/internal/metrics"
	"golang.org/x/time/rate"
)

// MaxBody caps a response body. A page of 1000 participants is about 1 MiB, so 16 MiB
// leaves room for any page the API should send while bounding a broken one.
const MaxBody = 16 << 20

// maxRetryAfter caps how long a Retry-After can hold requests back, so that a broken
// header cannot stall the worker for hours.
const maxRetryAfter = 5 * time.Minute

// Errors that a retry cannot mend.
var (
	ErrNotFound = errors.New("session not found")
	// ErrUnauthorized is a 401 that a fresh token did not mend: the API rejects the
	// credentials. The Client says so once for every session (see Client.rejected).
	ErrUnauthorized = errors.New("the API rejects the credentials")
	ErrTooLarge     = fmt.Errorf("response body over %d MiB", MaxBody>>20)
	errToken        = errors.New("no token")
)

// bodies holds buffers for response bodies, which a poll reads, decodes (copying
// what it keeps) and drops hundreds of times a second: reading each into a new buffer,
// grown as it fills, cost as much as decoding it.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// recycle gives back the buffer of a body that is no longer used.
func recycle(body []byte) { bodies.Put(bytes.NewBuffer(body[:0])) }

// StatusError is an HTTP answer other than 200.
type StatusError struct {
	Code int
	Body string // the start of the body, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("http %d: %s", e.Code, e.Body)
}

// ClientConfig configures a Client. Zero values take the defaults given.
type ClientConfig struct {
	BaseURL        string
	Tokens         Tokens
	PerPage        int           // default 100
	RequestTimeout time.Duration // per request; default 10s
	RateLimit      float64       // requests per second across all sessions; 0 = unlimited
	Attempts       int           // tries per request for 429, 5xx and timeouts; default 4
	Backoff        time.Duration // first retry wait, doubling; default 500ms
	MaxBackoff     time.Duration // default 10s
	HTTPClient     *http.Client  // default: a client with no timeout of its own
	Log            *slog.Logger
	Metrics        *metrics.Metrics // default: recorded nowhere
	// MaxYield bounds how long a background request (a room's listing) lets polls go
	// first before it takes its turn like them, so that discovery slows down under a
	// short rate limit but never stops; default 30s.
	MaxYield time.Duration
}

// Client is a VideoSDK REST API client. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	limiter *rate.Limiter
	polls   atomic.Int64 // poll requests waiting for the limiter; background ones yield to them

	mu        sync.Mutex
	holdUntil time.Time // after a 429: the API is the account's, so everyone waits
	// The API rejects the credentials, for every request: said once for the worker,
	// not once per session and cycle.
	rejected episode
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.PerPage <= 0 {
		cfg.PerPage = 100
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.HTTPClient == nil {
		// Keep a connection per session fetched at once: the default of two idle
		// connections per host means a new TLS handshake for most requests.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = metrics.Or(cfg.Metrics)
	if cfg.MaxYield <= 0 {
		cfg.MaxYield = 30 * time.Second
	}
	limit := rate.Inf
	if cfg.RateLimit > 0 {
		limit = rate.Limit(cfg.RateLimit)
	}
	return &Client{cfg: cfg, limiter: rate.NewLimiter(limit, 1)}
}

// priority says who goes first when the rate limit is short: polls of live sessions,
// then background work such as listing rooms' sessions.
type priority bool

const (
	foreground priority = false
	background priority = true
)

// get fetches path?query and returns the body of a 200 answer. It retries 429 (after
// Retry-After when given), 5xx, timeouts and broken connections with capped
// exponential backoff and full jitter, and a 401 once with a fresh token.
func (c *Client) get(ctx context.Context, log *slog.Logger, endpoint, path string, query url.Values, prio priority) ([]byte, error) {
	u := c.cfg.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var retries backoff
	refreshed := false
	for attempt := 1; ; attempt++ {
		body, retryAfter, err := c.once(ctx, endpoint, u, prio)
		var se *StatusError
		switch {
		case err == nil:
			c.accepted()
			return body, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("get %s: %w", path, context.Cause(ctx))
		case errors.As(err, &se) && se.Code == http.StatusUnauthorized && !refreshed:
			refreshed = true
			attempt-- // a fresh token is not a retry of a failure
			continue
		case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
			c.reject()
			return nil, fmt.Errorf("get %s: %w: %w", path, ErrUnauthorized, err)
		case !retryable(err) || attempt >= c.cfg.Attempts:
			return nil, fmt.Errorf("get %s (attempt %d): %w", path, attempt, err)
		}
		// Full jitter, so that sessions retrying together do not stay in step.
		d := max(rand.N(retries.fail(c.cfg.Backoff, c.cfg.MaxBackoff))+time.Millisecond, retryAfter)
		c.cfg.Metrics.Retries.WithLabelValues(endpoint).Inc()
		// Debug: a failure that lasts is logged by the session's loop, and counted.
		log.Debug("videosdk request failed, retrying", "path", path, "attempt", attempt, "in", d, "err", err)
		if err := sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("get %s: %w", path, err)
		}
	}
}

// reject notes a request whose credentials the API rejected.
func (c *Client) reject() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejected.happened(c.cfg.Log, slog.LevelError, time.Now(),
		"the VideoSDK API rejects the credentials (401, also with a fresh token): check VIDEOSDK_API_KEY and VIDEOSDK_SECRET (videosdk.api_key, videosdk.secret), or VIDEOSDK_TOKEN (videosdk.token); every request fails until they are right",
		"the VideoSDK API still rejects the credentials")
}

// accepted notes a request the API answered: rejections, if any, are over.
func (c *Client) accepted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rejected.count > 0 {
		c.rejected.over(c.cfg.Log, "the VideoSDK API accepts the credentials again")
	}
}

// once makes one request. For a 429 it also returns how long to wait.
func (c *Client) once(ctx context.Context, endpoint, u string, prio priority) ([]byte, time.Duration, error) {
	if err := c.wait(ctx, prio); err != nil {
		return nil, 0, err
	}
	start, code := time.Now(), "error"
	defer func() {
		c.cfg.Metrics.Requests.WithLabelValues(endpoint, code).Inc()
		c.cfg.Metrics.RequestDuration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	}()
	tok, err := c.cfg.Tokens.Token()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errToken, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", string(tok)) // no "Bearer ": the API wants the bare token
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	code = strconv.Itoa(resp.StatusCode)
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, MaxBody+1)); err != nil {
		return nil, 0, fmt.Errorf("read body: %w", err)
	}
	body := buf.Bytes()
	if len(body) > MaxBody {
		return nil, 0, ErrTooLarge
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, 0, nil
	case http.StatusNotFound:
		return nil, 0, ErrNotFound
	case http.StatusUnauthorized:
		c.cfg.Tokens.Invalidate(tok)
	case http.StatusTooManyRequests:
		d := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if d > 0 {
			c.cfg.Metrics.Holds.Inc()
			c.holdFor(d)
		}
		return nil, d, &StatusError{Code: resp.StatusCode, Body: snippet(body)}
	}
	return nil, 0, &StatusError{Code: resp.StatusCode, Body: snippet(body)}
}

// wait waits for the rate limiter and while a 429 holds every request back. A request
// already waiting for the limiter when a 429 arrives is held too. A background
// request takes a turn only when no poll is waiting for one.
func (c *Client) wait(ctx context.Context, prio priority) error {
	for {
		if err := c.hold(ctx); err != nil {
			return err
		}
		var err error
		if prio == background {
			err = c.yield(ctx)
		} else {
			c.polls.Add(1)
			err = c.limiter.Wait(ctx)
			c.polls.Add(-1)
		}
		if err != nil {
			return err
		}
		if !c.held() {
			return nil
		}
	}
}

// yield takes a turn of the rate limiter when no poll is waiting and one is free,
// checking again every turn's length; after MaxYield it waits for a turn like a poll.
func (c *Client) yield(ctx context.Context) error {
	for giveUp := time.Now().Add(c.cfg.MaxYield); ; {
		if c.polls.Load() == 0 && c.limiter.Allow() {
			return nil
		}
		if time.Now().After(giveUp) {
			return c.limiter.Wait(ctx)
		}
		if err := sleep(ctx, max(time.Duration(float64(time.Second)/float64(c.limiter.Limit())), time.Millisecond)); err != nil {
			return err
		}
	}
}

func (c *Client) held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.holdUntil)
}

// hold waits while a 429 holds every request back; another 429 meanwhile extends it.
func (c *Client) hold(ctx context.Context) error {
	for {
		c.mu.Lock()
		d := time.Until(c.holdUntil)
		c.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (c *Client) holdFor(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := time.Now().Add(d); until.After(c.holdUntil) {
		c.holdUntil = until
	}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); 0 if absent or bad.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusTooManyRequests || se.Code >= 500
	}
	// Anything else that is not ours is the transport: a timeout, a reset, a refusal.
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, errToken)
}

func snippet(body []byte) string {
	const n = 200
	s := strings.TrimSpace(string(body))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
