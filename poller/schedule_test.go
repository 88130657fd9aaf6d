package poller

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// TestTicks: a loop's ticks are the schedule's, shifted by the same offset within one
// interval for the same id, and strictly after the time asked.
func TestTicks(t *testing.T) {
	anchor := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	spec, err := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor).Parse("*/10 * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		sched    cron.Schedule
		interval time.Duration
	}{
		{"@every 5s", cron.Every(5 * time.Second), 5 * time.Second},
		{"every 10 seconds, as a cron spec", spec, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newTicks(tt.sched, anchor, "session-a"), newTicks(tt.sched, anchor, "session-b")
			if a.offset != newTicks(tt.sched, anchor, "session-a").offset {
				t.Error("the same id got two offsets")
			}
			if a.offset == b.offset || a.offset < 0 || a.offset >= tt.interval || b.offset >= tt.interval {
				t.Errorf("offsets %v and %v, want two different ones within %v", a.offset, b.offset, tt.interval)
			}
			now := anchor.Add(3*time.Hour + 1234*time.Millisecond)
			for range 5 {
				next := a.after(now)
				if !next.After(now) || next.Sub(now) > tt.interval {
					t.Fatalf("after(%v) = %v, want within one interval after", now, next)
				}
				if phase := next.Sub(anchor) % tt.interval; phase != a.offset {
					t.Errorf("tick %v is %v into its interval, want the offset %v", next, phase, a.offset)
				}
				now = next
			}
		})
	}
}
