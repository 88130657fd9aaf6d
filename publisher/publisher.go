// Package publisher does all of rollcall's JetStream I/O: it sets up the stream, puts
// changes on the wire as CloudEvents, and keeps each session's state in a KV bucket.
//
// # Delivery
//
// Every event carries a deterministic id, sent as the Nats-Msg-Id header, so the stream
// drops a republished event as a duplicate while the id is inside its duplicate window.
// Publish returns nil only when the stream has acknowledged every event of the batch; a
// publish error or timeout is an unknown outcome (the message may be stored), so the
// same events are sent again, with the same ids, for up to retryFor. A batch that
// fails stays in its session's outbox (see package poller) and is sent again by the
// next cycle: at-least-once delivery, made effectively exactly-once by the ids within
// the duplicate window.
//
// # Order
//
// A batch is sent in runs of one kind (all the lefts, then all the joins, say): a run is
// pipelined, and the next run starts only when the previous one is acknowledged, so a
// left is never stored before the joined of the same stint, even when a retry
// reorders messages within a run.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/metrics"
	"golang.org/x/sync/semaphore"
)

// window bounds the publishes outstanding at once for one session, so that one large
// session does not take every slot of inFlight.
const window = 256

// inFlight bounds the publishes awaiting their acknowledgement for the whole worker,
// however many sessions publish at once: enough to keep the broker busy (it
// acknowledges in order, a few hundred microseconds after a message arrives), few
// enough that the broker's slowness holds up the sessions rather than piles up
// messages in the connection's buffers.
const inFlight = 1024

// retryFor bounds how long one batch is retried. A broker that does not acknowledge
// within it fails the cycle, so that one session's trouble does not hold up the
// others' next cycle; the batch stays in the session's outbox and is sent again then.
const retryFor = 30 * time.Second

// ackTimeout is how long the publishes of a run may wait for their acknowledgements,
// once sent, before those not in are treated as unknown outcomes and sent again.
const ackTimeout = 5 * time.Second

// Publisher sends changes to the stream.
type Publisher struct {
	prefix string
	log    *slog.Logger
	// backoff is the first wait before a retry; it doubles up to maxBackoff.
	backoff, maxBackoff time.Duration
	retryFor            time.Duration
	metrics             *metrics.Metrics
	// inFlight holds one unit per publish awaiting its acknowledgement. A run takes
	// all of its units at once: a run holding some while waiting for more, with
	// others doing the same, would wait for ever.
	inFlight *semaphore.Weighted
	acks     func() (*acks, error) // made at the first publish
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithMetrics records publishes in m.
func WithMetrics(m *metrics.Metrics) Option {
	return func(p *Publisher) { p.metrics = m }
}

// NewJetStream opens JetStream on nc.
func NewJetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	return js, nil
}

// New returns a Publisher that publishes under subject prefix.
func New(js jetstream.JetStream, prefix string, log *slog.Logger, opts ...Option) *Publisher {
	p := &Publisher{prefix: prefix, log: log, backoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second, retryFor: retryFor,
		inFlight: semaphore.NewWeighted(inFlight), acks: sync.OnceValues(func() (*acks, error) { return newAcks(js.Conn()) })}
	for _, o := range opts {
		o(p)
	}
	p.metrics = metrics.Or(p.metrics)
	return p
}

// Publish sends the changes of session snap, observed at observedAt, and returns when
// the stream has acknowledged all of them. It gives up with an error when the context
// ends, when the server refuses a message (a JetStream API error: the stream is full,
// say), or after retrying for retryFor.
func (p *Publisher) Publish(ctx context.Context, snap diff.Snapshot, observedAt time.Time, changes []diff.Change) error {
	began := time.Now()
	msgs := make([]*nats.Msg, len(changes))
	types := make([]string, len(changes))
	buf := buffers.get(len(changes) * 1024) // the bodies, one after the other
	var data []byte                         // each event's data, before it is copied into buf
	subjects := make(map[string]string, 4)  // by event type
	src := source(snap)
	for i, c := range changes {
		e := newEvent(snap, src, observedAt, c, data[:0])
		data = e.Data
		start := len(buf)
		buf = appendEvent(buf, e)
		body := buf[start:len(buf):len(buf)]
		types[i] = e.Type
		if subjects[e.Type] == "" {
			subjects[e.Type] = events.Subject(p.prefix, e.Type, snap.RoomID, snap.SessionID)
		}
		msgs[i] = messages.get(subjects[e.Type], e.ID, body)
	}
	for start := 0; start < len(changes); {
		end := start + 1
		for end < len(changes) && changes[end].Kind == changes[start].Kind && end-start < window {
			end++
		}
		if err := p.publishAll(ctx, p.log.With("session_id", snap.SessionID), msgs[start:end]); err != nil {
			p.metrics.PublishFailures.Inc()
			return err
		}
		p.metrics.Events.WithLabelValues(strings.TrimPrefix(types[start], "live.videosdk.")).Add(float64(end - start))
		start = end
	}
	p.metrics.PublishDuration.Observe(time.Since(began).Seconds())
	// Every message is acknowledged: nats.go holds none of them.
	buffers.put(buf)
	for _, m := range msgs {
		messages.put(m)
	}
	return nil
}

// messages recycles the messages events are sent in, with their header (a map of
// about 400 bytes, more than the message itself): a burst sends a hundred thousand.
var messages msgPool

type msgPool struct{ pool sync.Pool }

// get returns a message of body to subject, with id as its Nats-Msg-Id.
func (p *msgPool) get(subject, id string, body []byte) *nats.Msg {
	m, ok := p.pool.Get().(*nats.Msg)
	if !ok {
		m = &nats.Msg{Header: nats.Header{jetstream.MsgIDHeader: []string{""}}}
	}
	m.Subject, m.Data = subject, body
	m.Header[jetstream.MsgIDHeader][0] = id
	return m
}

// put gives m back; it must no longer be used, by nats.go either.
func (p *msgPool) put(m *nats.Msg) {
	m.Data = nil
	p.pool.Put(m)
}

// publishAll pipelines msgs and sends again those whose outcome is unknown, until every
// one is acknowledged.
func (p *Publisher) publishAll(ctx context.Context, log *slog.Logger, msgs []*nats.Msg) error {
	wait := p.backoff
	giveUp := time.Now().Add(p.retryFor)
	for attempt := 1; ; attempt++ {
		failed, err := p.try(ctx, msgs)
		if len(failed) == 0 {
			return nil
		}
		var refused *jetstream.APIError
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("publish: %d of %d events unacknowledged: %w", len(failed), len(msgs), context.Cause(ctx))
		case errors.As(err, &refused), errors.Is(err, nats.ErrMaxPayload):
			return fmt.Errorf("publish: the server refused %d of %d events: %w", len(failed), len(msgs), err)
		case time.Now().After(giveUp):
			return fmt.Errorf("publish: %d of %d events unacknowledged after %v: %w", len(failed), len(msgs), p.retryFor, err)
		}
		log.Warn("publish failed, retrying with the same ids", "unacknowledged", len(failed), "attempt", attempt, "err", err)
		msgs = failed
		// Full jitter, so that sessions retrying together do not stay in step.
		if err := sleep(ctx, rand.N(wait)+time.Millisecond); err != nil {
			return fmt.Errorf("publish: %d events unacknowledged: %w", len(failed), err)
		}
		wait = min(2*wait, p.maxBackoff)
	}
}

// try publishes msgs once and returns those not acknowledged, with the first error.
func (p *Publisher) try(ctx context.Context, msgs []*nats.Msg) ([]*nats.Msg, error) {
	a, err := p.acks()
	if err != nil {
		return msgs, err
	}
	if err := p.inFlight.Acquire(ctx, int64(len(msgs))); err != nil {
		return msgs, context.Cause(ctx)
	}
	defer p.inFlight.Release(int64(len(msgs)))
	r := a.send(msgs)
	timeout := time.NewTimer(ackTimeout)
	defer timeout.Stop()
	select {
	case <-r.done:
	case <-timeout.C:
		a.forget(r, fmt.Errorf("no acknowledgement within %v", ackTimeout))
	case <-ctx.Done():
		a.forget(r, context.Cause(ctx))
	}
	var failed []*nats.Msg
	var firstErr error
	for i, err := range r.errs {
		switch {
		case err == nil:
		case errors.Is(err, errDuplicate):
			p.metrics.PublishDuplicate.Inc()
		default:
			failed = append(failed, msgs[i])
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if errors.Is(firstErr, jetstream.ErrNoStreamResponse) {
		firstErr = fmt.Errorf("%w (no stream captures the subject)", firstErr)
	}
	return failed, firstErr
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
