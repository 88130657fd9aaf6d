package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rollcall/rollcall/diff"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// errNoWorker says that no worker runs where the config points.
var errNoWorker = errors.New("no rollcall worker is running")

// workerConn is a connection to the NATS server of the worker that a config
// describes, with its tracking bucket, and the worker's answer if one came.
type workerConn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	tracking *publisher.Tracking
	reply    *worker.StatusReply // nil: no worker answered (only with an external server)
}

// dialWorker connects to the NATS server of the worker that cfg describes: nats.url,
// or, for the embedded server, the URL the running worker wrote into store_dir, and
// asks the worker what it tracks. With the embedded server, a worker must answer, and
// be the one of this store_dir.
func dialWorker(ctx context.Context, cfg worker.Config, name string) (*workerConn, error) {
	url := cfg.NATS.URL
	embedded := url == ""
	storeDir, _ := filepath.Abs(cfg.NATS.StoreDir)
	if embedded {
		b, err := os.ReadFile(filepath.Join(storeDir, worker.EmbeddedURLFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w with nats.store_dir %s (no %s there): start `rollcall run` (or `rollcall demo`) first", errNoWorker, cfg.NATS.StoreDir, worker.EmbeddedURLFile)
		}
		if err != nil {
			return nil, err
		}
		url = strings.TrimSpace(string(b))
	}
	auth, err := worker.AuthOptions(cfg.NATS)
	if err != nil {
		return nil, err
	}
	shown := worker.RedactURL(url)
	nc, err := nats.Connect(url, append(auth, nats.Name(name), nats.Timeout(3*time.Second))...)
	if err != nil {
		if embedded {
			return nil, fmt.Errorf("%w with nats.store_dir %s: its embedded server at %s does not answer: %w", errNoWorker, cfg.NATS.StoreDir, shown, err)
		}
		return nil, fmt.Errorf("nats %s: %w", shown, err)
	}
	c := &workerConn{nc: nc}
	c.reply, err = askWorker(ctx, nc, cfg.NATS.Stream)
	switch {
	case embedded && err != nil:
		nc.Close()
		return nil, fmt.Errorf("%w with nats.store_dir %s: no rollcall worker answers at %s, the URL it left", errNoWorker, cfg.NATS.StoreDir, shown)
	case embedded && c.reply.StoreDir != storeDir:
		nc.Close()
		other := "a worker on an external server"
		if c.reply.StoreDir != "" {
			other = "the embedded server of another rollcall, with store_dir " + c.reply.StoreDir
		}
		return nil, fmt.Errorf("%w with nats.store_dir %s: %s, the URL it left, leads to %s", errNoWorker, cfg.NATS.StoreDir, shown, other)
	case err != nil:
		c.reply = nil
	}
	js, err := publisher.NewJetStream(nc)
	if err == nil {
		c.js = js
		c.tracking, err = publisher.OpenTracking(ctx, js, cfg.NATS.TrackingBucket, cfg.NATS.Replicas, slog.New(slog.DiscardHandler))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// askWorker asks the running workers what they track: every replica answers for the
// sessions and rooms it polls and follows. It waits up to 3 s for a first answer, then
// a moment for the others, and merges them.
func askWorker(ctx context.Context, nc *nats.Conn, stream string) (*worker.StatusReply, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(worker.StatusSubject(stream), inbox, nil); err != nil {
		return nil, err
	}
	var merged *worker.StatusReply
	wait := 3 * time.Second
	for {
		msg, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) && merged != nil {
			break
		}
		if err != nil {
			return nil, err
		}
		var r worker.StatusReply
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			return nil, fmt.Errorf("the worker's answer: %w", err)
		}
		if merged == nil {
			merged, wait = &r, 300*time.Millisecond
			continue
		}
		merged.StoreDir = cmp.Or(merged.StoreDir, r.StoreDir)
		merged.Tracked = append(merged.Tracked, r.Tracked...)
	}
	slices.SortStableFunc(merged.Tracked, func(a, b poller.Status) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	// Every replica that held an ended session's lease saw it ended, and says so.
	merged.Tracked = slices.CompactFunc(merged.Tracked, func(a, b poller.Status) bool {
		return a.Kind == b.Kind && a.ID == b.ID && a.Status == poller.StatusEnded && b.Status == poller.StatusEnded
	})
	return merged, nil
}

// find returns what the worker says of a tracked session or room, if it answered.
func (c *workerConn) find(kind, id string) (poller.Status, bool) {
	if c.reply == nil {
		return poller.Status{}, false
	}
	i := slices.IndexFunc(c.reply.Tracked, func(s poller.Status) bool { return s.Kind == kind && s.ID == id })
	if i < 0 {
		return poller.Status{}, false
	}
	return c.reply.Tracked[i], true
}

// kindAndID reads the `session|room ID` arguments.
func kindAndID(cmd string, args []string) (string, string, error) {
	if len(args) != 2 || (args[0] != poller.KindSession && args[0] != poller.KindRoom) || args[1] == "" {
		return "", "", fmt.Errorf("usage: rollcall %s session|room ID [-config PATH]", cmd)
	}
	if err := diff.CheckID(args[1]); err != nil {
		return "", "", fmt.Errorf("rollcall %s: the %s ID is %w", cmd, args[0], err)
	}
	return args[0], args[1], nil
}

// inConfig reports whether the config file tracks a session or room.
func inConfig(cfg worker.Config, kind, id string) bool {
	if kind == poller.KindRoom {
		return slices.Contains(cfg.RoomIDs(), id)
	}
	return slices.Contains(cfg.SessionIDs(), id)
}

// runTrack adds a session or room to the tracking bucket; the worker starts polling
// it at once.
func runTrack(ctx context.Context, cfg worker.Config, args []string, stdout io.Writer) error {
	kind, id, err := kindAndID("track", args)
	if err != nil {
		return err
	}
	if inConfig(cfg, kind, id) {
		fmt.Fprintf(stdout, "%s %s is tracked already, by the config file\n", kind, printable(id))
		return nil
	}
	c, err := dialWorker(ctx, cfg, "rollcall track")
	if err != nil {
		return err
	}
	defer c.nc.Close()
	if err := c.tracking.Track(ctx, kind, id); err != nil {
		return err
	}
	if s, ok := c.find(kind, id); ok {
		fmt.Fprintf(stdout, "tracking %s %s (tracked already, from %s)\n", kind, printable(id), printable(strings.Join(s.From, ", ")))
	} else {
		fmt.Fprintf(stdout, "tracking %s %s\n", kind, printable(id))
	}
	if c.reply == nil {
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
	if inConfig(cfg, kind, id) {
		return fmt.Errorf("%s %s is tracked by the config file ([[%ss]]): remove it there and restart the worker", kind, printable(id), kind)
	}
	c, err := dialWorker(ctx, cfg, "rollcall untrack")
	if err != nil {
		return err
	}
	defer c.nc.Close()
	ok, err := c.tracking.Untrack(ctx, kind, id)
	if err != nil {
		return err
	}
	if !ok {
		if s, found := c.find(kind, id); found {
			return fmt.Errorf("%s %s is not in the tracking bucket: it is followed through %s; untrack that instead", kind, printable(id), printable(strings.Join(s.From, ", ")))
		}
		return fmt.Errorf("%s %s is not tracked", kind, printable(id))
	}
	fmt.Fprintf(stdout, "no longer tracking %s %s (no one is announced as gone; its state is kept)\n", kind, printable(id))
	return nil
}

// runTracked prints what the running worker tracks. With no worker answering, it
// prints what the config file and the bucket track, without status.
func runTracked(ctx context.Context, cfg worker.Config, stdout io.Writer) error {
	c, err := dialWorker(ctx, cfg, "rollcall tracked")
	if err != nil {
		return err
	}
	defer c.nc.Close()
	var list []poller.Status
	if c.reply != nil {
		list = c.reply.Tracked
		// What is tracked and polled by no replica now (a lease not claimed yet, or
		// waiting out a crashed replica's): from the config file and the bucket.
		sessions, rooms, err := c.tracking.List(ctx)
		if err != nil {
			return err
		}
		for _, s := range configured(cfg, sessions, rooms) {
			if !slices.ContainsFunc(list, func(r poller.Status) bool { return r.Kind == s.Kind && r.ID == s.ID }) {
				s.Status = "no replica"
				list = append(list, s)
			}
		}
		slices.SortStableFunc(list, func(a, b poller.Status) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
		})
	} else {
		sessions, rooms, err := c.tracking.List(ctx)
		if err != nil {
			return err
		}
		list = configured(cfg, sessions, rooms)
		fmt.Fprintln(stdout, "no rollcall worker answered: what is tracked, without status")
	}
	live, leases := c.leases(ctx, cfg)
	return printTracked(stdout, list, c.reply != nil, live, leases)
}

// printTracked prints what is tracked, a line each (with the worker's status if
// answered), then the leases each replica holds; what comes from the API, the bucket
// or a replica's name is printable.
func printTracked(w io.Writer, list []poller.Status, answered bool, live []string, leases map[string]int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tFROM\tSTATUS\tPRESENT\tLAST COMPLETE POLL\tREPLICA")
	for _, s := range list {
		last, present := "-", "-"
		if !s.Last.IsZero() {
			last = s.Last.UTC().Format(time.RFC3339)
		}
		if s.Kind == poller.KindSession && answered && s.Status != "no replica" {
			present = strconv.Itoa(s.Present)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(s.Kind), printable(s.ID), printable(strings.Join(s.From, ", ")),
			printable(cmp.Or(s.Status, "-")), present, last, printable(cmp.Or(s.Replica, "-")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range list {
		if s.SetAside > 0 {
			fmt.Fprintf(w, "%s %s: %d records of its last answer set aside (the worker's log says which, and why)\n", s.Kind, printable(s.ID), s.SetAside)
		}
		if s.Problem != "" {
			fmt.Fprintf(w, "%s %s: failing: %s\n", s.Kind, printable(s.ID), printable(s.Problem))
		}
	}
	for _, r := range slices.Sorted(maps.Keys(leases)) {
		note := ""
		if !slices.Contains(live, r) {
			note = " (not alive: they expire within nats.lease_ttl of its last renewal)"
		}
		fmt.Fprintf(w, "replica %s holds %d leases%s\n", printable(r), leases[r], note)
	}
	return nil
}

// leases reads the lease bucket: the replicas whose heartbeat is in it, and how many
// leases each replica holds, alive or not (every live one, 0 included); nothing if
// there is no such bucket (an embedded server's worker uses none).
func (c *workerConn) leases(ctx context.Context, cfg worker.Config) (live []string, held map[string]int) {
	held = map[string]int{}
	leases, err := publisher.ReadLeases(ctx, c.js, cfg.NATS.LeaseBucket)
	if err != nil {
		return nil, held
	}
	live, _ = leases.Live(ctx)
	for _, r := range live {
		held[r] = 0
	}
	owner, _, _ := leases.Owners(ctx)
	for _, r := range owner {
		held[r]++
	}
	return live, held
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
