package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/poller"
)

// TestPrintable: what could drive a terminal or fake a line is escaped; every other
// character, unicode included, is kept.
func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Eve\x1b[31mRED\r\nfake line", `Eve\x1b[31mRED\r\nfake line`},
		{"Zoë Ørsted 李 😀 José", "Zoë Ørsted 李 😀 José"},
		{"tab\there", `tab\there`},
		{"bell\a nul\x00 del\x7f", `bell\a nul\x00 del\x7f`},
		{"c1\u0085next \u009b31m", `c1\u0085next \u009b31m`},
		{"\u202eevil\u202c", `\u202eevil\u202c`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`},
		{"U+FFFD \ufffd itself", "U+FFFD \ufffd itself"},
		{`back\slash "quoted"`, `back\slash "quoted"`},
		{"", ""},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// hostile is a name, an ID or a replica name as a hostile API, bucket writer or
// replica could give it: escape sequences, a fake line, a bidirectional override,
// bytes that are not UTF-8.
const hostile = "Eve\x1b[31mRED\x1b[0m\r\n12:00:00.000  left     fake line\u202e\u0085\xff"

// TestHostileValuesPrinted: the live feed (tail and the demo), who and tracked print
// each value from outside on the line it belongs to, with nothing a terminal would
// act on.
func TestHostileValuesPrinted(t *testing.T) {
	event, err := json.Marshal(map[string]any{
		"type": events.TypeJoined, "time": "2023-07-24T08:28:09.650Z",
		"data": map[string]any{"sessionId": hostile, "roomId": hostile, "participantId": hostile, "name": hostile,
			"joinedAt": "2023-07-24T08:28:09.650Z", "observedAt": "2023-07-24T08:28:12.004Z", "detection": "poll"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var who, tracked strings.Builder
	err = printWho(&who, []whoSession{{SessionID: hostile, RoomID: hostile, Present: []whoPresent{
		{ParticipantID: hostile, Name: hostile, Mode: hostile, SDKType: hostile},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	err = printTracked(&tracked, []poller.Status{{Kind: poller.KindSession, ID: hostile, From: []string{"room " + hostile}, Status: hostile, Replica: hostile}},
		true, nil, map[string]int{hostile: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		what, out string
		lines     int
	}{
		{"the feed", feedLine(event, time.Now()) + "\n", 1},
		{"who", who.String(), 3},
		{"tracked", tracked.String(), 3},
	} {
		if n := strings.Count(tt.out, "\n"); n != tt.lines {
			t.Errorf("%s: %d lines, want %d:\n%s", tt.what, n, tt.lines, tt.out)
		}
		for _, raw := range []string{"\x1b", "\r", "\u202e", "\u0085", "\xff"} {
			if strings.Contains(tt.out, raw) {
				t.Errorf("%s prints %q raw:\n%q", tt.what, raw, tt.out)
			}
		}
		if !strings.Contains(tt.out, `Eve\x1b[31mRED`) {
			t.Errorf("%s does not show the escaped name:\n%s", tt.what, tt.out)
		}
	}
}
