package poller_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/poller"
)

// TestRoomSessions: the first listing reads every page; later ones stop at the first
// page with no live session, since the list is newest first.
func TestRoomSessions(t *testing.T) {
	w := newWorld(t)
	var ended []string
	for range 5 {
		w.clock.Add(time.Minute)
		id := w.api.NextSession("r1")
		w.api.EndSession(id)
		ended = append(ended, id)
	}
	w.clock.Add(time.Minute)
	live := w.api.NextSession("r1")
	tests := []struct {
		name      string
		all       bool
		wantPages int
		want      []string // newest first
	}{
		{"all: three pages", true, 3, []string{live, ended[4], ended[3], ended[2], ended[1], ended[0]}},
		{"until a page with no live session", false, 2, []string{live, ended[4], ended[3], ended[2]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := w.api.Requests()
			list, _, err := w.client(2).RoomSessions(context.Background(), "r1", tt.all)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, s := range list {
				got = append(got, s.ID)
				if s.Ended() != (i > 0) {
					t.Errorf("%s: status %q", s.ID, s.Status)
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("sessions (-want +got):\n%s", d)
			}
			if n := w.api.Requests() - before; n != tt.wantPages {
				t.Errorf("%d requests, want %d", n, tt.wantPages)
			}
		})
	}
}

// TestRoomSessionsYieldToPolls: when the rate limit is short, a listing waits until
// no poll is waiting for a turn, even polls that began waiting after it.
func TestRoomSessionsYieldToPolls(t *testing.T) {
	w := newWorld(t, "a")
	w.api.StartSession("other", "r1")
	var mu sync.Mutex
	var order []string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if strings.Contains(r.URL.RawQuery, "roomId") {
			order = append(order, "list")
		} else {
			order = append(order, "poll")
		}
		mu.Unlock()
		w.api.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	c := poller.NewClient(poller.ClientConfig{BaseURL: srv.URL, Tokens: w.tokens, RateLimit: 10})
	ctx := context.Background()
	if _, err := c.Snapshot(ctx, nil, session); err != nil { // spends the limiter's one turn
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, _, err := c.RoomSessions(ctx, "r1", true); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(20 * time.Millisecond) // the listing is waiting for its turn
	for range 4 {
		wg.Go(func() {
			if _, err := c.Snapshot(ctx, nil, session); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want := []string{"poll", "poll", "poll", "poll", "poll", "list"}
	if d := cmp.Diff(want, order); d != "" {
		t.Errorf("order of requests (-want +got):\n%s", d)
	}
}

// TestRoomSessionsTakeTheirTurnAfterMaxYield: when polls keep the rate limit busy
// for ever, a listing lets them go first only for MaxYield, then takes its turn: it
// is done while polls still queue.
func TestRoomSessionsTakeTheirTurnAfterMaxYield(t *testing.T) {
	w := newWorld(t, "a")
	c := poller.NewClient(poller.ClientConfig{BaseURL: w.url, Tokens: w.tokens, RateLimit: 20, MaxYield: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 { // three sessions' polls, one after the other, always one waiting
		wg.Go(func() {
			for {
				select {
				case <-listed:
					return
				default:
				}
				if _, err := c.Snapshot(ctx, nil, session); err != nil {
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // the polls hold the limiter
	_, _, err := c.RoomSessions(ctx, room, true)
	close(listed)
	wg.Wait()
	if err != nil {
		t.Fatalf("the listing never took its turn while polls kept the rate limit busy: %v", err)
	}
}
