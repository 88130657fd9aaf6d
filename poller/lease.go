package poller

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/metrics"
)

// LeaseStore keeps the leases by which replicas share the tracked sessions and rooms;
// publisher.Leases is one. Every key expires a TTL after its last write.
type LeaseStore interface {
	// Heartbeat says replica is alive, and returns the revision written.
	Heartbeat(ctx context.Context, replica string) (uint64, error)
	Leave(ctx context.Context, replica string) error
	// Live lists the replicas whose heartbeat has not expired.
	Live(ctx context.Context) ([]string, error)
	// Claim creates the lease of key for replica and returns its revision; 0 if
	// someone holds it.
	Claim(ctx context.Context, key, replica string) (uint64, error)
	// Renew updates replica's lease of key at revision rev; 0 if it was lost.
	Renew(ctx context.Context, key, replica string, rev uint64) (uint64, error)
	// Owners returns the holder of every lease, and the lease's revision, by key.
	Owners(ctx context.Context) (owner map[string]string, rev map[string]uint64, err error)
	// Release deletes the lease of key if it is still at revision rev.
	Release(ctx context.Context, key string, rev uint64) error
}

// leaseKey is the lease key of a session or room (kind KindSession or KindRoom).
func leaseKey(kind, id string) string { return kind + "." + events.EscapeToken(id) }

// keeper holds one replica's leases: every round (a third of the TTL) it says the
// replica is alive, renews what it holds with compare-and-set, gives up what is no
// longer tracked or more than its fair share, and claims what no one holds while
// it has less than its fair share (see share).
//
// A lease is good until its last renewal was sent plus the TTL, by this process's
// clock: a replica paused past that (SIGSTOP, a long GC, a partition) finds its
// leases past their deadline when it wakes, and its loops stop before polling, and a
// poll under way is cancelled at the deadline. What a stale replica still does is
// fenced by the stores: its state writes are compare-and-set on the revision it
// read, and its events carry the ids the stream drops as duplicates.
type keeper struct {
	store   LeaseStore
	replica string
	ttl     time.Duration
	log     *slog.Logger
	metrics *metrics.Metrics
	// vanished reports whether a replica holding leases is certainly gone (see
	// ManagerConfig.Vanished); nil: never.
	vanished func(ctx context.Context, replica string) bool

	// deadlines is what polls read (deadline): the leases owned, with their
	// deadlines, as the round last published them. Everything else is the rounds'
	// alone, on one goroutine, so that no poll ever waits for a round's network
	// calls.
	deadlines atomic.Pointer[map[string]time.Time]

	held     map[string]*held     // by lease key
	draining map[string]bool      // held, but no longer owned: released once every stopped loop has returned
	gone     map[string]time.Time // replicas found vanished, and when: their leases are taken over until they expire
	// claimed, when set, hears of what this replica owns after each batch of claims
	// but the last, which the round returns (see claim).
	claimed func(owned map[string]bool)
	live    int
	born    uint64 // the revision of this replica's first heartbeat
	asked   bool   // predecessors have been looked for: once, at start
}

type held struct {
	rev   uint64
	until time.Time // the lease's deadline: when its last renewal was sent, plus the TTL
}

func newKeeper(store LeaseStore, replica string, ttl time.Duration, log *slog.Logger, m *metrics.Metrics) *keeper {
	return &keeper{store: store, replica: replica, ttl: ttl, log: log.With("replica", replica), metrics: metrics.Or(m),
		held: map[string]*held{}, draining: map[string]bool{}, gone: map[string]time.Time{}}
}

// deadline returns when the lease of key ends, and whether this replica owns it.
// It never waits for a round.
func (k *keeper) deadline(key string) (time.Time, bool) {
	m := k.deadlines.Load()
	if m == nil {
		return time.Time{}, false
	}
	until, ok := (*m)[key]
	if !ok || !time.Now().Before(until) {
		return time.Time{}, false
	}
	return until, true
}

// publish makes what the round has decided so far what polls read: the leases held
// and not being given up.
func (k *keeper) publish() {
	m := make(map[string]time.Time, len(k.held))
	for key, h := range k.held {
		if !k.draining[key] {
			m[key] = h.until
		}
	}
	k.deadlines.Store(&m)
}

// round runs one round over the keys wanted (tracked here) and returns those owned;
// scheduled is false for a round that comes early (a release, a change of what is
// tracked), which gives nothing up; settled says that every loop stopped has
// returned. Rounds run one at a time.
func (k *keeper) round(ctx context.Context, wanted []string, scheduled, settled bool) map[string]bool {
	began := time.Now()
	defer k.publish()
	// Leases given up in an earlier round, once their loops have returned: a poll
	// still under way would save its state after the next holder loaded it.
	if settled {
		for key := range k.draining {
			k.release(ctx, key)
		}
	}
	live, ok := k.beat(ctx)
	if !ok {
		return k.owned()
	}
	fair := share(len(wanted), live, k.replica)
	want := make(map[string]bool, len(wanted))
	for _, key := range wanted {
		want[key] = true
	}
	for _, key := range slices.Sorted(maps.Keys(k.held)) {
		if !want[key] {
			k.publishWithout(key)
			k.release(ctx, key)
		}
	}
	k.renew(ctx, began, scheduled)
	k.publish()
	if scheduled {
		k.giveUp(fair)
	}
	// The first round that wants leases looks for predecessors whatever its share: with
	// fewer sessions than replicas, a killed one's heartbeat can leave it none.
	if len(k.held) < fair || len(k.gone) > 0 || k.asks(wanted) {
		if owner, revs, err := k.store.Owners(ctx); err != nil {
			k.warn(ctx, "reading the leases failed: none claimed this round", "err", err)
		} else {
			k.buryVanished(ctx, wanted, owner, revs, live)
			k.claim(ctx, wanted, fair, began, owner, revs)
		}
	}
	k.metrics.LeasesHeld.Set(float64(len(k.held) - len(k.draining)))
	k.metrics.ReplicasLive.Set(float64(k.live))
	return k.owned()
}

// beat writes this replica's heartbeat and reads who is alive, but for the replicas
// found gone; false if either failed (a round that renews nothing, claims nothing).
func (k *keeper) beat(ctx context.Context) (live []string, ok bool) {
	rev, err := k.store.Heartbeat(ctx, k.replica)
	if err == nil {
		if k.born == 0 {
			k.born = rev
		}
		live, err = k.store.Live(ctx)
	}
	if err != nil {
		k.warn(ctx, "lease round failed: leases not renewed, none claimed", "err", err)
		return nil, false
	}
	for r, at := range k.gone {
		if time.Since(at) > k.ttl {
			delete(k.gone, r)
		}
	}
	live = slices.DeleteFunc(live, func(r string) bool { _, gone := k.gone[r]; return gone })
	k.live = max(len(live), 1)
	return live, true
}

// renew renews, as of began, with compare-and-set, every lease held; a round that
// comes early (not scheduled: the tracked set changed, as it does twice at start)
// skips those claimed or renewed in the last sixth of the TTL, rather than write
// again the thousands just written, and leaves them to the next scheduled round, a
// third of the TTL after it. One another replica took, or that expired, is lost.
func (k *keeper) renew(ctx context.Context, began time.Time, scheduled bool) {
	var due []string
	for key, h := range k.held {
		if scheduled || h.until.Sub(began) < k.ttl-k.ttl/6 {
			due = append(due, key)
		}
	}
	renewed := k.each(due, func(key string) (uint64, error) {
		return k.store.Renew(ctx, key, k.replica, k.held[key].rev)
	})
	for key, r := range renewed {
		h := k.held[key]
		switch {
		case r.err != nil:
			k.warn(ctx, "renewing a lease failed: kept until its deadline", "lease", key, "err", r.err, "until", time.Until(h.until).Round(time.Millisecond))
		case r.rev == 0:
			k.log.Warn("lease lost: another replica took it, or it expired", "lease", key)
			k.metrics.LeaseLosses.Inc()
			delete(k.held, key)
		default:
			h.rev, h.until = r.rev, began.Add(k.ttl)
		}
	}
}

// giveUp marks leases to give up, slowly down to the fair share when a replica has
// joined: a tenth of it a round, in scheduled rounds only (rounds also come at once
// on a release, which must not cascade). They go once their loops have returned.
func (k *keeper) giveUp(fair int) {
	have := len(k.held) - len(k.draining)
	give := min(have-fair, max(1, fair/10))
	if give <= 0 {
		return
	}
	keys := slices.DeleteFunc(slices.Sorted(maps.Keys(k.held)), func(key string) bool { return k.draining[key] })
	k.spread(keys)
	for _, key := range keys[:give] {
		k.draining[key] = true
	}
	k.publish()
}

// publishWithout stops polls under key, before its lease is released.
func (k *keeper) publishWithout(key string) {
	k.draining[key] = true
	k.publish()
}

// buryVanished notes in k.gone, for as long as their leases may last, the holders of
// leases of wanted that vanished, and deletes their heartbeats (which wakes another
// round at once, that counts their share as this replica's). It looks once, in the
// first round that wants leases, for predecessors: processes killed before this one
// started. A holder counts only if it wrote none of its leases since this replica's
// first heartbeat: a replica that renews them runs. Later, no one answering for a
// replica proves nothing: it may be cut off from NATS for a moment, and its leases
// expire on their own if it is gone.
func (k *keeper) buryVanished(ctx context.Context, wanted []string, owner map[string]string, revs map[string]uint64, live []string) {
	if !k.asks(wanted) {
		return
	}
	k.asked = true
	last := map[string]uint64{} // by holder: the revision of its latest lease
	for _, key := range wanted {
		if o := owner[key]; o != "" && o != k.replica {
			last[o] = max(last[o], revs[key])
		}
	}
	for _, r := range slices.Sorted(maps.Keys(last)) {
		if _, known := k.gone[r]; known || last[r] > k.born || !k.vanished(ctx, r) {
			continue
		}
		k.log.Info("taking over the leases of a replica that is gone", "gone", r)
		if slices.Contains(live, r) {
			if err := k.store.Leave(ctx, r); err != nil {
				k.warn(ctx, "deleting a gone replica's heartbeat failed: it expires on its own", "gone", r, "err", err)
			}
		}
		k.gone[r] = time.Now()
	}
}

// asks reports whether a round over wanted is to look for predecessors: the first
// that wants leases, if vanished can tell.
func (k *keeper) asks(wanted []string) bool {
	return k.vanished != nil && !k.asked && len(wanted) > 0
}

// claim takes, up to the fair share, the leases of wanted that no one holds, and those
// that name this replica (a previous run under the same name, killed before it gave
// them up) or a replica that is gone, each replica trying the free keys in an order
// of its own.
func (k *keeper) claim(ctx context.Context, wanted []string, fair int, began time.Time, owner map[string]string, revs map[string]uint64) {
	gone := func(r string) bool { _, ok := k.gone[r]; return ok }
	var mine, free []string
	for _, key := range wanted {
		switch {
		case k.held[key] != nil:
		case owner[key] == k.replica || gone(owner[key]):
			mine = append(mine, key)
		case owner[key] == "":
			free = append(free, key)
		}
	}
	k.spread(free)
	free = free[:min(len(free), max(fair-len(k.held)-len(mine), 0))]
	// In batches, each handed to the loops as soon as it is claimed: the first
	// sessions poll while the last are claimed (2,000 took 0.1 s at start).
	keys := append(mine, free...)
	for len(keys) > 0 {
		batch := keys[:min(len(keys), claimBatch)]
		keys = keys[len(batch):]
		took := k.each(batch, func(key string) (uint64, error) {
			if owner[key] == k.replica || gone(owner[key]) {
				// Compare-and-set at the revision read: a lease that moved since is
				// left to whoever took it.
				return k.store.Renew(ctx, key, k.replica, revs[key])
			}
			return k.store.Claim(ctx, key, k.replica)
		})
		for key, r := range took {
			switch {
			case r.err != nil:
				k.warn(ctx, "claiming a lease failed", "lease", key, "err", r.err)
			case r.rev > 0:
				k.held[key] = &held{rev: r.rev, until: began.Add(k.ttl)}
			}
		}
		if len(keys) > 0 && k.claimed != nil {
			k.publish() // the deadlines first: a loop started polls at once
			k.claimed(k.owned())
		}
	}
}

// claimBatch is how many leases a round claims before it hands them to the loops.
const claimBatch = 256

// result is the outcome of one lease operation.
type result struct {
	rev uint64
	err error
}

// each runs op on every key, up to 128 at once, and returns their outcomes by key.
// Each is a round trip to the server, and polls wait for their claims: at 2,000
// sessions, 16 at once took 0.2 s, 128 about 0.1 s.
func (k *keeper) each(keys []string, op func(key string) (uint64, error)) map[string]result {
	out := make(map[string]result, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, 128)
	for _, key := range keys {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			rev, err := op(key)
			mu.Lock()
			out[key] = result{rev, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// warn logs a failed lease operation, unless the round was cancelled: the replica is
// stopping, and its leases go with it.
func (k *keeper) warn(ctx context.Context, msg string, args ...any) {
	if ctx.Err() == nil {
		k.log.Warn(msg, args...)
	}
}

// share is replica's fair share of n leases among the live replicas: n ÷ live,
// and one more for the first n mod live of them by name, so that the shares add up
// to n exactly (4 rooms on 3 replicas are 2, 1, 1, never 2, 2, 0).
func share(n int, live []string, replica string) int {
	if !slices.Contains(live, replica) {
		live = append(slices.Clone(live), replica) // its heartbeat not seen yet: it is alive
	}
	live = slices.Sorted(slices.Values(live))
	s := n / len(live)
	if slices.Index(live, replica) < n%len(live) {
		s++
	}
	return s
}

// spread orders keys by a hash of this replica and the key, so that replicas claiming
// at once mostly try different keys, and give up different ones.
func (k *keeper) spread(keys []string) {
	hash := func(key string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(k.replica + "\x00" + key))
		return h.Sum64()
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(hash(a), hash(b)) })
}

// owned lists the leases held and not being given up.
func (k *keeper) owned() map[string]bool {
	out := make(map[string]bool, len(k.held))
	now := time.Now()
	for key, h := range k.held {
		if !k.draining[key] && now.Before(h.until) {
			out[key] = true
		}
	}
	return out
}

// release gives the lease of key up.
func (k *keeper) release(ctx context.Context, key string) {
	if h := k.held[key]; h != nil {
		if err := k.store.Release(ctx, key, h.rev); err != nil {
			k.log.Warn("releasing a lease failed: it expires on its own", "lease", key, "err", err)
		}
	}
	delete(k.held, key)
	delete(k.draining, key)
}

// leave gives every lease up and deletes the heartbeat, so that the other replicas
// take over at once: the replica is stopping, its loops have returned, and so has
// the last round.
func (k *keeper) leave(ctx context.Context) {
	defer k.publish()
	// The heartbeat first: the others, woken by the releases, must count this
	// replica gone, or their fair share leaves its leases unclaimed for a round.
	if err := k.store.Leave(ctx, k.replica); err != nil {
		k.log.Warn("deleting the heartbeat failed: it expires on its own", "err", err)
	}
	// All at once, as claims go: one by one, 10,000 took longer than a stopping
	// worker waits, and each lease left expires on its own, a TTL later.
	released := k.each(slices.Collect(maps.Keys(k.held)), func(key string) (uint64, error) {
		return 0, k.store.Release(ctx, key, k.held[key].rev)
	})
	failed := 0
	var first error
	for _, r := range released {
		if r.err != nil {
			failed, first = failed+1, cmp.Or(first, r.err)
		}
	}
	if failed > 0 {
		k.log.Warn("releasing leases failed: they expire on their own", "failed", failed, "of", len(released), "err", first)
	}
	clear(k.held)
	clear(k.draining)
	k.metrics.LeasesHeld.Set(0)
}

// keep runs the lease rounds until ctx ends: the first at once, then every third of
// the TTL, each followed by the loops brought in line with what this replica owns.
func (m *Manager) keep(ctx, polls context.Context) {
	every := m.cfg.LeaseTTL / 3
	scheduled := true
	// handOver brings the loops in line with what this replica owns: after each round,
	// and after each batch of a round's claims.
	handOver := func(owned map[string]bool) {
		m.send(ctx, func() {
			m.owned = owned
			m.apply(ctx, polls)
		})
	}
	m.keeper.claimed = handOver
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
		handOver(owned)
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
// session tracked by ID (a session only found by rooms goes with its room) but those
// seen ended here: an ended session needs no poll, and its lease no renewal. (Each
// replica that takes its lease polls it once, finds its state ended, and lets go.)
func (m *Manager) leaseKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, u := range m.origins {
		for _, id := range u.Sessions {
			if l := m.sessions[id]; l == nil || !l.ended {
				seen[leaseKey(KindSession, id)] = true
			}
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
	fence := func() (time.Time, bool) { return m.keeper.deadline(key) }
	if _, ok := fence(); !ok {
		return nil, nil, false
	}
	ctx, stop := fenced(polls, fence)
	return ctx, stop, true
}

// ErrLeaseGone is the cause of a poll's context ending because this replica no
// longer holds the lease it runs under.
var ErrLeaseGone = errors.New("the lease is no longer held here")

// fenced returns a context that ends, with ErrLeaseGone as its cause, when fence
// says the lease is no longer held: at the lease's end, unless it was renewed by
// then, and then at the new end, and so on. A poll that waits longer than a lease's
// term (for its fetching slot in a first burst, in a burst's publishing queues) goes
// on while its lease does.
func fenced(parent context.Context, fence func() (time.Time, bool)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	var mu sync.Mutex
	var t *time.Timer
	check := func() {
		until, held := fence()
		mu.Lock()
		defer mu.Unlock()
		if !held || ctx.Err() != nil {
			cancel(ErrLeaseGone)
			return
		}
		t.Reset(time.Until(until))
	}
	mu.Lock()
	t = time.AfterFunc(time.Hour, check)
	mu.Unlock()
	check()
	return ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		t.Stop()
		cancel(nil)
	}
}

// owns reports whether this replica may run the loop of a session or room tracked by
// the origins from: without leases, always; a room, or a session tracked by ID, while
// it holds the lease; a session only found by rooms, with them (their loops run here);
// a session seen ended here, always: its loop is over, and it needs no lease.
func (m *Manager) owns(kind, id string, from map[string]bool) bool {
	if m.keeper == nil || (kind == KindSession && m.sessions[id] != nil && m.sessions[id].ended) {
		return true
	}
	if kind == KindSession && !slices.ContainsFunc(slices.Collect(maps.Keys(from)), func(o string) bool { _, room := roomOrigin(o); return !room }) {
		return true
	}
	return m.owned[leaseKey(kind, id)]
}
