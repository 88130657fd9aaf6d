package poller

import (
	"context"
	"log/slog"
	"time"
)

// episode is a trouble that lasts, such as a session's polls failing in a row, said
// so that a long one does not flood the log: once when it starts, at most once a
// minute while it lasts, with how many times it happened, and once when it is over.
// It is not safe for concurrent use.
type episode struct {
	count int
	said  time.Time // zero: not said yet
}

// happened notes one more occurrence, at now: msg the first time, still (with the
// count) at most once a minute after that, at level.
func (e *episode) happened(log *slog.Logger, level slog.Level, now time.Time, msg, still string, args ...any) {
	e.count++
	switch {
	case e.said.IsZero():
		log.Log(context.Background(), level, msg, args...)
	case now.Sub(e.said) >= time.Minute:
		log.Log(context.Background(), level, still, append(args, "times", e.count)...)
	default:
		return
	}
	e.said = now
}

// over ends the episode, saying msg (with the count) if it was said.
func (e *episode) over(log *slog.Logger, msg string) {
	if !e.said.IsZero() {
		log.Info(msg, "times", e.count)
	}
	*e = episode{}
}

// backoff counts failures in a row, and how long to wait after the latest: first
// after one, twice as long after each more, never more than most.
type backoff struct{ failures int }

// fail notes a failure and returns how long to wait after it.
func (b *backoff) fail(first, most time.Duration) time.Duration {
	b.failures++
	if d := first << min(b.failures-1, 30); d > 0 && d < most {
		return d
	}
	return most
}

// reset notes a success.
func (b *backoff) reset() { b.failures = 0 }
