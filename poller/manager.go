package poller

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
)

// Kinds of tracked IDs, as in the tracking bucket's keys.
const (
	KindSession = "session"
	KindRoom    = "room"
)

// Update is the whole set of sessions and rooms that one origin (the config file, the
// tracking bucket) tracks now. An origin that tracks nothing more sends an empty
// Update: disappearance is said, never inferred from silence.
type Update struct {
	Origin   string
	Sessions []string
	Rooms    []string
}

// RoomLister lists a room's sessions; Client is one.
type RoomLister interface {
	// RoomSessions lists a room's sessions, and the entries set aside.
	RoomSessions(ctx context.Context, roomID string, all bool) ([]SessionInfo, []diff.SetAside, error)
}

// ManagerConfig configures a Manager. Zero durations take the defaults given.
type ManagerConfig struct {
	Poller   Polls // a Poller
	Rooms    RoomLister
	Schedule cron.Schedule // when each session is polled
	Discover cron.Schedule // when each room's sessions are listed
	// Reconcile is when each session's list of all participants is read even though
	// no poll needs it, to find the stints that no poll saw; nil: only when one does.
	Reconcile cron.Schedule
	// A session the API does not know (404) is asked again after NotFoundWait
	// (default 30s), then twice as long each time, up to MaxNotFoundWait (default
	// 10m): it may be a typo that never resolves, or a session not there yet, and
	// neither is worth a request each interval.
	NotFoundWait, MaxNotFoundWait time.Duration
	// While the API rejects the credentials, a session is asked again after
	// RejectedWait (default 10s), then twice as long each time, up to a minute: a
	// request each interval would spend the rate limit on answers known in advance.
	RejectedWait time.Duration
	// Unfinished lists the sessions whose state is kept and not ended: followed
	// before a restart, or before their room was untracked. A room's listing that
	// shows one of them ended has it polled once more, so that its lefts and session
	// ended are published even though it ended while no one was looking.
	Unfinished []string
	// UnknownRoom, if set, hears of a hint (see Hint) from a room that no origin
	// tracks, nor the session it names; it runs on the Run goroutine, and must not
	// block.
	UnknownRoom func(roomID string)
	Log         *slog.Logger
	// Leases, when set, share the tracked sessions and rooms with the other replicas
	// of rollcall: this one (named Replica) polls a session, or follows a room, only
	// while it holds its lease, renewed every LeaseTTL/3 (default 15s). The sessions a
	// room finds go with the room, unless tracked by ID too (then their own lease
	// decides). Without Leases, everything tracked is polled here.
	Leases   LeaseStore
	Replica  string
	LeaseTTL time.Duration
	// Vanished, when set, reports whether a replica holding leases is certainly
	// gone: killed before it gave them up. It is asked once, in the first lease
	// round, about holders that wrote none of their leases since this replica
	// started, and this one then takes their leases over at once (compare-and-set on
	// the revision it read) instead of a TTL later. It must answer false when in
	// doubt: what a replica wrongly taken over still does is fenced, but it polls
	// for up to its lease's deadline beside the new holder.
	Vanished func(ctx context.Context, replica string) bool
	Metrics  *metrics.Metrics
	// PollsAtOnce is how many polls run at once (default 256), each on a goroutine of
	// a pool: the others wait their turn in order. It should be at least what the
	// Poller fetches and delivers at once (Poller.AtOnce), which it then does not
	// limit further.
	PollsAtOnce int
}

// Manager owns one loop per tracked session and one per tracked room. It starts a
// loop when a session or room becomes tracked and stops it when it no longer is;
// a session's loop also returns by itself once the session has ended. Nothing but
// the loops keeps per-session state, and a loop that returns leaves nothing behind.
type Manager struct {
	cfg    ManagerConfig
	anchor time.Time
	late   lateness // polls that finished more than an interval after they were due

	events  chan func() // run on the Run goroutine, which alone owns the maps below
	hints   chan Hint
	queries chan chan []Status
	// Filled and read only by Run.
	sessions   map[string]*loop
	rooms      map[string]*loop
	unfinished map[string]bool
	origins    map[string]Update // what each origin tracks
	owned      map[string]bool   // the lease keys this replica holds, with Leases
	running    sync.WaitGroup
	// pool runs the loops' polls (see pooled) while Run does.
	pool chan func()

	keeper *keeper       // nil without Leases
	nudge  chan struct{} // a lease round now: the tracked set changed
}

// loop is one session's or room's goroutine, as the Run goroutine sees it.
type loop struct {
	kind, id string
	from     map[string]bool // origins; the loop stops when none is left
	cancel   context.CancelFunc
	done     bool             // the goroutine has returned (or never ran, for an ended session)
	poke     chan SessionInfo // poll now: a room's list shows the session ended
	hint     chan struct{}    // poll or list now: a webhook says something changed
	ended    bool
	seen     bool // a poll found the session: it has a state
	// A room's: whether a listing has been handed to found, and the newest session
	// start the listings showed, in the API's clock (see found).
	listed bool
	newest time.Time

	mu       sync.Mutex // status, written by the goroutine
	status   string
	last     time.Time
	present  int
	waiting  int
	setAside int
	problem  string
}

// NewManager returns a Manager; Run starts it.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.NotFoundWait <= 0 {
		cfg.NotFoundWait = 30 * time.Second
	}
	if cfg.MaxNotFoundWait <= 0 {
		cfg.MaxNotFoundWait = 10 * time.Minute
	}
	if cfg.RejectedWait <= 0 {
		cfg.RejectedWait = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PollsAtOnce <= 0 {
		cfg.PollsAtOnce = 256
	}
	m := &Manager{
		cfg: cfg, anchor: time.Now().Truncate(time.Second),
		events: make(chan func()), queries: make(chan chan []Status), hints: make(chan Hint, hintsQueued), pool: make(chan func()),
		sessions: make(map[string]*loop), rooms: make(map[string]*loop), unfinished: make(map[string]bool),
	}
	for _, id := range cfg.Unfinished {
		m.unfinished[id] = true
	}
	m.origins = make(map[string]Update)
	if cfg.Leases != nil {
		if cfg.LeaseTTL <= 0 {
			cfg.LeaseTTL = 15 * time.Second
		}
		m.cfg.LeaseTTL = cfg.LeaseTTL
		m.keeper = newKeeper(cfg.Leases, cfg.Replica, cfg.LeaseTTL, cfg.Log, cfg.Metrics)
		m.keeper.vanished = cfg.Vanished
		m.owned = map[string]bool{}
		m.nudge = make(chan struct{}, 1)
	}
	return m
}

// Run applies updates to the tracked set until ctx is done, then stops every loop and
// returns once they all have. ctx ending stops the waits between polls; a poll in
// flight goes on until polls is done, so that the caller can give it a grace period.
func (m *Manager) Run(ctx, polls context.Context, updates <-chan Update) {
	var keeping, pool sync.WaitGroup
	if m.keeper != nil {
		keeping.Go(func() { m.keep(ctx, polls) })
	}
	for range m.cfg.PollsAtOnce {
		pool.Go(func() {
			for poll := range m.pool {
				poll()
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			m.running.Wait()
			close(m.pool) // no loop is left to poll
			pool.Wait()
			keeping.Wait()
			if m.keeper != nil {
				// The loops have returned: the others may take over at once.
				leave, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				m.keeper.leave(leave)
				cancel()
			}
			return
		case u, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			m.origins[u.Origin] = u
			m.apply(ctx, polls)
			if m.nudge != nil {
				select {
				case m.nudge <- struct{}{}: // newly tracked: claim it now, not next round
				default:
				}
			}
		case f := <-m.events:
			f()
		case h := <-m.hints:
			m.hinted(h)
		case q := <-m.queries:
			q <- m.status()
		}
	}
}

// pooled runs poll on a goroutine of the pool and returns once it has. A poll's calls
// (fetch, decode, diff, save, publish) need a stack of 16-32 KiB; on its loop's own
// goroutine, each of thousands of loops would grow its stack to that in its first
// poll, copying it at each doubling, and keep it for the collector to scan at every
// cycle. The loops only wait, on 2-4 KiB each, and a few hundred goroutines hold the
// deep stacks.
//
// A poll still waiting for its turn when ctx ends is not run (false): the loop is
// stopping.
func (m *Manager) pooled(ctx context.Context, poll func()) bool {
	done := make(chan struct{})
	select {
	case m.pool <- func() {
		defer close(done)
		poll()
	}:
	case <-ctx.Done():
		return false
	}
	<-done
	return true
}

// send runs f on the Run goroutine, unless ctx ends first.
func (m *Manager) send(ctx context.Context, f func()) {
	select {
	case m.events <- f:
	case <-ctx.Done():
	}
}

// apply brings the loops in line with what the origins track, and with the sessions
// found by rooms (kept as origins "room <id>" on the sessions themselves), as far as
// this replica owns them.
func (m *Manager) apply(ctx, polls context.Context) {
	origins := m.origins
	want := map[string]map[string]map[string]bool{KindSession: {}, KindRoom: {}}
	add := func(kind, id, origin string) {
		if want[kind][id] == nil {
			want[kind][id] = make(map[string]bool)
		}
		want[kind][id][origin] = true
	}
	for origin, u := range origins {
		for _, id := range u.Sessions {
			add(KindSession, id, origin)
		}
		for _, id := range u.Rooms {
			add(KindRoom, id, origin)
		}
	}
	for id, l := range m.sessions {
		for origin := range l.from {
			if room, ok := roomOrigin(origin); ok && want[KindRoom][room] != nil && m.owns(KindRoom, room, want[KindRoom][room]) {
				add(KindSession, id, origin) // still found by a room still tracked, and followed here
			}
		}
	}
	elsewhere := map[string]bool{} // tracked, but another replica's
	for _, kind := range []string{KindRoom, KindSession} {
		for id, from := range want[kind] {
			if !m.owns(kind, id, from) {
				delete(want[kind], id)
				elsewhere[kind+" "+id] = true
			}
		}
	}
	m.sync(ctx, polls, m.rooms, KindRoom, want[KindRoom], elsewhere)
	m.sync(ctx, polls, m.sessions, KindSession, want[KindSession], elsewhere)
}

// sync starts a loop for each wanted id without one, and stops the loop of each id no
// longer wanted. A loop stopping is kept until its goroutine returns, so that a
// session tracked again meanwhile is never polled by two loops at once.
func (m *Manager) sync(ctx, polls context.Context, loops map[string]*loop, kind string, want map[string]map[string]bool, elsewhere map[string]bool) {
	for id, l := range loops {
		if want[id] == nil {
			switch {
			case l.from != nil && elsewhere[kind+" "+id]:
				m.cfg.Log.Info("no longer polled here: this replica does not hold its lease", "kind", kind, "id", id)
			case l.from != nil:
				m.cfg.Log.Info("no longer tracked: its state is kept, and no one is announced as gone", "kind", kind, "id", id)
			}
			l.from = nil
			if l.cancel != nil {
				l.cancel()
			}
			if l.done {
				delete(loops, id)
			}
		}
	}
	for id, from := range want {
		l := loops[id]
		if l == nil || l.from == nil {
			m.cfg.Log.Info("tracked", "kind", kind, "id", id, "from", slices.Sorted(maps.Keys(from)))
		}
		if l == nil {
			l = &loop{kind: kind, id: id, poke: make(chan SessionInfo, 1), hint: make(chan struct{}, 1)}
			loops[id] = l
		}
		l.from = from
		if l.cancel == nil && !l.ended {
			m.start(ctx, polls, l)
		}
	}
}

// start starts l's goroutine; when it returns, the Run goroutine hears of it.
func (m *Manager) start(ctx, polls context.Context, l *loop) {
	lctx, cancel := context.WithCancel(ctx)
	l.cancel, l.done = cancel, false
	room := "" // the room that found the session, if one did: for its log lines
	direct := false
	for origin := range l.from {
		if r, ok := roomOrigin(origin); ok {
			room = r
		} else {
			direct = true
		}
	}
	lease := leaseKey(l.kind, l.id) // whose lease the loop runs under
	if l.kind == KindSession && !direct && room != "" {
		lease = leaseKey(KindRoom, room)
	}
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		var ended bool
		if l.kind == KindRoom {
			m.followRoom(lctx, l, func(list []SessionInfo) {
				m.send(ctx, func() { m.found(ctx, polls, l.id, list) })
			})
		} else {
			ended = m.newSessionLoop(l, room, lease).run(lctx, polls)
		}
		cancel()
		m.send(ctx, func() { m.returned(ctx, polls, l, ended) })
	}()
}

// returned notes that l's goroutine has returned: the session ended, or tracking of it
// stopped. An ended session is kept only while an origin other than a room tracks it,
// to show as ended; everything else about it is released. One tracked again while
// its loop was stopping starts again.
func (m *Manager) returned(ctx, polls context.Context, l *loop, ended bool) {
	loops := m.sessions
	if l.kind == KindRoom {
		loops = m.rooms
	}
	l.cancel, l.done, l.ended = nil, true, ended
	if l.from == nil && m.nudge != nil && m.settled() {
		// The leases given up can go now, rather than at the next round.
		select {
		case m.nudge <- struct{}{}:
		default:
		}
	}
	if !ended && l.seen {
		m.unfinished[l.id] = true // its room's listing may show it ended, if tracked again
	}
	if ended {
		for origin := range l.from {
			if _, ok := roomOrigin(origin); ok {
				delete(l.from, origin)
			}
		}
	}
	switch {
	case len(l.from) == 0 && loops[l.id] == l:
		delete(loops, l.id)
	case len(l.from) > 0 && !ended:
		m.start(ctx, polls, l)
	}
}

// found notes the sessions that a room's listing shows: an ongoing one not yet
// tracked starts being polled, and one that the list shows ended, tracked or with an
// unfinished state, is polled once more at once, so that its lefts and session.ended
// come without delay. One that the list shows ended and that started after every
// session of the room's earlier listings began and ended between two listings: it
// is polled once, which publishes it whole from its list of all participants. What
// ended before the room's first listing stays silent: rollcall did not follow it.
func (m *Manager) found(ctx, polls context.Context, room string, list []SessionInfo) {
	r := m.rooms[room]
	if r == nil || r.from == nil {
		return // untracked meanwhile
	}
	// The boundary is a start the API gave, so that this host's clock need not agree
	// with the API's: a session that no earlier listing showed started after the
	// newest one they did. One whose start is unknown is never taken for a new one.
	since, listed := r.newest, r.listed
	for _, s := range list {
		if s.Start.After(r.newest) {
			r.newest = s.Start
		}
	}
	r.listed = true
	origin := "room " + room
	for _, s := range list {
		l := m.sessions[s.ID]
		if l == nil && m.keeper != nil && m.byID(s.ID) && !m.owned[leaseKey(KindSession, s.ID)] {
			continue // tracked by ID too, and polled by the replica that holds its lease
		}
		missed := listed && s.Ended() && s.Start.After(since)
		switch {
		case l != nil && s.Ended():
			select {
			case l.poke <- s:
			default:
			}
		case l == nil && (!s.Ended() || m.unfinished[s.ID] || missed):
			unfinished := m.unfinished[s.ID]
			delete(m.unfinished, s.ID)
			l = &loop{kind: KindSession, id: s.ID, poke: make(chan SessionInfo, 1), hint: make(chan struct{}, 1), from: map[string]bool{origin: true}}
			switch {
			case s.Ended() && unfinished:
				m.cfg.Log.Info("a session of the room ended while no one followed it: polled once more", "room_id", room, "session_id", s.ID)
			case s.Ended():
				m.cfg.Log.Info("a session of the room began and ended between two listings: polled once, to publish it from its list of all participants",
					"room_id", room, "session_id", s.ID)
			default:
				m.cfg.Log.Info("a new session of the room: followed", "room_id", room, "session_id", s.ID)
			}
			if s.Ended() {
				l.poke <- s
			}
			m.sessions[s.ID] = l
			m.start(ctx, polls, l)
		case l != nil && !s.Ended() && !l.ended:
			if l.from == nil { // stopping: returned starts it again
				l.from = make(map[string]bool)
			}
			l.from[origin] = true
		}
	}
}

// byID reports whether an origin tracks session id by its ID.
func (m *Manager) byID(id string) bool {
	for _, u := range m.origins {
		if slices.Contains(u.Sessions, id) {
			return true
		}
	}
	return false
}

func roomOrigin(origin string) (string, bool) {
	return strings.CutPrefix(origin, "room ")
}
