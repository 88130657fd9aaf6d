// Command notify tells a webhook (or prints) when a chosen participant, or anyone,
// joins a chosen room: it reads rollcall's participant.joined events of that room as
// they come.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", nats.DefaultURL, "NATS server URL")
	stream := fs.String("stream", "ROLLCALL", "rollcall's stream (nats.stream)")
	prefix := fs.String("prefix", "videosdk", "rollcall's subject prefix (nats.subject_prefix)")
	room := fs.String("room", "", "the room to watch (required)")
	who := fs.String("participant", "", `the participantId to watch for ("": anyone)`)
	webhook := fs.String("webhook", "", `URL to POST {"text": …} to ("": print)`)
	limit := fs.Int("n", 0, "stop after this many notices (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *room == "" {
		return errors.New("-room is required")
	}
	nc, err := nats.Connect(*natsURL, nats.Name("rollcall notify"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// Only this room's joins, and only from now on.
	subject := *prefix + "." + events.SubjectJoined + "." + events.EscapeToken(*room) + ".*"
	c, err := js.OrderedConsumer(ctx, *stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	// Nothing shows until someone joins: say what is awaited, and where.
	whom := "anyone"
	if *who != "" {
		whom = "participant " + *who
	}
	fmt.Fprintf(stderr, "notify: waiting for %s to join room %s: new events on %s in stream %s on %s\n",
		whom, *room, subject, *stream, server(nc))
	seen := make(map[string]bool) // ids: an event is noticed once
	for sent := 0; *limit == 0 || sent < *limit; {
		msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return err
		}
		e, err := events.Decode(msg.Data())
		if err != nil || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		d, err := e.Participant()
		if err != nil || (*who != "" && d.ParticipantID != *who) {
			continue
		}
		text := fmt.Sprintf("%s joined room %s at %s (session %s)", name(d), d.RoomID, e.Time.UTC().Format(time.RFC3339), d.SessionID)
		if err := notice(ctx, *webhook, text, stdout); err != nil {
			fmt.Fprintln(stderr, "notify:", err) // a webhook down loses this notice, not the next
		}
		sent++
	}
	return nil
}

// notice posts text to webhook, or prints it if there is none.
func notice(ctx context.Context, webhook, text string, stdout io.Writer) error {
	if webhook == "" {
		_, err := fmt.Fprintln(stdout, text)
		return err
	}
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	return nil
}

// server is the connected server's URL without the credentials it may hold.
func server(nc *nats.Conn) string {
	u, err := url.Parse(nc.ConnectedUrl())
	if err != nil {
		return nc.ConnectedAddr() // not expected: nats.go parsed it to connect
	}
	u.User = nil
	return u.String()
}

func name(d events.ParticipantData) string {
	if d.Name == "" {
		return d.ParticipantID
	}
	return d.Name + " (" + d.ParticipantID + ")"
}
