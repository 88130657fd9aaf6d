package diff_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// BenchmarkCompute diffs a session of n present participants against its previous
// state, once with nothing changed (the common cycle) and once with about a tenth of
// them changed: half of those left and were replaced by newcomers, half left and came
// back with a new stint. Compute does not modify its inputs, so they are built once.
func BenchmarkCompute(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, churn := range []bool{false, true} {
			name := fmt.Sprintf("present=%d/churn=%s", n, map[bool]string{false: "0%", true: "10%"}[churn])
			b.Run(name, func(b *testing.B) {
				prev, next := benchWorld(n, churn)
				changes, _ := diff.Compute(prev, next, t0, 0)
				b.ReportAllocs()
				for b.Loop() {
					diff.Compute(prev, next, t0, 0)
				}
				// After the loop: b.Loop's first call resets the metrics reported.
				b.ReportMetric(float64(len(changes)), "changes/op")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/participant")
			})
		}
	}
}

// benchWorld returns the state after a snapshot of n participants and the next
// snapshot, changed by about 10% when churn is set.
func benchWorld(n int, churn bool) (diff.State, diff.Snapshot) {
	device := json.RawMessage(`{"sdkType":"prebuilt","sdkVersion":"0.3.29","platform":"desktop"}`)
	geo := json.RawMessage(`{"city":"Surat","region":"Gujarat","country":"India"}`)
	participant := func(id string, start time.Time, log ...diff.Entry) diff.Participant {
		return diff.Participant{
			ID: id, Name: "name-" + id, JoinedAt: start, Mode: "CONFERENCE", SDKType: "prebuilt",
			DeviceInfo: device, GeoLocation: geo, Timelog: append(log, diff.Entry{Start: start}),
		}
	}
	var before, after []diff.Participant
	for i := range n {
		id := fmt.Sprintf("p%07d", i)
		start := t0.Add(time.Duration(i) * time.Second)
		old := participant(id, start)
		before = append(before, old)
		switch {
		case !churn || i%10 != 0:
			after = append(after, old)
		case i%20 == 0: // left; a newcomer took the place
			after = append(after, participant(fmt.Sprintf("n%07d", i), t0.Add(time.Duration(n+i)*time.Second)))
		default: // left and came back
			end := start.Add(time.Second)
			after = append(after, participant(id, t0.Add(time.Duration(n+i)*time.Second), diff.Entry{Start: start, End: &end}))
		}
	}
	first := diff.Snapshot{SessionID: "s1", RoomID: "r1", Status: "ongoing", Found: true, Complete: true, Participants: before}
	_, prev := diff.Compute(diff.State{}, first, t0, 0)
	next := first
	next.Participants = after
	return prev, next
}
