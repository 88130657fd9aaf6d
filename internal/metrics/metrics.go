// Package metrics holds rollcall's Prometheus metrics, declared once: the poller and
// the publisher record into them, the worker serves them on /metrics. Labels are of
// bounded cardinality only: no session, room or participant IDs.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rollcall/rollcall/diff"
)

// Outcomes of a poll, the values of rollcall_polls_total's outcome label.
const (
	OutcomeOK         = "ok"         // a complete snapshot, its changes published
	OutcomeIncomplete = "incomplete" // pages disagreed or were unusable: joins only
	OutcomeFailed     = "failed"     // the API, the state or the stream failed
	OutcomeNotFound   = "not_found"  // the API does not know the session (404)
	OutcomeEnded      = "ended"      // the session ended: its last poll
)

// Endpoints of the API, the values of the endpoint label.
const (
	EndpointActive   = "active_participants"
	EndpointAll      = "all_participants"
	EndpointSessions = "sessions"
)

// Results of a request to the webhook receiver, the values of
// rollcall_webhooks_total's result label. Every request to its path counts once.
const (
	WebhookVerified  = "verified"  // 204: signed by VideoSDK, also of a type rollcall does not use
	WebhookRejected  = "rejected"  // 401: no signature, a bad one, or no key to check it with
	WebhookMalformed = "malformed" // not a webhook: 400, and 405 (another method) and 413 (too large)
)

// Metrics are rollcall's instruments.
type Metrics struct {
	Polls        *prometheus.CounterVec   // by outcome
	PollDuration *prometheus.HistogramVec // by outcome

	Requests        *prometheus.CounterVec   // by endpoint and code
	RequestDuration *prometheus.HistogramVec // by endpoint
	Retries         *prometheus.CounterVec   // by endpoint
	Holds           prometheus.Counter       // 429s that held every request back
	TokenMints      prometheus.Counter

	ScanPages       prometheus.Histogram
	ScansDiscarded  prometheus.Counter     // whose pages disagreed
	SamePage        prometheus.Counter     // polls that stopped at the page of a quiet poll before
	ConfirmingScans prometheus.Counter     // backward scans that confirm an absence
	Reconciled      prometheus.Counter     // stints no poll saw, found in a timelog
	LeftsUntimed    prometheus.Counter     // lefts published without their end
	RecordsRejected *prometheus.CounterVec // records from the API set aside, by reason
	Conflicts       prometheus.Counter     // lefts held back, or taken back, because the two lists disagree
	StatesRebuilt   prometheus.Counter     // states that could not be read, rebuilt from the stream

	Events           *prometheus.CounterVec // published and acknowledged, by type
	PublishFailures  prometheus.Counter     // batches given up (left in their outbox)
	PublishDuration  prometheus.Histogram   // of one batch, until every ack
	PublishDuplicate prometheus.Counter     // acknowledged as duplicates by the stream
	OutboxResends    prometheus.Counter     // events of a stopped cycle sent again

	StateLoads prometheus.Counter
	StateSaves prometheus.Counter
	StateSize  prometheus.Histogram

	TrackedSessions *prometheus.GaugeVec // by status
	TrackedRooms    prometheus.Gauge
	Present         prometheus.Gauge // participants present in all tracked sessions
	LeftsWaiting    prometheus.Gauge // lefts waiting for their end, in all tracked sessions
	OldestPoll      prometheus.Gauge // age of the oldest last complete poll of a polling session
	Ready           prometheus.Gauge // 1 when /readyz would answer 200

	LeasesHeld   prometheus.Gauge   // sessions and rooms this replica holds the lease of
	LeaseLosses  prometheus.Counter // leases found taken or expired on renewal
	ReplicasLive prometheus.Gauge   // replicas whose heartbeat is in the lease bucket

	Webhooks *prometheus.CounterVec // requests to the webhook receiver, by result

	FeedClients prometheus.Gauge   // clients of GET /events served now
	FeedDropped prometheus.Counter // clients of GET /events dropped for not keeping up
}

// New returns the instruments, registered with reg; nil registers them nowhere (for
// tests and tools that do not serve them).
func New(reg prometheus.Registerer) *Metrics {
	seconds := prometheus.ExponentialBuckets(0.005, 2, 14) // 5 ms to 41 s
	m := &Metrics{
		Polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_polls_total", Help: "Polls of a session, by outcome.",
		}, []string{"outcome"}),
		PollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rollcall_poll_duration_seconds", Help: "Duration of a poll: load, every page, diff, save, publish.", Buckets: seconds,
		}, []string{"outcome"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_api_requests_total", Help: "VideoSDK API requests, by endpoint and HTTP status code (\"error\" when no answer came).",
		}, []string{"endpoint", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rollcall_api_request_duration_seconds", Help: "Latency of VideoSDK API requests, rate limit waits excluded.", Buckets: seconds,
		}, []string{"endpoint"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_api_retries_total", Help: "VideoSDK API requests retried after a 429, a 5xx, a timeout or a broken connection.",
		}, []string{"endpoint"}),
		Holds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_api_holds_total", Help: "429 answers with Retry-After, which hold every request back.",
		}),
		TokenMints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_token_mints_total", Help: "API tokens minted.",
		}),
		ScanPages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rollcall_scan_pages", Help: "Pages read by one scan of a session's active participants.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100},
		}),
		ScansDiscarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_scans_discarded_total", Help: "Scans discarded because their pages disagreed (someone came or went mid-scan).",
		}),
		SamePage: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_polls_same_page_total", Help: "Polls that stopped at a one-page active list byte for byte the one of a quiet poll before, without decoding it.",
		}),
		ConfirmingScans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_confirming_scans_total", Help: "Second, backward scans that confirm an absence from a list of several pages.",
		}),
		Reconciled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_reconciled_stints_total", Help: "Stints that no poll saw (they began and ended between two polls, or while rollcall was down), found in a timelog and published as joined and left with detection reconciled.",
		}),
		RecordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_records_rejected_total", Help: "Records from the API set aside, each time an answer holds one, by reason (id, time, order, timelog, size, older: a whole answer older than the state): the rest of the answer is used.",
		}, []string{"reason"}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_left_conflicts_total", Help: "Stints the active list no longer shows while the list of all participants shows them open: their left waits (or, if it went out without its end, they are present again).",
		}),
		StatesRebuilt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_states_rebuilt_total", Help: "Session states that could not be read back, set aside and rebuilt from the stream's events.",
		}),
		LeftsUntimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_lefts_without_time_total", Help: "Lefts published with leftAt null: their end did not show in time (poll.left_time_wait).",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_events_published_total", Help: "Events acknowledged by the stream, by type.",
		}, []string{"type"}),
		PublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_publish_failures_total", Help: "Batches of events not acknowledged after every retry: left in their session's outbox for the next poll.",
		}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rollcall_publish_duration_seconds", Help: "Time to publish one session's batch of events until every acknowledgement.", Buckets: seconds,
		}),
		PublishDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_publish_duplicates_total", Help: "Events the stream acknowledged as duplicates (published before, within the duplicate window).",
		}),
		OutboxResends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_outbox_resends_total", Help: "Events sent again from the outbox of a cycle that stopped before their acknowledgement.",
		}),
		StateLoads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_state_loads_total", Help: "Session states read from the state bucket (a loop reads its session's once, then keeps it).",
		}),
		StateSaves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_state_saves_total", Help: "Session states written to the state bucket.",
		}),
		StateSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rollcall_state_size_bytes", Help: "Size of a saved session state, as stored (gzipped above 2 KiB).",
			Buckets: prometheus.ExponentialBuckets(256, 4, 8), // 256 B to 4 MiB
		}),
		TrackedSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rollcall_tracked_sessions", Help: "Tracked sessions, by status (polling, not_found, ended).",
		}, []string{"status"}),
		LeasesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_leases_held", Help: "Sessions and rooms whose lease this replica holds: those it polls or follows.",
		}),
		LeaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_lease_losses_total", Help: "Leases this replica found taken by another or expired when it renewed them (a pause or partition longer than nats.lease_ttl).",
		}),
		ReplicasLive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_replicas_live", Help: "Replicas of rollcall alive, by their heartbeats in the lease bucket, as of this replica's last lease round.",
		}),
		TrackedRooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_tracked_rooms", Help: "Tracked rooms.",
		}),
		LeftsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_lefts_waiting", Help: "Lefts waiting for their end to show in the list of all participants (poll.left_time_wait), in all tracked sessions, as last polled.",
		}),
		Present: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_participants_present", Help: "Participants present, over every tracked session, as last polled.",
		}),
		OldestPoll: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_oldest_complete_poll_age_seconds", Help: "Age of the oldest last complete poll among the sessions being polled (0 with none).",
		}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_ready", Help: "1 when the worker is ready (connected to NATS, stream and buckets there, polls completing), else 0; as /readyz.",
		}),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollcall_webhooks_total", Help: "Requests to the webhook receiver, by result: verified (204), rejected (401: no signature, a bad one, or no key), malformed (400, 405, 413: not a webhook).",
		}, []string{"result"}),
		FeedClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollcall_sse_clients", Help: "Clients of the event feed (GET /events) served now.",
		}),
		FeedDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollcall_sse_dropped_total", Help: "Clients of the event feed (GET /events) dropped because they did not keep up: too many events waiting for them, or a write that did not complete in time. They reconnect with Last-Event-ID and lose nothing.",
		}),
	}
	// Every known label value starts at zero, so that rates and alerts see a zero
	// rather than nothing before the first event of a kind.
	for _, o := range []string{OutcomeOK, OutcomeIncomplete, OutcomeFailed, OutcomeNotFound, OutcomeEnded} {
		m.Polls.WithLabelValues(o)
		m.PollDuration.WithLabelValues(o)
	}
	for _, e := range []string{EndpointActive, EndpointAll, EndpointSessions} {
		m.Retries.WithLabelValues(e)
		m.RequestDuration.WithLabelValues(e)
	}
	for _, t := range []string{"participant.joined", "participant.left", "session.started", "session.ended"} {
		m.Events.WithLabelValues(t)
	}
	for _, s := range []string{"polling", OutcomeNotFound, "ended"} {
		m.TrackedSessions.WithLabelValues(s)
	}
	for _, r := range []string{diff.ReasonID, diff.ReasonTime, diff.ReasonOrder, diff.ReasonTimelog, diff.ReasonSize, diff.ReasonOlder} {
		m.RecordsRejected.WithLabelValues(r)
	}
	for _, r := range []string{WebhookVerified, WebhookRejected, WebhookMalformed} {
		m.Webhooks.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Polls, m.PollDuration, m.Requests, m.RequestDuration, m.Retries, m.Holds, m.TokenMints,
			m.ScanPages, m.ScansDiscarded, m.SamePage, m.ConfirmingScans, m.Reconciled, m.LeftsUntimed, m.RecordsRejected, m.Conflicts, m.StatesRebuilt, m.Events, m.PublishDuration, m.PublishDuplicate,
			m.OutboxResends, m.StateSaves, m.StateSize, m.TrackedSessions, m.TrackedRooms, m.Present, m.LeftsWaiting, m.OldestPoll,
			m.PublishFailures, m.Ready, m.StateLoads, m.LeasesHeld, m.LeaseLosses, m.ReplicasLive, m.Webhooks,
			m.FeedClients, m.FeedDropped)
	}
	return m
}

// Or returns m, or instruments registered nowhere if m is nil.
func Or(m *Metrics) *Metrics {
	if m == nil {
		return New(nil)
	}
	return m
}
