package poller

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/rollcall/rollcall/diff"
)

// present is a state's present participants as a session's loop keeps them between
// polls: each one's ID, name and stint, and the values participants repeat (mode,
// sdkType, deviceInfo, geoLocation) behind one shared pointer. A diff.Participant is
// 160 bytes, a record 64: kept for every present participant of every session, that
// is most of the worker's memory. A poll expands them back (expand), and
// keeps its result so (compact).
type present []record

type record struct {
	id, name string
	joinedAt time.Time
	dev      *device
}

// device is what participants repeat, kept once in devices.
type device struct {
	mode, sdkType           string
	deviceInfo, geoLocation json.RawMessage
}

// compact returns ps as records. ps are a state's: without timelogs.
func compact(ps []diff.Participant) present {
	if len(ps) == 0 {
		return nil
	}
	out := make(present, len(ps))
	for i, p := range ps {
		out[i] = record{id: p.ID, name: p.Name, joinedAt: p.JoinedAt, dev: devices.get(p)}
	}
	return out
}

// same reports whether ps holds ps exactly, in order.
func (ps present) same(list []diff.Participant) bool {
	if len(ps) != len(list) {
		return false
	}
	for i, r := range ps {
		p := list[i]
		if r.id != p.ID || r.name != p.Name || !r.joinedAt.Equal(p.JoinedAt) || r.dev.mode != p.Mode || r.dev.sdkType != p.SDKType ||
			!bytes.Equal(r.dev.deviceInfo, p.DeviceInfo) || !bytes.Equal(r.dev.geoLocation, p.GeoLocation) {
			return false
		}
	}
	return true
}

// expand returns the participants of ps.
func (ps present) expand() []diff.Participant {
	if len(ps) == 0 {
		return nil
	}
	out := make([]diff.Participant, len(ps))
	for i, r := range ps {
		out[i] = diff.Participant{ID: r.id, Name: r.name, JoinedAt: r.joinedAt,
			Mode: r.dev.mode, SDKType: r.dev.sdkType, DeviceInfo: r.dev.deviceInfo, GeoLocation: r.dev.geoLocation}
	}
	return out
}

// devices hands out one shared device for participants with the same values. Their
// deviceInfo and geoLocation are the interner's (see objs), so that the same value is
// the same slice: compared by where it starts and its length, without reading it. A
// participant with a value too long to intern gets a device of its own, not kept in
// the table (its address would be new each poll); the table is bounded as an
// interner is, in entries and in the bytes its values hold.
var devices deviceTable

type deviceKey struct {
	mode, sdkType             string
	deviceInfo, geoLocation   *byte
	deviceInfoN, geoLocationN int
}

type deviceTable struct {
	mu    sync.RWMutex
	m     map[deviceKey]*device
	bytes int
}

func first(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

func (t *deviceTable) get(p diff.Participant) *device {
	if len(p.DeviceInfo) > internMaxLen || len(p.GeoLocation) > internMaxLen {
		return &device{mode: p.Mode, sdkType: p.SDKType, deviceInfo: p.DeviceInfo, geoLocation: p.GeoLocation}
	}
	k := deviceKey{mode: p.Mode, sdkType: p.SDKType, deviceInfo: first(p.DeviceInfo), geoLocation: first(p.GeoLocation),
		deviceInfoN: len(p.DeviceInfo), geoLocationN: len(p.GeoLocation)}
	t.mu.RLock()
	d, ok := t.m[k]
	t.mu.RUnlock()
	if ok {
		return d
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.m[k]; ok {
		return d
	}
	size := len(p.Mode) + len(p.SDKType) + len(p.DeviceInfo) + len(p.GeoLocation)
	if t.m == nil || len(t.m) >= internMaxEntries || t.bytes+size > internMaxBytes {
		t.m, t.bytes = make(map[deviceKey]*device, 64), 0
	}
	d = &device{mode: p.Mode, sdkType: p.SDKType, deviceInfo: p.DeviceInfo, geoLocation: p.GeoLocation}
	t.m[k] = d
	t.bytes += size
	return d
}
