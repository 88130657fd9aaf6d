package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

// pollTimes records when each session's active list was asked for its first page:
// one poll, whoever made it.
type pollTimes struct {
	mu    sync.Mutex
	polls map[string][]time.Time
}

func (p *pollTimes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v2/sessions/"), "/participants/active"); ok && r.URL.Query().Get("page") == "1" {
			p.mu.Lock()
			p.polls[id] = append(p.polls[id], time.Now())
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// longestGap is the longest time a session went unpolled between from and to.
func (p *pollTimes) longestGap(ids []string, from, to time.Time) (string, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var worst string
	var gap time.Duration
	for _, id := range ids {
		last := from
		for _, at := range append(slices.Clone(p.polls[id]), to) {
			if at.Before(from) || at.After(to) {
				continue
			}
			if d := at.Sub(last); d > gap {
				worst, gap = id, d
			}
			last = at
		}
	}
	return worst, gap
}

// count is how many polls each session had between from and to, in all.
func (p *pollTimes) count(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, times := range p.polls {
		for _, at := range times {
			if !at.Before(from) && !at.After(to) {
				n++
			}
		}
	}
	return n
}

// TestClusterReplicas runs three workers (the real binary) on a three-node JetStream
// cluster (R3 stream and buckets), sharing twelve churning sessions. While the world
// churns, one worker is killed with SIGKILL and started again, one is paused with
// SIGSTOP for longer than lease_ttl and then continued, and a NATS node is restarted.
// At the end the stream must match the world exactly (every stint once, every left
// with its end, nothing twice); no session may go unpolled for longer than lease_ttl
// and two intervals (with a second of slack for this shared machine); and while
// calm, the sessions are polled about once an interval in all, not once per replica.
func TestClusterReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster and three workers for a minute")
	}
	const (
		interval = time.Second
		leaseTTL = 3 * time.Second
		nodes    = 3
	)
	bin := buildRollcall(t)
	cluster := natstest.StartCluster(t, nodes)

	sessions := map[string]string{}
	var ids []string
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	for i := range 12 {
		id := fmt.Sprintf("cl-%02d", i)
		sessions[id], ids = fmt.Sprintf("room-%02d", i), append(ids, id)
		api.StartSession(id, sessions[id])
		for j := range 3 {
			api.Join(id, fmt.Sprintf("%s-p%d", id, j), "name")
		}
	}
	polls := &pollTimes{polls: map[string][]time.Time{}}
	srv := httptest.NewServer(polls.wrap(api))
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	config := writeConfig(t, dir, srv.URL, cluster.URLs(), 0, ids, nil)
	addToNATS(t, config, "replicas = 3\nlease_ttl = \"3s\"")

	var runs []*crashRun
	keepLogsOnFailure(t, &runs)
	start := func(name string) *crashRun {
		r := startReplica(t, bin, config, dir, len(runs), name)
		runs = append(runs, r)
		return r
	}
	w1, w2, w3 := start("w1"), start("w2"), start("w3")
	began := time.Now()
	js := natstest.JetStream(t, cluster.URLs())
	published := natstest.CountPublishes(t, js.Conn(), "videosdk.>")
	tail := &streamTail{js: js, contract: testkit.NewContract(t)}
	testkit.Eventually(t, 30*time.Second, "every session started", func() bool {
		n := 0
		for _, e := range tail.read(t) {
			if e.Type == "live.videosdk.session.started" {
				n++
			}
		}
		return n == len(ids)
	})
	settled := time.Now()
	t.Logf("every session polled %v after the workers started", settled.Sub(began).Round(time.Millisecond))

	// rollcall tracked asks every replica: who polls what, and how many leases each
	// holds. The replicas are still sharing the sessions out, a lease a round, and a
	// lease given up is in no one's hands until another replica claims it: asked in
	// between (a few milliseconds, longer on a loaded machine), one is missing.
	var out []byte
	held := 0
	ok := func() bool {
		tracked := exec.Command(bin, "tracked", "-config", config)
		tracked.Env = append(os.Environ(), "VIDEOSDK_SECRET="+testSecret)
		var err error
		if out, err = tracked.CombinedOutput(); err != nil {
			t.Fatalf("rollcall tracked: %v\n%s", err, out)
		}
		held = 0
		for _, line := range strings.Split(string(out), "\n") {
			var name string
			var n int
			if _, err := fmt.Sscanf(line, "replica %s holds %d leases", &name, &n); err == nil {
				held += n
			}
		}
		return held == len(ids) && strings.Count(string(out), "session  cl-") == len(ids)
	}
	for range 3 {
		if ok() {
			break
		}
		time.Sleep(interval)
	}
	if held != len(ids) || strings.Count(string(out), "session  cl-") != len(ids) {
		t.Errorf("rollcall tracked shows %d leases held three times in a row, want %d, one line per session:\n%s", held, len(ids), out)
	}

	// Calm: polls in three intervals, in all (before the churn: no rescans).
	time.Sleep(4 * interval)
	calm := polls.count(settled.Add(interval), settled.Add(4*interval))
	t.Logf("polls in three intervals while calm, all replicas together: %d for %d sessions", calm, len(ids))
	if calm > 3*len(ids)*3/2 {
		t.Errorf("%d polls in three intervals for %d sessions: sessions are polled by several replicas", calm, len(ids))
	}

	churnCtx, stopChurn := context.WithCancel(context.Background())
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		api.Churn(churnCtx, sim.ChurnConfig{Rooms: len(ids), MaxParticipants: 6, Interval: 300 * time.Millisecond, Seed: 12})
	}()
	t.Cleanup(func() { stopChurn(); <-churned })
	time.Sleep(2 * interval)

	faults := time.Now()
	w1.kill(t) // its leases expire after lease_ttl
	time.Sleep(2 * leaseTTL)
	w1 = start("w1") // back under its name: takes its share again, slowly
	if err := pause(w2.cmd.Process); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * leaseTTL) // paused past its leases' end
	if err := resume(w2.cmd.Process); err != nil {
		t.Fatal(err)
	}
	time.Sleep(leaseTTL)
	if !strings.Contains(w2.logs.String(), "lease lost") {
		t.Errorf("w2, paused past its leases' end, does not say it lost them:\n%s", lastLines(w2.logs.String(), 40))
	}
	cluster.Stop(2) // a NATS node goes away, and comes back on the same storage
	time.Sleep(leaseTTL)
	cluster.Start(2)
	time.Sleep(2 * leaseTTL)
	worst, gap := polls.longestGap(ids, faults, time.Now())
	t.Logf("longest time a session went unpolled through the faults: %v (%s)", gap.Round(time.Millisecond), worst)
	if limit := leaseTTL + 2*interval + time.Second; gap > limit {
		t.Errorf("session %s went unpolled for %v, want at most lease_ttl + two intervals (+1 s): %v", worst, gap.Round(time.Millisecond), limit)
	}

	// The world stands still; the stream must catch up with it exactly.
	stopChurn()
	<-churned
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := checkCrash(sessions, nil, groundTruth(api, sessions), tail.read(t))
		if len(c.problems) == 0 {
			t.Logf("%d events in the stream; %d stints, %d of them reconciled; %d events published more than once, dropped by the stream as duplicates",
				len(tail.evs), c.seen, c.reconciled, len(published.Republished()))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not catch up with the world within 60s:\n%s", c.report())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range []*crashRun{w1, w2, w3} {
		w.term(t)
	}
}

// TestRollingDeploy: a second worker starts before the first stops, on one NATS server,
// as a rolling deploy does. Neither logs an error (two workers on one broker used to
// log "state changed since it was loaded" every few seconds), the first gives its
// sessions to the second when it stops, and the stream matches the world.
func TestRollingDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two workers for several seconds")
	}
	bin := buildRollcall(t)
	ns := natstest.Start(t)
	sessions := map[string]string{"rd-1": "room-1", "rd-2": "room-2", "rd-3": "room-3", "rd-4": "room-4"}
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(sessions)) {
		api.StartSession(id, sessions[id])
		api.Join(id, id+"-a", "a")
		ids = append(ids, id)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	config := writeConfig(t, dir, srv.URL, ns.ClientURL(), 0, ids, nil)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	tail := &streamTail{js: js, contract: testkit.NewContract(t)}
	var runs []*crashRun
	keepLogsOnFailure(t, &runs)
	old := startReplica(t, bin, config, dir, 0, "old")
	runs = append(runs, old)
	settle := func(step string) {
		t.Helper()
		testkit.Eventually(t, 20*time.Second, step, func() bool {
			return len(checkCrash(sessions, nil, groundTruth(api, sessions), tail.read(t)).problems) == 0
		})
	}
	settle("the old worker's first polls")
	next := startReplica(t, bin, config, dir, 1, "new")
	runs = append(runs, next)
	for i, id := range ids { // the world goes on through the deploy
		api.Join(id, fmt.Sprintf("%s-b%d", id, i), "b")
		time.Sleep(500 * time.Millisecond)
	}
	old.term(t)
	for _, id := range ids {
		api.Leave(id, id+"-a")
	}
	settle("after the old worker stopped")
	time.Sleep(2 * time.Second) // the new one's polls go on, and nothing more comes
	settle("two intervals later")
	next.term(t)
	for _, r := range runs {
		for _, line := range strings.Split(r.logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "state changed since it was loaded") {
				t.Errorf("run %d logged: %s", r.n, line)
			}
		}
	}
}

// TestKilledWorkerRestartsAtOnce: a single worker on an external server, under its
// default replica name, killed with SIGKILL and started again, as a supervisor does:
// the new process is another replica, and its predecessor's leases would last
// lease_ttl (a minute here). It finds its predecessor on its host gone, takes them
// over, and publishes what happened meanwhile well before they would expire. A
// worker beside it on the same host, alive, keeps its own.
func TestKilledWorkerRestartsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary three times")
	}
	bin := buildRollcall(t)
	ns := natstest.Start(t)
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	ids := []string{"k-1", "k-2", "k-3", "k-4"}
	for _, id := range ids {
		api.StartSession(id, "room-"+id)
		api.Join(id, id+"-a", "a")
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	config := writeConfig(t, dir, srv.URL, ns.ClientURL(), 0, ids, nil)
	addToNATS(t, config, `lease_ttl = "1m"`)
	js := natstest.JetStream(t, ns.ClientURL())
	tail := &streamTail{js: js, contract: testkit.NewContract(t)}
	var runs []*crashRun
	keepLogsOnFailure(t, &runs)
	joined := func(id string) bool {
		return slices.ContainsFunc(tail.read(t), func(e crashEvent) bool {
			return e.Type == "live.videosdk.participant.joined" && e.Data.ParticipantID == id
		})
	}
	first := startRun(t, bin, config, dir, 0)
	runs = append(runs, first)
	testkit.Eventually(t, 20*time.Second, "the first run's joins", func() bool { return joined("k-4-a") && joined("k-1-a") })
	first.kill(t)
	killed := time.Now()
	for _, id := range ids {
		api.Join(id, id+"-b", "b")
	}
	second := startRun(t, bin, config, dir, 1)
	runs = append(runs, second)
	testkit.Eventually(t, 20*time.Second, "the second run's joins", func() bool {
		return !slices.ContainsFunc(ids, func(id string) bool { return !joined(id + "-b") })
	})
	t.Logf("every session polled again %v after the kill, with lease_ttl 1m", time.Since(killed).Round(10*time.Millisecond))
	if !strings.Contains(second.logs.String(), "taking over the leases of a replica that is gone") {
		t.Errorf("the second run does not say it took its predecessor's leases over:\n%s", lastLines(second.logs.String(), 40))
	}

	// A third beside it, on the same host: the second is alive, and keeps its leases.
	leases, err := publisher.ReadLeases(t.Context(), js, "ROLLCALL_LEASES")
	if err != nil {
		t.Fatal(err)
	}
	owners := func() map[string]string {
		owner, _, err := leases.Owners(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return owner
	}
	before := owners()
	third := startRun(t, bin, config, dir, 2)
	runs = append(runs, third)
	testkit.Eventually(t, 20*time.Second, "the third's heartbeat", func() bool {
		live, err := leases.Live(t.Context())
		return err == nil && len(live) == 2
	})
	time.Sleep(2 * time.Second) // the rest of its first round, which would take over
	if d := cmp.Diff(before, owners()); d != "" || strings.Contains(third.logs.String(), "taking over") {
		t.Errorf("the third run took leases from the second, alive (-before +after):\n%s\n%s", d, lastLines(third.logs.String(), 40))
	}
	third.term(t)
	second.term(t)
}

// addToNATS adds lines to the [nats] table of the config file that writeConfig wrote.
func addToNATS(t *testing.T, config, lines string) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = `duplicate_window = "1h"`
	b = []byte(strings.Replace(string(b), anchor, anchor+"\n"+lines, 1))
	if err := os.WriteFile(config, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
