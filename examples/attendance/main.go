// Command attendance turns rollcall's stream into attendance: one CSV row per stint
// (a participant's continuous presence in a session) with its room, its join and
// leave times and seconds, then each participant's total. It reads the stream from its first
// event to its last as it is when it starts, and exits.
package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "attendance:", err)
		os.Exit(1)
	}
}

// stint is one row: who was in which room's session, from when until when.
type stint struct {
	room, session, participant, name string
	joined, left                     time.Time // left is zero while the stint lasts
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("attendance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	stream := fs.String("stream", "ROLLCALL", "rollcall's stream (nats.stream)")
	prefix := fs.String("prefix", "videosdk", "rollcall's subject prefix (nats.subject_prefix)")
	session := fs.String("session", "", "one session's attendance only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.Name("rollcall attendance"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	filter := *prefix + ".participant.>"
	if *session != "" {
		filter = *prefix + ".participant.*.*." + events.EscapeToken(*session)
	}
	stints, err := read(ctx, js, *stream, filter, stderr)
	if err != nil {
		return err
	}
	return write(stdout, stints)
}

// read reads every participant event stored now under filter, and pairs each joined
// with its left by the stint's joinedAt.
func read(ctx context.Context, js jetstream.JetStream, stream, filter string, stderr io.Writer) ([]*stint, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	open := make(map[string]*stint) // by session, participant and joinedAt
	var out []*stint
	for read := uint64(0); read < total; read++ {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("after %d of %d events: %w", read, total, err)
		}
		e, err := events.Decode(msg.Data())
		if err != nil {
			fmt.Fprintf(stderr, "attendance: skipping %s: %v\n", msg.Subject(), err)
			continue
		}
		d, err := e.Participant()
		if err != nil || d.JoinedAt == nil {
			continue // no timelog: the stint cannot be paired
		}
		key := d.SessionID + "\x00" + d.ParticipantID + "\x00" + d.JoinedAt.UTC().Format(time.RFC3339Nano)
		switch e.Type {
		case events.TypeJoined:
			if open[key] == nil { // a repeat, if the stream ever kept one, changes nothing
				open[key] = &stint{room: d.RoomID, session: d.SessionID, participant: d.ParticipantID, name: d.Name, joined: d.JoinedAt.Time}
				out = append(out, open[key])
			}
		case events.TypeLeft:
			if st := open[key]; st != nil {
				// The stint's end when the API gave it, else when rollcall saw it gone.
				st.left = e.Time.Time
				delete(open, key)
			}
		}
	}
	return out, nil
}

// write writes a row per stint, by room, then session in the order they started,
// then participant and join time; then a total per participant of the stints that
// have ended.
func write(w io.Writer, stints []*stint) error {
	// A session's start is its first join read: session IDs are random, and their
	// order says nothing.
	start := make(map[string]time.Time)
	for _, s := range stints {
		if first, ok := start[s.session]; !ok || s.joined.Before(first) {
			start[s.session] = s.joined
		}
	}
	slices.SortStableFunc(stints, func(a, b *stint) int {
		return cmp.Or(cmp.Compare(a.room, b.room), start[a.session].Compare(start[b.session]), cmp.Compare(a.session, b.session),
			cmp.Compare(a.participant, b.participant), a.joined.Compare(b.joined))
	})
	rows := [][]string{{"room", "session", "participant", "name", "joinedAt", "leftAt", "seconds"}}
	totals := make(map[string]float64)
	names := make(map[string]string)
	for _, s := range stints {
		left, secs := "", ""
		if !s.left.IsZero() {
			d := s.left.Sub(s.joined).Seconds()
			left, secs = stamp(s.left), strconv.FormatFloat(d, 'f', 3, 64)
			totals[s.participant] += d
		}
		names[s.participant] = s.name
		rows = append(rows, []string{s.room, s.session, s.participant, s.name, stamp(s.joined), left, secs})
	}
	rows = append(rows, nil, []string{"participant", "name", "seconds"})
	for _, p := range slices.Sorted(maps.Keys(names)) {
		rows = append(rows, []string{p, names[p], strconv.FormatFloat(totals[p], 'f', 3, 64)})
	}
	return csv.NewWriter(w).WriteAll(rows)
}

func stamp(t time.Time) string { return t.UTC().Format(events.TimeLayout) }
