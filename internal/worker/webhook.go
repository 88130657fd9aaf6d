package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/httpserver"
	"github.com/rollcall/rollcall/internal/webhook"
	"github.com/rollcall/rollcall/poller"
)

// HintSubject is where the replica that receives a webhook publishes its hint (a
// webhook.Hint as JSON), and where every replica listens for hints: the one that
// holds the session's lease polls it, the others pass it over. It is outside the
// stream's subjects, so that nothing stores the hints.
func HintSubject(stream string) string { return "_rollcall." + stream + ".hint" }

// OriginWebhook is the origin written in the tracking bucket for a room followed
// because a verified webhook came from it (webhook.follow_rooms).
const OriginWebhook = "webhook"

const (
	// webhookGrace is how long the webhooks under way get to be answered at shutdown,
	// before the polls' grace: they need only their signature checked.
	webhookGrace = 500 * time.Millisecond
	// followQueued bounds the rooms waiting to be written into the tracking bucket;
	// beyond, they are dropped, and the room's next webhook asks again.
	followQueued = 64
	// followAgain is how long a room written into the tracking bucket, or tried, is
	// not written again: its webhooks keep coming until the worker's watch of the
	// bucket has it followed. A room untracked since, or whose write failed, is
	// written again by a webhook after that.
	followAgain = time.Minute
)

// listenWebhooks sets the webhook receiver up on its own listener (webhook.listen),
// apart from http.listen: it is the one to make public. Run serves it.
func (w *Worker) listenWebhooks() error {
	c := w.cfg.Webhook
	rc := webhook.Config{Path: c.Path, Hint: w.publishHint, Log: w.log, Metrics: w.metrics}
	if c.PublicKeyFile != "" {
		key, err := webhook.ReadKeyFile(c.PublicKeyFile)
		if err != nil {
			return fmt.Errorf("webhook.public_key_file: %w", err)
		}
		rc.Key = key
	} else {
		rc.KeyURL = strings.TrimRight(w.cfg.VideoSDK.BaseURL, "/") + webhook.KeyPath
	}
	recv, err := webhook.New(rc)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("webhook.listen: %w", err)
	}
	w.hookListener = l
	w.hook = httpserver.New(recv, slog.NewLogLogger(w.log.Handler(), slog.LevelWarn))
	return nil
}

// serveWebhooks serves the receiver until stopWebhooks.
func (w *Worker) serveWebhooks() {
	go func() {
		if err := httpserver.Serve(w.hook, w.hookListener); !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("no longer receiving webhooks", "err", err)
		}
	}()
	key := "fetched from " + strings.TrimRight(w.cfg.VideoSDK.BaseURL, "/") + webhook.KeyPath
	if f := w.cfg.Webhook.PublicKeyFile; f != "" {
		key = "pinned, from " + f
	}
	w.log.Info("receiving webhooks: hints to poll now", "listen", w.hookListener.Addr().String(), "path", w.cfg.Webhook.Path,
		"public_key", key, "follow_rooms", w.cfg.Webhook.FollowRooms)
}

// stopWebhooks stops receiving webhooks, first of all at shutdown: no hint comes
// once polls stop.
func (w *Worker) stopWebhooks() {
	ctx, cancel := context.WithTimeout(context.Background(), webhookGrace)
	defer cancel()
	if err := w.hook.Shutdown(ctx); err != nil {
		_ = w.hook.Close() // answers cut short: the sender may send again, and polls catch up
	}
}

// publishHint hands a verified webhook's hint to every replica, this one included,
// over core NATS, without waiting: the replica holding the session's lease polls it.
// Core NATS is not durable: a hint published while NATS is away waits in the
// reconnect buffer and is lost if the connection does not come back. That is
// harmless: polls keep their schedule and stay the truth, so a lost hint costs
// latency, never an event.
func (w *Worker) publishHint(h webhook.Hint) {
	body, err := json.Marshal(h)
	if err == nil {
		err = w.nc.Publish(HintSubject(w.cfg.NATS.Stream), body)
	}
	if err != nil {
		w.log.Debug("a webhook's hint is lost; polls catch up", "type", h.Type, "session_id", h.SessionID, "err", err)
	}
}

// takeHint gives the Manager a hint from HintSubject. Anyone allowed to publish
// there can send one, so its IDs are checked as a webhook's are; at worst it costs a
// poll, as a replayed webhook does.
func (w *Worker) takeHint(msg *nats.Msg) {
	var h webhook.Hint
	if err := json.Unmarshal(msg.Data, &h); err != nil || diff.CheckID(h.RoomID) != nil || diff.CheckID(h.SessionID) != nil {
		w.log.Debug("passing over a hint that is not one", "subject", msg.Subject)
		return
	}
	w.manager.Hint(poller.Hint{Type: h.Type, RoomID: h.RoomID, SessionID: h.SessionID})
}

// unknownRoom is the Manager's UnknownRoom with webhook.follow_rooms: it runs on the
// Manager's goroutine, so it only hands the room to followRooms.
func (w *Worker) unknownRoom(room string) {
	select {
	case w.follow <- room:
	default: // full: the room's next webhook asks again
	}
}

// followRooms writes each room that unknownRoom hands it into the tracking bucket,
// with origin "webhook", so that the worker follows it (through its watch of the
// bucket) and `rollcall untrack room ID` stops it. A room is written once however
// many webhooks it sends before it is followed, and never over a key that is there.
func (w *Worker) followRooms(ctx context.Context) {
	asked := make(map[string]time.Time) // room -> when it was last written or tried
	for {
		var room string
		select {
		case <-ctx.Done():
			return
		case room = <-w.follow:
		}
		now := time.Now()
		if at, ok := asked[room]; ok && now.Sub(at) < followAgain {
			continue
		}
		maps.DeleteFunc(asked, func(_ string, at time.Time) bool { return now.Sub(at) >= followAgain })
		asked[room] = now
		created, err := w.tracking.Follow(ctx, poller.KindRoom, room, OriginWebhook)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("cannot follow the room a webhook came from; its next webhook tries again", "room_id", room, "err", err)
		case created:
			w.log.Info("following a room because a verified webhook came from it (webhook.follow_rooms)",
				"room_id", room, "tracking_bucket", w.cfg.NATS.TrackingBucket)
		}
	}
}
