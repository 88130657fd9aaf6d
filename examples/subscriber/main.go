// Command subscriber is a durable JetStream consumer of rollcall's events, a start for
// a service of one's own: it handles each event (here, prints it), then acknowledges
// it; it drops repeats by event id, remembered in a file, so that an event handled
// but not acknowledged before a crash is not counted twice after the restart; and it
// can replay the events stored since a time.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	stream := fs.String("stream", "ROLLCALL", "rollcall's stream (nats.stream)")
	durable := fs.String("durable", "rollcall-subscriber", "the durable consumer's name: where this subscriber resumes")
	filter := fs.String("filter", "videosdk.>", "subjects to read")
	seenPath := fs.String("seen", "", "file of the ids of events handled (default rollcall/subscriber/DURABLE.seen in the user's cache directory)")
	since := fs.String("since", "", "replay the events stored since this RFC 3339 time, then stop (nothing acknowledged or remembered)")
	limit := fs.Int("n", 0, "stop after handling this many events (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.Name("rollcall subscriber"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if *since != "" {
		from, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return fmt.Errorf("-since: %w", err)
		}
		return replay(ctx, js, *stream, *filter, from, stdout)
	}
	// The consumer first: its name, checked there, names the file of ids by default.
	c, err := js.CreateOrUpdateConsumer(ctx, *stream, jetstream.ConsumerConfig{
		Durable: *durable, FilterSubject: *filter, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", *durable, *stream, err)
	}
	if *seenPath == "" {
		if *seenPath, err = defaultSeen(*durable); err != nil {
			return err
		}
	}
	seen, err := openSeen(*seenPath)
	if err != nil {
		return err
	}
	defer func() { _ = seen.Close() }() // each add was synced: nothing is lost if it fails
	fmt.Fprintf(stderr, "subscriber: consumer %s on %s, %s; ids of the events handled in %s\n", *durable, *stream, *filter, *seenPath)
	// One message at a time, and none fetched ahead: a message fetched but not handled
	// when the subscriber stops would wait out AckWait before it is delivered again.
	for handled := 0; *limit == 0 || handled < *limit; {
		msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // nothing new yet
		}
		if err != nil {
			return err
		}
		e, err := events.Decode(msg.Data())
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "subscriber: not an event, dropped: %v\n", err)
		case seen.has(e.ID):
			// Handled before a restart, not acknowledged then: acknowledged now.
		default:
			fmt.Fprintln(stdout, line(e))
			if err := seen.add(e.ID); err != nil { // remembered before the acknowledgement
				return err
			}
			handled++
		}
		if err := msg.DoubleAck(ctx); err != nil {
			return fmt.Errorf("acknowledge: %w", err)
		}
	}
	return nil
}

// replay prints the events stored since from, with an ordered consumer that leaves
// nothing behind on the server, and stops at the last one stored when it started.
func replay(ctx context.Context, js jetstream.JetStream, stream, filter string, from time.Time, stdout io.Writer) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		return err
	}
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return nil // caught up
		}
		if err != nil {
			return err
		}
		if e, err := events.Decode(msg.Data()); err == nil {
			fmt.Fprintln(stdout, line(e))
		}
		if meta, err := msg.Metadata(); err == nil && meta.NumPending == 0 {
			return nil
		}
	}
}

// line is how an event is handled here: one line of text.
func line(e events.Event) string {
	kind := strings.TrimPrefix(e.Type, "live.videosdk.")
	if d, err := e.Participant(); err == nil {
		return fmt.Sprintf("%s %s %s %s %s", e.Time.UTC().Format(events.TimeLayout), kind, d.SessionID, d.ParticipantID, d.Name)
	}
	d, _ := e.Session()
	return fmt.Sprintf("%s %s %s", e.Time.UTC().Format(events.TimeLayout), kind, d.SessionID)
}

// seenFile is the set of ids of events handled, kept in a file, one id a line.
type seenFile struct {
	f   *os.File
	ids map[string]bool
}

// defaultSeen is where the ids go without -seen: in the user's cache directory, not
// the working directory (a repository's, often), one file per durable consumer, since
// each consumer handles every event once.
func defaultSeen(durable string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no default for -seen: %w", err)
	}
	return filepath.Join(dir, "rollcall", "subscriber", durable+".seen"), nil
}

func openSeen(path string) (*seenFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &seenFile{f: f, ids: make(map[string]bool)}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.ids[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		_ = f.Close() // the error to report is the read's
		return nil, err
	}
	return s, nil
}

func (s *seenFile) has(id string) bool { return s.ids[id] }

// add remembers id, on disk, before the event is acknowledged.
func (s *seenFile) add(id string) error {
	if _, err := s.f.WriteString(id + "\n"); err != nil {
		return err
	}
	s.ids[id] = true
	return s.f.Sync()
}

func (s *seenFile) Close() error { return s.f.Close() }
