package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// errNoWorker says that no worker runs where the config points.
var errNoWorker = errors.New("no rollcall worker is running")

// dialWorker connects to the NATS server of the worker that cfg describes: nats.url,
// or, for the embedded server, the URL the running worker wrote into store_dir.
func dialWorker(cfg worker.Config, name string) (*nats.Conn, error) {
	url := cfg.NATS.URL
	if url == "" {
		b, err := os.ReadFile(filepath.Join(cfg.NATS.StoreDir, worker.EmbeddedURLFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w with nats.store_dir %s (no %s there): start `rollcall run` first", errNoWorker, cfg.NATS.StoreDir, worker.EmbeddedURLFile)
		}
		if err != nil {
			return nil, err
		}
		url = strings.TrimSpace(string(b))
	}
	nc, err := nats.Connect(url, append(worker.AuthOptions(cfg.NATS), nats.Name(name), nats.Timeout(3*time.Second))...)
	if err != nil {
		if cfg.NATS.URL == "" {
			return nil, fmt.Errorf("%w: its embedded server at %s does not answer: %w", errNoWorker, url, err)
		}
		return nil, fmt.Errorf("nats %s: %w", worker.RedactURL(url), err)
	}
	return nc, nil
}

// openTracking opens the tracking bucket of the worker that cfg describes.
func openTracking(ctx context.Context, cfg worker.Config, name string) (*nats.Conn, *publisher.Tracking, error) {
	nc, err := dialWorker(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	js, err := publisher.NewJetStream(nc, 1)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	t, err := publisher.OpenTracking(ctx, js, cfg.NATS.TrackingBucket, cfg.NATS.Replicas, slog.New(slog.DiscardHandler))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, t, nil
}

// kindAndID reads the `session|room ID` arguments.
func kindAndID(cmd string, args []string) (string, string, error) {
	if len(args) != 2 || (args[0] != poller.KindSession && args[0] != poller.KindRoom) || args[1] == "" {
		return "", "", fmt.Errorf("usage: rollcall %s session|room ID [-config PATH]", cmd)
	}
	return args[0], args[1], nil
}

// runTrack adds a session or room to the tracking bucket; the worker starts polling
// it at once.
func runTrack(ctx context.Context, cfg worker.Config, args []string, stdout io.Writer) error {
	kind, id, err := kindAndID("track", args)
	if err != nil {
		return err
	}
	nc, t, err := openTracking(ctx, cfg, "rollcall track")
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := t.Track(ctx, kind, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tracking %s %s\n", kind, id)
	if _, err := askWorker(ctx, nc, cfg.NATS.Stream); err != nil {
		fmt.Fprintln(stdout, "no rollcall worker answered: it will be polled once one runs")
	}
	return nil
}

// runUntrack removes a session or room from the tracking bucket. No participant
// leaves because of it: its state is kept, and tracking it again resumes from it.
func runUntrack(ctx context.Context, cfg worker.Config, args []string, stdout io.Writer) error {
	kind, id, err := kindAndID("untrack", args)
	if err != nil {
		return err
	}
	inConfig := slices.Contains(cfg.SessionIDs(), id)
	if kind == poller.KindRoom {
		inConfig = slices.Contains(cfg.RoomIDs(), id)
	}
	if inConfig {
		return fmt.Errorf("%s %s is tracked by the config file ([[%ss]]): remove it there and restart the worker", kind, id, kind)
	}
	nc, t, err := openTracking(ctx, cfg, "rollcall untrack")
	if err != nil {
		return err
	}
	defer nc.Close()
	ok, err := t.Untrack(ctx, kind, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %s is not tracked", kind, id)
	}
	fmt.Fprintf(stdout, "no longer tracking %s %s (no one is announced as gone; its state is kept)\n", kind, id)
	return nil
}

// runTracked prints what the running worker tracks. With no worker answering, it
// prints what the config file and the bucket track, without status.
func runTracked(ctx context.Context, cfg worker.Config, stdout io.Writer) error {
	nc, t, err := openTracking(ctx, cfg, "rollcall tracked")
	if err != nil {
		return err
	}
	defer nc.Close()
	list, err := askWorker(ctx, nc, cfg.NATS.Stream)
	if err != nil {
		sessions, rooms, err := t.List(ctx)
		if err != nil {
			return err
		}
		list = configured(cfg, sessions, rooms)
		fmt.Fprintln(stdout, "no rollcall worker answered: what is tracked, without status")
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tFROM\tSTATUS\tLAST COMPLETE POLL")
	for _, s := range list {
		last := "-"
		if !s.Last.IsZero() {
			last = s.Last.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Kind, s.ID, strings.Join(s.From, ", "), cmp.Or(s.Status, "-"), last)
	}
	return tw.Flush()
}

// askWorker asks the running worker what it tracks.
func askWorker(ctx context.Context, nc *nats.Conn, stream string) ([]poller.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, worker.StatusSubject(stream), nil)
	if err != nil {
		return nil, err
	}
	var list []poller.Status
	if err := json.Unmarshal(msg.Data, &list); err != nil {
		return nil, fmt.Errorf("the worker's answer: %w", err)
	}
	return list, nil
}

// configured lists what the config file and the bucket track, rooms first.
func configured(cfg worker.Config, bucketSessions, bucketRooms []string) []poller.Status {
	var out []poller.Status
	add := func(kind string, config, bucket []string) {
		from := make(map[string][]string)
		for _, id := range config {
			from[id] = append(from[id], worker.OriginConfig)
		}
		for _, id := range bucket {
			from[id] = append(from[id], worker.OriginBucket)
		}
		for _, id := range slices.Sorted(maps.Keys(from)) {
			out = append(out, poller.Status{Kind: kind, ID: id, From: from[id]})
		}
	}
	add(poller.KindRoom, cfg.RoomIDs(), bucketRooms)
	add(poller.KindSession, cfg.SessionIDs(), bucketSessions)
	return out
}
