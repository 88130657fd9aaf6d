package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/worker"
)

// runTail prints the stream's events as they arrive, one readable line each, and
// says so while it waits for the stream.
func runTail(ctx context.Context, url string, auth []nats.Option, stream string, all bool, w, notices io.Writer) error {
	nc, err := nats.Connect(url, append(auth, nats.Name("rollcall tail"))...)
	if err != nil {
		return fmt.Errorf("nats %s: %w", worker.RedactURL(url), err)
	}
	defer nc.Close()
	return tailWhenReady(ctx, nc, stream, all, w, notices)
}

// tailWhenReady tails the stream once it exists: the worker creates it on start-up,
// which may come after the tail. While the stream is missing it says so once on
// notices, and again when it is there, so that a tail started first is not mute; a nil
// notices says nothing (the demo's stream comes within a moment).
func tailWhenReady(ctx context.Context, nc *nats.Conn, stream string, all bool, w, notices io.Writer) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	waiting := false
	for {
		// A stream that was not there when the tail started holds only what came
		// since: all of it is new.
		msgs, err := follow(ctx, js, stream, all || waiting)
		if err == nil {
			if waiting && notices != nil {
				fmt.Fprintf(notices, "stream %s is there\n", stream)
			}
			waiting = false
			err = printEvents(ctx, msgs, stream, w)
		}
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		if !waiting && notices != nil {
			fmt.Fprintf(notices, "waiting for stream %s on %s: the worker creates it when it starts\n", stream, worker.RedactURL(nc.ConnectedUrl()))
		}
		waiting = true
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// follow starts reading the stream: its new events, or all of them.
func follow(ctx context.Context, js jetstream.JetStream, stream string, all bool) (jetstream.MessagesContext, error) {
	policy := jetstream.DeliverNewPolicy
	if all {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return msgs, nil
}

// printEvents prints a line per event from msgs until ctx ends or the stream fails.
func printEvents(ctx context.Context, msgs jetstream.MessagesContext, stream string, w io.Writer) error {
	// Stop unblocks Next when ctx ends, and frees the consumer when the stream fails.
	defer msgs.Stop()
	defer context.AfterFunc(ctx, msgs.Stop)()
	for {
		m, err := msgs.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		at := time.Now()
		if md, err := m.Metadata(); err == nil {
			at = md.Timestamp
		}
		fmt.Fprintln(w, feedLine(m.Data(), at))
	}
}

// feedLine renders an event for people: when it reached the stream (so that lines come
// in the order the stream holds them), what happened, who, where; what comes from the
// API is printable.
func feedLine(data []byte, at time.Time) string {
	var e struct {
		Type string    `json:"type"`
		Time time.Time `json:"time"`
		Data struct {
			SessionID     string     `json:"sessionId"`
			RoomID        string     `json:"roomId"`
			ParticipantID string     `json:"participantId"`
			Name          string     `json:"name"`
			JoinedAt      *time.Time `json:"joinedAt"`
			LeftAt        *time.Time `json:"leftAt"`
			ObservedAt    time.Time  `json:"observedAt"`
			Detection     string     `json:"detection"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return "unreadable event: " + printable(err.Error())
	}
	d := e.Data
	where := fmt.Sprintf("room %s  session %s", printable(d.RoomID), printable(d.SessionID))
	stamp := at.Local().Format("15:04:05.000")
	if d.Detection == events.DetectionReconciled {
		where += "  (reconciled: no poll saw it)"
	}
	switch e.Type {
	case events.TypeJoined:
		return fmt.Sprintf("%s  joined   %-24s %s", stamp, who(d.Name, d.ParticipantID), where)
	case events.TypeLeft:
		stay := ""
		if d.JoinedAt != nil {
			end := d.ObservedAt
			if d.LeftAt != nil {
				end = *d.LeftAt
			}
			stay = fmt.Sprintf("  (stayed %s)", end.Sub(*d.JoinedAt).Round(100*time.Millisecond))
			if d.LeftAt == nil {
				stay = fmt.Sprintf("  (stayed about %s: its end did not show in time)", end.Sub(*d.JoinedAt).Round(time.Second))
			}
		}
		return fmt.Sprintf("%s  left     %-24s %s%s", stamp, who(d.Name, d.ParticipantID), where, stay)
	case events.TypeSessionStarted:
		return fmt.Sprintf("%s  session started          %s", stamp, where)
	case events.TypeSessionEnded:
		return fmt.Sprintf("%s  session ended            %s", stamp, where)
	}
	return fmt.Sprintf("%s  %s  %s", stamp, printable(strings.TrimPrefix(e.Type, "live.videosdk.")), where)
}

// who is a participant as a feed line shows it, escaped for the terminal.
func who(name, id string) string {
	if name == "" {
		return printable(id)
	}
	return printable(name) + " (" + printable(id) + ")"
}
