package poller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/sim"
)

func TestDecodePage(t *testing.T) {
	tests := []struct {
		file      string
		wantPaged bool
		wantIDs   []string
	}{
		{"documented-example.json", true, []string{"iqpq5uen", "mxavzgb5"}},
		{"older-shape.json", false, []string{"iqpq5uen", "mxavzgb5"}},
		{"two-data-elements.json", true, []string{"iqpq5uen", "mxavzgb5"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			page, err := poller.DecodePage(readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range page.Sessions {
				if s.SessionID != session || s.RoomID != room || s.Status != "ongoing" {
					t.Errorf("session %q room %q status %q", s.SessionID, s.RoomID, s.Status)
				}
				got = append(got, ids(s)...)
			}
			if d := cmp.Diff(tt.wantIDs, got); d != "" || page.Paged != tt.wantPaged {
				t.Errorf("paged %v, want %v; participants (-want +got):\n%s", page.Paged, tt.wantPaged, d)
			}
			p := page.Sessions[0].Participants[0]
			want := time.Date(2023, 7, 24, 8, 28, 9, 650e6, time.UTC)
			if !p.JoinedAt.Equal(want) || p.Name != "demo1" || p.Mode != "CONFERENCE" || p.SDKType != "prebuilt" {
				t.Errorf("first participant %+v, want demo1 joined at %v, CONFERENCE, prebuilt", p, want)
			}
		})
	}
}

// TestDecodePageRejects: every fixture named bad-* is unusable as a whole page.
func TestDecodePageRejects(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad-* fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			page, err := poller.DecodePage(readFile(t, filepath.Base(f)))
			if !errors.Is(err, poller.ErrMalformed) {
				t.Errorf("DecodePage = %+v, %v; want ErrMalformed", page, err)
			}
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshotShiftedMidScan: a participant on page 1 leaves right after page 1 is
// served, which shifts the next page and hides someone from the scan. The pages
// disagree, the session is scanned again, and the snapshot is the true one.
func TestSnapshotShiftedMidScan(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e")
	w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() { w.api.Leave(session, "a") }})
	got, err := w.client(2).Snapshot(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"b", "c", "d", "e"}, ids(got)); d != "" || !got.Complete {
		t.Errorf("complete=%v, participants (-want +got):\n%s", got.Complete, d)
	}
	if n := w.api.Requests(); n != 2+2 {
		t.Errorf("%d requests, want 4: a scan that stops at page 2, whose total disagrees, then one of 2", n)
	}
}

// TestSnapshotFalseLastPage: a lastPage far beyond the list is not followed: the scan
// stops at the first page that disagrees with it or is empty, rather than asking for
// thousands of pages while every other session waits.
func TestSnapshotFalseLastPage(t *testing.T) {
	lying := func(participants string) string {
		return `{"pageInfo":{"currentPage":1,"perPage":2,"lastPage":2000,"total":3},"data":[{"_id":"` + session +
			`","roomId":"` + room + `","status":"ongoing","participants":` + participants + `}]}`
	}
	tests := []struct {
		name         string
		fault        sim.Fault
		wantComplete bool
		wantRequests int
	}{
		{name: "once, on page 1, empty: that scan stops there; the next is true",
			fault: sim.Fault{Page: 1, Status: 200, Body: lying("[]")}, wantComplete: true, wantRequests: 1 + 2},
		{name: "on every page, which is empty: one request per scan",
			fault: sim.Fault{Status: 200, Body: lying("[]"), Times: 100}, wantRequests: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a", "b", "c")
			w.api.InjectFault(tt.fault)
			got, err := w.client(2).Snapshot(context.Background(), nil, session)
			if err != nil {
				t.Fatal(err)
			}
			if got.Complete != tt.wantComplete {
				t.Errorf("complete=%v, want %v", got.Complete, tt.wantComplete)
			}
			if n := w.api.Requests(); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
		})
	}
}

// TestSnapshotKeepsShifting: when every scan is shifted, the last one is returned as
// incomplete, so that no one's absence from it counts.
func TestSnapshotKeepsShifting(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "d", "e", "f", "g")
	for _, id := range []string{"a", "b", "c"} {
		w.api.InjectFault(sim.Fault{Page: 1, AfterServe: func() { w.api.Leave(session, id) }})
	}
	got, err := w.client(2).Snapshot(context.Background(), nil, session)
	if err != nil {
		t.Fatal(err)
	}
	// The third scan: page 1 lists c and d, then c leaves, page 2 lists f and g, and
	// e, shifted onto page 1, is missed.
	if d := cmp.Diff([]string{"c", "d", "f", "g"}, ids(got)); d != "" || got.Complete {
		t.Errorf("complete=%v, want false; participants (-want +got):\n%s", got.Complete, d)
	}
}

func TestSnapshotUnknownSession(t *testing.T) {
	w := newWorld(t)
	_, err := w.client(20).Snapshot(context.Background(), nil, "no-such-session")
	if !errors.Is(err, poller.ErrNotFound) {
		t.Errorf("Snapshot of an unknown session: %v, want ErrNotFound", err)
	}
}

func TestDecodePageEdges(t *testing.T) {
	joined := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	tests := []struct {
		file         string
		wantJoinedAt []time.Time
		wantSetAside []diff.SetAside
		wantSessions int
	}{
		{
			// The same instants as the documented example: a change of precision or of
			// offset must not make a stint look new.
			file:         "microseconds-and-offsets.json",
			wantJoinedAt: []time.Time{joined("2023-07-24T08:28:09.650Z"), joined("2023-07-24T08:28:27.185Z")},
			wantSessions: 1,
		},
		{file: "participant-without-timelog.json", wantJoinedAt: []time.Time{joined("2023-07-24T08:28:09.650Z")},
			wantSetAside: []diff.SetAside{{ID: "mxavzgb5", Reason: diff.ReasonTimelog}}, wantSessions: 1},
		{file: "time-not-rfc3339.json", wantJoinedAt: []time.Time{joined("2023-07-24T08:28:27.185Z")},
			wantSetAside: []diff.SetAside{{ID: "iqpq5uen", Reason: diff.ReasonTime}}, wantSessions: 1},
		{file: "session-ends-before-it-starts.json", wantJoinedAt: []time.Time{joined("2023-07-24T08:28:09.650Z"), joined("2023-07-24T08:28:27.185Z")},
			wantSetAside: []diff.SetAside{{Reason: diff.ReasonOrder}}, wantSessions: 1},
		{file: "participant-without-id.json", wantJoinedAt: []time.Time{joined("2023-07-24T08:28:09.650Z")},
			wantSetAside: []diff.SetAside{{Reason: diff.ReasonID}}, wantSessions: 1},
		{file: "empty-data.json"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			page, err := poller.DecodePage(readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []time.Time
			for _, s := range page.Sessions {
				for _, p := range s.Participants {
					got = append(got, p.JoinedAt)
				}
			}
			if d := cmp.Diff(tt.wantJoinedAt, got); d != "" || len(page.Sessions) != tt.wantSessions {
				t.Errorf("%d sessions, want %d; joinedAt (-want +got):\n%s", len(page.Sessions), tt.wantSessions, d)
			}
			if d := cmp.Diff(tt.wantSetAside, page.SetAside, cmpopts.IgnoreFields(diff.SetAside{}, "Detail")); d != "" {
				t.Errorf("set aside (-want +got):\n%s", d)
			}
			for _, s := range page.Sessions {
				if s.End != nil && s.End.Before(s.Start) {
					t.Errorf("session end %v before its start %v", s.End, s.Start)
				}
			}
		})
	}
}

// TestSnapshotIncomplete: answers that cannot prove anyone's absence give a snapshot
// that is not Complete, and no error, so that their joins still count.
func TestSnapshotIncomplete(t *testing.T) {
	body := func(file string) sim.Fault { return sim.Fault{Status: 200, Body: string(readFile(t, file)), Times: 3} }
	tests := []struct {
		name  string
		fault sim.Fault
		want  []string
	}{
		{"no session document: data is an empty array", body("empty-data.json"), nil},
		{"a participant without a participantId: it could be anyone", body("participant-without-id.json"), []string{"iqpq5uen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.api.InjectFault(tt.fault)
			got, err := w.client(20).Snapshot(context.Background(), nil, "64bb3619669942e088479mm0")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, ids(got)); d != "" || got.Complete {
				t.Errorf("complete %v, want false; participants (-want +got):\n%s", got.Complete, d)
			}
		})
	}
}

func TestSnapshotOfAnotherSession(t *testing.T) {
	w := newWorld(t)
	w.api.StartSession("other", "r2")
	w.api.InjectFault(sim.Fault{Status: 200, Body: string(readFile(t, "documented-example.json"))})
	_, err := w.client(20).Snapshot(context.Background(), nil, "other")
	if !errors.Is(err, poller.ErrMalformed) {
		t.Errorf("Snapshot answered with another session's page: %v, want ErrMalformed", err)
	}
}

// TestDecodePageDropsWhatIsNotAnObject: deviceInfo and geoLocation are documented as
// objects; anything else is not passed on to subscribers.
func TestDecodePageDropsWhatIsNotAnObject(t *testing.T) {
	page, err := poller.DecodePage(readFile(t, "not-objects.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := page.Sessions[0].Participants[0]
	if p.DeviceInfo != nil || p.GeoLocation != nil || p.Name != "" {
		t.Errorf("deviceInfo %s, geoLocation %s, name %q; want none of them", p.DeviceInfo, p.GeoLocation, p.Name)
	}
}
