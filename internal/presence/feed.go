// Package presence serves, on [http] listen, what people watch: the presence page and
// the event feed. Both read only the stream and the state bucket, so every replica
// serves the same.
//
// # The event feed
//
// Feed serves GET /events: the stream's events as Server-Sent Events, one per
// message, with the stream sequence as the SSE id and the CloudEvents type as the
// SSE event, starting after the Last-Event-ID a reconnecting browser sends. What a
// client is sent is exactly the stream's events after that sequence, in order, each
// once (those filtered out by ?room= or ?session= aside): a client that is dropped,
// or whose server goes away, reconnects with the last id it got and loses nothing
// the stream still holds.
//
// One ordered consumer per Feed reads the stream and fans its events out to the
// clients, each event encoded once and shared, and keeps the latest ones in memory
// (FeedOptions.Recent, read from the stream when it starts): a client resuming from
// one of them is served from memory, so that a thousand browsers reconnecting at
// once (after a restart, or a replica gone) cost no consumer each. Only a client
// resuming from further back reads the stream with an ordered consumer of its own,
// until it reaches the events in memory, and then joins the others.
//
// Between the shared consumer and each client's writes there are at most
// FeedOptions.Queue events; a client further behind is dropped rather than let
// memory grow, and so is one whose write does not complete within
// FeedOptions.WriteTimeout.
package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/metrics"
)

// FeedOptions tune a Feed; a zero field takes the default named in its comment.
type FeedOptions struct {
	// Heartbeat is how long a client may go without a write before it is sent a
	// comment, so that proxies and browsers do not take a quiet feed for a dead
	// one (15 s: proxies commonly cut idle responses after 30 to 60 s).
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client: one that stops reading is dropped
	// once its socket's buffers are full and a write waits that long (10 s).
	WriteTimeout time.Duration
	// Queue is how many events may wait for a client's writes; a client further
	// behind is dropped (256). The events are shared between clients, so a client
	// costs a pointer per place.
	Queue int
	// MaxClients bounds the clients served at once; the next ones are answered 503
	// with Retry-After (DefaultMaxClients).
	MaxClients int
	// Recent is how many of the stream's latest events are kept in memory for the
	// clients that resume (4096), within 16 MiB.
	Recent  int
	Metrics *metrics.Metrics // nil records nowhere
	Log     *slog.Logger     // nil logs nothing
}

// DefaultMaxClients is FeedOptions.MaxClients's default. The server of the feed must
// accept as many connections and more.
const DefaultMaxClients = 1000

// maxRecentBytes bounds the events kept in memory, whatever their number: an event
// is a few hundred bytes, and at most about 100 KiB (diff.MaxTextLen per text).
const maxRecentBytes = 16 << 20

// catchUpBatch is how many messages a client's own consumer fetches ahead: its
// memory, while it catches up.
const catchUpBatch = 100

// resetAttempts is how many times an ordered consumer tries to recreate itself (after
// a reconnection, or a stream deleted) before its reader fails. Once: while nats.go
// waits to try again (up to 10 s), stopping it waits too, and a Close with it; and a
// failed hub or catch-up costs little, its clients reconnect and resume.
const resetAttempts = 1

// hubStartTimeout bounds setting up the shared consumer, which a request waits for.
const hubStartTimeout = 5 * time.Second

// feedRetryAfter is how soon a client answered 503 may try again, in seconds.
const feedRetryAfter = "5"

// heartbeatComment is what a client that has had no write for a while is sent.
var heartbeatComment = []byte(": heartbeat\n\n")

// Feed serves GET /events from a stream. NewFeed makes one; Close ends it.
type Feed struct {
	js      jetstream.JetStream
	stream  string
	prefix  string
	opts    FeedOptions
	metrics *metrics.Metrics
	log     *slog.Logger
	clients atomic.Int64 // admitted, up to opts.MaxClients
	wg      sync.WaitGroup

	mu     sync.Mutex
	hub    *feedHub // reading the stream; nil until the first request, and after it stops
	closed bool
}

// NewFeed returns the feed of stream, whose events' subjects are under prefix. It
// reads nothing until the first request.
func NewFeed(js jetstream.JetStream, stream, prefix string, opts FeedOptions) *Feed {
	opts.Heartbeat = orDefault(opts.Heartbeat, 15*time.Second)
	opts.WriteTimeout = orDefault(opts.WriteTimeout, 10*time.Second)
	opts.Queue = orDefault(opts.Queue, 256)
	opts.MaxClients = orDefault(opts.MaxClients, DefaultMaxClients)
	opts.Recent = orDefault(opts.Recent, 4096)
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feed{js: js, stream: stream, prefix: prefix, opts: opts, metrics: metrics.Or(opts.Metrics), log: log}
}

// orDefault is v, or def if v is not above zero.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Close ends every client's response and stops reading the stream; the requests
// after it are answered 503.
func (f *Feed) Close() {
	f.mu.Lock()
	f.closed = true
	h := f.hub
	f.mu.Unlock()
	if h != nil {
		f.stopHub(h)
	}
	f.wg.Wait()
}

// ServeHTTP streams the events of the stream after the request's Last-Event-ID
// header, or its lastEventId query parameter (an EventSource cannot set the header
// on its first request; the header wins), or the new ones when neither is given; of
// one room with ?room=, one session with ?session=.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, resume, err := lastEventID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := newFeedClient(r, f.opts.Queue, f.metrics.FeedDropped)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.clients.Add(1) > int64(f.opts.MaxClients) {
		f.clients.Add(-1)
		feedUnavailable(w, fmt.Sprintf("the event feed serves %d clients already: try again later", f.opts.MaxClients))
		return
	}
	defer f.clients.Add(-1)
	f.metrics.FeedClients.Inc()
	defer f.metrics.FeedClients.Dec()
	h, err := f.currentHub(r.Context())
	if err != nil {
		feedUnavailable(w, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	c.cancel = cancel
	defer c.end(false)
	if !h.add(c) {
		feedUnavailable(w, "the event feed is stopping")
		return
	}
	defer h.remove(c)

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	s := &feedSender{w: w, rc: http.NewResponseController(w), timeout: f.opts.WriteTimeout, client: c}
	if !resume {
		after = h.newest()
	}
	// A client of new events is live before its headers go out, so that it misses
	// nothing published once it has them; one that resumes gets its first events
	// with them.
	err = f.join(ctx, s, h, after)
	if err == nil {
		err = s.flush()
	}
	if err != nil {
		if !errors.Is(err, errClientGone) {
			f.log.Warn("event feed: a client's catch-up failed; it will reconnect", "stream", f.stream, "after", after, "err", err)
		}
		return
	}
	f.live(ctx, s, c)
}

// feedUnavailable answers 503, and when to try again.
func feedUnavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", feedRetryAfter)
	http.Error(w, why, http.StatusServiceUnavailable)
}

// lastEventID is where a request starts: after the sequence of its Last-Event-ID
// header, else of its lastEventId query parameter; resume is false without either.
func lastEventID(r *http.Request) (after uint64, resume bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, false, nil
	}
	after, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("last event id %q is not a stream sequence (0 for the stream's first event)", v)
	}
	return after, true, nil
}

// errClientGone ends a client's response without an error to log: it went away, was
// dropped, or the feed stopped.
var errClientGone = errors.New("client gone")

// join writes the events after `after` that c missed, from the events in memory and,
// if it is further behind, from a consumer of its own, until c is live: given each
// new event by the hub.
func (f *Feed) join(ctx context.Context, s *feedSender, h *feedHub, after uint64) error {
	for {
		tail, upTo, status := h.join(s.client, after)
		switch status {
		case joinLive:
			return nil
		case joinStopped:
			return errClientGone
		case joinFromMemory:
			for _, fr := range tail {
				if err := s.event(fr); err != nil {
					return err
				}
			}
			if err := s.flush(); err != nil {
				return err
			}
			after = upTo
		case joinBehind:
			var err error
			if after, err = f.catchUp(ctx, s, h, after); err != nil {
				return err
			}
		}
	}
}

// catchUp writes c's events of the stream after `after`, read by an ordered consumer
// of c's own, until the hub's events in memory hold the rest; it returns the sequence
// reached. The consumer reads every subject: filtered, it could not tell where the
// unfiltered events in memory begin.
func (f *Feed) catchUp(ctx context.Context, s *feedSender, h *feedHub, after uint64) (uint64, error) {
	// A consumer left behind by a client gone is removed by the server soon.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 10 * time.Second, MaxResetAttempts: resetAttempts}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := f.js.OrderedConsumer(ctx, f.stream, cfg)
	if err != nil {
		return after, goneOr(ctx, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(catchUpBatch))
	if err != nil {
		return after, goneOr(ctx, err)
	}
	defer msgs.Stop()
	defer context.AfterFunc(ctx, msgs.Stop)()
	for !h.holdsAfter(after) {
		m, err := msgs.Next(jetstream.NextMaxWait(f.opts.Heartbeat))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			// Only when the events in memory begin with one deleted since.
			if err := s.heartbeat(); err != nil {
				return after, err
			}
			continue
		case err != nil:
			return after, goneOr(ctx, err)
		}
		fr, pending := f.frame(m)
		if s.client.wants(fr) {
			if err := s.event(fr); err != nil {
				return after, err
			}
		}
		after = fr.seq
		if pending == 0 {
			if err := s.flush(); err != nil {
				return after, err
			}
		}
	}
	return after, s.flush()
}

// goneOr is errClientGone if ctx ended, err otherwise.
func goneOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errClientGone
	}
	return err
}

// live writes the events the hub queues for c, and a heartbeat when there are none,
// until c ends.
func (f *Feed) live(ctx context.Context, s *feedSender, c *feedClient) {
	tick := time.NewTicker(f.opts.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case fr := <-c.queue:
			err = s.batch(fr, c.queue)
			tick.Reset(f.opts.Heartbeat)
		case <-tick.C:
			err = s.heartbeat()
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// feedSender writes to one client, each write within its timeout.
type feedSender struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	client  *feedClient
}

// write writes b. The deadline is renewed before each write, which also lifts the
// server's deadline for the whole response.
func (s *feedSender) write(b []byte) error {
	if err := s.renew(); err != nil {
		return err
	}
	_, err := s.w.Write(b)
	return s.failed(err)
}

func (s *feedSender) event(fr *sseFrame) error { return s.write(fr.b) }

func (s *feedSender) flush() error {
	if err := s.renew(); err != nil {
		return err
	}
	return s.failed(s.rc.Flush())
}

func (s *feedSender) renew() error {
	return s.failed(s.rc.SetWriteDeadline(time.Now().Add(s.timeout)))
}

// batch writes fr and the events queued behind it, and flushes them: one write for
// a burst, whose deadline is renewed once (a queue is short, and renewing costs as
// much as a tenth of a write).
func (s *feedSender) batch(fr *sseFrame, queue <-chan *sseFrame) error {
	if err := s.renew(); err != nil {
		return err
	}
	if _, err := s.w.Write(fr.b); err != nil {
		return s.failed(err)
	}
	for n := len(queue); n > 0; n-- {
		if _, err := s.w.Write((<-queue).b); err != nil {
			return s.failed(err)
		}
	}
	return s.failed(s.rc.Flush())
}

func (s *feedSender) heartbeat() error {
	if err := s.write(heartbeatComment); err != nil {
		return err
	}
	return s.flush()
}

// failed is errClientGone for any error: the client went away, or, if the write timed
// out, is dropped.
func (s *feedSender) failed(err error) error {
	if err == nil {
		return nil
	}
	s.client.end(errors.Is(err, os.ErrDeadlineExceeded))
	return errClientGone
}

// sseFrame is one message of the stream, encoded once as the SSE event every client
// is sent.
type sseFrame struct {
	seq uint64
	// room and session are the tokens of the subject,
	// <prefix>.<kind>.<kind>.<room>.<session>; "" for any other subject.
	room, session string
	b             []byte
}

// frame encodes m, and says how many messages its consumer has yet to deliver.
func (f *Feed) frame(m jetstream.Msg) (fr *sseFrame, pending uint64) {
	fr = &sseFrame{}
	if md, err := m.Metadata(); err == nil { // a consumer's message always has its metadata
		fr.seq, pending = md.Sequence.Stream, md.NumPending
	}
	if rest, ok := strings.CutPrefix(m.Subject(), f.prefix+"."); ok {
		if t := strings.Split(rest, "."); len(t) == 4 {
			fr.room, fr.session = t[2], t[3]
		}
	}
	var e struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(m.Data(), &e) // a message that is not an event goes out as a plain message
	data := m.Data()
	b := make([]byte, 0, len(data)+len(e.Type)+48)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, fr.seq, 10)
	b = append(b, '\n')
	if e.Type != "" && !strings.ContainsAny(e.Type, "\r\n") {
		b = append(b, "event: "...)
		b = append(b, e.Type...)
		b = append(b, '\n')
	}
	// A compact JSON event is one line; anything else is split where SSE splits
	// lines (CRLF, LF, CR), and the client joins the data lines back with LF.
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			break
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	fr.b = append(b, "\n\n"...)
	return fr, pending
}

// feedClient is one request of the feed.
type feedClient struct {
	room, session string // the subject tokens it wants; "" for any
	queue         chan *sseFrame
	cancel        context.CancelFunc // ends its response
	once          sync.Once
	dropped       prometheus.Counter // counts it if it does not keep up

	// Guarded by the hub's mu.
	live  bool   // the hub queues its events
	after uint64 // the hub queues only those after this sequence
}

// newFeedClient is the client of r's filters: ?room= and ?session=, each an ID.
func newFeedClient(r *http.Request, queue int, dropped prometheus.Counter) (*feedClient, error) {
	c := &feedClient{queue: make(chan *sseFrame, queue), dropped: dropped}
	q := r.URL.Query()
	for _, f := range []struct {
		name  string
		token *string
	}{{"room", &c.room}, {"session", &c.session}} {
		if !q.Has(f.name) {
			continue
		}
		id := q.Get(f.name)
		if err := diff.CheckID(id); err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
		*f.token = events.EscapeToken(id)
	}
	return c, nil
}

// wants reports whether c is sent fr. An escaped ID is never "", so a filter never
// takes a message whose subject is not an event's.
func (c *feedClient) wants(fr *sseFrame) bool {
	return (c.room == "" || c.room == fr.room) && (c.session == "" || c.session == fr.session)
}

// end ends c's response, once; dropped counts it as a client that did not keep up.
func (c *feedClient) end(dropped bool) {
	c.once.Do(func() {
		if dropped {
			c.dropped.Inc()
		}
		c.cancel()
	})
}

// feedHub reads the stream with one ordered consumer and queues each event for the live
// clients that want it, keeping the latest in memory.
type feedHub struct {
	msgs jetstream.MessagesContext
	head uint64 // the stream's last sequence when the hub started

	mu      sync.Mutex
	stopped bool
	last    uint64      // the last sequence read
	floor   uint64      // recent holds every event of the stream after floor, up to last
	recent  []*sseFrame // in order
	bytes   int         // of recent
	clients map[*feedClient]struct{}
}

// currentHub returns the hub reading the stream, and starts one if none does.
func (f *Feed) currentHub(ctx context.Context) (*feedHub, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("the event feed is stopping")
	}
	if f.hub != nil {
		return f.hub, nil
	}
	ctx, cancel := context.WithTimeout(ctx, hubStartTimeout)
	defer cancel()
	s, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		return nil, fmt.Errorf("the event feed cannot read stream %s: %w", f.stream, err)
	}
	// The hub starts with the stream's latest events, so that clients reconnecting
	// after a restart find where they were in memory.
	head := s.CachedInfo().State.LastSeq
	start := uint64(1)
	if head > uint64(f.opts.Recent) {
		start = head - uint64(f.opts.Recent) + 1
	}
	cons, err := f.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start, MaxResetAttempts: resetAttempts,
	})
	if err != nil {
		return nil, fmt.Errorf("the event feed cannot read stream %s: %w", f.stream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("the event feed cannot read stream %s: %w", f.stream, err)
	}
	h := &feedHub{msgs: msgs, head: head, last: start - 1, floor: start - 1, clients: make(map[*feedClient]struct{})}
	f.hub = h
	f.wg.Add(1)
	go f.run(h)
	return h, nil
}

// run fans the stream's events out until the hub stops.
func (f *Feed) run(h *feedHub) {
	defer f.wg.Done()
	for {
		m, err := h.msgs.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				f.log.Warn("event feed: reading the stream failed; its clients will reconnect", "stream", f.stream, "err", err)
			}
			f.stopHub(h)
			return
		}
		fr, _ := f.frame(m)
		h.publish(fr, f.opts.Recent)
	}
}

// stopHub stops h and ends its clients' responses, once; the next request starts a
// new hub.
func (f *Feed) stopHub(h *feedHub) {
	f.mu.Lock()
	if f.hub == h {
		f.hub = nil
	}
	f.mu.Unlock()
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.stopped = true
	for c := range h.clients {
		c.end(false)
	}
	h.mu.Unlock()
	h.msgs.Stop()
}

// publish keeps fr in memory and queues it for the live clients that want it,
// dropping those whose queue is full.
func (h *feedHub) publish(fr *sseFrame, recent int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = fr.seq
	h.recent = append(h.recent, fr)
	h.bytes += len(fr.b)
	for len(h.recent) > recent || h.bytes > maxRecentBytes {
		h.floor = h.recent[0].seq
		h.bytes -= len(h.recent[0].b)
		h.recent[0] = nil
		h.recent = h.recent[1:]
	}
	for c := range h.clients {
		if !c.live || fr.seq <= c.after || !c.wants(fr) {
			continue
		}
		select {
		case c.queue <- fr:
		default:
			delete(h.clients, c)
			c.end(true)
		}
	}
}

// newest is where a client that wants only new events starts: after the last event
// read, or after the stream's last when the hub started, while it reads those before.
func (h *feedHub) newest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.last, h.head)
}

func (h *feedHub) add(c *feedClient) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.clients[c] = struct{}{}
	return true
}

func (h *feedHub) remove(c *feedClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
}

// The outcomes of feedHub.join.
const (
	joinLive       = iota // the client is live
	joinFromMemory        // the events it missed are in memory: it writes them, then joins again
	joinBehind            // it missed events no longer in memory: it reads them from the stream
	joinStopped           // the hub stopped
)

// join makes c live after `after` if it has missed nothing the hub read. Else it
// returns c's events in memory after `after`, up to the sequence upTo, for c to
// write before it tries again; or says c is behind what memory holds.
func (h *feedHub) join(c *feedClient, after uint64) (tail []*sseFrame, upTo uint64, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stopped:
		return nil, 0, joinStopped
	case after >= h.last:
		c.live, c.after = true, after
		return nil, 0, joinLive
	case after < h.floor:
		return nil, 0, joinBehind
	}
	for _, fr := range h.recent[h.index(after+1):] {
		if c.wants(fr) {
			tail = append(tail, fr)
		}
	}
	return tail, h.last, joinFromMemory
}

// holdsAfter reports whether the events in memory hold every event after seq (or the
// hub stopped, so that a catch-up ends).
func (h *feedHub) holdsAfter(seq uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped || seq >= h.floor
}

// index is the index in recent of the first event at or after seq.
func (h *feedHub) index(seq uint64) int {
	lo, hi := 0, len(h.recent)
	for lo < hi {
		mid := (lo + hi) / 2
		if h.recent[mid].seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
