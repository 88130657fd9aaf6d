package sim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The webhook types the simulator sends, as VideoSDK names them.
const (
	ParticipantJoined = "participant-joined"
	ParticipantLeft   = "participant-left"
	SessionStarted    = "session-started"
	SessionEnded      = "session-ended"
)

// Webhook is what one change of the world calls for: the body's fields, and when the
// change happened.
type Webhook struct {
	Type            string // ParticipantJoined, ParticipantLeft, SessionStarted or SessionEnded
	RoomID          string // data.meetingId
	SessionID       string
	ParticipantID   string    // participant types only
	ParticipantName string    // participant types only
	Start           time.Time // session types only: the session's start
	// At is when the change happened, by the Server's clock: for a participant type,
	// the timelog entry's start or end; for session-ended, data.end.
	At time.Time
}

// WebhookOptions configures SendWebhooks. The zero value sends every webhook once, at
// once.
type WebhookOptions struct {
	// Each copy of a webhook is posted a uniform random time in [MinDelay, MaxDelay]
	// after its change (MaxDelay below MinDelay means MinDelay).
	MinDelay, MaxDelay time.Duration
	Loss               float64 // fraction of the webhooks never sent
	// Duplicate is the fraction of the others sent twice, each copy after its own
	// delay, so that a copy may come after later webhooks.
	Duplicate float64
	// Seed seeds the draws (rand/v2 PCG): with the same seed, the same sequence of
	// changes gets the same losses, duplicates and delays.
	Seed   uint64
	Client *http.Client // nil: one with a 10 s timeout
	// OnWebhook, if set, is called from the sender's goroutines for each webhook
	// dropped (sent false) and for each copy once its POST is answered or has failed
	// (sent true). It must return soon: Close waits for it.
	OnWebhook func(h Webhook, sent bool)
}

// WebhookStats counts what a WebhookSender has done so far.
type WebhookStats struct {
	Webhooks   int // called for by the changes
	Lost       int // of those, dropped
	Duplicated int // of those, to be sent twice
	Posted     int // POSTs made: Webhooks - Lost + Duplicated once all are out
	Failed     int // of those, with no answer or one other than 2xx
}

// defaultWebhookClient bounds a POST to a receiver that does not answer; VideoSDK's
// own timeout is not documented.
var defaultWebhookClient = &http.Client{Timeout: 10 * time.Second}

// webhookStream is the second PCG word; only the seed varies between runs.
const webhookStream = 0x400c

// WebhookSender sends a Server's webhooks to one URL. Create it with SendWebhooks.
type WebhookSender struct {
	s      *Server
	url    string
	opts   WebhookOptions
	client *http.Client
	// ctx is the sender's own lifetime, not a caller's: Close cancels it, which stops
	// the waits and the POSTs in flight.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines of the webhooks under way

	mu     sync.Mutex
	rng    *rand.Rand
	closed bool
	stats  WebhookStats
}

// SendWebhooks sends VideoSDK's webhooks for the world's changes from now on to url,
// until Close: participant-joined, participant-left (also for a connection kicked by
// a second join, before that join's participant-joined, and for each participant
// present when a session ends, before its session-ended), session-started and
// session-ended. Each is a POST of {"webhookType": …, "data": {…}} whose
// videosdk-signature header is Sign of the body. They go from goroutines of their own,
// after the change's lock is released, delayed, dropped and duplicated as opts say,
// in no promised order. A failed delivery is not retried: VideoSDK documents no
// retries.
func (s *Server) SendWebhooks(url string, opts WebhookOptions) *WebhookSender {
	w := &WebhookSender{
		s:      s,
		url:    url,
		opts:   opts,
		client: cmp.Or(opts.Client, defaultWebhookClient),
		rng:    rand.New(rand.NewPCG(opts.Seed, webhookStream)),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.senders = append(s.senders, w)
	return w
}

// Stats returns the sender's counts so far.
func (w *WebhookSender) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close stops the sender: the webhooks not posted yet are dropped, uncounted, and the
// POSTs in flight cancelled (those cut short are not counted). It returns once the
// sender's goroutines have.
func (w *WebhookSender) Close() {
	w.s.mu.Lock()
	w.s.senders = slices.DeleteFunc(w.s.senders, func(o *WebhookSender) bool { return o == w })
	w.s.mu.Unlock()
	w.mu.Lock()
	w.closed = true // no goroutine starts after this, so Wait cannot race an Add
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
}

// changed records the webhook a change calls for, if anyone sends webhooks. s.mu must
// be held, and released with unlock.
func (s *Server) changed(h Webhook) {
	if len(s.senders) > 0 {
		s.pending = append(s.pending, h)
	}
}

// unlock releases s.mu, then hands the webhooks of the changes made under it to the
// senders: nothing is sent while the lock is held. Every method that changes the
// world unlocks with it.
func (s *Server) unlock() {
	hooks := s.pending
	if len(hooks) == 0 {
		s.mu.Unlock()
		return
	}
	s.pending = nil
	senders := slices.Clone(s.senders)
	s.mu.Unlock()
	for _, w := range senders {
		w.send(hooks)
	}
}

// send draws, in order, each webhook's fate and delays, and starts a goroutine for each
// copy to post (and for each loss to report).
func (w *WebhookSender) send(hooks []Webhook) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for _, h := range hooks {
		w.stats.Webhooks++
		if w.rng.Float64() < w.opts.Loss {
			w.stats.Lost++
			if w.opts.OnWebhook != nil {
				w.wg.Go(func() { w.opts.OnWebhook(h, false) })
			}
			continue
		}
		copies := 1
		if w.rng.Float64() < w.opts.Duplicate {
			w.stats.Duplicated++
			copies = 2
		}
		// Signed once, by the first copy to go: signing takes a millisecond or two.
		signed := sync.OnceValues(func() ([]byte, string) {
			body := h.body()
			return body, w.s.Sign(body)
		})
		for range copies {
			d := w.delay()
			w.wg.Go(func() { w.deliver(h, signed, d) })
		}
	}
}

// delay draws a copy's delay; w.mu must be held.
func (w *WebhookSender) delay() time.Duration {
	lo := w.opts.MinDelay
	hi := max(w.opts.MaxDelay, lo)
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)+1))
}

// deliver posts one copy of h, whose body and signature signed returns, after d,
// unless the sender is closed first.
func (w *WebhookSender) deliver(h Webhook, signed func() ([]byte, string), d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.ctx.Done():
		return
	case <-t.C:
	}
	err := w.post(signed)
	if err != nil && w.ctx.Err() != nil {
		return // cut short by Close
	}
	w.mu.Lock()
	w.stats.Posted++
	if err != nil {
		w.stats.Failed++
	}
	w.mu.Unlock()
	if w.opts.OnWebhook != nil {
		w.opts.OnWebhook(h, true)
	}
}

// post sends a webhook and reads the answer, which only says whether it arrived.
func (w *WebhookSender) post(signed func() ([]byte, string)) error {
	body, sig := signed()
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("videosdk-signature", sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// body is h as VideoSDK posts it.
func (h Webhook) body() []byte {
	doc := webhookDoc{WebhookType: h.Type}
	switch h.Type {
	case SessionStarted:
		doc.Data = sessionStartedData{MeetingID: h.RoomID, SessionID: h.SessionID, Start: stamp(h.Start)}
	case SessionEnded:
		doc.Data = sessionEndedData{MeetingID: h.RoomID, SessionID: h.SessionID, Start: stamp(h.Start), End: stamp(h.At)}
	default:
		doc.Data = participantData{MeetingID: h.RoomID, SessionID: h.SessionID, ParticipantID: h.ParticipantID, ParticipantName: h.ParticipantName}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic("sim: encode webhook: " + err.Error()) // strings and stamps always encode
	}
	return body
}
