package poller

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/rollcall/rollcall/diff"
)

func TestInternerSharesRepeatedValues(t *testing.T) {
	var in interner[json.RawMessage]
	in.copy = objs.copy
	body := []byte(`{"city":"Surat"}`)
	a := in.get(body)
	body[2] = 'X' // the body buffer is reused for the next page
	b := in.get([]byte(`{"city":"Surat"}`))
	if string(a) != `{"city":"Surat"}` || unsafe.SliceData(a) != unsafe.SliceData(b) {
		t.Fatalf("get = %s at %p, then %s at %p: want one copy of the value, not of the buffer", a, unsafe.SliceData(a), b, unsafe.SliceData(b))
	}
	if c := append(a, '!'); unsafe.SliceData(c) == unsafe.SliceData(a) {
		t.Error("append wrote into the shared copy")
	}
	if v := in.get(nil); v != nil {
		t.Errorf("get(nil) = %q", v)
	}
	long := []byte(`"` + strings.Repeat("x", internMaxLen) + `"`)
	if x, y := in.get(long), in.get(long); unsafe.SliceData(x) == unsafe.SliceData(y) || string(x) != string(long) {
		t.Error("a value over internMaxLen was kept")
	}
}

func TestInternerIsBounded(t *testing.T) {
	var in interner[string]
	in.copy = words.copy
	for i := range 3 * internMaxEntries {
		v := fmt.Sprintf("%0*d", 1+i%internMaxLen, i) // lengths up to internMaxLen
		if got := in.get([]byte(v)); got != v {
			t.Fatalf("get(%q) = %q", v, got)
		}
		if len(in.m) > internMaxEntries || in.bytes > internMaxBytes {
			t.Fatalf("after %d values: %d kept, %d bytes; bounds %d, %d", i+1, len(in.m), in.bytes, internMaxEntries, internMaxBytes)
		}
	}
	if s1, s2 := in.get([]byte("web")), in.get([]byte("web")); unsafe.StringData(s1) != unsafe.StringData(s2) {
		t.Error("values are not shared after the table started again")
	}
}

// TestDecodePageSharesDeviceValues: two participants with the same deviceInfo,
// geoLocation, mode and sdkType, on two pages read into one reused buffer, hold one
// copy of each.
func TestDecodePageSharesDeviceValues(t *testing.T) {
	page := func(id string) []byte {
		return []byte(`{"pageInfo":{"currentPage":1,"perPage":10,"lastPage":1,"total":1},"data":[{"_id":"s","roomId":"r","status":"ongoing","start":"2023-07-24T08:28:09.215Z","participants":[` +
			`{"participantId":"` + id + `","name":"n","timelog":[{"start":"2023-07-24T08:28:09.650Z","end":null}],"mode":"CONFERENCE",` +
			`"deviceInfo":{"sdkType":"prebuilt","platform":"desktop"},"geoLocation":{"city":"Pune"}}]}]}`)
	}
	buf := page("a")
	first, err := DecodePage(buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, page("b"))
	second, err := DecodePage(buf)
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.Sessions[0].Participants[0], second.Sessions[0].Participants[0]
	if a.ID != "a" || b.ID != "b" {
		t.Fatalf("participants %q and %q, want a and b", a.ID, b.ID)
	}
	for _, f := range []struct {
		name string
		x, y unsafe.Pointer
	}{
		{"deviceInfo", unsafe.Pointer(unsafe.SliceData(a.DeviceInfo)), unsafe.Pointer(unsafe.SliceData(b.DeviceInfo))},
		{"geoLocation", unsafe.Pointer(unsafe.SliceData(a.GeoLocation)), unsafe.Pointer(unsafe.SliceData(b.GeoLocation))},
		{"mode", unsafe.Pointer(unsafe.StringData(a.Mode)), unsafe.Pointer(unsafe.StringData(b.Mode))},
		{"sdkType", unsafe.Pointer(unsafe.StringData(a.SDKType)), unsafe.Pointer(unsafe.StringData(b.SDKType))},
	} {
		if f.x != f.y {
			t.Errorf("%s: two copies", f.name)
		}
	}
	if string(a.DeviceInfo) != `{"sdkType":"prebuilt","platform":"desktop"}` || string(a.GeoLocation) != `{"city":"Pune"}` {
		t.Errorf("first page's values changed with the buffer: %s, %s", a.DeviceInfo, a.GeoLocation)
	}
}

// TestPresentKeepsEveryField: a state's participants come back from their records as
// they were, whatever their values: shared or not, empty, too long to share, the
// same deviceInfo with another mode.
func TestPresentKeepsEveryField(t *testing.T) {
	at := time.Date(2023, 7, 24, 8, 28, 9, 650e6, time.UTC)
	dev := objs.get([]byte(`{"sdkType":"prebuilt","platform":"desktop"}`))
	geo := objs.get([]byte(`{"city":"Pune"}`))
	long := json.RawMessage(`{"a":"` + strings.Repeat("x", internMaxLen) + `"}`)
	ps := []diff.Participant{
		{ID: "a", Name: "A", JoinedAt: at, Mode: "CONFERENCE", SDKType: "prebuilt", DeviceInfo: dev, GeoLocation: geo},
		{ID: "b", Name: "B", JoinedAt: at.Add(time.Second), Mode: "CONFERENCE", SDKType: "prebuilt", DeviceInfo: dev, GeoLocation: geo},
		{ID: "c", JoinedAt: at, Mode: "VIEWER", SDKType: "prebuilt", DeviceInfo: dev, GeoLocation: geo},
		{ID: "d", JoinedAt: at},
		{ID: "e", Name: "E", JoinedAt: at, SDKType: "recorder", DeviceInfo: long, GeoLocation: json.RawMessage(`{"city":"Surat"}`)},
	}
	rs := compact(ps)
	if d := cmp.Diff(ps, rs.expand()); d != "" {
		t.Errorf("expand(compact(ps)) (-ps +got):\n%s", d)
	}
	if rs[0].dev != rs[1].dev || rs[0].dev == rs[2].dev {
		t.Error("participants with the same values do not share one device, or ones with another mode do")
	}
	if !rs.same(rs.expand()) {
		t.Error("records are not the same as their own participants")
	}
	for i, change := range []func(*diff.Participant){
		func(p *diff.Participant) { p.Name = "A2" },
		func(p *diff.Participant) { p.JoinedAt = p.JoinedAt.Add(time.Millisecond) },
		func(p *diff.Participant) { p.Mode = "VIEWER" },
		func(p *diff.Participant) { p.GeoLocation = json.RawMessage(`{"city":"Delhi"}`) },
	} {
		changed := rs.expand()
		change(&changed[0])
		if rs.same(changed) {
			t.Errorf("change %d: records are the same as participants that differ", i)
		}
	}
	if rs.same(rs.expand()[1:]) {
		t.Error("records are the same as fewer participants")
	}
	if compact(nil) != nil || present(nil).expand() != nil {
		t.Error("no participants are not kept as none")
	}
}

// TestDevicesAreBounded: the table of devices keeps at most internMaxEntries, and
// values of at most internMaxBytes, whatever it is given: values that differ each
// poll (not shared: from encoding/json, or too long to intern) included.
func TestDevicesAreBounded(t *testing.T) {
	var tab deviceTable
	long := json.RawMessage(`{"a":"` + strings.Repeat("x", internMaxLen) + `"}`)
	for i := range 3 * internMaxEntries {
		p := diff.Participant{Mode: fmt.Sprint(i), DeviceInfo: json.RawMessage(fmt.Sprintf(`{"a":"%0*d"}`, 1000, i))}
		if i%2 == 1 {
			p.GeoLocation = slices.Clone(long) // as a poll copies a value it cannot intern
		}
		if d := tab.get(p); d.mode != p.Mode || string(d.deviceInfo) != string(p.DeviceInfo) || string(d.geoLocation) != string(p.GeoLocation) {
			t.Fatalf("device %d has other values than its participant", i)
		}
		var held int
		for _, d := range tab.m {
			held += len(d.mode) + len(d.sdkType) + len(d.deviceInfo) + len(d.geoLocation)
		}
		if len(tab.m) > internMaxEntries || held > internMaxBytes {
			t.Fatalf("after %d participants: %d devices kept, holding %d bytes", i+1, len(tab.m), held)
		}
	}
}
