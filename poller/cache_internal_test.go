package poller

import (
	"log/slog"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// TestHintLiftsTheListBudgetOnce: after a reading of 30 pages the list waits 30
// intervals; a hinted poll may read it all the same if it needs it, and only that
// poll.
func TestHintLiftsTheListBudgetOnce(t *testing.T) {
	c := NewCache("s", cron.ConstantDelaySchedule{Delay: time.Second}, nil, time.Time{})
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c.listRead(slog.New(slog.DiscardHandler), t0, 30, nil, time.Time{})
	for i, tt := range []struct {
		hint bool
		want listMode
	}{{false, listNot}, {true, listIfNeeded}, {false, listNot}} {
		if tt.hint {
			c.hint()
		}
		if got := c.listMode(t0.Add(time.Duration(i+1) * time.Second)); got != tt.want {
			t.Errorf("poll %d (hinted %v): mode %v, want %v", i+1, tt.hint, got, tt.want)
		}
	}
}
