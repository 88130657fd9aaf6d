package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/sim"
)

// With -webhooks, the simulator sends its webhooks to the worker's webhook listener,
// and the run measures, from each change of the churn to its event's stream
// timestamp, the latency of the changes whose webhook arrived apart from the others'.

// webhookFlags declares -webhooks and the -webhook-* flags, as `rollcall sim` does;
// tuned says whether a -webhook-* flag was given.
func webhookFlags(fs *flag.FlagSet, o *options, tuned *bool) {
	o.hooks = sim.WebhookOptions{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Loss: 0.1, Duplicate: 0.1}
	fs.BoolVar(&o.webhooks, "webhooks", false, "the simulator sends its signed webhooks to the worker's webhook.listen: a hint to poll at once")
	sim.WebhookFlags(fs, &o.hooks, "with -webhooks, ", tuned)
}

// webhooksText describes the webhooks of a run, for its first line.
func webhooksText(o options) string {
	if !o.webhooks {
		return "none"
	}
	return fmt.Sprintf("%s-%s late, %g%% lost, %g%% doubled", o.hooks.MinDelay, o.hooks.MaxDelay, 100*o.hooks.Loss, 100*o.hooks.Duplicate)
}

// hookKey names the change a participant webhook is for: its type, session,
// participant, and the change's time in Unix milliseconds (the API's precision),
// which tells two joins of one participant apart.
type hookKey struct {
	Type                     string // sim.ParticipantJoined or sim.ParticipantLeft
	SessionID, ParticipantID string
	At                       int64
}

// webhookLog is what the simulator did with the participant webhooks of the changes
// since its sender started: the webhooks it dropped, and when the first copy of each
// of the others was answered (or failed: Stats.Failed counts those).
type webhookLog struct {
	Stats    sim.WebhookStats
	Lost     []hookKey
	Answered []hookAnswer
}

type hookAnswer struct {
	hookKey
	Answered time.Time
}

// webhookRecorder keeps the simulator's webhookLog, from OnWebhook.
type webhookRecorder struct {
	mu       sync.Mutex
	sender   *sim.WebhookSender
	lost     []hookKey
	answered map[hookKey]time.Time
}

func (r *webhookRecorder) onWebhook(h sim.Webhook, sent bool) {
	if h.Type != sim.ParticipantJoined && h.Type != sim.ParticipantLeft {
		return
	}
	now := time.Now()
	k := hookKey{Type: h.Type, SessionID: h.SessionID, ParticipantID: h.ParticipantID, At: h.At.UnixMilli()}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !sent:
		r.lost = append(r.lost, k)
	case r.answered[k].IsZero(): // the first copy answered; a duplicate's second is later
		r.answered[k] = now
	}
}

// serveWebhooks adds the endpoints of pathWebhooks to mux: a POST starts sending the
// webhooks of api's changes to the URL in its body, as o says; a GET returns the
// webhookLog. stop stops the sender.
func serveWebhooks(mux *http.ServeMux, api *sim.Server, o options) (stop func()) {
	r := &webhookRecorder{answered: make(map[hookKey]time.Time)}
	mux.HandleFunc("POST "+pathWebhooks, func(rw http.ResponseWriter, req *http.Request) {
		url, err := io.ReadAll(io.LimitReader(req.Body, 1<<10))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.sender != nil {
			http.Error(rw, "already sending", http.StatusConflict)
			return
		}
		opts := o.hooks
		opts.Seed, opts.OnWebhook = o.seed, r.onWebhook
		r.sender = api.SendWebhooks(string(url), opts)
	})
	mux.HandleFunc("GET "+pathWebhooks, func(rw http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		var log webhookLog
		if r.sender != nil {
			log.Stats = r.sender.Stats()
		}
		log.Lost = append(log.Lost, r.lost...)
		for k, t := range r.answered {
			log.Answered = append(log.Answered, hookAnswer{hookKey: k, Answered: t})
		}
		r.mu.Unlock()
		_ = json.NewEncoder(rw).Encode(log) // a failed answer fails the run that asked
	})
	return func() {
		r.mu.Lock()
		sender := r.sender
		r.mu.Unlock()
		if sender != nil {
			sender.Close() // outside r.mu: Close waits for OnWebhook, which takes it
		}
	}
}

func (s simClient) sendWebhooks(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+pathWebhooks, bytes.NewReader([]byte(url)))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", pathWebhooks, resp.Status)
	}
	return nil
}

func (s simClient) webhooks(ctx context.Context) (l webhookLog, err error) {
	return l, s.do(ctx, http.MethodGet, pathWebhooks, &l)
}

// storedEvent is a participant event as the stream holds it.
type storedEvent struct {
	Type                     string // events.TypeJoined or events.TypeLeft
	SessionID, ParticipantID string
	JoinedAt, LeftAt         *time.Time
	Detection                string
	Stored                   time.Time // the stream's timestamp
}

// storedSince returns the participant events the stream stored from since on.
func storedSince(ctx context.Context, js jetstream.JetStream, stream, prefix string, since time.Time) ([]storedEvent, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ".participant.joined.>", prefix + ".participant.left.>"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return nil, err
	}
	var out []storedEvent
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		n, last := 0, false
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			e, err := events.Decode(msg.Data())
			if err != nil {
				return nil, err
			}
			d, err := e.Participant()
			if err != nil {
				return nil, err
			}
			ev := storedEvent{Type: e.Type, SessionID: d.SessionID, ParticipantID: d.ParticipantID, Detection: d.Detection, Stored: md.Timestamp}
			if d.JoinedAt != nil {
				ev.JoinedAt = &d.JoinedAt.Time
			}
			if d.LeftAt != nil {
				ev.LeftAt = &d.LeftAt.Time
			}
			out = append(out, ev)
			last = md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if last || n == 0 {
			return out, nil
		}
	}
}

// latencies is the latency, from a change to its event's stream timestamp, of the
// changes of a run made from a time on.
type latencies struct {
	webhooks bool            // the simulator sent webhooks
	arrived  []time.Duration // changes whose webhook was sent (with webhooks)
	rest     []time.Duration // changes whose webhook was lost, or all without webhooks
	// With webhooks: of the arrived, from the change to its webhook's first answer;
	// of every change, from the first answer to a webhook of its session since the
	// change (its own, or another's: the first hint that could find it) to its event,
	// unless a scheduled poll stored it before any such hint (unhinted).
	hookDelay, hinted []time.Duration
	unhinted          int
	noLeftAt          int // lefts without leftAt: no time to measure from
	reconciled        int // changes found in the list of all participants: another path
	negative          int // events stored before their change: the clocks differ
	unanswered        int // arrived changes whose webhook has no answer on record
	lostUnmatched     int // lost webhooks of changes that have no poll event
}

// measureLatencies classifies the participant events in evs whose change (joinedAt,
// or leftAt) is at since or later: those whose webhook hooks does not list as lost
// (with hooks) as arrived, the others as the rest. hooks nil: no webhooks were sent.
func measureLatencies(evs []storedEvent, since time.Time, hooks *webhookLog) latencies {
	l := latencies{webhooks: hooks != nil}
	since = since.Truncate(time.Millisecond) // as the API's times are
	lost := map[hookKey]bool{}
	answered := map[hookKey]time.Time{}
	bySession := map[string][]hookAnswer{}
	if hooks != nil {
		for _, k := range hooks.Lost {
			lost[k] = true
		}
		for _, a := range hooks.Answered {
			answered[a.hookKey] = a.Answered
			bySession[a.SessionID] = append(bySession[a.SessionID], a)
		}
	}
	// firstHint is when the first webhook of session since at was answered, or the
	// zero time.
	firstHint := func(session string, at time.Time) time.Time {
		var first time.Time
		for _, a := range bySession[session] {
			if a.At >= at.UnixMilli() && (first.IsZero() || a.Answered.Before(first)) {
				first = a.Answered
			}
		}
		return first
	}
	lostSeen := map[hookKey]bool{}
	for _, e := range evs {
		at, typ := e.JoinedAt, sim.ParticipantJoined
		if e.Type == events.TypeLeft {
			at, typ = e.LeftAt, sim.ParticipantLeft
		}
		switch {
		case at == nil && e.Type == events.TypeLeft:
			l.noLeftAt++
			continue
		case at == nil || at.Before(since):
			continue // not a change of the churn
		case e.Detection == events.DetectionReconciled:
			l.reconciled++
			continue
		}
		d := e.Stored.Sub(*at)
		if d < 0 {
			l.negative++
		}
		if hooks == nil {
			l.rest = append(l.rest, d)
			continue
		}
		k := hookKey{Type: typ, SessionID: e.SessionID, ParticipantID: e.ParticipantID, At: at.UnixMilli()}
		if lost[k] {
			l.rest = append(l.rest, d)
			lostSeen[k] = true
		} else {
			l.arrived = append(l.arrived, d)
			if t, ok := answered[k]; ok {
				l.hookDelay = append(l.hookDelay, t.Sub(*at))
			} else {
				l.unanswered++
			}
		}
		if hint := firstHint(e.SessionID, *at); !hint.IsZero() && !e.Stored.Before(hint) {
			l.hinted = append(l.hinted, e.Stored.Sub(hint))
		} else {
			l.unhinted++
		}
	}
	for k := range lost {
		if !lostSeen[k] {
			l.lostUnmatched++
		}
	}
	return l
}

// reportLatencies prints l, and the simulator's webhook counts if it sent any.
func reportLatencies(w io.Writer, o options, l latencies, hooks *webhookLog) {
	mode := "no webhooks"
	if l.webhooks {
		mode = "webhooks " + webhooksText(o)
	}
	fmt.Fprintf(w, "latency:   from each change of the churn to its event's stream timestamp (detection poll), %s:\n", mode)
	restTarget := fmt.Sprintf("target ≤ interval + 1s = %s", o.interval+time.Second)
	if l.webhooks {
		fmt.Fprintf(w, "           webhook arrived: %s (target ≤ 1s)\n", spread(l.arrived))
		fmt.Fprintf(w, "           webhook lost:    %s (%s)\n", spread(l.rest), restTarget)
	} else {
		fmt.Fprintf(w, "           no webhook:      %s (%s)\n", spread(l.rest), restTarget)
	}
	fmt.Fprintf(w, "           not measured: %d lefts without leftAt, %d reconciled\n", l.noLeftAt, l.reconciled)
	if l.negative > 0 {
		fmt.Fprintf(w, "           %d events stored before their change: the simulator's and the NATS server's clocks differ\n", l.negative)
	}
	if hooks == nil {
		return
	}
	st := hooks.Stats
	fmt.Fprintf(w, "webhooks:  %d called for: %d lost, %d doubled; %d POSTs, %d failed\n", st.Webhooks, st.Lost, st.Duplicated, st.Posted, st.Failed)
	fmt.Fprintf(w, "           arrived: first copy answered after its change: %s\n", quantiles(l.hookDelay))
	fmt.Fprintf(w, "           event stored after the first webhook of its session answered since the change: %s; %d changes stored before any\n",
		quantiles(l.hinted), l.unhinted)
	if l.unanswered > 0 || l.lostUnmatched > 0 {
		fmt.Fprintf(w, "           %d arrived changes with no answer on record, %d lost webhooks with no poll event\n", l.unanswered, l.lostUnmatched)
	}
}

// spread says how many ds there are, and their p50, p99 and max.
func spread(ds []time.Duration) string {
	return fmt.Sprintf("%d changes, %s", len(ds), quantiles(ds))
}

func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s", ms(percentile(ds, 50)), ms(percentile(ds, 99)), ms(percentile(ds, 100)))
}
