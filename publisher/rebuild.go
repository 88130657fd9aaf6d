package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
)

// ErrUnreadable is returned by Load for a state that cannot be read back, when the
// store cannot rebuild it (see RebuildFrom).
var ErrUnreadable = errors.New("state cannot be read")

// unreadable sets aside a session's state that cannot be read, saved at rev, under
// unreadable.<escaped id>, and replaces it by one rebuilt from the stream, saved with
// compare-and-set on rev, so that it is said once, not at every load.
func (s *Store) unreadable(ctx context.Context, sessionID string, rev uint64, val []byte, why error) (diff.State, uint64, error) {
	if s.js == nil {
		return diff.State{}, 0, fmt.Errorf("load state: revision %d: %w: %w", rev, ErrUnreadable, why)
	}
	s.log.Error("a session's state cannot be read: set aside, and rebuilt from the stream's events", "session_id", sessionID,
		"revision", rev, "set_aside_as", "unreadable."+events.EscapeToken(sessionID), "err", why)
	if _, err := s.kv.Put(ctx, "unreadable."+events.EscapeToken(sessionID), val); err != nil {
		return diff.State{}, 0, fmt.Errorf("load state: set aside revision %d: %w", rev, err)
	}
	st, err := s.rebuild(ctx, sessionID)
	if err != nil {
		return diff.State{}, 0, fmt.Errorf("load state: revision %d cannot be read (%w), and %w", rev, why, err)
	}
	if rev, err = s.Save(ctx, sessionID, st, rev); err != nil {
		return diff.State{}, 0, err
	}
	s.metrics.StatesRebuilt.Inc()
	st.Saved = time.Now()
	return st, rev, nil
}

// RebuildFrom lets Load rebuild a session's state that cannot be read from what the
// stream holds of the session, under prefix: whoever joined and did not leave is
// present, and every stint left is published. Without it, such a state fails Load
// with ErrUnreadable.
func (s *Store) RebuildFrom(js jetstream.JetStream, stream, prefix string) {
	s.js, s.stream, s.prefix = js, stream, prefix
}

// rebuild reads every event of a session from the stream and returns the state they
// lead to. Lefts that were waiting for their end are not in it: the next poll finds
// them gone again, and they wait anew. Events older than the stream's max age are
// gone from it: a stint joined before then and still present is announced again,
// with its deterministic id.
func (s *Store) rebuild(ctx context.Context, sessionID string) (diff.State, error) {
	str, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return diff.State{}, fmt.Errorf("rebuild from stream %s: %w", s.stream, err)
	}
	filter := s.prefix + ".*.*.*." + events.EscapeToken(sessionID)
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return diff.State{}, fmt.Errorf("rebuild from stream %s: %w", s.stream, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	b := builder{present: map[string]diff.Participant{}, st: diff.State{Accounted: true, Gone: map[string]time.Time{}}}
	if total == 0 {
		return b.state(), nil
	}
	c, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return diff.State{}, fmt.Errorf("rebuild from stream %s: %w", s.stream, err)
	}
	for read := uint64(0); read < total; {
		batch, err := c.Fetch(int(min(total-read, 512)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return diff.State{}, fmt.Errorf("rebuild from stream %s: %w", s.stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if err := b.add(msg.Data()); err != nil {
				return diff.State{}, fmt.Errorf("rebuild from stream %s: %w", s.stream, err)
			}
		}
		if err := batch.Error(); err != nil || n == 0 {
			return diff.State{}, fmt.Errorf("rebuild from stream %s: read %d of %d events: %w", s.stream, read, total, cmpErr(err, ctx.Err()))
		}
		read += uint64(n)
	}
	return b.state(), nil
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return errors.New("no more events came")
}

// builder is a state rebuilt from a session's events, in the stream's order.
type builder struct {
	st      diff.State
	present map[string]diff.Participant // by participantId
}

func (b *builder) add(data []byte) error {
	e, err := events.Decode(data)
	if err != nil {
		return err
	}
	switch e.Type {
	case events.TypeSessionStarted, events.TypeSessionEnded:
		var d events.SessionData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, events.ErrInvalid)
		}
		b.st.RoomID = d.RoomID
		b.st.Started = true
		b.st.Ended = b.st.Ended || e.Type == events.TypeSessionEnded
	case events.TypeJoined, events.TypeLeft:
		var d events.ParticipantData
		if err := json.Unmarshal(e.Data, &d); err != nil || d.JoinedAt == nil {
			return fmt.Errorf("event %s: %w", e.ID, events.ErrInvalid)
		}
		b.st.RoomID = d.RoomID
		p := diff.Participant{ID: d.ParticipantID, Name: d.Name, JoinedAt: d.JoinedAt.Time, Mode: d.Mode, SDKType: d.SDKType,
			DeviceInfo: nonEmpty(d.DeviceInfo), GeoLocation: nonEmpty(d.GeoLocation)}
		if e.Type == events.TypeJoined {
			b.present[p.ID] = p
			return nil
		}
		if q, ok := b.present[p.ID]; ok && q.JoinedAt.Equal(p.JoinedAt) {
			delete(b.present, p.ID)
		}
		if last, ok := b.st.Gone[p.ID]; !ok || p.JoinedAt.After(last) {
			b.st.Gone[p.ID] = p.JoinedAt
		}
	}
	return nil
}

// nonEmpty is raw, or nil for the {} an event carries when the API gave nothing.
func nonEmpty(raw json.RawMessage) json.RawMessage {
	if string(raw) == "{}" {
		return nil
	}
	return raw
}

func (b *builder) state() diff.State {
	st := b.st
	for _, p := range b.present {
		st.Present = append(st.Present, p)
	}
	slices.SortFunc(st.Present, func(a, b diff.Participant) int { return strings.Compare(a.ID, b.ID) })
	if len(st.Gone) == 0 {
		st.Gone = nil
	}
	return st
}
