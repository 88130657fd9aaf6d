package poller

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rollcall/rollcall/internal/testkit"
)

// lease is a lease of 15 s, renewed every 5 s until it is let go, and held until
// the end of its last term.
type lease struct {
	mu    sync.Mutex
	ends  time.Time
	letGo bool
}

func (l *lease) fence() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ends, time.Now().Before(l.ends)
}

func (l *lease) renew(ctx context.Context) {
	for {
		l.mu.Lock()
		if !l.letGo {
			l.ends = time.Now().Add(15 * time.Second)
		}
		l.mu.Unlock()
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return
		}
	}
}

// TestFencedFollowsRenewals: a poll's context lasts while its lease is renewed, many
// terms of it (a first burst's queues), and ends, with ErrLeaseGone as its cause,
// once the lease lapses: at the end of its last term, not before.
func TestFencedFollowsRenewals(t *testing.T) {
	testkit.Bubble(t, func(t *testing.T) {
		l := &lease{}
		renewals, stopRenewing := context.WithCancel(context.Background())
		defer stopRenewing()
		go l.renew(renewals)
		synctest.Wait()
		ctx, stop := fenced(context.Background(), l.fence)
		defer stop()
		time.Sleep(time.Minute) // four terms
		if err := ctx.Err(); err != nil {
			t.Fatalf("poll under a lease renewed for a minute: %v", err)
		}
		stopped, stopNow := fenced(context.Background(), l.fence)
		stopNow()
		if context.Cause(stopped) == ErrLeaseGone {
			t.Error("a poll's context stopped by its poll ends with ErrLeaseGone")
		}
		l.mu.Lock()
		l.letGo = true
		lastEnd := l.ends
		l.mu.Unlock()
		<-ctx.Done()
		if cause := context.Cause(ctx); cause != ErrLeaseGone || time.Now().Before(lastEnd) {
			t.Errorf("poll's context ended at %v with %v; want ErrLeaseGone, at the lease's last end %v", time.Now(), cause, lastEnd)
		}
	})
}
