package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/fedtest"
	"github.com/rollcall/rollcall/sim"
)

// TestAttendance: a scripted session (two join, one leaves and comes back, a third
// joins, another leaves) read back as one row per stint, matching the simulator's
// stints: the same participants and join times to the millisecond, a leave time
// for exactly the stints that ended, no earlier than the real leave (rollcall
// stamps when it saw the leave until it knows the exact time).
func TestAttendance(t *testing.T) {
	api := fedtest.NewAPI()
	api.StartSession("s1", "room-1")
	api.Join("s1", "p1", "Ann")
	api.Join("s1", "p2", "Bob")
	url := fedtest.Start(t, api, "s1")
	fedtest.WaitFor(t, url, 3) // session.started, two joined
	api.Leave("s1", "p1")
	fedtest.WaitFor(t, url, 4)
	api.Join("s1", "p1", "Ann")
	api.Join("s1", "p3", "Cid")
	fedtest.WaitFor(t, url, 6)
	api.Leave("s1", "p2")
	fedtest.WaitFor(t, url, 7)

	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"-nats", url}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	rows := readCSV(t, out.String())
	truth := api.Stints("s1")
	slices.SortStableFunc(truth, func(a, b sim.Stint) int { // as the rows go
		return cmp.Or(strings.Compare(a.ParticipantID, b.ParticipantID), a.Start.Compare(b.Start))
	})
	stints := rows[1 : 1+len(truth)]
	for i, st := range truth {
		row := stints[i]
		if row[0] != "room-1" || row[1] != "s1" || row[2] != st.ParticipantID || row[4] != st.Start.UTC().Format(events.TimeLayout) {
			t.Errorf("row %d %v, want the stint of %s from %s", i, row, st.ParticipantID, st.Start.Format(events.TimeLayout))
		}
		if (row[5] != "") != (st.End != nil) {
			t.Errorf("row %d %v: leftAt %q, but the stint ended: %v", i, row, row[5], st.End != nil)
		}
		if st.End != nil {
			left, err := time.Parse(events.TimeLayout, row[5])
			if err != nil || left.Before(st.End.Truncate(time.Millisecond)) {
				t.Errorf("row %d %v: leftAt before the real leave %s", i, row, st.End.Format(events.TimeLayout))
			}
		}
	}
	totals := rows[1+len(truth):]
	if len(totals) != 4 || totals[0][0] != "participant" || totals[1][0] != "p1" || totals[2][0] != "p2" || totals[3][0] != "p3" {
		t.Errorf("totals %v", totals)
	}
	if totals[3][2] != "0.000" {
		t.Errorf("p3, still present, has %s seconds of ended stints, want 0.000", totals[3][2])
	}
}

// TestAttendanceOrder: rows go by room, then session in the order they started
// (whatever their IDs), then participant, whatever the order they joined in.
func TestAttendanceOrder(t *testing.T) {
	api := fedtest.NewAPI()
	api.StartSession("s-first", "room-b")
	api.StartSession("s-z", "room-a")
	api.StartSession("s-a", "room-a")
	url := fedtest.Start(t, api, "s-first", "s-z", "s-a")
	fedtest.WaitFor(t, url, 3) // three session.started
	// Each step waits for its event, so that each join has a later time.
	api.Join("s-first", "p1", "Ann")
	fedtest.WaitFor(t, url, 4)
	api.Join("s-z", "p2", "Bob")
	fedtest.WaitFor(t, url, 5)
	api.Join("s-z", "p1", "Ann")
	fedtest.WaitFor(t, url, 6)
	api.Join("s-a", "p3", "Cid")
	fedtest.WaitFor(t, url, 7)

	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"-nats", url}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	var got [][]string
	for _, row := range readCSV(t, out.String())[:5] {
		got = append(got, row[:4])
	}
	want := [][]string{
		{"room", "session", "participant", "name"},
		{"room-a", "s-z", "p1", "Ann"},
		{"room-a", "s-z", "p2", "Bob"},
		{"room-a", "s-a", "p3", "Cid"},
		{"room-b", "s-first", "p1", "Ann"},
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// readCSV reads attendance's output: two tables, the blank line between them skipped.
func readCSV(t *testing.T, out string) [][]string {
	t.Helper()
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return rows
}
