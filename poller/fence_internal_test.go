package poller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// waitingSource answers a scan only when its context ends, and counts the scans.
type waitingSource struct {
	Source
	scans *atomic.Int32
}

func (s waitingSource) Snapshot(ctx context.Context, _ *slog.Logger, _ string) (diff.Snapshot, error) {
	s.scans.Add(1)
	<-ctx.Done()
	return diff.Snapshot{}, context.Cause(ctx)
}

// lease is a lease of 50 ms, renewed until it is let go.
type lease struct {
	mu     sync.Mutex
	ends   time.Time
	letGo  bool
	checks int
}

func (l *lease) fence() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks++
	if !l.letGo && !time.Now().Before(l.ends) {
		l.ends = time.Now().Add(50 * time.Millisecond) // renewed
	}
	return l.ends, !l.letGo && time.Now().Before(l.ends)
}

// TestPollHeldToItsLease: a poll goes on while its lease does, renewed again and
// again, however long it waited for its fetching slot and however long it runs; it
// stops when the lease is let go; with the lease gone it does nothing (no store, no
// API: none is given).
func TestPollHeldToItsLease(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var scans atomic.Int32
	p := New(waitingSource{scans: &scans}, nil, nil, WithConcurrency(1))
	l := &lease{}
	c := Cache{fence: l.fence}
	c.keep(diff.State{}, 1, false)

	release, err := acquire(context.Background(), p.fetching) // the only slot
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := p.PollCached(context.Background(), log, "s", &c); done <- err }()
	time.Sleep(200 * time.Millisecond) // four terms of the lease, waiting for the slot
	release()
	select {
	case err := <-done:
		t.Fatalf("poll ended while its lease was renewed: %v", err)
	case <-time.After(300 * time.Millisecond): // six more, scanning
	}
	l.mu.Lock()
	l.letGo = true
	checks := l.checks
	l.mu.Unlock()
	if err := <-done; !errors.Is(err, ErrLeaseGone) || scans.Load() != 1 || checks < 4 {
		t.Errorf("poll whose lease was let go: %v after %d scans, the lease checked %d times; want ErrLeaseGone after one scan, the lease checked at each of its ends",
			err, scans.Load(), checks)
	}

	c.keep(diff.State{}, 1, false)
	if _, err := p.PollCached(context.Background(), log, "s", &c); !errors.Is(err, ErrLeaseGone) || scans.Load() != 1 {
		t.Errorf("poll without its lease: %v, %d scans in all; want ErrLeaseGone, and no scan", err, scans.Load())
	}
}
