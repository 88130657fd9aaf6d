package poller

import (
	"context"
	"errors"
	"log/slog"
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
	return diff.Snapshot{}, ctx.Err()
}

// TestPollHeldToItsLease: a poll takes its lease's deadline once it holds its
// fetching slot, however long it waited for one (a lease renewed meanwhile), and
// stops at it; with the lease gone it does nothing (no store, no API: none is
// given).
func TestPollHeldToItsLease(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var scans atomic.Int32
	p := New(waitingSource{scans: &scans}, nil, nil, WithConcurrency(1))
	held := true
	c := Cache{fence: func() (time.Time, bool) { return time.Now().Add(100 * time.Millisecond), held }}
	c.keep(diff.State{}, 1, false)

	release, err := acquire(context.Background(), p.fetching) // the only slot
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := p.PollCached(context.Background(), log, "s", &c); done <- err }()
	time.Sleep(300 * time.Millisecond) // longer than the lease has left at any moment
	release()
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) || scans.Load() != 1 {
		t.Errorf("poll that waited for its slot: %v after %d scans; want context.DeadlineExceeded after one, at its lease's end", err, scans.Load())
	}

	held = false
	c.keep(diff.State{}, 1, false)
	if _, err := p.PollCached(context.Background(), log, "s", &c); !errors.Is(err, ErrLeaseGone) || scans.Load() != 1 {
		t.Errorf("poll without its lease: %v, %d scans in all; want ErrLeaseGone, and no scan", err, scans.Load())
	}
}
