package poller

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// scanPage decodes a page as unmarshalPage does, without reflection and without a
// second pass over each deviceInfo, and about five times faster. It reads only the
// fields rollcall uses, and checks the syntax of the rest as encoding/json does.
//
// An error means the body is malformed or unusual: a member named twice (which
// encoding/json merges) or a name of a member rollcall reads that has escapes or
// bytes beyond ASCII (which encoding/json case-folds by Unicode rules). Either way
// the caller leaves the body to unmarshalPage, which also says what is wrong, so
// scanPage need only be right about the bodies it accepts.
func scanPage(body []byte) (*pageInfo, []sessionDoc, error) {
	s := scanner{b: body}
	var pi *pageInfo
	var docs []sessionDoc
	if !s.open('{', 1) {
		return nil, nil, errScan
	}
	var seen uint
	for n := 0; s.next('}', n); n++ {
		switch s.field(&seen, "pageInfo", "data") {
		case 0:
			if pi = s.pageInfo(); pi != nil {
				// As many as this page holds if total is right; a hint only.
				left := pi.Total - max(pi.CurrentPage-1, 0)*pi.PerPage
				s.perPage = min(max(pi.PerPage, 0), max(left, 0), 1000)
			}
		case 1:
			switch s.peek() {
			case '[':
				s.open('[', 2)
				docs = []sessionDoc{} // [] is no session, not no data
				for n := 0; s.next(']', n); n++ {
					var doc sessionDoc
					s.session(&doc, 3)
					docs = append(docs, doc)
				}
			case '{': // the older shape
				docs = make([]sessionDoc, 1)
				s.session(&docs[0], 2)
			default:
				if docs = nil; !s.null() { // no data, unless another data follows
					s.fail()
				}
			}
		default:
			s.skip(2)
		}
	}
	if s.peek() != 0 || s.i != len(s.b) || docs == nil {
		s.fail()
	}
	if s.err != nil {
		return nil, nil, s.err
	}
	return pi, docs, nil
}

var (
	errScan    = errors.New("not a page that scanPage reads")
	errUnusual = errors.New("unusual JSON")
)

// maxDepth is how deeply encoding/json lets arrays and objects nest.
const maxDepth = 10000

// scanner reads JSON from b. Once it fails, it is at the end of b and every read
// fails.
type scanner struct {
	b   []byte
	i   int
	err error
	// perPage is how many participants pageInfo, which comes before data in the API's
	// answers, says the page holds: room for as many in the first session document
	// saves growing their slice.
	perPage int
}

func (s *scanner) fail() {
	if s.err == nil {
		s.err = errScan
	}
	s.i = len(s.b)
}

// peek skips white space and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// open reads the opening bracket c of an object or array nested depth deep.
func (s *scanner) open(c byte, depth int) bool {
	if s.peek() != c || depth > maxDepth {
		s.fail()
		return false
	}
	s.i++
	return true
}

// next reports whether an object or array whose opening bracket is read, and n of
// whose members are, has another one, and reads the comma before it or the closing
// bracket after the last.
func (s *scanner) next(close byte, n int) bool {
	c := s.peek()
	if c == close {
		s.i++
		return false
	}
	if n > 0 {
		if c != ',' {
			s.fail()
			return false
		}
		s.i++
	}
	return s.err == nil
}

// field reads the name of an object's member and the colon after it, and returns
// the index in names of the name it matches, as encoding/json matches them
// (ignoring ASCII case), or -1. seen has a bit for each name already read.
func (s *scanner) field(seen *uint, names ...string) int {
	raw, plain := s.str()
	if s.peek() != ':' {
		s.fail()
		return -1
	}
	s.i++
	if !plain {
		s.unusual()
		return -1
	}
	key := raw[1 : len(raw)-1]
	for i, name := range names {
		if string(key) == name || foldEqual(key, name) {
			if *seen&(1<<i) != 0 {
				s.unusual()
			}
			*seen |= 1 << i
			return i
		}
	}
	return -1
}

func (s *scanner) unusual() {
	s.fail()
	s.err = errUnusual
}

func foldEqual(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range len(key) {
		a, b := key[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// str reads a string and returns it as written, quotes included; plain is true when
// it has no escapes and no bytes beyond ASCII.
func (s *scanner) str() (raw []byte, plain bool) {
	if s.peek() != '"' {
		s.fail()
		return nil, false
	}
	start := s.i
	plain = true
	for s.i++; s.i < len(s.b); s.i++ {
		if plainByte[s.b[s.i]] {
			continue
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start:s.i], plain
		case c < ' ':
			s.fail()
			return nil, false
		case c == '\\':
			plain = false
			if s.i++; s.i == len(s.b) {
				break
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.i+4 >= len(s.b) {
					s.fail()
					return nil, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						s.fail()
						return nil, false
					}
				}
				s.i += 4
			default:
				s.fail()
				return nil, false
			}
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	s.fail()
	return nil, false
}

// plainByte is true for the bytes that stand for themselves in a plain string.
var plainByte = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string reads a string or null (which leaves a string empty) into a Go string.
func (s *scanner) string() string { return s.text(false) }

// word is string for values that repeat (mode, sdkType): it returns a shared copy.
func (s *scanner) word() string { return s.text(true) }

func (s *scanner) text(shared bool) string {
	if s.null() {
		return ""
	}
	raw, plain := s.str()
	if s.err != nil {
		return ""
	}
	v := raw[1 : len(raw)-1]
	if plain || bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		if shared {
			return words.get(v)
		}
		return string(v)
	}
	// Escapes, or invalid UTF-8 that encoding/json replaces: rare enough for it.
	var str string
	if json.Unmarshal(raw, &str) != nil {
		s.fail()
	}
	return str
}

// null reads null if it comes next.
func (s *scanner) null() bool {
	if s.peek() != 'n' {
		return false
	}
	s.literal("null")
	return true
}

func (s *scanner) literal(lit string) {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.fail()
		return
	}
	s.i += len(lit)
}

// number reads a number and returns it as written.
func (s *scanner) number() []byte {
	start := s.i
	digits := func() bool {
		n := s.i
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i > n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case !digits():
		s.fail()
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !digits() {
			s.fail()
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !digits() {
			s.fail()
			return nil
		}
	}
	return s.b[start:s.i]
}

// int reads an integer or null (which leaves an int 0).
func (s *scanner) int() int {
	if s.null() {
		return 0
	}
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		s.fail()
		return 0
	}
	n, err := strconv.ParseInt(string(s.number()), 10, 0) // 1.0, 1e3: not an int
	if err != nil {
		s.fail()
	}
	return int(n)
}

// skip reads any value, nested depth deep if it is an array or object, and returns it
// as written.
func (s *scanner) skip(depth int) []byte {
	c := s.peek()
	start := s.i
	switch c {
	case '{':
		s.open('{', depth)
		for n := 0; s.next('}', n); n++ {
			s.str()
			if s.peek() != ':' {
				s.fail()
				break
			}
			s.i++
			s.skip(depth + 1)
		}
	case '[':
		s.open('[', depth)
		for n := 0; s.next(']', n); n++ {
			s.skip(depth + 1)
		}
	case '"':
		s.str()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		s.number()
	}
	if s.err != nil {
		return nil
	}
	return s.b[start:s.i]
}

// time reads any value into a wireTime, as its UnmarshalJSON does, which
// encoding/json calls.
func (s *scanner) time(t *wireTime, depth int) {
	raw := s.skip(depth)
	if s.err == nil {
		_ = t.UnmarshalJSON(raw) // never fails
	}
}

func (s *scanner) pageInfo() *pageInfo {
	if s.null() {
		return nil
	}
	pi := new(pageInfo)
	s.open('{', 2)
	var seen uint
	for n := 0; s.next('}', n); n++ {
		switch s.field(&seen, "currentPage", "perPage", "lastPage", "total") {
		case 0:
			pi.CurrentPage = s.int()
		case 1:
			pi.PerPage = s.int()
		case 2:
			pi.LastPage = s.int()
		case 3:
			pi.Total = s.int()
		default:
			s.skip(3)
		}
	}
	return pi
}

// session reads a session document, or null (a document with no fields).
func (s *scanner) session(doc *sessionDoc, depth int) {
	if s.null() || !s.open('{', depth) {
		return
	}
	var seen uint
	for n := 0; s.next('}', n); n++ {
		switch s.field(&seen, "_id", "id", "roomId", "start", "end", "status", "participants") {
		case 0:
			doc.ID = s.string()
		case 1:
			doc.AltID = s.string()
		case 2:
			doc.RoomID = s.string()
		case 3:
			s.time(&doc.Start, depth+1)
		case 4:
			s.time(&doc.End, depth+1)
		case 5:
			doc.Status = s.string()
		case 6:
			if s.null() || !s.open('[', depth+1) {
				break
			}
			doc.Participants = make([]participantDoc, 0, s.perPage)
			s.perPage = 0 // only once: a page could hold many empty documents
			for n := 0; s.next(']', n); n++ {
				var pd participantDoc
				s.participant(&pd, depth+2)
				doc.Participants = append(doc.Participants, pd)
			}
		default:
			s.skip(depth + 1)
		}
	}
}

// participant reads a participant, or null (a participant with no fields).
func (s *scanner) participant(pd *participantDoc, depth int) {
	if s.null() || !s.open('{', depth) {
		return
	}
	var seen uint
	for n := 0; s.next('}', n); n++ {
		switch s.field(&seen, "participantId", "name", "timelog", "mode", "deviceInfo", "geoLocation") {
		case 0:
			pd.ParticipantID = s.string()
		case 1:
			pd.Name = s.string()
		case 2:
			if s.null() || !s.open('[', depth+1) {
				break
			}
			pd.Timelog = []wireEntry{}
			for n := 0; s.next(']', n); n++ {
				var e wireEntry
				s.entry(&e, depth+2)
				pd.Timelog = append(pd.Timelog, e)
			}
		case 3:
			pd.Mode = s.word()
		case 4:
			if s.peek() == '{' {
				pd.DeviceInfo, pd.SDKType = s.deviceInfo(depth + 1)
			} else {
				s.skip(depth + 1) // dropped, and no sdkType
			}
		case 5:
			if raw := s.skip(depth + 1); len(raw) > 0 && raw[0] == '{' {
				pd.GeoLocation = objs.get(raw)
			}
		default:
			s.skip(depth + 1)
		}
	}
}

// deviceInfo reads a deviceInfo object, and returns it as written and its sdkType.
func (s *scanner) deviceInfo(depth int) (raw json.RawMessage, sdkType string) {
	start := s.i
	s.open('{', depth)
	var seen uint
	bad := false // encoding/json fails to read sdkType, and rollcall leaves it empty
	for n := 0; s.next('}', n); n++ {
		if s.field(&seen, "sdkType") != 0 {
			s.skip(depth + 1)
			continue
		}
		switch s.peek() {
		case '"', 'n':
			sdkType = s.word()
		default:
			s.skip(depth + 1)
			bad = true
		}
	}
	if bad {
		sdkType = ""
	}
	return objs.get(s.b[start:s.i]), sdkType
}

// entry reads a timelog entry, or null (an entry with no fields).
func (s *scanner) entry(e *wireEntry, depth int) {
	if s.null() || !s.open('{', depth) {
		return
	}
	var seen uint
	for n := 0; s.next('}', n); n++ {
		switch s.field(&seen, "start", "end") {
		case 0:
			s.time(&e.Start, depth+1)
		case 1:
			s.time(&e.End, depth+1)
		default:
			s.skip(depth + 1)
		}
	}
}
