package publisher

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/metrics"
)

// ErrConflict is returned by Save when the state changed since it was loaded.
var ErrConflict = errors.New("state changed since it was loaded")

// compressAbove is the size past which a state is stored gzipped, which a state of
// more than a few participants is. A KV value must fit the server's max_payload (1 MiB
// by default), which the JSON of a few thousand participants does not; and every byte
// costs the server, most of all in a compare-and-set, which reads the key's last value
// and so loads the whole block that holds it when it is not cached. In a first burst
// of 2,000 sessions × 50, plain JSON (about 24 KB a first write) took 23% of the
// server's CPU for the state bucket, gzip (about 2 KB) 9%. Gzip at its fastest level,
// with a writer reused, costs about 45 µs for 20 KB, a tenth of what the server saves.
const compressAbove = 2 << 10

// gzipMagic starts every gzip stream, and never a JSON text.
var gzipMagic = []byte{0x1f, 0x8b}

// gzipWriters holds one writer per CPU: a writer carries about 1.2 MB of tables, too
// much to make for each save or to keep one for each save in flight, and compressing is
// CPU-bound, so that more at once would not be faster.
var gzipWriters = sync.OnceValue(func() chan *gzip.Writer {
	c := make(chan *gzip.Writer, runtime.GOMAXPROCS(0))
	for range cap(c) {
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
		c <- w
	}
	return c
})

// appendGzipped appends b, gzipped, to dst.
func appendGzipped(dst, b []byte) ([]byte, error) {
	writers := gzipWriters()
	w := <-writers
	defer func() { writers <- w }()
	out := bytes.NewBuffer(dst)
	w.Reset(out)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// Store keeps each session's state in a KV bucket, under sessions.<escaped id>. A
// session that has ended is kept as a tombstone under ended.<escaped id> instead, a
// few bytes that expire with the events they speak of (after the stream's max age),
// so that a restart does not announce the session again while its events are in the
// stream, and the bucket does not grow without bound.
type Store struct {
	kv      jetstream.KeyValue
	ttl     time.Duration // of tombstones; 0 if the server cannot expire keys (before 2.11)
	metrics *metrics.Metrics
	log     *slog.Logger
	// Where a state that cannot be read is rebuilt from (RebuildFrom); js is nil
	// when it is not.
	js             jetstream.JetStream
	stream, prefix string
}

// limitMarkerTTL is how long the marker of an expired tombstone stays: long enough for
// any watcher to see it, short enough not to count.
const limitMarkerTTL = time.Hour

// OpenStore opens the bucket, creating it if it is missing, with per-key TTLs enabled
// so that tombstones expire after ttl. A server too old for per-key TTLs keeps them
// for good, with a warning.
func OpenStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, ttl time.Duration, log *slog.Logger, m *metrics.Metrics) (*Store, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    "rollcall: last snapshot of each session",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
		LimitMarkerTTL: limitMarkerTTL,
	}
	kv, err := openBucket(ctx, js, cfg, log)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		log.Warn("the NATS server cannot expire keys (it needs 2.11 or later): tombstones of ended sessions are kept for good", "bucket", bucket)
		cfg.LimitMarkerTTL, ttl = 0, 0
		kv, err = openBucket(ctx, js, cfg, log)
	}
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv, ttl: ttl, metrics: metrics.Or(m), log: log}, nil
}

// ReadStore opens an existing state bucket, for commands that only read it.
func ReadStore(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("no state bucket %s: rollcall has kept no state on this server", bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv, metrics: metrics.Or(nil), log: slog.New(slog.DiscardHandler)}, nil
}

// openBucket opens a bucket, creating it as cfg says if it is missing. An existing one
// without per-key TTLs gets them when cfg asks (a bucket of an older rollcall); its
// other settings are left as they are.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, log *slog.Logger) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return js.CreateKeyValue(ctx, cfg)
	}
	if err != nil {
		return kv, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	warnReplicas(log, "bucket", cfg.Bucket, st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas, cfg.Replicas)
	if cfg.LimitMarkerTTL == 0 {
		return kv, nil
	}
	if st.LimitMarkerTTL() == 0 {
		s := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
		s.AllowMsgTTL, s.SubjectDeleteMarkerTTL = true, cfg.LimitMarkerTTL
		if _, err := js.UpdateStream(ctx, s); err != nil {
			return nil, fmt.Errorf("enable per-key TTLs: %w", err)
		}
	}
	return kv, nil
}

func key(sessionID string) string       { return "sessions." + events.EscapeToken(sessionID) }
func tombstone(sessionID string) string { return "ended." + events.EscapeToken(sessionID) }

// Load returns the state of a session and its revision; a session never saved has the
// zero state and revision 0.
func (s *Store) Load(ctx context.Context, sessionID string) (diff.State, uint64, error) {
	s.metrics.StateLoads.Inc()
	e, err := s.kv.Get(ctx, key(sessionID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		e, err = s.kv.Get(ctx, tombstone(sessionID))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return diff.State{}, 0, nil
		}
		if err != nil {
			return diff.State{}, 0, fmt.Errorf("load state: %w", err)
		}
		var st diff.State
		if err := json.Unmarshal(e.Value(), &st); err != nil || !st.Ended {
			return diff.State{}, 0, fmt.Errorf("load state: tombstone revision %d is not one: %q", e.Revision(), e.Value())
		}
		return st, 0, nil // nothing to compare-and-set: an ended session is not saved again
	}
	if err != nil {
		return diff.State{}, 0, fmt.Errorf("load state: %w", err)
	}
	val := e.Value()
	if bytes.HasPrefix(val, gzipMagic) {
		if val, err = gunzip(val); err != nil {
			return s.unreadable(ctx, sessionID, e.Revision(), e.Value(), err)
		}
	}
	var st diff.State
	if err := json.Unmarshal(val, &st); err != nil {
		return s.unreadable(ctx, sessionID, e.Revision(), e.Value(), err)
	}
	resolve(&st)
	st.Saved = e.Created()
	return st, e.Revision(), nil
}

// Save stores st if the session's state is still at revision rev (0: never saved), and
// returns the new revision. A concurrent change gives ErrConflict.
func (s *Store) Save(ctx context.Context, sessionID string, st diff.State, rev uint64) (uint64, error) {
	var err error
	// The buffers are written to the connection by the time Create or Update returns.
	val := appendState(buffers.get(512*(1+len(st.Present))), st)
	defer buffers.put(val)
	if len(val) > compressAbove {
		if val, err = appendGzipped(buffers.get(len(val)/4), val); err != nil {
			return 0, fmt.Errorf("save state: %w", err)
		}
		defer buffers.put(val)
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
	s.metrics.StateSaves.Inc()
	s.metrics.StateSize.Observe(float64(len(val)))
	return newRev, nil
}

// Unfinished returns the sessions whose state is kept and has not ended.
func (s *Store) Unfinished(ctx context.Context) ([]string, error) {
	keys, err := s.kv.ListKeysFiltered(ctx, "sessions.>")
	if err != nil {
		return nil, fmt.Errorf("list states: %w", err)
	}
	var ids []string
	for k := range keys.Keys() {
		if id, err := events.UnescapeToken(strings.TrimPrefix(k, "sessions.")); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Live is a session whose state is kept and has not ended, as last saved.
type Live struct {
	SessionID string
	State     diff.State
}

// Live returns the state of every session kept that has not ended, as of each one's
// last save: who is present, for `rollcall who` and the presence page. A state that
// cannot be read is passed over (the worker sets it aside and rebuilds it when it next
// loads it), and so is one ended or gone since it was listed.
func (s *Store) Live(ctx context.Context) ([]Live, error) {
	ids, err := s.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	var live []Live
	for _, id := range ids {
		st, rev, err := s.Load(ctx, id)
		switch {
		case errors.Is(err, ErrUnreadable):
			continue
		case err != nil:
			return nil, err
		case rev == 0 || st.Ended:
			continue
		}
		live = append(live, Live{SessionID: id, State: st})
	}
	return live, nil
}

// End replaces the state of a session that has ended, saved at revision rev, by its
// tombstone. The tombstone is written first, so that a stop in between leaves both
// (and the next End finishes), never neither.
func (s *Store) End(ctx context.Context, sessionID string, st diff.State, rev uint64) error {
	if rev == 0 {
		return nil
	}
	val := appendState(nil, diff.State{RoomID: st.RoomID, Started: st.Started, Ended: true})
	var opts []jetstream.KVCreateOpt
	if s.ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(s.ttl))
	}
	if _, err := s.kv.Create(ctx, tombstone(sessionID), val, opts...); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("end state: write tombstone: %w", err)
	}
	purge := []jetstream.KVDeleteOpt{jetstream.LastRevision(rev)}
	if s.ttl > 0 {
		purge = append(purge, jetstream.PurgeTTL(limitMarkerTTL))
	}
	err := s.kv.Purge(ctx, key(sessionID), purge...)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSequence(err) {
		return fmt.Errorf("end state at revision %d: %w", rev, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("end state: %w", err)
	}
	return nil
}

// isWrongLastSequence reports the server's refusal of a purge at a stale revision,
// which nats.go does not map to ErrKeyRevisionMismatch.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
