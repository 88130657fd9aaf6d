package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
)

// counting counts the writes a lease store makes.
type counting struct {
	LeaseStore
	writes atomic.Int64
}

func (c *counting) Heartbeat(ctx context.Context, replica string) (uint64, error) {
	c.writes.Add(1)
	return c.LeaseStore.Heartbeat(ctx, replica)
}

func (c *counting) Claim(ctx context.Context, key, replica string) (uint64, error) {
	c.writes.Add(1)
	return c.LeaseStore.Claim(ctx, key, replica)
}

func (c *counting) Renew(ctx context.Context, key, replica string, rev uint64) (uint64, error) {
	c.writes.Add(1)
	return c.LeaseStore.Renew(ctx, key, replica, rev)
}

// TestLeaseWritesAt1000Sessions measures what leases cost the KV bucket at 1,000
// sessions and two replicas: once the sessions are shared (the first to come takes
// all, and gives the other its share a tenth a round), each round writes one
// heartbeat per replica and renews each lease, nothing else; at the default 15 s TTL,
// rounds come every 5 s.
func TestLeaseWritesAt1000Sessions(t *testing.T) {
	if testing.Short() {
		t.Skip("claims 1,000 leases")
	}
	ctx := context.Background()
	leases, keys := openLeases(t, 1000)
	stores := []*counting{{LeaseStore: leases}, {LeaseStore: leases}}
	keepers := []*keeper{
		newKeeper(stores[0], "a", 15*time.Second, slog.New(slog.DiscardHandler), nil),
		newKeeper(stores[1], "b", 15*time.Second, slog.New(slog.DiscardHandler), nil),
	}
	// a takes all 1,000 while alone, then gives b its share a tenth (50) a round.
	rounds := 0
	for ; rounds < 30; rounds++ {
		oa, ob := keepers[0].round(ctx, keys, true, true), keepers[1].round(ctx, keys, true, true)
		if len(oa) == 500 && len(ob) == 500 {
			break
		}
	}
	if rounds == 30 {
		t.Fatal("the replicas do not share the 1,000 sessions evenly after 30 rounds")
	}
	t.Logf("shared evenly after %d rounds", rounds+1)
	before := stores[0].writes.Load() + stores[1].writes.Load()
	began := time.Now()
	for _, k := range keepers {
		k.round(ctx, keys, true, true)
	}
	took := time.Since(began)
	writes := stores[0].writes.Load() + stores[1].writes.Load() - before
	t.Logf("one round of both replicas: %d KV writes in %v; every 5 s (lease_ttl 15s): %.0f writes/s", writes, took.Round(time.Millisecond), float64(writes)/5)
	if writes != 1000+2 {
		t.Errorf("%d writes in a round, want 1002: a renewal per lease and a heartbeat per replica", writes)
	}
}

// age makes k's leases as old as if d had passed since they were written.
func age(k *keeper, d time.Duration) {
	for _, h := range k.held {
		h.until = h.until.Add(-d)
	}
}

// TestEarlyRoundRenewsOnlyWhatIsDue: a round that comes early (at start the tracked
// set changes twice, each time nudging a round) writes its heartbeat, not again the
// leases claimed or renewed in the last sixth of the TTL; a lease older than that is
// renewed, and its deadline moves. A scheduled round renews every lease, however
// fresh.
func TestEarlyRoundRenewsOnlyWhatIsDue(t *testing.T) {
	ctx := context.Background()
	const ttl = 15 * time.Second // openLeases'
	leases, keys := openLeases(t, 100)
	store := &counting{LeaseStore: leases}
	k := newKeeper(store, "a", ttl, slog.New(slog.DiscardHandler), nil)
	if owned := k.round(ctx, keys, true, true); len(owned) != 100 {
		t.Fatalf("first round owns %d leases, want 100", len(owned))
	}
	writes := func(round func()) int64 {
		before := store.writes.Load()
		round()
		return store.writes.Load() - before
	}
	early := func() {
		if owned := k.round(ctx, keys, false, true); len(owned) != 100 {
			t.Fatalf("early round owns %d leases, want 100", len(owned))
		}
	}
	if n := writes(early); n != 1 {
		t.Errorf("a round right after the claims wrote %d times, want 1 (the heartbeat)", n)
	}
	key := keys[0]
	age(k, ttl/6+time.Second)
	stale := k.held[key].until
	if n := writes(early); n != 101 {
		t.Errorf("a round a sixth of the TTL after the claims wrote %d times, want 101 (the heartbeat, every lease)", n)
	}
	if renewed, ok := k.deadline(key); !ok || renewed.Sub(stale) < ttl/6 {
		t.Errorf("a renewed lease's deadline is %v after its last (held %v), want at least %v", renewed.Sub(stale), ok, ttl/6)
	}
	scheduled := func() {
		if owned := k.round(ctx, keys, true, true); len(owned) != 100 {
			t.Fatalf("scheduled round owns %d leases, want 100", len(owned))
		}
	}
	if n := writes(scheduled); n != 101 {
		t.Errorf("a scheduled round right after the renewals wrote %d times, want 101 (the heartbeat, every lease)", n)
	}
}

// TestClaimsHandedOverInBatches: a round that claims many leases hands each batch to
// the loops as soon as it is claimed, the last with what the round returns, so that
// the first sessions poll while the last are claimed.
func TestClaimsHandedOverInBatches(t *testing.T) {
	ctx := context.Background()
	leases, keys := openLeases(t, 600)
	k := newKeeper(leases, "a", 15*time.Second, slog.New(slog.DiscardHandler), nil)
	var handed []int
	k.claimed = func(owned map[string]bool) {
		handed = append(handed, len(owned))
		for key := range owned {
			if _, ok := k.deadline(key); !ok {
				t.Errorf("lease %s handed to the loops before its deadline is published", key)
			}
		}
	}
	owned := k.round(ctx, keys, true, true)
	if len(owned) != 600 || !slices.Equal(handed, []int{256, 512}) {
		t.Errorf("the round handed over %v leases, then returned %d; want 256, 512, then 600", handed, len(owned))
	}
}

// TestLeaveReleasesEveryLease: a replica that stops gives up every lease it holds
// and its heartbeat, thousands at once, so that the others take over at once; if the
// releases fail, it says so once, not once a lease.
func TestLeaveReleasesEveryLease(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fail     bool
		warnings int
	}{
		{name: "released"},
		{name: "the releases fail", fail: true, warnings: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			leases, keys := openLeases(t, 2000)
			var store LeaseStore = leases
			if tt.fail {
				store = failingRelease{leases}
			}
			var logs testkit.Buffer
			k := newKeeper(store, "a", 15*time.Second, slog.New(slog.NewTextHandler(&logs, nil)), nil)
			if owned := k.round(ctx, keys, true, true); len(owned) != 2000 {
				t.Fatalf("the round owns %d leases, want 2000", len(owned))
			}
			k.leave(ctx)
			owner, _, err := leases.Owners(ctx)
			if err != nil {
				t.Fatal(err)
			}
			left := 0 // in the bucket
			if tt.fail {
				left = 2000
			}
			if len(owner) != left || len(k.owned()) != 0 {
				t.Errorf("after leave: %d leases in the bucket, %d owned here; want %d, none", len(owner), len(k.owned()), left)
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != tt.warnings {
				t.Errorf("leave warned %d times, want %d:\n%s", n, tt.warnings, logs.String())
			}
		})
	}
}

// failingRelease is a lease store whose releases fail.
type failingRelease struct{ LeaseStore }

func (failingRelease) Release(context.Context, string, uint64) error {
	return errors.New("no release today")
}

// openLeases opens a lease bucket (15 s TTL) on a server of the test's own, and
// returns it with n session lease keys.
func openLeases(t *testing.T, n int) (*publisher.Leases, []string) {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	leases, err := publisher.OpenLeases(context.Background(), js, "ROLLCALL_LEASES", 1, 15*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range n {
		keys = append(keys, leaseKey(KindSession, fmt.Sprintf("s%04d", i)))
	}
	return leases, keys
}

// TestLeaseShares: the shares of n leases add up to n, and differ by one at most,
// whoever asks; 4 rooms on 3 replicas are 2, 1, 1.
func TestLeaseShares(t *testing.T) {
	live := []string{"c", "a", "b"}
	for _, n := range []int{0, 1, 4, 12, 1000} {
		var shares []int
		sum := 0
		for _, r := range live {
			s := share(n, live, r)
			shares = append(shares, s)
			sum += s
		}
		if sum != n || slices.Max(shares)-slices.Min(shares) > 1 {
			t.Errorf("%d leases on %v: shares %v", n, live, shares)
		}
	}
	if got := []int{share(4, live, "a"), share(4, live, "b"), share(4, live, "c")}; !slices.Equal(got, []int{2, 1, 1}) {
		t.Errorf("4 leases on a, b, c: %v, want 2, 1, 1", got)
	}
	if share(4, []string{"a"}, "b") != 2 {
		t.Error("a replica whose heartbeat is not in the list yet counts itself in")
	}
}
