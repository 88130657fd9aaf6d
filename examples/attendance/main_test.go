package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/fedtest"
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
	r := csv.NewReader(strings.NewReader(out.String()))
	r.FieldsPerRecord = -1 // two tables; the blank line between them is skipped
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	truth := api.Stints("s1")
	stints := rows[1 : 1+len(truth)]
	for i, st := range truth {
		row := stints[i]
		if row[0] != "s1" || row[1] != st.ParticipantID || row[3] != st.Start.UTC().Format(events.TimeLayout) {
			t.Errorf("row %d %v, want the stint of %s from %s", i, row, st.ParticipantID, st.Start.Format(events.TimeLayout))
		}
		if (row[4] != "") != (st.End != nil) {
			t.Errorf("row %d %v: leftAt %q, but the stint ended: %v", i, row, row[4], st.End != nil)
		}
		if st.End != nil {
			left, err := time.Parse(events.TimeLayout, row[4])
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
