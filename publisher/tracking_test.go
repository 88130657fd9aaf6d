package publisher_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/publisher"
)

// TestStoreEnd: the state of a session that ended becomes a tombstone, which Load
// reads as ended, and which expires after the store's TTL; a stale End changes
// nothing.
func TestStoreEnd(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	// A bucket made by an older rollcall, without per-key TTLs: they are turned on.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ROLLCALL_STATE", History: 1}); err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, ttl, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const id = "s.1"
	st := diff.State{RoomID: "r1", Started: true, Ended: true}
	rev, err := s.Save(ctx, id, diff.State{RoomID: "r1", Started: true, Present: []diff.Participant{demo1}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, id, st, rev+7); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("End at a stale revision = %v, want ErrConflict", err)
	}
	if got, _, err := s.Load(ctx, id); err != nil || got.Ended {
		t.Errorf("Load after a stale End = %+v, %v; want the state as saved", got, err)
	}
	if err := s.End(ctx, id, st, rev); err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.Load(ctx, id)
	if err != nil || rev != 0 {
		t.Fatalf("Load of an ended session = rev %d, %v; want rev 0", rev, err)
	}
	if d := cmp.Diff(diff.State{RoomID: "r1", Started: true, Ended: true}, got); d != "" {
		t.Errorf("tombstone (-want +got):\n%s", d)
	}
	if err := s.End(ctx, id, got, rev); err != nil {
		t.Errorf("End of a tombstone = %v, want nothing to do", err)
	}
	kv, err := js.KeyValue(ctx, "ROLLCALL_STATE")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "ended._cy4x")
	if err != nil || len(e.Value()) > 64 {
		t.Errorf("tombstone %q, %v: want a few bytes", e.Value(), err)
	}
	waitFor(t, func() bool {
		got, _, err := s.Load(ctx, id)
		return err == nil && !got.Ended && !got.Started
	})
}

// TestTracking: what Track, Untrack and Follow write, List and Watch read back, under
// the documented keys; a key of another shape is passed over.
func TestTracking(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	tr, err := publisher.OpenTracking(ctx, js, "ROLLCALL_TRACKING", 1, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Track(ctx, "room", "r10p-2qz8-si67"); err != nil {
		t.Fatal(err)
	}
	type set struct{ Sessions, Rooms []string }
	var mu sync.Mutex
	var seen []set
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Watch(watchCtx, func(sessions, rooms []string) {
			mu.Lock()
			seen = append(seen, set{sessions, rooms})
			mu.Unlock()
		})
	}()
	last := func() set {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return set{}
		}
		return seen[len(seen)-1]
	}
	waitFor(t, func() bool { return cmp.Equal(last(), set{Rooms: []string{"r10p-2qz8-si67"}}) })

	if err := tr.Track(ctx, "session", "a.b"); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "ROLLCALL_TRACKING")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "session._YS5i"); err != nil || string(e.Value()) != `{"id":"a.b"}` {
		t.Errorf("session a.b is stored as %v, %v; want session._YS5i = {\"id\":\"a.b\"}", e, err)
	}
	if _, err := kv.Put(ctx, "other.x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return cmp.Equal(last(), set{Sessions: []string{"a.b"}, Rooms: []string{"r10p-2qz8-si67"}})
	})
	if ok, err := tr.Untrack(ctx, "room", "r10p-2qz8-si67"); !ok || err != nil {
		t.Errorf("Untrack = %v, %v; want true", ok, err)
	}
	if ok, err := tr.Untrack(ctx, "room", "never"); ok || err != nil {
		t.Errorf("Untrack of an untracked room = %v, %v; want false", ok, err)
	}
	waitFor(t, func() bool { return cmp.Equal(last(), set{Sessions: []string{"a.b"}}) })
	sessions, rooms, err := tr.List(ctx)
	if err != nil || !cmp.Equal(sessions, []string{"a.b"}) || len(rooms) != 0 {
		t.Errorf("List = %v, %v, %v; want [a.b], none", sessions, rooms, err)
	}

	// Follow writes a key that is not there, with its origin, and leaves one that is.
	if ok, err := tr.Follow(ctx, "room", "r.2", "webhook"); !ok || err != nil {
		t.Errorf("Follow of a new room = %v, %v; want true", ok, err)
	}
	if e, err := kv.Get(ctx, "room._ci4y"); err != nil || string(e.Value()) != `{"id":"r.2","origin":"webhook"}` {
		t.Errorf("room r.2 is stored as %v, %v; want room._ci4y = {\"id\":\"r.2\",\"origin\":\"webhook\"}", e, err)
	}
	if ok, err := tr.Follow(ctx, "session", "a.b", "webhook"); ok || err != nil {
		t.Errorf("Follow of a tracked session = %v, %v; want false", ok, err)
	}
	if e, err := kv.Get(ctx, "session._YS5i"); err != nil || string(e.Value()) != `{"id":"a.b"}` {
		t.Errorf("Follow changed a tracked session: %v, %v", e, err)
	}
	waitFor(t, func() bool { return cmp.Equal(last(), set{Sessions: []string{"a.b"}, Rooms: []string{"r.2"}}) })
	stop()
	<-done
}
