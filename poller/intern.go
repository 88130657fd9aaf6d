package poller

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
)

// Values that repeat across participants and polls are kept once: deviceInfo and
// geoLocation (objs), mode and sdkType (words). Meetings repeat a few dozen browsers,
// SDK versions and cities, and a session's loop keeps every present participant's in
// its state: one shared copy instead of one per participant and poll is most of what
// the state weighs, and allocations a poll does not make.
var (
	objs  = interner[json.RawMessage]{copy: func(b []byte) json.RawMessage { return slices.Clip(bytes.Clone(b)) }}
	words = interner[string]{copy: func(b []byte) string { return string(b) }}
)

// Bounds of an interner, whatever the API sends.
const (
	internMaxLen     = 2048    // a longer value is copied, not kept
	internMaxEntries = 4096    // values kept at most
	internMaxBytes   = 1 << 20 // bytes kept at most
)

// interner hands out one shared copy of each value it is given (copy makes it). A
// value longer than internMaxLen is copied and not kept, and when the values kept
// pass internMaxEntries or internMaxBytes they are all let go (those handed out stay
// valid) and the table starts again: values that never repeat cost what they would
// without it. What it hands out is shared, and must not be modified.
type interner[T any] struct {
	copy func([]byte) T

	mu    sync.RWMutex
	m     map[string]T
	bytes int
}

// get returns the shared copy of b, the zero T if b is empty.
func (in *interner[T]) get(b []byte) T {
	var v T
	if len(b) == 0 {
		return v
	}
	if len(b) > internMaxLen {
		return in.copy(b)
	}
	in.mu.RLock()
	v, ok := in.m[string(b)] // the compiler looks b up without a copy
	in.mu.RUnlock()
	if ok {
		return v
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[string(b)]; ok {
		return v
	}
	size := 2 * len(b) // the key and the value
	if in.m == nil || len(in.m) >= internMaxEntries || in.bytes+size > internMaxBytes {
		in.m, in.bytes = make(map[string]T, 64), 0
	}
	v = in.copy(b)
	in.m[string(b)] = v
	in.bytes += size
	return v
}
