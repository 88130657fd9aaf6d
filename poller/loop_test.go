package poller_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/poller"
)

// The Manager's scheduling, in virtual time (testing/synctest): a fake poll records
// when each session is polled. What a poll does is tested against real NATS and HTTP
// elsewhere (poller_test.go, manager_test.go, cmd/rollcall's end-to-end tests).
//
// Every bubble runs through testkit.Bubble, which puts it on one P under -race: with
// two, the race detector itself crashed in a bubble's timer in most runs of this
// package (golang/go#78156).

// fakePolls records polls by session, at the virtual time they began.
type fakePolls struct {
	mu     sync.Mutex
	polls  map[string][]time.Duration // since the bubble's start
	ends   map[string][]time.Duration
	start  time.Time
	answer func(id string) (poller.Result, error) // nil: a complete poll, nothing new
	block  chan struct{}                          // if set, every poll waits on it
	delay  time.Duration                          // every poll takes this long
	inPoll map[string]int                         // polls of a session under way
	twice  []string                               // sessions polled by two loops at once
}

func newFakePolls() *fakePolls {
	return &fakePolls{polls: map[string][]time.Duration{}, ends: map[string][]time.Duration{}, inPoll: map[string]int{}, start: time.Now()}
}

func (f *fakePolls) PollCached(ctx context.Context, _ *slog.Logger, id string, _ *poller.Cache) (poller.Result, error) {
	f.mu.Lock()
	f.polls[id] = append(f.polls[id], time.Since(f.start))
	if f.inPoll[id]++; f.inPoll[id] > 1 {
		f.twice = append(f.twice, id)
	}
	block, answer, delay := f.block, f.answer, f.delay
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inPoll[id]--; f.mu.Unlock() }()
	time.Sleep(delay)
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return poller.Result{}, ctx.Err()
		}
	}
	if answer != nil {
		return answer(id)
	}
	return poller.Result{Complete: true, Found: true}, nil
}

func (f *fakePolls) Settle(context.Context, string, *poller.Cache) error { return nil }

func (f *fakePolls) End(_ context.Context, _ *slog.Logger, id string, _ *time.Time) (poller.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends[id] = append(f.ends[id], time.Since(f.start))
	return poller.Result{Ended: true, Complete: true, Found: true}, nil
}

// count is how many polls there were in all.
func (f *fakePolls) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.polls {
		n += len(p)
	}
	return n
}

func (f *fakePolls) times(id string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.polls[id])
}

// fakeRooms lists each room's sessions as its map says, and notes when a listing
// first showed a session ended.
type fakeRooms struct {
	mu     sync.Mutex
	lists  map[string][]poller.SessionInfo
	start  time.Time
	ending map[string]time.Duration // by session
}

func (r *fakeRooms) set(room string, list ...poller.SessionInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists[room] = list
}

func (r *fakeRooms) RoomSessions(_ context.Context, room string, _ bool) ([]poller.SessionInfo, []diff.SetAside, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.lists[room] {
		if _, seen := r.ending[s.ID]; s.Ended() && !seen {
			r.ending[s.ID] = time.Since(r.start)
		}
	}
	return slices.Clone(r.lists[room]), nil, nil
}

// bubble runs a Manager with polls and cfg's changes in virtual time; track sends an
// update; stop ends it and waits for it.
type bubble struct {
	m       *poller.Manager
	updates chan poller.Update
	stop    func()
}

// polling lists the sessions the Manager polls.
func (b *bubble) polling(t *testing.T) []string {
	t.Helper()
	return polling(t, b.m)
}

func startManager(t *testing.T, polls poller.Polls, change func(*poller.ManagerConfig)) *bubble {
	cfg := poller.ManagerConfig{Poller: polls, Schedule: every(5 * time.Second), Discover: every(30 * time.Second), Log: quiet()}
	if change != nil {
		change(&cfg)
	}
	m := poller.NewManager(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	b := &bubble{m: m, updates: make(chan poller.Update)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, ctx, b.updates)
	}()
	b.stop = func() { cancel(); <-done }
	return b
}

func (b *bubble) track(sessions ...string) {
	b.updates <- poller.Update{Origin: "config", Sessions: sessions}
}

// offset is where in each interval session id is polled: the Manager's FNV-1a of it.
func offset(id string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(interval))
}

// TestLoopTicks: each session is polled at once when tracked, then once an
// interval, at its own offset in the interval, whatever the others do.
func TestLoopTicks(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		b := startManager(t, f, nil)
		b.track("s1", "s2", "s3")
		time.Sleep(21 * time.Second)
		b.stop()
		for _, id := range []string{"s1", "s2", "s3"} {
			want := []time.Duration{0}
			for at := offset(id, 5*time.Second); at < 21*time.Second; at += 5 * time.Second {
				if at > 0 {
					want = append(want, at)
				}
			}
			if d := gocmp.Diff(want, f.times(id)); d != "" {
				t.Errorf("%s polled at (-want +got):\n%s", id, d)
			}
		}
	})
}

// TestLoopBackOff: a session the API does not know is asked again after 30 s, then
// twice as long each time; while the API rejects the credentials, after 10 s, 20 s,
// 40 s, then every minute. Once it answers, the schedule is back.
func TestLoopBackOff(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []time.Duration // the first polls' times
	}{
		{"404", poller.ErrNotFound, []time.Duration{0, 30 * time.Second, 90 * time.Second, 210 * time.Second}},
		{"401", poller.ErrUnauthorized, []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 130 * time.Second, 190 * time.Second}},
	}
	// What the loop says: a 404 once when it begins and once when it ends; a
	// rejection nothing (the Client says it once for every session).
	said := map[error][2]int{poller.ErrNotFound: {1, 1}, poller.ErrUnauthorized: {0, 0}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testkit.Bubble(t, func(t *testing.T) {
				f := newFakePolls()
				f.answer = func(string) (poller.Result, error) { return poller.Result{}, tt.err }
				var logs testkit.Buffer
				b := startManager(t, f, func(c *poller.ManagerConfig) { c.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
				b.track("s1")
				time.Sleep(tt.want[len(tt.want)-1] + time.Second)
				f.mu.Lock()
				f.answer = nil // it answers again, from the next poll on (at most 10 min away)
				f.mu.Unlock()
				if d := gocmp.Diff(tt.want, f.times("s1"), ticksOf("s1")); d != "" {
					t.Errorf("polled at (-want +got):\n%s", d)
				}
				time.Sleep(10 * time.Minute)
				before := len(f.times("s1"))
				time.Sleep(time.Minute)
				b.stop()
				if n := len(f.times("s1")) - before; n != 60/5 {
					t.Errorf("%d polls in a minute once it answers again, want one every 5 s", n)
				}
				if errs, found := strings.Count(logs.String(), "level=ERROR"), strings.Count(logs.String(), "session found"); errs != said[tt.err][0] || found != said[tt.err][1] {
					t.Errorf("%d errors and %d lines saying it was found, want %v:\n%s", errs, found, said[tt.err], logs.String())
				}
			})
		})
	}
}

// ticksOf compares poll times up to the session's next tick: a wait is counted from
// the poll, and the poll comes at the first tick after it.
func ticksOf(id string) gocmp.Option {
	return gocmp.Comparer(func(a, b time.Duration) bool {
		d := a - b
		return d >= -5*time.Second && d <= 5*time.Second
	})
}

// TestLoopUntrackAndTrackAgain: a session untracked is polled no more; tracked again,
// it is polled at once, and then on its schedule.
func TestLoopUntrackAndTrackAgain(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		b := startManager(t, f, nil)
		b.track("s1")
		time.Sleep(12 * time.Second)
		before := len(f.times("s1"))
		b.track()
		time.Sleep(time.Minute)
		if n := len(f.times("s1")); n != before {
			t.Errorf("%d polls while untracked", n-before)
		}
		b.track("s1")
		synctest.Wait()
		got := f.times("s1")
		if len(got) != before+1 || got[before] != 72*time.Second {
			t.Errorf("tracked again at 72 s: polled at %v", got[before:])
		}
		b.stop()
	})
}

// TestLoopStoppedInItsPoll: a session untracked while its poll hangs, then tracked
// again, is not polled by a second loop while the first is still in its poll: the
// new loop starts once the old one returns.
func TestLoopStoppedInItsPoll(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		f.block = make(chan struct{})
		b := startManager(t, f, nil)
		b.track("s1")
		synctest.Wait() // in its first poll, which hangs
		b.track()
		b.track("s1")
		time.Sleep(time.Minute)
		if got := f.times("s1"); len(got) != 1 {
			t.Errorf("polled at %v while its first poll hung, want once", got)
		}
		close(f.block) // the poll returns at 60 s
		synctest.Wait()
		time.Sleep(time.Second)
		b.stop()
		got := f.times("s1")
		if len(got) < 2 || got[1] != time.Minute || len(f.twice) > 0 {
			t.Errorf("polled at %v (twice at once: %v); want again at once when the first poll returned, never two at once", got, f.twice)
		}
	})
}

// TestLoopPoked: a session of a room whose listing shows it ended is polled at once
// (End, since its active list does not say so): at the instant of that listing, not
// at the session's next tick.
func TestLoopPoked(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		f.answer = func(string) (poller.Result, error) { return poller.Result{Complete: true}, nil } // no session document
		rooms := &fakeRooms{lists: map[string][]poller.SessionInfo{}, start: time.Now(), ending: map[string]time.Duration{}}
		rooms.set("r1", poller.SessionInfo{ID: "s1", Status: "ongoing"})
		b := startManager(t, f, func(c *poller.ManagerConfig) { c.Rooms = rooms })
		b.updates <- poller.Update{Origin: "config", Rooms: []string{"r1"}}
		time.Sleep(time.Second)
		rooms.set("r1", poller.SessionInfo{ID: "s1", Status: "ended"})
		time.Sleep(30 * time.Second) // the room's next listing is within 30 s
		synctest.Wait()
		b.stop()
		f.mu.Lock()
		defer f.mu.Unlock()
		rooms.mu.Lock()
		defer rooms.mu.Unlock()
		want, listed := rooms.ending["s1"]
		if d := gocmp.Diff([]time.Duration{want}, f.ends["s1"]); d != "" || !listed || offset("s1", 5*time.Second) == want%(5*time.Second) {
			t.Errorf("ended at (-want: the listing that showed it ended +got):\n%s", d)
		}
	})
}

// TestLoopSessionsBetweenListings: a session that a room's listing first shows ended
// is polled once if it started after every session of the room's earlier listings
// (it began and ended between two listings), however many listings show it after;
// never if it was there in the first listing, ended before rollcall followed the
// room, or if its start is not known. A poll finds its session ended once a listing
// has shown it ended.
func TestLoopSessionsBetweenListings(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	session := func(id, status string, minute int) poller.SessionInfo {
		return poller.SessionInfo{ID: id, Status: status, Start: t0.Add(time.Duration(minute) * time.Minute)}
	}
	ended := func(id string, minute int) poller.SessionInfo { return session(id, "ended", minute) }
	tests := []struct {
		name     string
		listings [][]poller.SessionInfo // one every 30 s, newest first as the API lists
		want     map[string]int         // polls from the listing that first showed it ended on, by session; none for the others
	}{{
		name:     "ended before the room was first listed: never polled",
		listings: [][]poller.SessionInfo{{ended("old", 0)}, {ended("old", 0)}, {ended("old", 0)}},
	}, {
		name:     "began and ended between two listings: polled once, however many listings show it after",
		listings: [][]poller.SessionInfo{{ended("old", 0)}, {ended("new", 5), ended("old", 0)}, {ended("new", 5), ended("old", 0)}, {ended("new", 5), ended("old", 0)}},
		want:     map[string]int{"new": 1},
	}, {
		name:     "a room listed empty at first: its first session, ended by the next listing, polled once",
		listings: [][]poller.SessionInfo{{}, {ended("new", 5)}, {ended("new", 5)}},
		want:     map[string]int{"new": 1},
	}, {
		name: "two between the same listings, one more between the next two",
		listings: [][]poller.SessionInfo{
			{ended("old", 0)},
			{ended("n2", 7), ended("n1", 5), ended("old", 0)},
			{ended("n3", 9), ended("n2", 7), ended("n1", 5), ended("old", 0)},
		},
		want: map[string]int{"n1": 1, "n2": 1, "n3": 1},
	}, {
		name:     "followed while ongoing, ended since: its loop gone, it is not taken for a new one",
		listings: [][]poller.SessionInfo{{session("a", "ongoing", 0)}, {ended("a", 0)}, {ended("a", 0)}},
		want:     map[string]int{"a": 1},
	}, {
		name:     "a start the API does not give: never taken for a new one",
		listings: [][]poller.SessionInfo{{ended("old", 0)}, {{ID: "unknown", Status: "ended"}, ended("old", 0)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testkit.Bubble(t, func(t *testing.T) {
				f := newFakePolls()
				rooms := &fakeRooms{lists: map[string][]poller.SessionInfo{}, start: time.Now(), ending: map[string]time.Duration{}}
				f.answer = func(id string) (poller.Result, error) {
					rooms.mu.Lock()
					defer rooms.mu.Unlock()
					_, ended := rooms.ending[id]
					return poller.Result{Ended: ended, Complete: true, Found: true}, nil
				}
				b := startManager(t, f, func(c *poller.ManagerConfig) { c.Rooms = rooms })
				defer b.stop()
				rooms.set("r1", tt.listings[0]...)
				b.updates <- poller.Update{Origin: "config", Rooms: []string{"r1"}} // listed at once, then on the room's ticks
				time.Sleep(offset("room r1", 30*time.Second) + 15*time.Second)
				for _, list := range tt.listings[1:] {
					rooms.set("r1", list...) // halfway between two ticks: the next one lists it
					time.Sleep(30 * time.Second)
				}
				synctest.Wait()
				got := map[string]int{}
				rooms.mu.Lock()
				defer rooms.mu.Unlock()
				for id, since := range rooms.ending {
					for _, at := range f.times(id) {
						if at >= since {
							got[id]++
						}
					}
				}
				if d := gocmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("polls by session (-want +got):\n%s", d)
				}
			})
		})
	}
}

// memLeases is an in-memory lease bucket, as publisher.Leases keeps one in KV: a key
// (a lease, or a replica's heartbeat) expires ttl after it was last written. Each
// renewal takes slow.
type memLeases struct {
	mu     sync.Mutex
	ttl    time.Duration
	slow   time.Duration
	keys   map[string]*memKey // leases by key; heartbeats as "hb."+replica
	serial uint64
	woken  []chan struct{} // one for each WatchReleases
}

// WatchReleases calls released whenever a lease is released or a heartbeat deleted
// (publisher.Leases watches every key of its bucket), until ctx ends.
func (s *memLeases) WatchReleases(ctx context.Context, released func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.woken = append(s.woken, ch)
	s.mu.Unlock()
	for {
		select {
		case <-ch:
			released()
		case <-ctx.Done():
			return
		}
	}
}

// wake tells the watchers of a release; s.mu must be held.
func (s *memLeases) wake() {
	for _, ch := range s.woken {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

type memKey struct {
	owner   string
	rev     uint64
	written time.Time
}

func newMemLeases(ttl time.Duration) *memLeases {
	return &memLeases{ttl: ttl, keys: map[string]*memKey{}}
}

// get returns key if it has not expired; s.mu must be held.
func (s *memLeases) get(key string) *memKey {
	k := s.keys[key]
	if k != nil && time.Since(k.written) >= s.ttl {
		delete(s.keys, key)
		return nil
	}
	return k
}

// put writes key; s.mu must be held.
func (s *memLeases) put(key, owner string) uint64 {
	s.serial++
	s.keys[key] = &memKey{owner: owner, rev: s.serial, written: time.Now()}
	return s.serial
}

func (s *memLeases) Heartbeat(_ context.Context, replica string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put("hb."+replica, replica), nil
}

func (s *memLeases) Leave(_ context.Context, replica string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, "hb."+replica)
	s.wake()
	return nil
}

func (s *memLeases) Live(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for key := range s.keys {
		if r, ok := strings.CutPrefix(key, "hb."); ok && s.get(key) != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memLeases) Claim(_ context.Context, key, replica string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.get(key) != nil {
		return 0, nil
	}
	return s.put(key, replica), nil
}

func (s *memLeases) Renew(ctx context.Context, key, replica string, rev uint64) (uint64, error) {
	s.mu.Lock()
	slow := s.slow
	s.mu.Unlock()
	select {
	case <-time.After(slow):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.get(key); k == nil || k.rev != rev {
		return 0, nil
	}
	return s.put(key, replica), nil
}

func (s *memLeases) Owners(context.Context) (map[string]string, map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, rev := map[string]string{}, map[string]uint64{}
	for key := range s.keys {
		if k := s.get(key); k != nil && !strings.HasPrefix(key, "hb.") {
			owner[key], rev[key] = k.owner, k.rev
		}
	}
	return owner, rev, nil
}

func (s *memLeases) Release(_ context.Context, key string, rev uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.get(key); k != nil && k.rev == rev {
		delete(s.keys, key)
		s.wake()
	}
	return nil
}

// TestLoopLeasesNeverStallPolls: while a lease round waits on a slow KV (each renewal
// takes 4 s, under a 15 s TTL), the sessions whose leases are held are polled on
// their schedule all the same: a poll never waits for a round. (Were a poll to wait
// on a mutex a round holds, virtual time could not advance, and this test would hang
// until go test's -timeout: a failure all the same.)
func TestLoopLeasesNeverStallPolls(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		leases := newMemLeases(15 * time.Second)
		b := startManager(t, f, func(c *poller.ManagerConfig) {
			c.Leases, c.Replica, c.LeaseTTL = leases, "a", 15*time.Second
		})
		b.track("s1")
		time.Sleep(time.Second) // claimed, and polled
		leases.mu.Lock()
		leases.slow = 4 * time.Second
		leases.mu.Unlock()
		time.Sleep(30 * time.Second)
		b.stop()
		got := f.times("s1")
		for i := 1; i < len(got); i++ {
			if gap := got[i] - got[i-1]; gap > 5*time.Second {
				t.Errorf("a gap of %v between polls at %v: a poll waited for a lease round", gap, got[i-1])
			}
		}
		if len(got) < 30/5 {
			t.Errorf("polled at %v, want every 5 s", got)
		}
	})
}

// TestLoopLeasesFenceAPartitionedReplica: replica p loses the lease bucket (a
// partition, or a pause: its renewals fail) while its sessions go on. Once its leases
// are past their deadline it polls none of them, and a takes them when they expire;
// back, p finds them taken, and the two share again, slowly.
func TestLoopLeasesFenceAPartitionedReplica(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		const ttl = leaseTTL
		leases := newMemLeases(ttl)
		a := replica(t, "a", leases, newFakePolls())
		store := &cut{LeaseStore: leases}
		fp := newFakePolls()
		p := replica(t, "p", store, fp)
		defer p.stop()
		defer a.stop()
		time.Sleep(20 * time.Second) // a gives p its share, a tenth a round
		if na, np := len(a.polling(t)), len(p.polling(t)); na != 6 || np != 6 {
			t.Fatalf("a polls %d sessions, p %d; want six each", na, np)
		}

		store.off.Store(true)
		// p's leases end a TTL after their last renewal, at most a TTL after the cut:
		// from then on, not one poll of p's.
		time.Sleep(ttl + 200*time.Millisecond)
		n := fp.count()
		time.Sleep(5 * time.Second)
		if more := fp.count() - n; more > 0 {
			t.Errorf("p polled %d times a TTL after it lost the lease bucket", more)
		}
		if na := len(a.polling(t)); na != 12 {
			t.Errorf("a polls %d sessions once p's leases expired, want all twelve", na)
		}

		store.off.Store(false)
		time.Sleep(30 * time.Second)
		if na, np := len(a.polling(t)), len(p.polling(t)); na != 6 || np != 6 {
			t.Errorf("back, a polls %d sessions, p %d; want six each", na, np)
		}
	})
}

// twelve are the sessions that replicas share in the lease tests.
var twelve = func() (ids []string) {
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("s%02d", i))
	}
	return ids
}()

// replica runs a Manager named name over the lease store, polling into f every
// 100 ms, with leases of leaseTTL (rounds every second); it tracks twelve sessions.
func replica(t *testing.T, name string, store poller.LeaseStore, f *fakePolls, opts ...func(*poller.ManagerConfig)) *bubble {
	b := startManager(t, f, func(c *poller.ManagerConfig) {
		c.Schedule, c.Leases, c.Replica, c.LeaseTTL = every(100*time.Millisecond), store, name, leaseTTL
		for _, o := range opts {
			o(c)
		}
	})
	b.track(twelve...)
	return b
}

// TestLoopLeasesShare: two replicas share twelve sessions, six each, none polled by
// both, so that each session is polled once an interval in all; when one stops, it
// gives its leases up and the other takes every session at once.
func TestLoopLeasesShare(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		leases := newMemLeases(leaseTTL)
		f := newFakePolls() // both replicas poll into it: a session polled by both shows
		a := replica(t, "a", leases, f)
		defer a.stop()
		b := replica(t, "b", leases, f)
		time.Sleep(20 * time.Second) // a gives b its share, a tenth a round
		pa, pb := a.polling(t), b.polling(t)
		if len(pa) != 6 || len(pb) != 6 || slices.ContainsFunc(pa, func(id string) bool { return slices.Contains(pb, id) }) {
			t.Fatalf("a polls %v, b %v; want six each, none by both", pa, pb)
		}
		before := f.count()
		time.Sleep(time.Second)
		if polls := f.count() - before; polls != 120 {
			t.Errorf("%d polls in a second for twelve sessions polled every 100 ms, want 120", polls)
		}
		b.stop()
		synctest.Wait()
		if n := len(a.polling(t)); n != 12 {
			t.Errorf("a polls %d sessions at once after b stopped, want all twelve", n)
		}
	})
}

// TestLoopLeasesLetEndedSessionsGo: a session tracked by ID that ends is shown as
// ended, and its lease is released rather than renewed for as long as it stays
// tracked; the other replica takes it, polls it once, finds it ended, and lets go
// too. The live sessions keep theirs.
func TestLoopLeasesLetEndedSessionsGo(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		leases := newMemLeases(leaseTTL)
		f := newFakePolls()
		f.answer = func(id string) (poller.Result, error) {
			return poller.Result{Complete: true, Found: true, Ended: id == twelve[0]}, nil
		}
		a := replica(t, "a", leases, f)
		defer a.stop()
		b := replica(t, "b", leases, f)
		defer b.stop()
		time.Sleep(time.Minute)
		owners, _, _ := leases.Owners(context.Background())
		if owner, ok := owners["session."+twelve[0]]; ok {
			t.Errorf("the ended session's lease is held by %s, want released", owner)
		}
		if len(owners) != len(twelve)-1 {
			t.Errorf("%d leases held, want the %d of the live sessions", len(owners), len(twelve)-1)
		}
		if n := len(f.times(twelve[0])); n > 2 {
			t.Errorf("the ended session polled %d times, want at most once by each replica", n)
		}
		for _, r := range []*bubble{a, b} {
			for _, s := range statuses(t, r.m) {
				if s.ID == twelve[0] && s.Status != poller.StatusEnded {
					t.Errorf("the ended session's status: %s, want ended", s.Status)
				}
			}
		}
	})
}

// TestLoopLeasesMoveOnceTheirPollsReturn: when a replica joins and the first gives
// sessions up, a session moves only once the poll under way on the first has
// returned: never are two replicas' polls of one session under way at once (the old
// holder's poll would save its state after the new one loaded it, and fail).
func TestLoopLeasesMoveOnceTheirPollsReturn(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		leases := newMemLeases(leaseTTL)
		f := newFakePolls()
		f.delay = 2500 * time.Millisecond // longer than a lease round: a poll is under way nearly all the time
		a := replica(t, "a", leases, f)
		defer a.stop()
		time.Sleep(time.Second)
		b := replica(t, "b", leases, f)
		defer b.stop()
		time.Sleep(30 * time.Second)
		if na, nb := len(a.polling(t)), len(b.polling(t)); na != 6 || nb != 6 {
			t.Errorf("a polls %d sessions, b %d; want six each", na, nb)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.twice) > 0 {
			t.Errorf("sessions polled by two replicas at once: %v", f.twice)
		}
	})
}

// TestLoopMemoryBounded: a Manager that has followed many sessions that all ended
// holds no more than one that followed a few: sessions of a room come and end in
// waves of 100, and after the last wave the goroutines, and the heap that
// allocations made in package poller hold, are what they were after the first (Go
// maps keep their largest size, so the first wave is the baseline). What a session's
// poll keeps between polls is its loop's, and goes with it.
func TestLoopMemoryBounded(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	testkit.Bubble(t, func(t *testing.T) {
		const wave = 100
		f := newFakePolls()
		var mu sync.Mutex
		ended := map[string]bool{}
		f.answer = func(id string) (poller.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			return poller.Result{Complete: true, Found: true, Ended: ended[id]}, nil
		}
		rooms := &fakeRooms{lists: map[string][]poller.SessionInfo{}, start: time.Now(), ending: map[string]time.Duration{}}
		b := startManager(t, f, func(c *poller.ManagerConfig) {
			// Polls far apart: the room's listing announces the ends.
			c.Schedule, c.Discover, c.Rooms = every(time.Minute), every(200*time.Millisecond), rooms
		})
		defer b.stop()
		startGoroutines, startHeap := usage()
		var goroutines []int
		var heaps []int64
		for i := range *memorySessions / wave {
			var list []poller.SessionInfo
			for j := range wave {
				list = append(list, poller.SessionInfo{ID: fmt.Sprintf("mem-%d-%d", i, j), Status: "ongoing"})
			}
			rooms.set("big-room", list...)
			b.updates <- poller.Update{Origin: "config", Rooms: []string{"big-room"}}
			time.Sleep(time.Second)
			if n := len(b.polling(t)); n != wave {
				t.Fatalf("wave %d: %d sessions polled, want %d", i, n, wave)
			}
			mu.Lock()
			for k := range list {
				list[k].Status = "ended"
				ended[list[k].ID] = true
			}
			mu.Unlock()
			rooms.set("big-room", list...)
			time.Sleep(time.Second)
			b.updates <- poller.Update{Origin: "config"} // so that no listing is under way when measuring
			// A timer stopped in a bubble stays in its clock until it would have
			// fired: let the loops' last ticks (a minute away at most) pass.
			time.Sleep(time.Minute)
			// The fake's own record of polls is allocated under package poller's
			// frames too: not the Manager's.
			f.mu.Lock()
			f.polls, f.ends, f.inPoll = map[string][]time.Duration{}, map[string][]time.Duration{}, map[string]int{}
			f.mu.Unlock()
			rooms.mu.Lock()
			rooms.ending = map[string]time.Duration{}
			rooms.mu.Unlock()
			mu.Lock()
			ended = map[string]bool{}
			mu.Unlock()
			if n := len(b.polling(t)); n != 0 {
				t.Fatalf("wave %d: %d sessions still polled once every one ended and the room is untracked", i, n)
			}
			n, heap := usage()
			goroutines, heaps = append(goroutines, n), append(heaps, heap)
		}
		t.Logf("%d sessions followed in waves of %d; at the start %d goroutines and %d KiB; after each wave: %v goroutines, %v bytes",
			*memorySessions, wave, startGoroutines, startHeap>>10, goroutines, heaps)
		// A leak would be a hundred a wave; the process may run a few of its own
		// (the race detector's, a finalizer) outside the bubble.
		for i, n := range goroutines {
			if n > startGoroutines+5 {
				t.Errorf("%d goroutines after wave %d, %d at the start", n, i, startGoroutines)
			}
		}
		// A few KiB may come and go: a buffer, a map's growth.
		if first, last := heaps[0], heaps[len(heaps)-1]; last > first+32<<10 {
			t.Errorf("package poller holds %d KiB after %d sessions, %d KiB after the first %d", last>>10, *memorySessions, first>>10, wave)
		}
	})
}

// TestLoopSaysWhenPollsRunLate: polls that finish more than an interval after they
// were due (an API slower than the schedule, or NATS) are said once a minute, not
// once each, with where their time went; polls on time say nothing, and nor do
// failed ones (their failure is said).
func TestLoopSaysWhenPollsRunLate(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		const warning = "polls finish more than an interval after they are due"
		f := newFakePolls()
		f.delay = 100 * time.Millisecond
		var mu sync.Mutex
		fetching, failing := true, false // the poll's time went to the API; it fails
		f.answer = func(string) (poller.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return poller.Result{}, errors.New("nats: timeout")
			}
			res := poller.Result{Complete: true, Found: true}
			if fetching {
				res.Fetching = 800 * time.Millisecond
			}
			return res, nil
		}
		var logs testkit.Buffer
		b := startManager(t, f, func(c *poller.ManagerConfig) {
			c.Schedule, c.Log = every(250*time.Millisecond), slog.New(slog.NewTextHandler(&logs, nil))
		})
		defer b.stop()
		b.track("s1", "s2")
		time.Sleep(time.Second) // four intervals on time
		if strings.Contains(logs.String(), warning) {
			t.Fatalf("polls on time were called late:\n%s", logs.String())
		}
		f.mu.Lock()
		f.delay = 800 * time.Millisecond
		f.mu.Unlock()
		time.Sleep(50 * time.Second)
		if n := strings.Count(logs.String(), warning); n != 1 {
			t.Errorf("said %d times in 50 s of late polls, want once:\n%s", n, logs.String())
		}
		time.Sleep(time.Minute)
		if n := strings.Count(logs.String(), warning); n != 2 {
			t.Errorf("said %d times in 110 s of late polls, want twice (once a minute)", n)
		}
		if n := strings.Count(logs.String(), "goes to the VideoSDK API"); n != 2 {
			t.Errorf("the API named %d times as where the time went, want 2:\n%s", n, logs.String())
		}
		mu.Lock()
		fetching = false
		mu.Unlock()
		time.Sleep(time.Minute)
		if n := strings.Count(logs.String(), "elsewhere than the API: NATS"); n != 1 {
			t.Errorf("NATS named %d times once the time went elsewhere, want 1:\n%s", n, logs.String())
		}
		mu.Lock()
		failing = true
		mu.Unlock()
		time.Sleep(2 * time.Minute)
		if n := strings.Count(logs.String(), warning); n != 3 {
			t.Errorf("said %d times after two minutes of failed late polls, want no more than the 3 before", n)
		}
	})
}

// TestLoopSaysAFailingSessionOnce: a session whose polls fail for 100 s (20 polls)
// is said when its polls start failing, once more a minute on with the count, and
// when they work again; not every poll.
func TestLoopSaysAFailingSessionOnce(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		f.answer = func(string) (poller.Result, error) { return poller.Result{}, errors.New("503 Service Unavailable") }
		var logs testkit.Buffer
		b := startManager(t, f, func(c *poller.ManagerConfig) { c.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
		defer b.stop()
		b.track("s1", "s2")
		time.Sleep(100 * time.Second)
		f.mu.Lock()
		f.answer = func(id string) (poller.Result, error) {
			if id == "s2" {
				return poller.Result{}, errors.New("503 Service Unavailable")
			}
			return poller.Result{Complete: true, Found: true}, nil
		}
		f.mu.Unlock()
		time.Sleep(10 * time.Second)
		if n := len(f.times("s1")); n < 20 {
			t.Fatalf("%d polls, want one every 5 s whatever they meet", n)
		}
		for _, tt := range []struct {
			msg  string
			want int
		}{
			{"msg=\"cycle failed\"", 2},                    // once for each session
			{"msg=\"cycle still failing\"", 2},             // a minute on, for each
			{"msg=\"cycle works again\" session_id=s1", 1}, // s1's polls work again
			{"msg=\"cycle works again\" session_id=s2", 0}, // s2's do not
		} {
			if n := strings.Count(logs.String(), tt.msg); n != tt.want {
				t.Errorf("%q said %d times, want %d:\n%s", tt.msg, n, tt.want, logs.String())
			}
		}
	})
}

// slowRooms takes a while to list any room.
type slowRooms struct {
	fakeRooms
	took time.Duration
}

func (r *slowRooms) RoomSessions(ctx context.Context, room string, all bool) ([]poller.SessionInfo, []diff.SetAside, error) {
	r.mu.Lock()
	took := r.took
	r.mu.Unlock()
	time.Sleep(took)
	return r.fakeRooms.RoomSessions(ctx, room, all)
}

// TestLoopSaysWhenDiscoveryIsBehind: a room's listing that takes longer than the
// discover interval (it waits behind polls for the rate limit, or the API is slow) is
// said while it is still under way, and when it is done; one on time says nothing.
func TestLoopSaysWhenDiscoveryIsBehind(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		rooms := &slowRooms{fakeRooms: fakeRooms{lists: map[string][]poller.SessionInfo{}, ending: map[string]time.Duration{}, start: time.Now()}, took: 20 * time.Second}
		var logs testkit.Buffer
		b := startManager(t, newFakePolls(), func(c *poller.ManagerConfig) {
			c.Rooms, c.Log = rooms, slog.New(slog.NewTextHandler(&logs, nil))
		})
		defer b.stop()
		b.updates <- poller.Update{Origin: "config", Rooms: []string{"r1"}}
		time.Sleep(2 * time.Minute) // four listings of 20 s, every 30 s
		if strings.Contains(logs.String(), "behind schedule") {
			t.Fatalf("listings on time were called late:\n%s", logs.String())
		}
		rooms.mu.Lock()
		rooms.took = 45 * time.Second
		rooms.mu.Unlock()
		time.Sleep(time.Minute)
		for _, msg := range []string{"room discovery is behind schedule: the room's listing is not done", "room discovery was behind schedule"} {
			if !strings.Contains(logs.String(), msg) {
				t.Errorf("not said: %q\n%s", msg, logs.String())
			}
		}
	})
}

// countingRooms counts the listings of each room.
type countingRooms struct {
	fakeRooms
	listed map[string]int
}

func (r *countingRooms) RoomSessions(ctx context.Context, room string, all bool) ([]poller.SessionInfo, []diff.SetAside, error) {
	r.mu.Lock()
	r.listed[room]++
	r.mu.Unlock()
	return r.fakeRooms.RoomSessions(ctx, room, all)
}

func (r *countingRooms) count(room string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listed[room]
}

// TestLoopHints: a hint (a webhook) polls a followed session at once, not at its next
// tick, and hints that come while that poll runs make one poll more, not one each; a
// hint naming a session not followed, of a followed room, and a session-started, list
// the room at once; a hint from a room that no one tracks goes to UnknownRoom; other
// webhook types do nothing.
func TestLoopHints(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		rooms := &countingRooms{fakeRooms: fakeRooms{lists: map[string][]poller.SessionInfo{}, ending: map[string]time.Duration{}, start: time.Now()}, listed: map[string]int{}}
		var mu sync.Mutex
		var unknown []string
		b := startManager(t, f, func(c *poller.ManagerConfig) {
			c.Schedule, c.Discover, c.Rooms = every(time.Minute), every(time.Minute), rooms
			c.UnknownRoom = func(room string) { mu.Lock(); unknown = append(unknown, room); mu.Unlock() }
		})
		defer b.stop()
		b.updates <- poller.Update{Origin: "config", Sessions: []string{"s1"}, Rooms: []string{"r1"}}
		time.Sleep(time.Second)
		f.mu.Lock()
		f.delay = 10 * time.Second
		f.mu.Unlock()
		b.m.Hint(poller.Hint{Type: poller.HintJoined, RoomID: "r0", SessionID: "s1"})
		for range 5 {
			time.Sleep(time.Second)
			b.m.Hint(poller.Hint{Type: poller.HintLeft, RoomID: "r0", SessionID: "s1"})
		}
		time.Sleep(25 * time.Second)
		if d := gocmp.Diff([]time.Duration{0, time.Second, 11 * time.Second}, f.times("s1")); d != "" {
			t.Errorf("s1 polled at (-want +got):\n%s", d)
		}

		listed := rooms.count("r1")
		b.m.Hint(poller.Hint{Type: poller.HintJoined, RoomID: "r1", SessionID: "not-followed-yet"})
		synctest.Wait()
		b.m.Hint(poller.Hint{Type: poller.HintSessionStarted, RoomID: "r1", SessionID: "new"})
		synctest.Wait()
		b.m.Hint(poller.Hint{Type: "recording-started", RoomID: "r1", SessionID: "new"})
		b.m.Hint(poller.Hint{Type: poller.HintJoined, RoomID: "elsewhere", SessionID: "x"})
		b.m.Hint(poller.Hint{Type: poller.HintJoined, RoomID: "rz", SessionID: "s1"}) // s1 is tracked by ID
		synctest.Wait()
		if n := rooms.count("r1") - listed; n != 2 {
			t.Errorf("r1 listed %d times on two hints, want 2", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if d := gocmp.Diff([]string{"elsewhere"}, unknown); d != "" {
			t.Errorf("unknown rooms (-want +got):\n%s", d)
		}
	})
}

// TestLoopLeasesTakenOverFromAVanishedReplica: replica old dies holding every lease,
// in a bucket whose keys live a minute. Its successor, told that old has vanished,
// takes them over at once, by compare-and-set, and polls every session; told nothing,
// it leaves them to expire, and does not ask again. An old that runs on is not taken
// over when, later, no one answers for it (cut off from NATS a moment).
func TestLoopLeasesTakenOverFromAVanishedReplica(t *testing.T) {
	for _, tt := range []struct {
		name     string
		dies     bool // else it runs on, renewing its leases
		vanished bool // what the successor is told of it
	}{
		{name: "killed, vanished: taken over at once", dies: true, vanished: true},
		{name: "killed, maybe alive: left to expire", dies: true},
		{name: "renewing, not answering: left alone", vanished: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testkit.Bubble(t, func(t *testing.T) {
				leases := newMemLeases(time.Minute)
				old := replica(t, "old", killed{leases}, newFakePolls())
				time.Sleep(time.Second)
				if n := len(old.polling(t)); n != 12 {
					t.Fatalf("old polls %d sessions, want twelve", n)
				}
				if tt.dies {
					old.stop()
				} else {
					defer old.stop()
				}
				var asked atomic.Int32
				var armed atomic.Bool // the answer is tt.vanished once armed
				armed.Store(tt.dies)
				var logs testkit.Buffer
				next := replica(t, "next", leases, newFakePolls(), func(c *poller.ManagerConfig) {
					c.Log = slog.New(slog.NewTextHandler(&logs, nil))
					c.Vanished = func(_ context.Context, replica string) bool {
						asked.Add(1)
						return replica == "old" && tt.vanished && armed.Load()
					}
				})
				defer next.stop()
				switch {
				case tt.dies && tt.vanished:
					synctest.Wait()
					if n := len(next.polling(t)); n != 12 {
						t.Errorf("next polls %d sessions at once, want all twelve", n)
					}
					owner, _, _ := leases.Owners(context.Background())
					for key, o := range owner {
						if o != "next" {
							t.Errorf("lease %s held by %s, want next", key, o)
						}
					}
					if live, _ := leases.Live(context.Background()); !slices.Equal(live, []string{"next"}) {
						t.Errorf("live replicas %v, want next alone: old's heartbeat deleted", live)
					}
				case tt.dies:
					time.Sleep(3 * time.Second) // three rounds
					if n := len(next.polling(t)); n != 0 {
						t.Errorf("next polls %d sessions whose leases a replica that may be alive holds", n)
					}
					if n := asked.Load(); n != 1 {
						t.Errorf("asked %d times about old, want once, at start", n)
					}
				default:
					// Old renews every second. Once it has since next started, no one
					// answers for it; next, claiming its share as old gives it up,
					// reads the leases every round.
					time.Sleep(2 * time.Second)
					armed.Store(true)
					time.Sleep(2 * time.Second)
					if strings.Contains(logs.String(), "taking over") {
						t.Errorf("next took over old, which renews its leases:\n%s", logs.String())
					}
				}
			})
		})
	}
}

// TestLoopLeaseTakenOverWhateverTheNames: with few sessions, a successor whose name
// sorts after its killed predecessor's has no fair share, or too small a one, while
// the predecessor's heartbeat lasts. It looks for predecessors in its first round all
// the same, and takes at once the lease the predecessor held and its whole share of
// the others, rather than a lease term or a round later.
func TestLoopLeaseTakenOverWhateverTheNames(t *testing.T) {
	for _, tt := range []struct {
		name    string
		tracked []string // by the successor; the predecessor tracked the first
	}{
		{name: "no share", tracked: twelve[:1]},
		{name: "a share too small", tracked: twelve[:2]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testkit.Bubble(t, func(t *testing.T) {
				leases := newMemLeases(time.Minute)
				start := func(name string, store poller.LeaseStore, vanished func(context.Context, string) bool, ids []string) *bubble {
					b := startManager(t, newFakePolls(), func(c *poller.ManagerConfig) {
						c.Schedule, c.Leases, c.Replica, c.LeaseTTL, c.Vanished = every(100*time.Millisecond), store, name, leaseTTL, vanished
					})
					b.track(ids...)
					return b
				}
				old := start("a-old", killed{leases}, nil, twelve[:1])
				time.Sleep(time.Second)
				if n := len(old.polling(t)); n != 1 {
					t.Fatalf("a-old polls %d sessions, want one", n)
				}
				old.stop()
				next := start("b-next", leases, func(_ context.Context, replica string) bool { return replica == "a-old" }, tt.tracked)
				defer next.stop()
				synctest.Wait()
				if n := len(next.polling(t)); n != len(tt.tracked) {
					t.Errorf("b-next polls %d sessions at once, want all %d", n, len(tt.tracked))
				}
			})
		})
	}
}

// TestLoopPollsRunOnThePool: polls run PollsAtOnce at a time, the others waiting
// their turn: the first polls of twelve sessions, three at once, each a second long,
// take four seconds.
func TestLoopPollsRunOnThePool(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		f.delay = time.Second
		b := startManager(t, f, func(c *poller.ManagerConfig) { c.Schedule, c.PollsAtOnce = every(time.Hour), 3 })
		defer b.stop()
		b.track(twelve...)
		time.Sleep(500 * time.Millisecond)
		for second, want := range []int{3, 6, 9, 12, 12} {
			if n := f.count(); n != want {
				t.Errorf("%d polls begun by %d.5 s, want %d", n, second, want)
			}
			time.Sleep(time.Second)
		}
	})
}

// TestLoopStopsWithoutTheQueuedPolls: a stopping Manager lets the polls under way
// finish, and runs none of those still waiting for their turn.
func TestLoopStopsWithoutTheQueuedPolls(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		f := newFakePolls()
		f.delay = time.Second
		b := startManager(t, f, func(c *poller.ManagerConfig) { c.Schedule, c.PollsAtOnce = every(time.Hour), 3 })
		b.track(twelve...)
		time.Sleep(500 * time.Millisecond)
		b.stop()
		if n := f.count(); n != 3 {
			t.Errorf("%d polls begun by the time the Manager stopped, want the 3 under way", n)
		}
	})
}

const leaseTTL = 3 * time.Second // rounds every second

// statuses returns what m tracks, as its Status says.
func statuses(t *testing.T, m interface {
	Status(context.Context) ([]poller.Status, error)
}) []poller.Status {
	t.Helper()
	list, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// polling returns the sessions m polls.
func polling(t *testing.T, m interface {
	Status(context.Context) ([]poller.Status, error)
}) []string {
	t.Helper()
	var out []string
	for _, s := range statuses(t, m) {
		if s.Kind == poller.KindSession {
			out = append(out, s.ID)
		}
	}
	return out
}

// cut is a lease store that a partition can cut off: while cut, every call fails as
// a request to an unreachable server would.
type cut struct {
	poller.LeaseStore
	off atomic.Bool
}

var errCut = errors.New("partitioned")

func (c *cut) Heartbeat(ctx context.Context, replica string) (uint64, error) {
	if c.off.Load() {
		return 0, errCut
	}
	return c.LeaseStore.Heartbeat(ctx, replica)
}

func (c *cut) Live(ctx context.Context) ([]string, error) {
	if c.off.Load() {
		return nil, errCut
	}
	return c.LeaseStore.Live(ctx)
}

func (c *cut) Renew(ctx context.Context, key, replica string, rev uint64) (uint64, error) {
	if c.off.Load() {
		return 0, errCut
	}
	return c.LeaseStore.Renew(ctx, key, replica, rev)
}

// killed is a lease store whose replica dies as kill -9 does: it gives nothing up.
type killed struct{ poller.LeaseStore }

func (killed) Leave(context.Context, string) error           { return nil }
func (killed) Release(context.Context, string, uint64) error { return nil }
