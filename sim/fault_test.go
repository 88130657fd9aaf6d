package sim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// reply is what a test expects of one answer; an empty body means the normal,
// paginated answer.
type reply struct {
	status     int
	retryAfter string
	body       string
}

func TestFaults(t *testing.T) {
	active := "/v2/sessions/" + sessionID + "/participants/active"
	all := "/v2/sessions/" + sessionID + "/participants"
	ok := reply{status: http.StatusOK}
	tests := []struct {
		name   string
		faults []Fault
		paths  []string
		want   []reply
	}{{
		name: "status with Retry-After, once",
		faults: []Fault{{
			PathContains: "/active", Status: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": {"2"}}, Body: `{"message":"slow down"}`,
		}},
		paths: []string{active, active},
		want:  []reply{{http.StatusTooManyRequests, "2", `{"message":"slow down"}`}, ok},
	}, {
		name:   "raw body instead of the normal one",
		faults: []Fault{{Body: `{"pageInfo":`}},
		paths:  []string{active, active},
		want:   []reply{{http.StatusOK, "", `{"pageInfo":`}, ok},
	}, {
		name:   "Times applies to that many requests",
		faults: []Fault{{Status: http.StatusServiceUnavailable, Times: 3}},
		paths:  []string{active, all, active, active},
		want: []reply{
			{status: http.StatusServiceUnavailable}, {status: http.StatusServiceUnavailable},
			{status: http.StatusServiceUnavailable}, ok,
		},
	}, {
		name:   "Page matches only that page",
		faults: []Fault{{Page: 2, Status: http.StatusInternalServerError}},
		paths:  []string{active + "?page=1&perPage=1", active + "?page=2&perPage=1", active + "?page=2&perPage=1"},
		want:   []reply{ok, {status: http.StatusInternalServerError}, ok},
	}, {
		name:   "no page parameter is page 1",
		faults: []Fault{{Page: 1, Status: http.StatusInternalServerError}},
		paths:  []string{active + "?page=2&perPage=1", active},
		want:   []reply{ok, {status: http.StatusInternalServerError}},
	}, {
		name:   "PathContains matches only those paths",
		faults: []Fault{{PathContains: "/active", Status: http.StatusInternalServerError}},
		paths:  []string{all, active, active},
		want:   []reply{ok, {status: http.StatusInternalServerError}, ok},
	}, {
		name:   "FIFO among faults that match",
		faults: []Fault{{Status: http.StatusInternalServerError}, {Status: http.StatusBadGateway}},
		paths:  []string{active, active, active},
		want:   []reply{{status: http.StatusInternalServerError}, {status: http.StatusBadGateway}, ok},
	}, {
		name:   "a fault not matched stays queued behind one that is",
		faults: []Fault{{Page: 2, Status: http.StatusInternalServerError}, {Status: http.StatusBadGateway}},
		paths:  []string{active + "?page=1&perPage=1", active + "?page=2&perPage=1", active + "?page=2&perPage=1"},
		want:   []reply{{status: http.StatusBadGateway}, {status: http.StatusInternalServerError}, ok},
	}, {
		name:   "Delay alone, then the normal answer",
		faults: []Fault{{Delay: time.Millisecond}},
		paths:  []string{active},
		want:   []reply{ok},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, ts := newTestServer(t)
			startWith(s, sessionID, "a", "b")
			for _, f := range tt.faults {
				s.InjectFault(f)
			}
			var got []reply
			for _, path := range tt.paths {
				status, header, body := get(t, ts, path, validToken(t))
				r := reply{status: status, retryAfter: header.Get("Retry-After"), body: string(body)}
				if status == http.StatusOK && strings.HasPrefix(r.body, `{"pageInfo":{`) {
					r.body = "" // the normal answer
				}
				got = append(got, r)
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(reply{})); d != "" {
				t.Errorf("replies (-want +got):\n%s", d)
			}
		})
	}
}

func TestFaultDelayStopsWhenTheClientGoesAway(t *testing.T) {
	s := New(Config{APIKey: testKey, Secret: testSecret, Now: NewClock(at("08:00:00")).Now})
	s.InjectFault(Fault{Delay: 30 * time.Second})
	arrived, handled := make(chan struct{}), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		s.ServeHTTP(w, r)
		close(handled)
	}))

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v2/sessions/", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = ts.Client().Do(req); err == nil {
				resp.Body.Close()
			}
		}
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error %v, want context.Canceled", err)
	}
	select {
	case <-handled:
		ts.Close()
	case <-time.After(10 * time.Second):
		// Not closing ts: Close would wait for the stuck handler.
		t.Fatal("the handler still waits out its Delay after the client went away")
	}
}

// TestFaultAfterServeChangesTheWorldMidScan shows why a client must compare total
// across pages: a participant on page 1 leaves once page 1 is served, the list
// shifts, and c, who never left, is on neither page.
func TestFaultAfterServeChangesTheWorldMidScan(t *testing.T) {
	s, _, ts := newTestServer(t)
	startWith(s, sessionID, "a", "b", "c", "d")
	s.InjectFault(Fault{PathContains: "/active", Page: 1, AfterServe: func() { s.Leave(sessionID, "a") }})

	info1, page1 := activeIDs(t, ts, sessionID, "?page=1&perPage=2")
	info2, page2 := activeIDs(t, ts, sessionID, "?page=2&perPage=2")
	got := []any{info1.Total, page1, info2.Total, page2}
	want := []any{4, []string{"a", "b"}, 3, []string{"d"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("totals and pages (-want +got):\n%s", d)
	}
}
