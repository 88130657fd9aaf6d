package publisher

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/poller"
)

// FuzzBodyToWire feeds whole bodies of the active list, as the API could send them,
// through everything rollcall does with them short of I/O: decode (with the checks
// at the edge), diff a first poll and then the session's end, build each event and
// write it as the publisher does, and write and read back the state as the store
// does. Whatever the body, every event is one the contract's Decode accepts, its
// subject fits a NATS control line, and every state reads back as it was written.
//
//	go test -run '^$' -fuzz FuzzBodyToWire -fuzztime 10m ./publisher/
func FuzzBodyToWire(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "poller", "testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed bodies: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, hostile := range []string{
		`{"pageInfo":{"currentPage":1,"perPage":20,"lastPage":1,"total":1},"data":[{"_id":"s","roomId":"r","start":"2023-07-24T08:28:09.215Z","participants":[{"participantId":"p","timelog":[{"start":"9999-12-31T23:00:00-05:00","end":null}]}]}]}`,
		`{"data":{"_id":"s","roomId":"r","participants":[{"participantId":"p.*>","name":"\u001b[31m\r\n","timelog":[{"start":"2023-07-24T08:28:09.650Z","end":"2023-07-24T08:28:08Z"},{"start":"2023-07-24T08:28:10Z","end":null}]}]}}`,
		`{"data":{"_id":"s","roomId":"` + strings.Repeat("r", 300) + `","participants":[]}}`,
		`{"data":{"_id":"s","end":"0000-01-01T00:00:00+01:00","participants":[{"participantId":"\xff","timelog":[{"start":"1970-01-01T00:00:00Z"}]}]}}`,
	} {
		f.Add([]byte(hostile))
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := poller.DecodePage(body)
		if err != nil {
			return
		}
		for _, snap := range page.Sessions {
			snap.Found, snap.Complete = true, true
			changes, st := diff.Compute(diff.State{}, snap, now, time.Minute)
			checkWire(t, snap, changes, st, now)
			end := snap
			end.Status, end.Everyone = diff.StatusEnded, snap.Participants
			changes, st = diff.Compute(st, end, now.Add(time.Second), 0)
			checkWire(t, end, changes, st, now.Add(time.Second))
		}
	})
}

// maxControlLine is the longest PUB line a NATS server takes (max_control_line).
const maxControlLine = 4096

func checkWire(t *testing.T, snap diff.Snapshot, changes []diff.Change, st diff.State, now time.Time) {
	t.Helper()
	for _, c := range changes {
		e := NewEvent(snap, now, c)
		b := appendEvent(nil, e)
		if _, err := events.Decode(b); err != nil {
			t.Fatalf("event of %v does not decode: %v\n%s", c.Kind, err, b)
		}
		subject := events.Subject("videosdk", e.Type, snap.RoomID, snap.SessionID)
		if line := len("HPUB ") + len(subject) + len(" _INBOX.0123456789abcdefghijkl.0123456789 1000 1000000"); line > maxControlLine/2 {
			t.Fatalf("subject of %d bytes", len(subject))
		}
	}
	if len(changes) > 0 {
		meta := snap
		meta.Participants, meta.Everyone = nil, nil
		st.Outbox = &diff.Outbox{Session: meta, ObservedAt: now, Changes: changes}
	}
	val := appendState(nil, st)
	var back diff.State
	if err := json.Unmarshal(val, &back); err != nil {
		t.Fatalf("state does not read back: %v\n%s", err, val)
	}
	resolve(&back)
	if !back.Equal(st) {
		t.Fatalf("state read back differs:\nwrote %+v\nread  %+v", st, back)
	}
}
