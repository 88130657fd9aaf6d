package events_test

import (
	"testing"

	"github.com/rollcall/rollcall/internal/testkit"
)

// TestSchema: every example event validates against docs/events.schema.json, and
// events broken as the contract forbids do not.
func TestSchema(t *testing.T) {
	c := testkit.NewContract(t)
	for name, b := range golden(t) {
		if err := c.Check(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	joined, started := golden(t)["joined.json"], golden(t)["session-started.json"]
	for _, tt := range []struct {
		name  string
		event []byte
		edit  func(e, data map[string]any)
	}{
		{"no joinedAt", joined, func(_, d map[string]any) { delete(d, "joinedAt") }},
		{"an unknown type", joined, func(e, _ map[string]any) { e["type"] = "live.videosdk.participant.waved" }},
		{"leftAt on a joined", joined, func(_, d map[string]any) { d["leftAt"] = "2023-07-24T09:00:00.000Z" }},
		{"a time without milliseconds", joined, func(e, _ map[string]any) { e["time"] = "2023-07-24T08:28:09Z" }},
		{"no subject on a joined", joined, func(e, _ map[string]any) { delete(e, "subject") }},
		{"an unknown detection", joined, func(_, d map[string]any) { d["detection"] = "guess" }},
		{"deviceInfo a string", joined, func(_, d map[string]any) { d["deviceInfo"] = "Chrome" }},
		{"no observedAt", started, func(_, d map[string]any) { delete(d, "observedAt") }},
		{"specversion 0.3", started, func(e, _ map[string]any) { e["specversion"] = "0.3" }},
		{"a reconciled left without leftAt", golden(t)["left-reconciled.json"], func(e, d map[string]any) {
			d["leftAt"], e["time"] = nil, d["observedAt"]
		}},
	} {
		b := edited(t, tt.event, tt.edit)
		if err := c.Schema(b); err == nil {
			t.Errorf("%s: the schema accepts %s", tt.name, b)
		}
	}
}
