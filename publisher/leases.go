package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

// Leases is the lease bucket, shared by the replicas of rollcall: a key
// session.<token> or room.<token> says which replica polls that session or follows
// that room, and a key replica.<token> that the replica is alive. The bucket's max
// age is the lease TTL: a key not written again within it is gone, so that a lease
// or heartbeat that is not renewed expires. Values are JSON {"replica": "…"}.
type Leases struct {
	kv jetstream.KeyValue
}

// OpenLeases opens the lease bucket, creating it with max age ttl if it is missing.
func OpenLeases(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, ttl time.Duration, log *slog.Logger) (*Leases, error) {
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "rollcall: which replica polls which session; which replicas are alive",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	if st.TTL() != ttl { // nats.lease_ttl changed since the bucket was made
		sc := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
		sc.MaxAge = ttl
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("set the lease bucket %s's TTL to %v: %w", bucket, ttl, err)
		}
	}
	return &Leases{kv: kv}, nil
}

// ReadLeases opens an existing lease bucket as it is, for commands that only read it.
func ReadLeases(ctx context.Context, js jetstream.JetStream, bucket string) (*Leases, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	return &Leases{kv: kv}, nil
}

func replicaKey(replica string) string { return "replica." + events.EscapeToken(replica) }

type leaseValue struct {
	Replica string `json:"replica"`
	rev     uint64 // the key's revision, when read
}

func leaseValueOf(replica string) []byte {
	b, _ := json.Marshal(leaseValue{Replica: replica}) // a struct of one string: cannot fail
	return b
}

// Heartbeat says replica is alive, for another TTL, and returns the revision written.
func (l *Leases) Heartbeat(ctx context.Context, replica string) (uint64, error) {
	rev, err := l.kv.Put(ctx, replicaKey(replica), leaseValueOf(replica))
	if err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	return rev, nil
}

// Leave deletes replica's heartbeat: it is going.
func (l *Leases) Leave(ctx context.Context, replica string) error {
	return l.kv.Delete(ctx, replicaKey(replica))
}

// Live returns the replicas whose heartbeat has not expired.
func (l *Leases) Live(ctx context.Context) ([]string, error) {
	hb, err := l.values(ctx, "replica.>")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(hb))
	for _, v := range hb {
		out = append(out, v.Replica)
	}
	return out, nil
}

// WatchReleases calls released each time a replica gives a lease up or leaves, until
// ctx ends, so that the others can take over at once rather than at their next round.
func (l *Leases) WatchReleases(ctx context.Context, released func()) {
	w, err := l.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return // the rounds take over, a little later
	}
	defer w.Stop()
	for {
		select {
		case e := <-w.Updates():
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				released()
			}
		case <-ctx.Done():
			return
		}
	}
}

// Claim takes the lease of key for replica, if no one holds it, and returns its
// revision; 0 if someone does.
func (l *Leases) Claim(ctx context.Context, key, replica string) (uint64, error) {
	rev, err := l.kv.Create(ctx, key, leaseValueOf(replica))
	// Another replica's create came first; on a replicated bucket the server may say
	// so as a wrong last sequence.
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
		return 0, nil
	}
	return rev, err
}

// Renew writes replica's lease of key again, at revision rev, for another TTL, and
// returns its new revision; 0 if the lease expired or moved since rev.
func (l *Leases) Renew(ctx context.Context, key, replica string, rev uint64) (uint64, error) {
	rev, err := l.kv.Update(ctx, key, leaseValueOf(replica), rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	return rev, err
}

// Release gives the lease of key up, if it is still at revision rev: a lease that
// moved since is someone else's, and left alone.
func (l *Leases) Release(ctx context.Context, key string, rev uint64) error {
	err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// Owners returns the holder of every lease, and the lease's revision, by key.
func (l *Leases) Owners(ctx context.Context) (owner map[string]string, rev map[string]uint64, err error) {
	all, err := l.values(ctx, ">")
	if err != nil {
		return nil, nil, err
	}
	owner, rev = map[string]string{}, map[string]uint64{}
	for key, v := range all {
		if !strings.HasPrefix(key, "replica.") {
			owner[key], rev[key] = v.Replica, v.rev
		}
	}
	return owner, rev, nil
}

// values reads the live keys matching filter: a watch of their last values, which
// lists no deleted or expired key.
func (l *Leases) values(ctx context.Context, filter string) (map[string]leaseValue, error) {
	// Deletes are skipped here, not by the watcher: its IgnoreDeletes may never mark
	// the end of the current values when the last of them is a delete.
	w, err := l.kv.Watch(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	defer w.Stop()
	out := map[string]leaseValue{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil // the current values are all in
			}
			var v leaseValue
			if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &v) == nil {
				v.rev = e.Revision()
				out[e.Key()] = v
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("read leases: %w", context.Cause(ctx))
		}
	}
}
