package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
	"golang.org/x/time/rate"
)

// basePage is a page of active participants as the fetch-only baseline decodes it:
// with encoding/json, into the fields that events need and nothing else.
type basePage struct {
	PageInfo basePageInfo  `json:"pageInfo"`
	Data     []baseSession `json:"data"`
}

// baseAll is a page of a session's list of all participants, decoded so.
type baseAll struct {
	PageInfo basePageInfo `json:"pageInfo"`
	Data     baseSession  `json:"data"`
}

type basePageInfo struct {
	LastPage int `json:"lastPage"`
}

type baseSession struct {
	ID           string     `json:"_id"`
	RoomID       string     `json:"roomId"`
	Status       string     `json:"status"`
	Start        *time.Time `json:"start"`
	End          *time.Time `json:"end"`
	Participants []struct {
		ParticipantID string          `json:"participantId"`
		Name          string          `json:"name"`
		Mode          string          `json:"mode"`
		DeviceInfo    json.RawMessage `json:"deviceInfo"`
		GeoLocation   json.RawMessage `json:"geoLocation"`
		Timelog       []struct {
			Start time.Time  `json:"start"`
			End   *time.Time `json:"end"`
		} `json:"timelog"`
	} `json:"participants"`
}

// fetcher is the baseline: the requests a poll makes, every page of every session,
// decoded, with the same concurrency, rate limit and connection pool as the worker,
// and nothing else done with them.
type fetcher struct {
	o       options
	base    string
	token   string
	client  *http.Client
	limiter *rate.Limiter
}

func newFetcher(o options, apiURL string) (*fetcher, error) {
	tok, err := poller.NewMinter(apiKey, apiSecret, time.Hour, time.Now).Token()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64 // as the worker's client
	limit := rate.Inf
	if o.rateLimit > 0 {
		limit = rate.Limit(o.rateLimit)
	}
	return &fetcher{o: o, base: apiURL, token: string(tok), client: &http.Client{Transport: t}, limiter: rate.NewLimiter(limit, 1)}, nil
}

// cycle fetches the first n sessions once, o.concurrency at a time, and returns how
// many participants it read.
func (f *fetcher) cycle(ctx context.Context, n int) (int, error) {
	slots := make(chan struct{}, f.o.concurrency)
	var mu sync.Mutex
	var read int
	var first error
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			n, err := f.session(ctx, sessionID(i))
			mu.Lock()
			defer mu.Unlock()
			read += n
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	return read, first
}

func (f *fetcher) session(ctx context.Context, id string) (int, error) {
	read := 0
	for page, last := 1, 1; page <= last; page++ {
		var p basePage
		if err := f.get(ctx, id, page, &p); err != nil {
			return read, err
		}
		last = p.PageInfo.LastPage
		for _, d := range p.Data {
			read += len(d.Participants)
		}
	}
	return read, nil
}

func (f *fetcher) get(ctx context.Context, id string, page int, into any) error {
	body, err := f.page(ctx, id, "/participants/active", page)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, into)
}

// lists reads the lists of all participants of n sessions, o.concurrency at a time,
// every page, as the worker reads them for reconciliation (poll.reconcile_schedule),
// decoded as the active lists are.
func (f *fetcher) lists(ctx context.Context, n int) error {
	slots := make(chan struct{}, f.o.concurrency)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			for page, last := 1, 1; page <= last; page++ {
				body, err := f.page(ctx, sessionID(i%f.o.sessions), "/participants", page)
				var p baseAll
				if err == nil {
					err = json.Unmarshal(body, &p)
				}
				if err != nil {
					errs <- err
					return
				}
				last = p.PageInfo.LastPage
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// page fetches one page of a session's list at path (its active participants, or all
// of them), under the rate limit.
func (f *fetcher) page(ctx context.Context, id, path string, page int) ([]byte, error) {
	if err := f.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	q := url.Values{"page": {strconv.Itoa(page)}, "perPage": {strconv.Itoa(f.o.perPage)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/v2/sessions/"+id+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", f.token)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("session %s page %d: http %d", id, page, resp.StatusCode)
	}
	return body, nil
}

// sample returns the participants of the world's first session as the worker reads
// them, to publish events of the same shape and size as the worker's.
func (f *fetcher) sample(ctx context.Context) (diff.Snapshot, error) {
	var snap diff.Snapshot
	for page, last := 1, 1; page <= last; page++ {
		body, err := f.page(ctx, sessionID(0), "/participants/active", page)
		if err != nil {
			return snap, err
		}
		p, err := poller.DecodePage(body)
		if err != nil {
			return snap, err
		}
		if len(p.Sessions) != 1 {
			return snap, fmt.Errorf("page %d: %d session documents", page, len(p.Sessions))
		}
		s := p.Sessions[0]
		snap.SessionID, snap.RoomID, snap.Start = s.SessionID, s.RoomID, s.Start
		snap.Participants = append(snap.Participants, s.Participants...)
		last = p.LastPage
	}
	return snap, nil
}

// publishOnly publishes with rollcall's publisher, o.concurrency sessions at a time,
// as many events as the first poll of the world makes, built from sample, to a
// stream of its own; it returns the time taken and the mean event size.
func publishOnly(ctx context.Context, js jetstream.JetStream, o options, sample diff.Snapshot) (time.Duration, int, error) {
	name, prefix := "ROLLCALL_LOAD_PUB_"+runID(), "loadpub"+runID()
	if err := publisher.EnsureStream(ctx, js, publisher.StreamConfig{Name: name, Prefix: prefix, Replicas: 1, DuplicateWindow: 10 * time.Minute, MaxAge: time.Hour}, discard); err != nil {
		return 0, 0, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }() // best effort, as in measureWorker
	pub := publisher.New(js, prefix, discard)
	batch := func(i int) (diff.Snapshot, []diff.Change) {
		snap := sample
		snap.SessionID = sessionID(i)
		return snap, firstPoll(sample)
	}
	size, err := eventSize(sample)
	if err != nil {
		return 0, 0, err
	}
	slots := make(chan struct{}, o.concurrency)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.sessions {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			snap, changes := batch(i)
			if err := pub.Publish(ctx, snap, time.Now(), changes); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	return took, size, nil
}

// firstPoll is what a first poll of sample publishes: session.started, and a joined
// for each participant.
func firstPoll(sample diff.Snapshot) []diff.Change {
	changes := []diff.Change{{Kind: diff.SessionStarted}}
	for _, p := range sample.Participants {
		changes = append(changes, diff.Change{Kind: diff.Joined, Participant: p})
	}
	return changes
}

// eventSize is the mean size in bytes of the events of a first poll of sample.
func eventSize(sample diff.Snapshot) (int, error) {
	changes := firstPoll(sample)
	size := 0
	for _, c := range changes {
		b, err := json.Marshal(publisher.NewEvent(sample, time.Now(), c))
		if err != nil {
			return 0, err
		}
		size += len(b)
	}
	return size / len(changes), nil
}

// benchRate matches nats bench's summary: "... stats: 50,253 msgs/sec ~ ...".
var benchRate = regexp.MustCompile(`stats: ([0-9,]+) msgs/sec`)

// natsBench runs `nats bench js pub async --dedup` for msgs messages of size bytes
// on a stream of its own, and returns its rate, its summary line and its own CPU
// time. errNoCLI means the nats CLI is not installed.
func natsBench(ctx context.Context, cli, natsURL string, msgs, size int) (float64, string, time.Duration, error) {
	path, err := exec.LookPath(cli)
	if err != nil {
		return 0, "", 0, errNoCLI
	}
	stream := "ROLLCALL_LOAD_BENCH_" + runID()
	cmd := exec.CommandContext(ctx, path, "bench", "js", "pub", "async", "rollcall-load-bench."+runID(), "--server", natsURL,
		"--msgs", strconv.Itoa(msgs), "--size", strconv.Itoa(size), "--dedup", "--create", "--stream", stream, "--no-progress", "--no-context")
	out, err := cmd.CombinedOutput()
	defer func() { // best effort
		_ = exec.Command(path, "stream", "rm", "-f", stream, "--server", natsURL, "--no-context").Run()
	}()
	if err != nil {
		return 0, "", 0, fmt.Errorf("nats bench: %w: %s", err, out)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	m := benchRate.FindSubmatch(out)
	if m == nil {
		return 0, "", 0, fmt.Errorf("nats bench: no rate in its output: %s", out)
	}
	r, err := strconv.ParseFloat(strings.ReplaceAll(string(m[1]), ",", ""), 64)
	return r, strings.TrimSpace(string(m[0])), cpu, err
}

var errNoCLI = errors.New("the nats CLI is not installed")

// reconcileEvery is how often the worker of cfg reads each session's list of all
// participants when nothing else makes it: poll.reconcile_schedule's interval.
func reconcileEvery(cfg worker.Config) time.Duration {
	s, err := worker.ParseSchedule(cfg.Poll.ReconcileSchedule)
	if err != nil {
		return time.Minute // the default's
	}
	t := s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	return s.Next(t).Sub(t)
}
