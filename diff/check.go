package diff

import (
	"fmt"
	"time"
)

// MaxIDLen bounds the IDs rollcall takes from the API and from its users. An ID
// becomes a subject token and a KV key, escaped (at most 4/3 as long, plus one
// byte), and a NATS server closes any connection whose control line passes 4,096
// bytes: two escaped IDs of 256 bytes make a subject under 700. VideoSDK's IDs are
// a few dozen bytes.
const MaxIDLen = 256

// Reasons a record from the API is set aside, as counted in
// rollcall_records_rejected_total{reason}.
const (
	ReasonID      = "id"      // an ID empty or longer than MaxIDLen
	ReasonTime    = "time"    // a time outside the years 1970 to 9999 UTC
	ReasonOrder   = "order"   // a timelog entry that ends before it starts
	ReasonTimelog = "timelog" // a participant with no timelog entry to take as its stint
	ReasonSize    = "size"    // a name, mode, sdkType, deviceInfo or geoLocation over MaxTextLen
	ReasonOlder   = "older"   // a whole answer older than the state: a participant in an older stint
)

// MaxTextLen bounds each text a participant's events carry (name, mode, sdkType,
// deviceInfo, geoLocation), so that an event stays far below NATS's 1 MiB max_payload:
// an event too large to publish would stay in its session's outbox for ever.
const MaxTextLen = 16 << 10

// SetAside is a record from the API that rollcall cannot use: a participant of a
// page, or a session of a room's list. It is set aside alone, and the rest of the
// answer is used.
type SetAside struct {
	// ID is the record's participantId or session ID when it is one rollcall
	// accepts, else "": a participant set aside with its ID known keeps whatever
	// the state says of it (its absence proves nothing), one without cannot be
	// anyone the state knows.
	ID     string
	Reason string // one of the Reason constants
	Detail string // what is wrong, for the log
}

// CheckID reports whether id can name a session, room or participant: not empty,
// and at most MaxIDLen bytes. Any bytes are allowed: subjects and keys escape them.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty")
	case len(id) > MaxIDLen:
		return fmt.Errorf("%d bytes, more than %d", len(id), MaxIDLen)
	}
	return nil
}

// Earliest and Latest bound the times rollcall takes from the API: the ones an
// event's RFC 3339 time in UTC can hold with a four-digit year, from the Unix epoch
// on (VideoSDK did not exist before it).
var (
	Earliest = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	Latest   = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// CheckTime reports whether t is within Earliest and Latest.
func CheckTime(t time.Time) error {
	if t.Before(Earliest) || t.After(Latest) {
		return fmt.Errorf("%s is outside the years 1970 to 9999 UTC", t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// CheckTimelog reports the first reason, if any, the entries of a timelog cannot be
// used: a time out of range, or an end before its start.
func CheckTimelog(timelog []Entry) (reason string, err error) {
	for i, e := range timelog {
		if e.Start.IsZero() {
			return ReasonTimelog, fmt.Errorf("timelog[%d] has no start", i)
		}
		if err := CheckTime(e.Start); err != nil {
			return ReasonTime, fmt.Errorf("timelog[%d].start: %w", i, err)
		}
		if e.End == nil {
			continue
		}
		if err := CheckTime(*e.End); err != nil {
			return ReasonTime, fmt.Errorf("timelog[%d].end: %w", i, err)
		}
		if e.End.Before(e.Start) {
			return ReasonOrder, fmt.Errorf("timelog[%d] ends at %s, before its start %s", i,
				e.End.UTC().Format(time.RFC3339Nano), e.Start.UTC().Format(time.RFC3339Nano))
		}
	}
	return "", nil
}
