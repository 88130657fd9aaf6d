package poller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
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

// Statuses of tracked IDs, as `rollcall tracked` shows them.
const (
	StatusPolling   = "polling"   // a session whose loop runs
	StatusNotFound  = "not found" // a session the API answered 404 for, asked less often
	StatusEnded     = "ended"     // a session that ended: its loop has returned
	StatusFollowing = "following" // a room whose sessions are listed on the discover schedule
	StatusStopping  = "stopping"  // untracked, its poll in flight: it returns when that is done
)

// Update is the whole set of sessions and rooms that one origin (the config file, the
// tracking bucket) tracks now. An origin that tracks nothing more sends an empty
// Update: disappearance is said, never inferred from silence.
type Update struct {
	Origin   string
	Sessions []string
	Rooms    []string
}

// Status is one tracked session or room.
type Status struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	From    []string  `json:"from"` // "config", "bucket", "room <id>"
	Status  string    `json:"status"`
	Last    time.Time `json:"lastComplete,omitzero"` // a session's last complete poll, a room's last listing
	Present int       `json:"present"`               // a session's participants, as last polled
	Waiting int       `json:"waiting,omitempty"`     // a session's lefts waiting for their end
	Replica string    `json:"replica,omitempty"`     // the replica that polls or follows it, with leases
	// SetAside counts the records of its last answer that could not be used, and
	// Problem says why its polls or listings fail, while they do.
	SetAside int    `json:"setAside,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// RoomLister lists a room's sessions; Client is one.
type RoomLister interface {
	// RoomSessions lists a room's sessions, and the entries set aside.
	RoomSessions(ctx context.Context, roomID string, all bool) ([]SessionInfo, []diff.SetAside, error)
}

// ManagerConfig configures a Manager. Zero durations take the defaults given.
type ManagerConfig struct {
	Poller   *Poller
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
	Log        *slog.Logger
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
	queries chan chan []Status
	// Filled and read only by Run.
	sessions   map[string]*loop
	rooms      map[string]*loop
	unfinished map[string]bool
	origins    map[string]Update // what each origin tracks
	owned      map[string]bool   // the lease keys this replica holds, with Leases
	running    sync.WaitGroup

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
	ended    bool
	seen     bool // a poll found the session: it has a state

	mu       sync.Mutex // status, written by the goroutine
	status   string
	last     time.Time
	present  int
	waiting  int
	setAside int
	problem  string
}

// trouble notes what is wrong with the loop's answers: records set aside, and why
// its polls fail ("" while they work).
func (l *loop) trouble(setAside int, problem string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setAside, l.problem = setAside, problem
}

func (l *loop) set(status string, last time.Time, present, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status, l.present, l.waiting = status, present, waiting
	if !last.IsZero() {
		l.last = last
	}
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
	m := &Manager{
		cfg: cfg, anchor: time.Now().Truncate(time.Second),
		events: make(chan func()), queries: make(chan chan []Status),
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
	var keeping sync.WaitGroup
	if m.keeper != nil {
		keeping.Go(func() { m.keep(ctx, polls) })
	}
	for {
		select {
		case <-ctx.Done():
			m.running.Wait()
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
		case q := <-m.queries:
			q <- m.status()
		}
	}
}

// Status returns every tracked session and room, sorted by kind and ID.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	q := make(chan []Status, 1)
	select {
	case m.queries <- q:
		return <-q, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send runs f on the Run goroutine, unless ctx ends first.
func (m *Manager) send(ctx context.Context, f func()) {
	select {
	case m.events <- f:
	case <-ctx.Done():
	}
}

// keep runs the lease rounds until ctx ends: the first at once, then every third of
// the TTL, each followed by the loops brought in line with what this replica owns.
func (m *Manager) keep(ctx, polls context.Context) {
	every := m.cfg.LeaseTTL / 3
	scheduled := true
	if w, ok := m.cfg.Leases.(interface {
		WatchReleases(context.Context, func())
	}); ok {
		// A replica that stops gives its leases up: take them at once.
		go w.WatchReleases(ctx, func() {
			select {
			case m.nudge <- struct{}{}:
			default:
			}
		})
	}
	for {
		type wants struct {
			keys    []string
			settled bool // no loop is stopping
		}
		wanted := make(chan wants, 1)
		m.send(ctx, func() { wanted <- wants{m.leaseKeys(), m.settled()} })
		var w wants
		select {
		case w = <-wanted:
		case <-ctx.Done():
			return
		}
		round, cancel := context.WithTimeout(ctx, every)
		owned := m.keeper.round(round, w.keys, scheduled, w.settled)
		cancel()
		m.send(ctx, func() {
			m.owned = owned
			m.apply(ctx, polls)
		})
		select {
		case <-time.After(every):
			scheduled = true
		case <-m.nudge:
			scheduled = false
		case <-ctx.Done():
			return
		}
	}
}

// settled reports whether every loop stopped has returned: until then, a poll of a
// lease given up may still be under way, and the lease is not released.
func (m *Manager) settled() bool {
	for _, loops := range []map[string]*loop{m.sessions, m.rooms} {
		for _, l := range loops {
			if l.from == nil && !l.done {
				return false
			}
		}
	}
	return true
}

// leaseKeys lists the lease keys of what this replica tracks: every room, and every
// session tracked by ID (a session only found by rooms goes with its room).
func (m *Manager) leaseKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, u := range m.origins {
		for _, id := range u.Sessions {
			seen[leaseKey(KindSession, id)] = true
		}
		for _, id := range u.Rooms {
			seen[leaseKey(KindRoom, id)] = true
		}
	}
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// underLease returns the context of one poll under the lease key: polls, ending at
// the lease's deadline, so that a poll cannot outlive the lease; false if this
// replica does not hold it now. Without leases, polls as it is.
func (m *Manager) underLease(polls context.Context, key string) (context.Context, context.CancelFunc, bool) {
	if m.keeper == nil {
		return polls, func() {}, true
	}
	until, ok := m.keeper.deadline(key)
	if !ok {
		return nil, nil, false
	}
	ctx, cancel := context.WithDeadline(polls, until)
	return ctx, cancel, true
}

// owns reports whether this replica may run the loop of a session or room tracked by
// the origins from: without leases, always; a room, or a session tracked by ID, while
// it holds the lease; a session only found by rooms, with them (their loops run here).
func (m *Manager) owns(kind, id string, from map[string]bool) bool {
	if m.keeper == nil {
		return true
	}
	if kind == KindSession && !slices.ContainsFunc(slices.Collect(maps.Keys(from)), func(o string) bool { _, room := roomOrigin(o); return !room }) {
		return true
	}
	return m.owned[leaseKey(kind, id)]
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
			l = &loop{kind: kind, id: id, poke: make(chan SessionInfo, 1)}
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
			ended = m.pollSession(lctx, polls, l, room, lease)
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
// come without delay.
func (m *Manager) found(ctx, polls context.Context, room string, list []SessionInfo) {
	if m.rooms[room] == nil || m.rooms[room].from == nil {
		return // untracked meanwhile
	}
	origin := "room " + room
	for _, s := range list {
		l := m.sessions[s.ID]
		if l == nil && m.keeper != nil && m.byID(s.ID) && !m.owned[leaseKey(KindSession, s.ID)] {
			continue // tracked by ID too, and polled by the replica that holds its lease
		}
		switch {
		case l != nil && s.Ended():
			select {
			case l.poke <- s:
			default:
			}
		case l == nil && (!s.Ended() || m.unfinished[s.ID]):
			delete(m.unfinished, s.ID)
			l = &loop{kind: KindSession, id: s.ID, poke: make(chan SessionInfo, 1), from: map[string]bool{origin: true}}
			if s.Ended() {
				l.poke <- s
				m.cfg.Log.Info("a session of the room ended while no one followed it: polled once more", "room_id", room, "session_id", s.ID)
			} else {
				m.cfg.Log.Info("a new session of the room: followed", "room_id", room, "session_id", s.ID)
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

func (m *Manager) status() []Status {
	var out []Status
	for _, loops := range []map[string]*loop{m.rooms, m.sessions} {
		for _, l := range loops {
			if len(l.from) == 0 && l.done {
				continue
			}
			l.mu.Lock()
			s := Status{Kind: l.kind, ID: l.id, From: slices.Sorted(maps.Keys(l.from)), Status: l.status, Last: l.last, Present: l.present, Waiting: l.waiting,
				SetAside: l.setAside, Problem: l.problem}
			if m.keeper != nil {
				s.Replica = m.cfg.Replica
			}
			l.mu.Unlock()
			switch {
			case len(l.from) == 0:
				s.Status = StatusStopping
			case l.ended:
				s.Status = StatusEnded
			}
			if s.Status == "" {
				s.Status = StatusPolling
				if l.kind == KindRoom {
					s.Status = StatusFollowing
				}
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) // rooms first
	})
	return out
}

// pollSession is one session's loop: a poll as soon as it is tracked, then one on
// each of the schedule's ticks shifted by the session's own offset (its fetch waits
// for one of the Client's slots). It returns true once the session has ended, and false when
// ctx ends (tracking stopped, or the worker is stopping).
func (m *Manager) pollSession(ctx, polls context.Context, l *loop, room, lease string) (ended bool) {
	log := m.cfg.Log.With("session_id", l.id)
	roomKnown := room != ""
	if roomKnown {
		log = log.With("room_id", room)
	}
	var fail failures
	var aside setAside
	ticks := newTicks(m.cfg.Schedule, m.anchor, l.id)
	var cache Cache            // the session's state between polls
	var notFound time.Duration // the wait after the next 404; 0 while the API knows the session
	var rejected time.Duration // the wait after the next rejection of the credentials
	var listed *SessionInfo    // a room's list shows the session ended
	every := interval(m.cfg.Schedule, m.anchor)
	next := time.Now()
	reading := newListing(m.cfg.Reconcile, m.anchor, l.id, next)
	for {
		due := next
		poked, ok := wait(ctx, next, l.poke)
		if !ok {
			return false
		}
		if poked == nil { // the tick came first; a poke waiting is news all the same
			select {
			case s := <-l.poke:
				poked = &s
			default:
			}
		}
		if poked != nil {
			listed = poked
		}
		began := time.Now()
		pctx, done, ok := m.underLease(polls, lease)
		if !ok {
			// The lease is gone (a pause, a partition): not a request, not a write,
			// and what this loop kept is stale. The lease round stops the loop.
			log.Debug("lease gone: not polled here", "lease", lease)
			cache.Drop()
			next = ticks.after(began)
			continue
		}
		res, err := m.poll(pctx, log, l.id, nil, &cache, reading.mode(began))
		reading.read(log, began, res.ListPages, res.ListErr, every)
		if res.GivesUpIn > 0 {
			reading.before(began.Add(res.GivesUpIn), every)
		}
		if listed != nil && (errors.Is(err, ErrNotFound) || (err == nil && !res.Found)) {
			// The active list no longer tells: the sessions list is the word on it.
			log.Info("the session's active list does not show it ended, its room's sessions list does: ending it")
			cache.Drop()
			res, err = m.poll(pctx, log, l.id, listed, nil, ListNow)
		}
		done()
		now := time.Now()
		if res.RoomID != "" && !roomKnown {
			log, roomKnown = log.With("room_id", res.RoomID), true
		}
		if err == nil {
			level := slog.LevelDebug // a poll that changes nothing is not news
			if res.Joined+res.Left > 0 {
				level = slog.LevelInfo
			}
			log.Log(ctx, level, "cycle", "joined", res.Joined, "left", res.Left, "present", res.Present,
				"waiting", res.Waiting, "complete", res.Complete, "duration", now.Sub(began).Round(time.Millisecond))
		}
		if poked == nil && now.Sub(due) > every {
			m.late.note(m.cfg.Log, now, l.id, now.Sub(due), every)
		}
		next = ticks.after(now)
		if err != nil {
			l.trouble(0, err.Error())
		} else {
			l.trouble(aside.note(log, res.SetAside), "")
		}
		switch {
		case err != nil && polls.Err() != nil:
			log.Info("cycle abandoned", "err", err)
			return false
		case errors.Is(err, ErrNotFound):
			if notFound == 0 {
				notFound = m.cfg.NotFoundWait
				log.Error("session not found: the API does not know it; asking again less and less often", "retry_in", notFound)
			} else {
				log.Debug("session still not found", "retry_in", notFound)
			}
			l.set(StatusNotFound, time.Time{}, 0, 0)
			next = later(next, now.Add(notFound))
			notFound = min(2*notFound, m.cfg.MaxNotFoundWait)
		case errors.Is(err, ErrUnauthorized):
			fail.note(log, now, err) // said once for every session by the Client
			rejected = min(max(2*rejected, m.cfg.RejectedWait), max(time.Minute, m.cfg.RejectedWait))
			next = later(next, now.Add(rejected))
		case err != nil:
			fail.note(log, now, err)
		case res.Ended:
			log.Info("session ended: no longer polled")
			l.set(StatusEnded, now, 0, 0) // everyone left with it; this was its last complete poll
			return true
		default:
			fail.over(log)
			rejected = 0
			l.seen = l.seen || res.Found
			if notFound > 0 {
				notFound = 0
				log.Info("session found: polled on schedule again")
			}
			var complete time.Time
			if res.Complete {
				complete = now
			}
			l.set(StatusPolling, complete, res.Present, res.Waiting)
		}
	}
}

// failures are a session's polls failing in a row. They are logged when they start,
// at most once a minute while they last, with a count, and when they end, so that a
// long outage does not flood the log. A rejection of the credentials is left to the
// Client, which says it once for every session.
type failures struct {
	count  int
	logged time.Time // zero: none of them was logged
}

func (f *failures) note(log *slog.Logger, now time.Time, err error) {
	f.count++
	switch {
	case errors.Is(err, ErrUnauthorized):
	case f.logged.IsZero():
		log.Error("cycle failed", "err", err)
		f.logged = now
	case now.Sub(f.logged) >= time.Minute:
		log.Error("cycle still failing", "failures", f.count, "err", err)
		f.logged = now
	}
}

func (f *failures) over(log *slog.Logger) {
	if !f.logged.IsZero() {
		log.Info("cycle works again", "failures", f.count)
	}
	*f = failures{}
}

// poll runs one cycle of a session. A panic is logged as the cycle's failure: a bug
// met by one session must stop neither the others nor the worker.
func (m *Manager) poll(ctx context.Context, log *slog.Logger, id string, ended *SessionInfo, cache *Cache, list List) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("cycle panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if ended != nil {
		return m.cfg.Poller.End(ctx, log, id, ended.End)
	}
	return m.cfg.Poller.PollCached(ctx, log, id, cache, list)
}

// listing is when a session's loop lets a poll read the list of all participants:
// when a reconciliation is due on its schedule, or when the poll needs it, but never
// sooner after the last reading than one poll interval for each page that reading
// took. The list, however long (it only grows), then costs at most as many requests
// as polling a one-page active list every interval; a long one is read less often,
// and lefts wait for it (up to poll.left_time_wait).
type listing struct {
	ticks     ticks
	schedule  bool      // reconciliations are scheduled
	due       time.Time // the next scheduled reconciliation
	notBefore time.Time // the next reading allowed
	failing   int       // readings failed in a row
}

// newListing returns the listing of session id, tracked from now: its first
// reconciliation is on the first of its ticks.
func newListing(sched cron.Schedule, anchor time.Time, id string, now time.Time) *listing {
	l := &listing{schedule: sched != nil}
	if l.schedule {
		l.ticks = newTicks(sched, anchor, "reconcile "+id)
		l.due = l.ticks.after(now)
	}
	return l
}

func (l *listing) mode(now time.Time) List {
	switch {
	case now.Before(l.notBefore):
		return ListNot
	case l.schedule && !now.Before(l.due):
		return ListNow
	}
	return ListIfNeeded
}

// before lets the list be read again two intervals before deadline at the latest,
// whatever the budget and the backoff: the last chances of what waits for it.
func (l *listing) before(deadline time.Time, every time.Duration) {
	if last := deadline.Add(-2 * every); l.notBefore.After(last) {
		l.notBefore = last
	}
}

// read notes a poll that began at began and read pages pages of the list (none: it
// did not read it), or failed to with err. A reading that fails is tried again after
// twice as long each time (a failed page costs its retries too), up to 32 times the
// usual wait, and said once when it starts failing and once when it works again.
func (l *listing) read(log *slog.Logger, began time.Time, pages int, err error, every time.Duration) {
	if pages == 0 {
		return
	}
	wait := time.Duration(pages) * every
	switch {
	case err != nil:
		if l.failing == 0 {
			log.Warn("reading the list of all participants failed: lefts wait for their end, and missed stints for the next reading, asked less often while it fails", "err", err)
		}
		l.failing++
		wait <<= min(l.failing, 5)
	case l.failing > 0:
		log.Info("reading the list of all participants works again", "failures", l.failing)
		l.failing = 0
	}
	// Half an interval early, so that a one-page list may be read on every poll
	// whatever the jitter of their start.
	l.notBefore = began.Add(wait - every/2)
	if l.schedule && err == nil {
		l.due = l.ticks.after(began)
	}
}

// followRoom is one room's loop: it lists the room's sessions at once, then on each
// tick of the discover schedule, and hands what it found to found. The first listing
// that succeeds reads every page; later ones stop at the first page with no live
// session. A listing that fails changes nothing.
func (m *Manager) followRoom(ctx context.Context, l *loop, found func([]SessionInfo)) {
	log := m.cfg.Log.With("room_id", l.id)
	ticks := newTicks(m.cfg.Discover, m.anchor, "room "+l.id)
	every := interval(m.cfg.Discover, m.anchor)
	listed, failing := false, false
	var aside setAside
	due := time.Now()
	for {
		if _, ok := wait(ctx, due, nil); !ok {
			return
		}
		// A listing may wait behind polls for the rate limit, retry failures, or meet
		// a slow API: say so when it is late by more than an interval, before it is
		// done. The metrics tell which (rollcall_api_retries_total, the request
		// latency, rollcall_api_holds_total).
		since := due // the timer's own copy: due moves on while it may still run
		late := time.AfterFunc(time.Until(since.Add(every)), func() {
			log.Warn("room discovery is behind schedule: the room's listing is not done", "behind", time.Since(since).Round(time.Second))
		})
		list, bad, err := m.cfg.Rooms.RoomSessions(ctx, l.id, !listed)
		if !late.Stop() {
			log.Warn("room discovery was behind schedule", "behind", time.Since(due).Round(time.Second))
		}
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Error("listing the room's sessions failed; its sessions stay as they were", "err", err)
			}
			failing = true
			l.trouble(0, err.Error())
		default:
			if failing {
				log.Info("listing the room's sessions works again")
			}
			listed, failing = true, false
			l.trouble(aside.note(log, bad), "")
			l.set(StatusFollowing, now, 0, 0)
			found(list)
		}
		due = ticks.after(now)
	}
}

// wait waits until t or a poke, which it returns; false if ctx ends first.
func wait(ctx context.Context, t time.Time, poke <-chan SessionInfo) (*SessionInfo, bool) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil, true
	case s := <-poke:
		return &s, true
	case <-ctx.Done():
		return nil, false
	}
}

// lateness counts the polls that finished more than an interval after they were due,
// and says so at most once a minute: a schedule the rate limit, max_concurrency or
// the API's latency cannot keep up with, which otherwise shows only in
// rollcall_oldest_complete_poll_age_seconds.
type lateness struct {
	mu     sync.Mutex
	count  int
	logged time.Time
}

func (l *lateness) note(log *slog.Logger, now time.Time, id string, by, every time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if now.Sub(l.logged) < time.Minute {
		return
	}
	log.Warn("polls finish more than an interval after they are due: the rate limit, max_concurrency or the API's latency cannot keep up with poll.schedule",
		"late_polls", l.count, "interval", every, "session_id", id, "late_by", by.Round(time.Millisecond))
	l.count, l.logged = 0, now
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
