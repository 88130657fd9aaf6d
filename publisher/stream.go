package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

// StreamConfig is what rollcall asks of its stream.
type StreamConfig struct {
	Name            string
	Prefix          string // the stream captures <Prefix>.>
	Replicas        int
	DuplicateWindow time.Duration
	MaxAge          time.Duration
}

// description marks the streams rollcall created, whose settings it may change.
const description = "rollcall presence events"

// EnsureStream creates the stream if it is missing. An existing stream must capture
// every subject under the prefix, or EnsureStream refuses it. A stream rollcall created
// has its duplicate window and maximum age brought in line with cfg; someone else's is
// left as it is (changing its retention could delete their messages), with a warning
// if its duplicate window is shorter than cfg's.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig, log *slog.Logger) error {
	want := cfg.Prefix + ".>"
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Name,
			Description: description,
			Subjects:    []string{want},
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
			MaxAge:      cfg.MaxAge,
		})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		log.Info("created stream", "stream", cfg.Name, "subjects", want)
		return nil
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("look up stream %s: JetStream is not enabled on the NATS server (nats-server -js): %w", cfg.Name, err)
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	sc := s.CachedInfo().Config
	if err := Captures(sc.Name, sc.Subjects, cfg.Prefix); err != nil {
		return err
	}
	if sc.Storage != jetstream.FileStorage {
		log.Warn("the stream keeps events in memory: a server restart loses them", "stream", cfg.Name)
	}
	warnReplicas(log, "stream", cfg.Name, sc.Replicas, cfg.Replicas)
	if sc.Description != description {
		if sc.Duplicates < cfg.DuplicateWindow {
			log.Warn("the stream's duplicate window is shorter than nats.duplicate_window: a republished event older than it is stored again",
				"stream", cfg.Name, "duplicates", sc.Duplicates, "duplicate_window", cfg.DuplicateWindow)
		}
		return nil
	}
	if sc.Duplicates != cfg.DuplicateWindow || sc.MaxAge != cfg.MaxAge {
		sc.Duplicates, sc.MaxAge = cfg.DuplicateWindow, cfg.MaxAge
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("update stream %s: %w", cfg.Name, err)
		}
		log.Info("updated stream", "stream", cfg.Name, "duplicate_window", cfg.DuplicateWindow, "max_age", cfg.MaxAge)
	}
	return nil
}

// Captures checks that a stream of these subjects captures every subject rollcall
// publishes under prefix.
func Captures(stream string, subjects []string, prefix string) error {
	for _, k := range []string{events.SubjectJoined, events.SubjectLeft, events.SubjectSessionStarted, events.SubjectSessionEnded} {
		if subj := prefix + "." + k + ".*.*"; !captures(subjects, subj) {
			return fmt.Errorf("stream %s captures %q, not %q: point nats.stream at another stream or add %q to its subjects",
				stream, subjects, subj, prefix+".>")
		}
	}
	return nil
}

// captures reports whether some filter in filters matches every subject that the
// pattern subject matches.
func captures(filters []string, subject string) bool {
	for _, f := range filters {
		if covers(strings.Split(f, "."), strings.Split(subject, ".")) {
			return true
		}
	}
	return false
}

func covers(filter, subject []string) bool {
	for i, tok := range filter {
		switch {
		case tok == ">":
			return i < len(subject)
		case i >= len(subject):
			return false
		case subject[i] == ">":
			return false // subject goes deeper than this filter can follow
		case tok != "*" && tok != subject[i]:
			return false
		}
	}
	return len(filter) == len(subject)
}

// warnReplicas warns when an existing stream or bucket has fewer replicas than
// nats.replicas asks for: rollcall does not change them (moving a stream's data to
// more servers is the operator's call: nats stream edit --replicas).
func warnReplicas(log *slog.Logger, what, name string, have, want int) {
	if have < want {
		log.Warn("an existing "+what+" has fewer replicas than nats.replicas: losing a server can lose it or stop it",
			what, name, "replicas", have, "nats.replicas", want)
	}
}
