package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nkeys"
)

// Secrets never show (spec: "whatever form the config gives them in"). Two layers
// keep them hidden:
//
//   - where rollcall shows a value that may hold one (nats.url, the effective config),
//     it shows it redacted: RedactURL and Config.Redacted;
//   - whatever else it prints (log lines, errors, command output) goes through a
//     Secrets, which replaces each secret string it knows wherever it occurs: in an
//     error of nats.go's that quotes a URL, say.

// redacted is what a secret reads as.
const redacted = "REDACTED"

// RedactURL hides the credentials in a nats.url value: one URL or several,
// comma-separated, with or without a scheme (nats.go reads host:port as
// nats://host:port). Whatever precedes an entry's last '@' is its user information:
// of user:password the user is kept, and a lone name, which nats.go sends as a token,
// is hidden whole. An entry that is not a URL, which may hold anything, is hidden
// whole. Entries are trimmed and joined by ",".
func RedactURL(list string) string {
	entries := strings.Split(list, ",")
	for i, e := range entries {
		entries[i] = redactEntry(strings.TrimSpace(e))
	}
	return strings.Join(entries, ",")
}

func redactEntry(e string) string {
	scheme, info, host, ok := splitEntry(e)
	switch {
	case ok:
		if user, _, found := strings.Cut(info, ":"); found {
			return scheme + user + ":" + redacted + "@" + host
		}
		return scheme + redacted + "@" + host
	case e == "":
		return ""
	}
	if _, err := NATSServerURL(e); err != nil {
		return redacted
	}
	return e
}

// splitEntry splits a nats.url entry into its scheme with "://" (or ""), its user
// information and the rest, at the last '@'; ok is false if there is no '@'.
func splitEntry(e string) (scheme, info, host string, ok bool) {
	rest := e
	if s, r, found := strings.Cut(e, "://"); found && isScheme(s) {
		scheme, rest = s+"://", r
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return scheme, "", rest, false
	}
	return scheme, rest[:at], rest[at+1:], true
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then letters,
// digits, '+', '-' or '.'), not part of a password holding "://".
func isScheme(s string) bool {
	for i, r := range s {
		letter := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
		if !letter && (i == 0 || !('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return s != ""
}

// URLSecrets returns the secrets a nats.url value holds: each entry's password or
// token, as written, as nats.go sends it (percent-decoded) and as a URL re-encodes
// it; and each entry that is not a URL, whole.
func URLSecrets(list string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		_, info, _, ok := splitEntry(e)
		if !ok {
			if _, err := NATSServerURL(e); err != nil && e != "" {
				out = append(out, e)
			}
			continue
		}
		secret := info // a lone name: a token
		if _, pw, found := strings.Cut(info, ":"); found {
			secret = pw
		}
		out = append(out, secret)
		if plain, err := url.PathUnescape(secret); err == nil {
			out = append(out, plain, strings.TrimPrefix(url.UserPassword("", plain).String(), ":"))
		}
	}
	return out
}

// Secrets returns every secret the config holds: the API secret and token, the NATS
// password and token, those in nats.url, and the seeds in the nkey_seed and creds
// files. A file that cannot be read holds nothing that could show.
func (c Config) Secrets() []string {
	out := []string{c.VideoSDK.Secret, c.VideoSDK.Token, c.NATS.Password, c.NATS.Token}
	out = append(out, URLSecrets(c.NATS.URL)...)
	for _, path := range []string{c.NATS.NKeySeed, c.NATS.Creds} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if kp, err := nkeys.ParseDecoratedNKey(b); err == nil {
			if seed, err := kp.Seed(); err == nil {
				out = append(out, string(seed))
			}
		}
	}
	return out
}

// Secrets is a set of secret strings that must not show in what a process prints. Its
// methods hide each of them, wherever it occurs, in text, errors, writers and logs. A
// command adds to it what it learns (a config, a flag) before it prints anything that
// may hold it. It is safe for concurrent use.
type Secrets struct {
	mu   sync.RWMutex
	list []string
	r    *strings.Replacer // nil while list is empty
}

// NewSecrets is a set holding secrets.
func NewSecrets(secrets ...string) *Secrets {
	s := &Secrets{}
	s.Add(secrets...)
	return s
}

// Add adds secrets to the set; empty strings are none.
func (s *Secrets) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v != "" && v != redacted && !slices.Contains(s.list, v) {
			s.list = append(s.list, v)
		}
	}
	if len(s.list) == 0 {
		return
	}
	// Longest first, so that a secret holding another is hidden whole.
	slices.SortFunc(s.list, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(s.list))
	for _, v := range s.list {
		pairs = append(pairs, v, redacted)
	}
	s.r = strings.NewReplacer(pairs...)
}

// Scrub returns text with every secret replaced by "REDACTED".
func (s *Secrets) Scrub(text string) string {
	s.mu.RLock()
	r := s.r
	s.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// Error returns err, or, if its message holds a secret, an error with the message
// scrubbed that wraps it (errors.Is and errors.As still see through it).
func (s *Secrets) Error(err error) error {
	if err == nil {
		return nil
	}
	if msg := s.Scrub(err.Error()); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Writer returns a writer that scrubs each write before passing it to w. A secret
// cut in two by two writes would pass: every line rollcall prints is one write.
func (s *Secrets) Writer(w io.Writer) io.Writer { return scrubWriter{w: w, s: s} }

type scrubWriter struct {
	w io.Writer
	s *Secrets
}

func (w scrubWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.s.Scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Logger returns a logger that scrubs every message and attribute before l's handler
// sees them.
func (s *Secrets) Logger(l *slog.Logger) *slog.Logger {
	return slog.New(scrubHandler{h: l.Handler(), s: s})
}

type scrubHandler struct {
	h slog.Handler
	s *Secrets
}

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.s.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		scrubbed[i] = h.s.attr(a)
	}
	return scrubHandler{h: h.h.WithAttrs(scrubbed), s: h.s}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{h: h.h.WithGroup(name), s: h.s}
}

// attr scrubs an attribute's value: strings and errors as text; any other value is
// kept unless the text or JSON it is shown as holds a secret, and then shown as its
// scrubbed text.
func (s *Secrets) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.Scrub(v.String()))
	case slog.KindGroup:
		group := v.Group()
		scrubbed := make([]any, len(group))
		for i, g := range group {
			scrubbed[i] = s.attr(g)
		}
		return slog.Group(a.Key, scrubbed...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if msg := err.Error(); s.Scrub(msg) != msg {
				return slog.String(a.Key, s.Scrub(msg))
			}
			return slog.Attr{Key: a.Key, Value: v}
		}
		text := fmt.Sprintf("%+v", v.Any())
		js, _ := json.Marshal(v.Any())
		if s.Scrub(text) != text || s.Scrub(string(js)) != string(js) {
			return slog.String(a.Key, s.Scrub(text))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
