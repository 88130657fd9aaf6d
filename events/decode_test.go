package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/rollcall/rollcall/events"
)

// golden returns the example events in testdata, as rollcall's publisher writes them
// (the publisher's tests check that it does).
func golden(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden events: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestDecodeGolden(t *testing.T) {
	for name, b := range golden(t) {
		e, err := events.Decode(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		switch e.Type {
		case events.TypeJoined, events.TypeLeft:
			d, err := e.Participant()
			if err != nil || d.ParticipantID != e.Subject {
				t.Errorf("%s: participant data %+v: %v", name, d, err)
			}
			if _, err := e.Session(); err == nil {
				t.Errorf("%s: session data of a participant event", name)
			}
		default:
			if d, err := e.Session(); err != nil || d.SessionID == "" {
				t.Errorf("%s: session data %+v: %v", name, d, err)
			}
		}
	}
}

// TestDecodeRejects breaks the joined example one way at a time, as the contract
// forbids.
func TestDecodeRejects(t *testing.T) {
	joined := golden(t)["joined.json"]
	left := golden(t)["left-time-known.json"]
	tests := []struct {
		name  string
		event []byte
		edit  func(e, data map[string]any)
	}{
		{"not JSON", []byte(`{"specversion":`), nil},
		{"not an object", []byte(`[1]`), nil},
		{"no id", joined, func(e, _ map[string]any) { delete(e, "id") }},
		{"empty id", joined, func(e, _ map[string]any) { e["id"] = "" }},
		{"specversion 0.3", joined, func(e, _ map[string]any) { e["specversion"] = "0.3" }},
		{"unknown type", joined, func(e, _ map[string]any) { e["type"] = "live.videosdk.participant.waved" }},
		{"no time", joined, func(e, _ map[string]any) { delete(e, "time") }},
		{"a time that is not the joinedAt", joined, func(e, _ map[string]any) { e["time"] = "2023-07-24T08:28:12.004Z" }},
		{"a time that is not a time", joined, func(e, _ map[string]any) { e["time"] = "yesterday" }},
		{"datacontenttype text", joined, func(e, _ map[string]any) { e["datacontenttype"] = "text/plain" }},
		{"another session's source", joined, func(e, _ map[string]any) { e["source"] = "/v2/sessions/other" }},
		{"a subject that is not the participant", joined, func(e, _ map[string]any) { e["subject"] = "someone" }},
		{"data not an object", joined, func(e, _ map[string]any) { e["data"] = "x" }},
		{"no joinedAt", joined, func(_, d map[string]any) { delete(d, "joinedAt") }},
		{"no leftAt", joined, func(_, d map[string]any) { delete(d, "leftAt") }},
		{"leftAt on a joined", joined, func(_, d map[string]any) { d["leftAt"] = "2023-07-24T09:00:00.000Z" }},
		{"no participantId", joined, func(_, d map[string]any) { delete(d, "participantId") }},
		{"observedAt null", joined, func(_, d map[string]any) { d["observedAt"] = nil }},
		{"unknown detection", joined, func(_, d map[string]any) { d["detection"] = "guess" }},
		{"deviceInfo not an object", joined, func(_, d map[string]any) { d["deviceInfo"] = "Chrome" }},
		{"name a number", joined, func(_, d map[string]any) { d["name"] = 7 }},
		{"a left's time that is not its leftAt", left, func(e, _ map[string]any) { e["time"] = "2023-07-24T08:28:12.004Z" }},
		{"a reconciled left without leftAt", golden(t)["left-reconciled.json"], func(e, d map[string]any) {
			d["leftAt"], e["time"] = nil, d["observedAt"]
		}},
		{"a left before its joinedAt", left, func(e, d map[string]any) {
			d["leftAt"], e["time"] = "2023-07-24T08:28:09.649Z", "2023-07-24T08:28:09.649Z"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.event
			if tt.edit != nil {
				b = edited(t, b, tt.edit)
			}
			_, err := events.Decode(b)
			if !errors.Is(err, events.ErrInvalid) {
				t.Errorf("Decode = %v, want ErrInvalid for %s", err, b)
			}
		})
	}
}

// edited returns event, a JSON object, changed by edit, which gets the event's
// members and its data's.
func edited(t *testing.T, event []byte, edit func(e, data map[string]any)) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(event, &e); err != nil {
		t.Fatal(err)
	}
	data, _ := e["data"].(map[string]any)
	edit(e, data)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeAllowsNewFields: a field the contract does not name yet is no error, so
// that consumers keep working when one is added.
func TestDecodeAllowsNewFields(t *testing.T) {
	b := edited(t, golden(t)["joined.json"], func(e, data map[string]any) {
		e["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		data["seat"] = 12
	})
	if _, err := events.Decode(b); err != nil {
		t.Error(err)
	}
}

// TestCloudEventsSDK reads every golden event with the official CloudEvents Go SDK:
// each is a valid CloudEvents 1.0 event, with the attributes rollcall's types give.
func TestCloudEventsSDK(t *testing.T) {
	for name, b := range golden(t) {
		var ce cloudevents.Event
		if err := json.Unmarshal(b, &ce); err != nil {
			t.Errorf("%s: the SDK cannot read it: %v", name, err)
			continue
		}
		if err := ce.Validate(); err != nil {
			t.Errorf("%s: invalid CloudEvent: %v", name, err)
		}
		e, err := events.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ce.SpecVersion() != events.SpecVersion || ce.ID() != e.ID || ce.Type() != e.Type || ce.Source() != e.Source ||
			ce.Subject() != e.Subject || !ce.Time().Equal(e.Time.Time) || ce.DataContentType() != events.ContentType {
			t.Errorf("%s: the SDK reads %s", name, ce)
		}
		if strings.HasPrefix(e.Type, "live.videosdk.participant.") {
			var d events.ParticipantData
			if err := ce.DataAs(&d); err != nil || d.ParticipantID != e.Subject {
				t.Errorf("%s: the SDK's data %+v: %v", name, d, err)
			}
		}
	}
}
