package publisher

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
)

// strange strings: everything encoding/json escapes or replaces.
var strange = []string{
	"", "plain", `quote " and backslash \`, "<b>&amp;</b>", "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
	"é ü 日本", "line\u2028sep\u2029", "bad \xff utf-8 \xc3", "emoji 🎉",
}

// strangeRaw: JSON values as an API might send them, spaced, escaped or not.
var strangeRaw = []string{
	``, `null`, `{}`, `{"a":1}`, `{ "a" : [1, 2] }`, "{\n\t\"ua\": \"Mozilla/5.0 (X11; Linux)\"\n}",
	`{"s":"<script>&"}`, `{"s":"a\"b\\c"}`, `{"s":"\u00e9"}`, `{"s":"é"}`, "{\"s\":\"\u2028\"}", `[1,"x",true,null]`,
	`"just a string"`, `12.5e3`,
}

func TestEncodeMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, s := range strange {
		for _, r := range strangeRaw {
			var raw json.RawMessage // nil, not empty, for "": an empty one does not marshal
			if r != "" {
				raw = json.RawMessage(r)
			}
			d := events.ParticipantData{
				SessionID: s, RoomID: s, ParticipantID: s, Name: s, JoinedAt: &events.Time{Time: at}, ObservedAt: events.Time{Time: at},
				Detection: "poll", Mode: s, SDKType: s, DeviceInfo: raw, GeoLocation: raw,
			}
			same(t, appendParticipantData(nil, d), d)
			d.JoinedAt, d.LeftAt = nil, &events.Time{Time: at}
			same(t, appendParticipantData(nil, d), d)
			sd := events.SessionData{SessionID: s, RoomID: s, Start: &events.Time{Time: at}, ObservedAt: events.Time{Time: at}}
			same(t, appendSessionData(nil, sd), sd)
			// Data as newEvent writes it.
			e := events.Event{SpecVersion: "1.0", ID: s, Source: s, Type: s, Subject: s, Time: events.Time{Time: at}, DataContentType: s, Data: appendParticipantData(nil, d)}
			same(t, appendEvent(nil, e), e)
			e.Subject = ""
			same(t, appendEvent(nil, e), e)
		}
	}
}

func TestEncodeStateReadsBack(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	end := at.Add(time.Hour)
	states := []diff.State{{}, {Ended: true}, {RoomID: "r", Started: true, Ended: true}}
	for _, s := range strange {
		for _, r := range strangeRaw {
			var raw json.RawMessage
			if r != "" {
				raw = json.RawMessage(r)
			}
			p := diff.Participant{ID: s, Name: s, JoinedAt: at, Mode: s, SDKType: s, DeviceInfo: raw, GeoLocation: raw,
				Timelog: []diff.Entry{{Start: at}}}
			states = append(states,
				diff.State{RoomID: s, Started: true, Present: []diff.Participant{p, {ID: "b"}}},
				diff.State{Present: []diff.Participant{p}, Outbox: &diff.Outbox{
					Session:    diff.Snapshot{SessionID: s, RoomID: s, Status: s, Start: at, End: &end, Participants: []diff.Participant{p}},
					ObservedAt: at,
					Changes:    []diff.Change{{Kind: diff.SessionStarted}, {Kind: diff.Joined, Participant: p}, {Kind: diff.Left, Participant: p, LeftAt: &end}},
				}},
				diff.State{Outbox: &diff.Outbox{Session: diff.Snapshot{SessionID: s}}},
				diff.State{RoomID: s, Started: true, Accounted: true, Present: []diff.Participant{{ID: "b"}},
					Pending: []diff.Pending{{Participant: p, Since: at}, {Participant: diff.Participant{ID: "c"}, Since: end, Reconciled: true}},
					Ending:  &end,
					Gone:    map[string]time.Time{s: at, "b": end, "": at},
					Outbox: &diff.Outbox{Session: diff.Snapshot{SessionID: s}, ObservedAt: at, Changes: []diff.Change{
						{Kind: diff.Joined, Participant: p, Reconciled: true}, {Kind: diff.Left, Participant: p, LeftAt: &end, Reconciled: true},
						{Kind: diff.Left, Participant: p, ObservedAt: &at},
					}}},
			)
		}
	}
	// Read back as Store.Load reads it, the state is the one json.Marshal writes.
	for _, st := range states {
		var got, want diff.State
		if err := json.Unmarshal(appendState(nil, st), &got); err != nil {
			t.Fatal(err)
		}
		resolve(&got)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read back %s\nas %#v\nwant %#v", appendState(nil, st), got, want)
		}
	}
}

// TestEncodeStateOutboxRefersToPresent: a first poll's joined participants are
// written once, in present, not again in the outbox.
func TestEncodeStateOutboxRefersToPresent(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var st diff.State
	var changes []diff.Change
	for _, id := range []string{"a", "b", "c"} {
		p := diff.Participant{ID: id, Name: "Name " + id, JoinedAt: at, Mode: "CONFERENCE", DeviceInfo: json.RawMessage(`{"sdkType":"js"}`)}
		st.Present = append(st.Present, p)
		changes = append(changes, diff.Change{Kind: diff.Joined, Participant: p})
	}
	gone := diff.Participant{ID: "z", Name: "Name z", JoinedAt: at}
	changes = append(changes, diff.Change{Kind: diff.Left, Participant: gone})
	st.Outbox = &diff.Outbox{Session: diff.Snapshot{SessionID: "s"}, ObservedAt: at, Changes: changes}
	out := string(appendState(nil, st))
	if n := strings.Count(out, `"name"`); n != 4 { // three present, one left
		t.Errorf("%d names written, want 4: %s", n, out)
	}
}

// FuzzAppendRaw checks appendRaw against json.Marshal on any valid JSON value.
func FuzzAppendRaw(f *testing.F) {
	for _, raw := range strangeRaw {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return
		}
		same(t, appendRaw(nil, json.RawMessage(raw)), json.RawMessage(raw))
	})
}

// FuzzAppendString checks appendString against json.Marshal on any string.
func FuzzAppendString(f *testing.F) {
	for _, s := range strange {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		same(t, appendString(nil, s), s)
	})
}

func same(t *testing.T, got []byte, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("encoded %#v\n got %s\nwant %s", v, got, want)
	}
}
