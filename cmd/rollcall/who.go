package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/publisher"
)

// errNotInState: an ID that is neither a session nor a live session's room in the
// state bucket.
var errNotInState = errors.New("neither a session nor the room of a live session in rollcall's state")

// whoSession is who is present in one session, as `rollcall who -json` prints it.
type whoSession struct {
	SessionID string       `json:"sessionId"`
	RoomID    string       `json:"roomId"`
	Ended     bool         `json:"ended"`
	Present   []whoPresent `json:"present"`
}

type whoPresent struct {
	ParticipantID string      `json:"participantId"`
	Name          string      `json:"name"`
	JoinedAt      events.Time `json:"joinedAt"`
	Mode          string      `json:"mode"`
	SDKType       string      `json:"sdkType"`
}

// runWho prints who is present now in a session, or in the live sessions of a room,
// from rollcall's state: as of each session's last complete poll.
func runWho(ctx context.Context, cfg worker.Config, id string, asJSON bool, stdout io.Writer) error {
	c, err := dialWorker(ctx, cfg, "rollcall who")
	if err != nil {
		return err
	}
	defer c.nc.Close()
	js, err := publisher.NewJetStream(c.nc)
	if err != nil {
		return err
	}
	store, err := publisher.ReadStore(ctx, js, cfg.NATS.StateBucket)
	if err != nil {
		return err
	}
	found, err := whoIs(ctx, store, id)
	if errors.Is(err, errNotInState) {
		return fmt.Errorf("%s: %w (state bucket %s)", id, err, cfg.NATS.StateBucket)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(found)
	}
	return printWho(stdout, found)
}

// printWho prints who is present in each session, a table per session; what comes
// from the API is printable.
func printWho(w io.Writer, found []whoSession) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range found {
		session, room := printable(s.SessionID), printable(s.RoomID)
		if s.Ended {
			fmt.Fprintf(tw, "session %s (room %s) has ended: no one is present\n", session, room)
			continue
		}
		fmt.Fprintf(tw, "session %s (room %s): %d present\n", session, room, len(s.Present))
		if len(s.Present) == 0 {
			continue
		}
		fmt.Fprintln(tw, "NAME\tPARTICIPANT\tSINCE\tMODE\tSDK")
		for _, p := range s.Present {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(p.Name), printable(p.ParticipantID),
				p.JoinedAt.UTC().Format(time.RFC3339), printable(p.Mode), printable(p.SDKType))
		}
	}
	return tw.Flush()
}

// whoIs finds id as a session in the store, or else as the room of sessions in it.
func whoIs(ctx context.Context, store *publisher.Store, id string) ([]whoSession, error) {
	st, rev, err := store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if rev > 0 || st.Ended {
		return []whoSession{present(id, st)}, nil
	}
	live, err := store.Live(ctx)
	if err != nil {
		return nil, err
	}
	var out []whoSession
	for _, l := range live {
		if l.State.RoomID == id {
			out = append(out, present(l.SessionID, l.State))
		}
	}
	if len(out) == 0 {
		return nil, errNotInState
	}
	return out, nil
}

func present(sessionID string, st diff.State) whoSession {
	s := whoSession{SessionID: sessionID, RoomID: st.RoomID, Ended: st.Ended, Present: []whoPresent{}}
	for _, p := range st.Present {
		s.Present = append(s.Present, whoPresent{ParticipantID: p.ID, Name: p.Name, JoinedAt: events.Time{Time: p.JoinedAt}, Mode: p.Mode, SDKType: p.SDKType})
	}
	return s
}
