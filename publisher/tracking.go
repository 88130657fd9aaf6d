package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rollcall/rollcall/diff"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

// Tracking is the KV bucket of the sessions and rooms tracked at run time: a key
// session.<token> or room.<token>, where <token> is the ID escaped as in subjects
// (events.EscapeToken), and a JSON value {"id": "…"}, with "origin" when the worker
// put it there itself ("webhook"). The key is what counts; the value is for people
// reading the bucket.
type Tracking struct {
	kv  jetstream.KeyValue
	log *slog.Logger
}

// OpenTracking opens the tracking bucket, creating it if it is missing.
func OpenTracking(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, log *slog.Logger) (*Tracking, error) {
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "rollcall: sessions and rooms tracked at run time",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("open tracking bucket %s: %w", bucket, err)
	}
	return &Tracking{kv: kv, log: log}, nil
}

func trackingKey(kind, id string) string { return kind + "." + events.EscapeToken(id) }

// trackingValue is the value of a key: the ID, and why the worker tracks it when it
// put it there itself.
type trackingValue struct {
	ID     string `json:"id"`
	Origin string `json:"origin,omitempty"`
}

// Track adds a session or room (kind "session" or "room").
func (t *Tracking) Track(ctx context.Context, kind, id string) error {
	val, err := json.Marshal(trackingValue{ID: id})
	if err != nil {
		return err
	}
	if _, err := t.kv.Put(ctx, trackingKey(kind, id), val); err != nil {
		return fmt.Errorf("track %s %s: %w", kind, id, err)
	}
	return nil
}

// Follow adds a session or room that the bucket does not track yet, saying in its
// value what made the worker follow it (origin, such as "webhook"); false, and the
// key left as it is, if the bucket tracks it already.
func (t *Tracking) Follow(ctx context.Context, kind, id, origin string) (bool, error) {
	val, err := json.Marshal(trackingValue{ID: id, Origin: origin})
	if err != nil {
		return false, err
	}
	if _, err := t.kv.Create(ctx, trackingKey(kind, id), val); errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("follow %s %s: %w", kind, id, err)
	}
	return true, nil
}

// Untrack removes a session or room; false if the bucket did not track it.
func (t *Tracking) Untrack(ctx context.Context, kind, id string) (bool, error) {
	k := trackingKey(kind, id)
	if _, err := t.kv.Get(ctx, k); errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("untrack %s %s: %w", kind, id, err)
	}
	if err := t.kv.Delete(ctx, k); err != nil {
		return false, fmt.Errorf("untrack %s %s: %w", kind, id, err)
	}
	return true, nil
}

// List returns the sessions and rooms the bucket tracks, sorted.
func (t *Tracking) List(ctx context.Context) (sessions, rooms []string, err error) {
	keys, err := t.kv.ListKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list tracking bucket: %w", err)
	}
	set := make(map[string]bool)
	for k := range keys.Keys() {
		set[k] = true
	}
	sessions, rooms = t.sets(set)
	return sessions, rooms, nil
}

// Watch calls f with the whole tracked set at once, and again after every change,
// until ctx is done. A watch that breaks is started again, from the whole set.
func (t *Tracking) Watch(ctx context.Context, f func(sessions, rooms []string)) {
	for {
		err := t.watch(ctx, f)
		if ctx.Err() != nil {
			return
		}
		t.log.Warn("watching the tracking bucket stopped; watching it again", "err", err)
		if sleep(ctx, time.Second) != nil {
			return
		}
	}
}

func (t *Tracking) watch(ctx context.Context, f func(sessions, rooms []string)) error {
	w, err := t.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	keys := make(map[string]bool)
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("the watcher closed")
			case e == nil: // the current values are all in
				loaded = true
			case e.Operation() == jetstream.KeyValuePut:
				keys[e.Key()] = true
			default:
				delete(keys, e.Key())
			}
			if loaded {
				f(t.sets(keys))
			}
		}
	}
}

// sets turns bucket keys into sorted session and room IDs. A key of another shape is
// logged and passed over.
func (t *Tracking) sets(keys map[string]bool) (sessions, rooms []string) {
	for k := range keys {
		kind, token, _ := strings.Cut(k, ".")
		id, err := events.UnescapeToken(token)
		switch {
		case err != nil || token == "" || (kind != "session" && kind != "room"):
			t.log.Warn("tracking bucket: a key that is neither session.<id> nor room.<id> is passed over", "key", k)
		case diff.CheckID(id) != nil:
			t.log.Warn("tracking bucket: a key whose ID rollcall cannot follow is passed over", "key", fmt.Sprintf("%.64s…", k), "err", diff.CheckID(id))
		case kind == "session":
			sessions = append(sessions, id)
		default:
			rooms = append(rooms, id)
		}
	}
	slices.Sort(sessions)
	slices.Sort(rooms)
	return sessions, rooms
}
