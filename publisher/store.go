package publisher

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
)

// ErrConflict is returned by Save when the state changed since it was loaded.
var ErrConflict = errors.New("state changed since it was loaded")

// compressAbove is the size past which a state is stored gzipped. A KV value must fit
// the server's max_payload (1 MiB by default), and a state of a few thousand
// participants, or its outbox on a first cycle, does not; gzip shrinks such JSON about
// tenfold. Smaller states stay plain JSON, readable with `nats kv get`.
const compressAbove = 64 << 10

// gzipMagic starts every gzip stream, and never a JSON text.
var gzipMagic = []byte{0x1f, 0x8b}

func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// Store keeps each session's state in a KV bucket, under sessions.<escaped id>.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore opens the bucket, creating it if it is missing.
func OpenStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "rollcall: last snapshot of each session",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv}, nil
}

func key(sessionID string) string { return "sessions." + EscapeToken(sessionID) }

// Load returns the state of a session and its revision; a session never saved has the
// zero state and revision 0.
func (s *Store) Load(ctx context.Context, sessionID string) (diff.State, uint64, error) {
	e, err := s.kv.Get(ctx, key(sessionID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return diff.State{}, 0, nil
	}
	if err != nil {
		return diff.State{}, 0, fmt.Errorf("load state: %w", err)
	}
	val := e.Value()
	if bytes.HasPrefix(val, gzipMagic) {
		if val, err = gunzip(val); err != nil {
			return diff.State{}, 0, fmt.Errorf("load state: revision %d: %w", e.Revision(), err)
		}
	}
	var st diff.State
	if err := json.Unmarshal(val, &st); err != nil {
		return diff.State{}, 0, fmt.Errorf("load state: revision %d: %w", e.Revision(), err)
	}
	return st, e.Revision(), nil
}

// Save stores st if the session's state is still at revision rev (0: never saved), and
// returns the new revision. A concurrent change gives ErrConflict.
func (s *Store) Save(ctx context.Context, sessionID string, st diff.State, rev uint64) (uint64, error) {
	val, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("save state: %w", err)
	}
	if len(val) > compressAbove {
		if val, err = gzipped(val); err != nil {
			return 0, fmt.Errorf("save state: %w", err)
		}
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.kv.Create(ctx, key(sessionID), val)
	} else {
		newRev, err = s.kv.Update(ctx, key(sessionID), val, rev)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || (rev == 0 && errors.Is(err, jetstream.ErrKeyExists)) {
		return 0, fmt.Errorf("save state at revision %d: %w", rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save state: %w", err)
	}
	return newRev, nil
}
