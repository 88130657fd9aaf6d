package poller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

const leaseTTL = 3 * time.Second // rounds every second

// replicas is a world of twelve sessions and a lease bucket that replicas share.
type replicas struct {
	*rig
	ids    []string
	leases *publisher.Leases
}

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	w := newWorld(t)
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		w.api.StartSession(id, room)
		w.api.Join(id, "p-"+id, "name")
		ids = append(ids, id)
	}
	r := newRig(t, w, true)
	leases, err := publisher.OpenLeases(context.Background(), r.js, "ROLLCALL_LEASES", 1, leaseTTL, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return &replicas{rig: r, ids: ids, leases: leases}
}

// start runs a replica named name over store, with a request log of its own; it
// tracks the twelve sessions.
func (r *replicas) start(t *testing.T, name string, store poller.LeaseStore, opts ...func(*poller.ManagerConfig)) (*managed, *requestLog) {
	t.Helper()
	reqs := &requestLog{}
	srv := httptest.NewServer(reqs.wrap(r.api))
	t.Cleanup(srv.Close)
	w := *r.world
	w.url = srv.URL
	p := r.with(w.client(2))
	m := r.manage(t, func(c *poller.ManagerConfig) {
		c.Poller, c.Rooms, c.Leases, c.Replica, c.LeaseTTL = p, w.client(2), store, name, leaseTTL
		for _, o := range opts {
			o(c)
		}
	})
	m.track("config", r.ids, nil)
	return m, reqs
}

// polling returns the sessions m polls.
func polling(t *testing.T, m interface {
	Status(context.Context) ([]poller.Status, error)
}) []string {
	t.Helper()
	list, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list {
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

// TestLeasesTakenOverFromAVanishedReplica: replica old dies holding every lease, in a
// bucket whose keys live a minute. Its successor, told that old has vanished, takes
// them over at once, by compare-and-set, and polls every session; told nothing, it
// leaves them to expire, and does not ask again. An old that runs on is not taken
// over when, later, no one answers for it (cut off from NATS a moment).
func TestLeasesTakenOverFromAVanishedReplica(t *testing.T) {
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
			r := newReplicas(t)
			leases, err := publisher.OpenLeases(context.Background(), r.js, "LONG_LEASES", 1, time.Minute, quiet())
			if err != nil {
				t.Fatal(err)
			}
			old, _ := r.start(t, "old", killed{leases})
			eventually(t, "old polls all twelve", func() bool { return len(polling(t, old)) == 12 })
			if tt.dies {
				old.stop()
			}

			var asked atomic.Int32
			var armed atomic.Bool // the answer is tt.vanished once armed
			armed.Store(tt.dies)
			var logs testkit.Buffer
			next, _ := r.start(t, "next", leases, func(c *poller.ManagerConfig) {
				c.Log = slog.New(slog.NewTextHandler(&logs, nil))
				c.Vanished = func(_ context.Context, replica string) bool {
					asked.Add(1)
					return replica == "old" && tt.vanished && armed.Load()
				}
			})
			switch {
			case tt.dies && tt.vanished:
				eventually(t, "next polls all twelve", func() bool { return len(polling(t, next)) == 12 })
				owner, _, err := leases.Owners(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for key, o := range owner {
					if o != "next" {
						t.Errorf("lease %s held by %s, want next", key, o)
					}
				}
				if live, err := leases.Live(context.Background()); err != nil || !slices.Equal(live, []string{"next"}) {
					t.Errorf("live replicas %v (%v), want next alone: old's heartbeat deleted", live, err)
				}
			case tt.dies:
				eventually(t, "asked about old", func() bool { return asked.Load() >= 1 })
				time.Sleep(2 * time.Second) // two more rounds
				if n := len(polling(t, next)); n != 0 {
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
	}
}
