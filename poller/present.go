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
// value that is not shared (too long to intern) makes a device of its own, and the
// table is bounded as an interner is.
var devices deviceTable

type deviceKey struct {
	mode, sdkType             string
	deviceInfo, geoLocation   *byte
	deviceInfoN, geoLocationN int
}

type deviceTable struct {
	mu sync.RWMutex
	m  map[deviceKey]*device
}

func first(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

func (t *deviceTable) get(p diff.Participant) *device {
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
	if t.m == nil || len(t.m) >= internMaxEntries {
		t.m = make(map[deviceKey]*device, 64)
	}
	d = &device{mode: p.Mode, sdkType: p.SDKType, deviceInfo: p.DeviceInfo, geoLocation: p.GeoLocation}
	t.m[k] = d
	return d
}
