package publisher

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
)

// Events and states are written by hand, field by field, into one buffer: with
// encoding/json, each raw value (deviceInfo, geoLocation, an event's data) is
// checked and compacted once more at every level that holds it, which was most of
// a burst's CPU time. The output is byte for byte what json.Marshal writes for the
// same values (TestEncodeMatchesMarshal; a state's outbox is shorter, see
// appendState): strings and raw values that need escaping or compacting are handed
// to encoding/json, and the others, nearly all of them, are copied.

// buffers recycles the buffers events and states are written into: a burst writes
// hundreds of megabytes, and new buffers, cleared and collected, cost more than
// writing into them.
var buffers bufferPool

type bufferPool struct{ pool sync.Pool }

// get returns an empty buffer, of at least size bytes if a new one is made.
func (p *bufferPool) get(size int) []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// put gives b back; it must no longer be used.
func (p *bufferPool) put(b []byte) { p.pool.Put(&b) }

// plainString marks the bytes a string holds as they are in JSON; plainRaw, those a
// raw value holds as they are (quotes and backslashes are read, not escaped).
var plainString, plainRaw [256]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plainString[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
		plainRaw[c] = c != ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
}

// appendString appends s as a JSON string, as json.Marshal writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainString[s[i]] {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw appends a valid JSON value as json.Marshal writes a json.RawMessage:
// compacted, with <, > and & escaped in strings, and null if it is empty.
func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		if plainRaw[raw[i]] {
			continue
		}
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString && c == ' ':
		default: // whitespace between tokens, <, > or &, and runes some of which are escaped
			q, err := json.Marshal(raw)
			if err != nil {
				return append(b, "null"...) // not JSON: decoders only keep JSON values
			}
			return append(b, q...)
		}
	}
	return append(b, raw...)
}

// appendTime appends t as time.Time's MarshalJSON does.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendEventTime appends t as an event's Time, to the millisecond, in UTC.
func appendEventTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, events.TimeLayout)
	return append(b, '"')
}

// appendEvent appends e as json.Marshal writes it, for an event newEvent built: its
// data is as json.Marshal writes it already (appendParticipantData,
// appendSessionData), and is copied, not read again.
func appendEvent(b []byte, e events.Event) []byte {
	b = append(b, `{"specversion":`...)
	b = appendString(b, e.SpecVersion)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, e.Subject)
	}
	b = append(b, `,"time":`...)
	b = appendEventTime(b, e.Time.Time)
	b = append(b, `,"datacontenttype":`...)
	b = appendString(b, e.DataContentType)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	return append(b, '}')
}

// appendParticipantData appends d as json.Marshal writes it.
func appendParticipantData(b []byte, d events.ParticipantData) []byte {
	b = append(b, `{"sessionId":`...)
	b = appendString(b, d.SessionID)
	b = append(b, `,"roomId":`...)
	b = appendString(b, d.RoomID)
	b = append(b, `,"participantId":`...)
	b = appendString(b, d.ParticipantID)
	b = append(b, `,"name":`...)
	b = appendString(b, d.Name)
	b = append(b, `,"joinedAt":`...)
	b = appendTimeField(b, d.JoinedAt)
	b = append(b, `,"leftAt":`...)
	b = appendTimeField(b, d.LeftAt)
	b = append(b, `,"observedAt":`...)
	b = appendEventTime(b, d.ObservedAt.Time)
	b = append(b, `,"detection":`...)
	b = appendString(b, d.Detection)
	b = append(b, `,"mode":`...)
	b = appendString(b, d.Mode)
	b = append(b, `,"sdkType":`...)
	b = appendString(b, d.SDKType)
	b = append(b, `,"deviceInfo":`...)
	b = appendRaw(b, d.DeviceInfo)
	b = append(b, `,"geoLocation":`...)
	b = appendRaw(b, d.GeoLocation)
	return append(b, '}')
}

// appendSessionData appends d as json.Marshal writes it.
func appendSessionData(b []byte, d events.SessionData) []byte {
	b = append(b, `{"sessionId":`...)
	b = appendString(b, d.SessionID)
	b = append(b, `,"roomId":`...)
	b = appendString(b, d.RoomID)
	b = append(b, `,"start":`...)
	b = appendTimeField(b, d.Start)
	b = append(b, `,"end":`...)
	b = appendTimeField(b, d.End)
	b = append(b, `,"observedAt":`...)
	b = appendEventTime(b, d.ObservedAt.Time)
	return append(b, '}')
}

func appendTimeField(b []byte, t *events.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendEventTime(b, t.Time)
}

// appendState appends st as json.Marshal writes a diff.State, but for the outbox's
// joined participants who are in present, as they always are: the outbox gives only
// their id and joinedAt, and resolve fills them in from present when the state is
// read. A first poll's outbox is then a tenth of the state, not half of it.
func appendState(b []byte, st diff.State) []byte {
	b = append(b, '{')
	sep := func(b []byte) []byte {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		return b
	}
	if st.RoomID != "" {
		b = append(sep(b), `"roomId":`...)
		b = appendString(b, st.RoomID)
	}
	if st.Started {
		b = append(sep(b), `"started":true`...)
	}
	if st.Ended {
		b = append(sep(b), `"ended":true`...)
	}
	if len(st.Present) > 0 {
		b = append(sep(b), `"present":[`...)
		for i, p := range st.Present {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendParticipant(b, p)
		}
		b = append(b, ']')
	}
	if len(st.Pending) > 0 {
		b = append(sep(b), `"pending":[`...)
		for i, p := range st.Pending {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendParticipant(b, p.Participant)
			b = append(b[:len(b)-1], `,"since":`...)
			b = appendTime(b, p.Since)
			if p.Reconciled {
				b = append(b, `,"reconciled":true`...)
			}
			if p.Open {
				b = append(b, `,"open":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(st.Gone) > 0 {
		b = append(sep(b), `"gone":{`...)
		for i, id := range slices.Sorted(maps.Keys(st.Gone)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, id)
			b = append(b, ':')
			b = appendTime(b, st.Gone[id])
		}
		b = append(b, '}')
	}
	if st.Accounted {
		b = append(sep(b), `"accounted":true`...)
	}
	if st.Ending != nil {
		b = append(sep(b), `"ending":`...)
		b = appendTime(b, *st.Ending)
	}
	if o := st.Outbox; o != nil {
		b = append(sep(b), `"outbox":{"session":{"sessionId":`...)
		b = appendString(b, o.Session.SessionID)
		if o.Session.RoomID != "" {
			b = append(b, `,"roomId":`...)
			b = appendString(b, o.Session.RoomID)
		}
		if o.Session.Status != "" {
			b = append(b, `,"status":`...)
			b = appendString(b, o.Session.Status)
		}
		b = append(b, `,"start":`...)
		b = appendTime(b, o.Session.Start)
		if o.Session.End != nil {
			b = append(b, `,"end":`...)
			b = appendTime(b, *o.Session.End)
		}
		b = append(b, `},"observedAt":`...)
		b = appendTime(b, o.ObservedAt)
		b = append(b, `,"changes":`...)
		if o.Changes == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i, c := range o.Changes {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"kind":`...)
				b = strconv.AppendInt(b, int64(c.Kind), 10)
				b = append(b, `,"participant":`...)
				if c.Kind == diff.Joined && isPresent(st.Present, c.Participant) {
					// Written once, in present: here its key alone (see resolve).
					b = append(b, `{"id":`...)
					b = appendString(b, c.Participant.ID)
					b = append(b, `,"joinedAt":`...)
					b = appendTime(b, c.Participant.JoinedAt)
					b = append(b, '}')
				} else {
					b = appendParticipant(b, c.Participant)
				}
				if c.LeftAt != nil {
					b = append(b, `,"leftAt":`...)
					b = appendTime(b, *c.LeftAt)
				}
				if c.Reconciled {
					b = append(b, `,"reconciled":true`...)
				}
				if c.ObservedAt != nil {
					b = append(b, `,"observedAt":`...)
					b = appendTime(b, *c.ObservedAt)
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// isPresent reports whether present, sorted by id as diff.Compute leaves it, holds p
// exactly.
func isPresent(present []diff.Participant, p diff.Participant) bool {
	i, ok := slices.BinarySearchFunc(present, p.ID, func(q diff.Participant, id string) int { return strings.Compare(q.ID, id) })
	if !ok {
		return false
	}
	q := present[i]
	return q.JoinedAt.Equal(p.JoinedAt) && q.Name == p.Name && q.Mode == p.Mode && q.SDKType == p.SDKType &&
		bytes.Equal(q.DeviceInfo, p.DeviceInfo) && bytes.Equal(q.GeoLocation, p.GeoLocation)
}

// resolve fills in the outbox's joined participants that appendState wrote as their
// id and joinedAt alone, from present. A participant with nothing but those two is
// the same whether filled in or not; an older rollcall wrote every one in full.
func resolve(st *diff.State) {
	if st.Outbox == nil {
		return
	}
	for i, c := range st.Outbox.Changes {
		p := c.Participant
		if c.Kind != diff.Joined || p.Name != "" || p.Mode != "" || p.SDKType != "" || len(p.DeviceInfo) > 0 || len(p.GeoLocation) > 0 {
			continue
		}
		for _, q := range st.Present {
			if q.ID == p.ID && q.JoinedAt.Equal(p.JoinedAt) {
				st.Outbox.Changes[i].Participant = q
				break
			}
		}
	}
}

// appendParticipant appends p as json.Marshal writes a diff.Participant.
func appendParticipant(b []byte, p diff.Participant) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.ID)
	if p.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, p.Name)
	}
	b = append(b, `,"joinedAt":`...)
	b = appendTime(b, p.JoinedAt)
	if p.Mode != "" {
		b = append(b, `,"mode":`...)
		b = appendString(b, p.Mode)
	}
	if p.SDKType != "" {
		b = append(b, `,"sdkType":`...)
		b = appendString(b, p.SDKType)
	}
	if len(p.DeviceInfo) > 0 {
		b = append(b, `,"deviceInfo":`...)
		b = appendRaw(b, p.DeviceInfo)
	}
	if len(p.GeoLocation) > 0 {
		b = append(b, `,"geoLocation":`...)
		b = appendRaw(b, p.GeoLocation)
	}
	return append(b, '}')
}
