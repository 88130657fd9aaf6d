//go:build unix

package presence

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/publisher"
)

// The benchmark's clients run in a child process, told where to connect by these.
const (
	benchURLEnv     = "ROLLCALL_FEED_BENCH_URL"
	benchClientsEnv = "ROLLCALL_FEED_BENCH_CLIENTS"
)

// benchClients is how many clients follow the feed, unfiltered: every event goes to
// each of them.
const benchClients = 1000

// BenchmarkFeedFanOut: 1,000 clients on loopback follow the whole feed while the
// stream receives b.N churning events (joins and lefts as rollcall's publisher
// writes them, about 770 bytes each) at a steady rate. The clients run in a process
// of their own, so that what is measured is the feed's side alone (with the
// embedded NATS server, whose share is the same with or without clients).
//
// It reports the memory each client costs the server (heap in use, and goroutine
// stacks: the growth from before the clients connected to after they have had
// events, divided by the clients), the CPU time of this process per event with the
// clients and without (the same events published with no client: publishing and
// storing them), and the difference per delivery (per event and client); the
// events a second that every client had, which falls short of the rate asked for
// when the machine cannot keep up; and the clients dropped meanwhile, which
// reconnect as browsers do and must still have every event once. Run it as
// docs/performance.md says: -benchtime=1000x.
func BenchmarkFeedFanOut(b *testing.B) {
	for _, rate := range []int{100, 1000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchFanOut(b, rate) })
	}
}

func benchFanOut(b *testing.B, rate int) {
	r := newFeedRig(b, FeedOptions{})
	churn := &churn{r: r}
	// The events in memory are the feed's whatever the clients: fill them first.
	for range 5000 {
		churn.publish(b)
	}
	resp, cancel := r.request(b, "/events", "") // starts the feed's consumer
	resp.Body.Close()
	cancel()
	caughtUp := func() bool {
		r.feed.mu.Lock()
		h := r.feed.hub
		r.feed.mu.Unlock()
		return h.newest() >= churn.last
	}
	waitUntil(b, "the feed has read the stream", caughtUp)

	base := cpuTime()
	churn.paced(b, b.N, rate)
	waitUntil(b, "the feed has read the stream", caughtUp)
	idle := cpuTime() - base
	before := memory()

	clients := startClients(b, r.url+"/events", benchClients)
	waitUntil(b, "every client connected", func() bool { return clients.ask(b).connected == benchClients })
	const warm = 200 // events, so that every client's buffers are in use
	churn.paced(b, warm, rate)
	clients.waitFor(b, warm)
	after := memory()

	b.ResetTimer()
	start, began := cpuTime(), time.Now()
	churn.paced(b, b.N, rate)
	end := clients.waitFor(b, warm+b.N)
	busy, took := cpuTime()-start, time.Since(began)
	b.StopTimer()

	perEvent := busy.Seconds() / float64(b.N) * 1e6
	perIdle := idle.Seconds() / float64(b.N) * 1e6
	b.ReportMetric(float64(after.heap-before.heap)/benchClients, "heap-B/client")
	b.ReportMetric(float64(after.stacks-before.stacks)/benchClients, "stack-B/client")
	b.ReportMetric(perEvent, "cpu-µs/event")
	b.ReportMetric(perIdle, "no-clients-cpu-µs/event")
	b.ReportMetric((perEvent-perIdle)*1000/benchClients, "cpu-ns/delivery")
	b.ReportMetric(float64(b.N)/took.Seconds(), "events/s")
	b.ReportMetric(r.value(b, "rollcall_sse_dropped_total"), "dropped")
	b.ReportMetric(float64(end.reconnects), "reconnects")
}

// churn publishes joins and lefts of participants in 20 sessions of 5 rooms.
type churn struct {
	r    *feedRig
	n    int
	last uint64 // the sequence of the last event published
}

func (c *churn) publish(b *testing.B) {
	c.n++
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(c.n) * time.Millisecond)
	session := fmt.Sprintf("session-%02d", c.n%20)
	snap := diff.Snapshot{SessionID: session, RoomID: fmt.Sprintf("room-%d", c.n%5), Start: at}
	kind := diff.Joined
	if c.n%2 == 0 {
		kind = diff.Left
	}
	e := publisher.NewEvent(snap, at, diff.Change{Kind: kind, Participant: diff.Participant{
		ID: fmt.Sprintf("participant-%05d", c.n/2), Name: fmt.Sprintf("Participant %d", c.n/2), JoinedAt: at,
		Mode: "CONFERENCE", SDKType: "prebuilt",
		DeviceInfo:  json.RawMessage(`{"sdkType":"prebuilt","sdkVersion":"0.3.29","platform":"desktop","browserUserAgent":{"browser":{"name":"Firefox","version":"115.0"},"os":{"name":"Linux"},"platform":{"type":"desktop"}}}`),
		GeoLocation: json.RawMessage(`{"city":"Surat","region":"Gujarat","country":"India"}`),
	}})
	body, err := json.Marshal(e)
	if err != nil {
		b.Fatal(err)
	}
	c.last = c.r.publishRaw(b, events.Subject(feedPrefix, e.Type, snap.RoomID, snap.SessionID), body)
}

// paced publishes n events at rate a second, in ticks of 10 ms.
func (c *churn) paced(b *testing.B, n, rate int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < n; {
		<-tick.C
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; sent < due; sent++ {
			c.publish(b)
		}
	}
}

// cpuTime is this process's CPU time, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type usage struct{ heap, stacks uint64 }

// memory is the heap in use and the goroutine stacks, after a collection.
func memory() usage {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return usage{heap: m.HeapInuse, stacks: m.StackInuse}
}

// benchClientsProc is the child process of the clients.
type benchClientsProc struct {
	in  io.Writer
	out *bufio.Scanner
}

type clientsState struct {
	connected  int // clients that connected
	fewest     int // events the client with the fewest has had
	reconnects int // of clients whose response ended
	repeats    int // events had twice
}

func startClients(b *testing.B, url string, n int) *benchClientsProc {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFeedBenchClients$")
	cmd.Env = append(os.Environ(), benchURLEnv+"="+url, benchClientsEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close() // the clients stop at the end of their input
		_ = cmd.Wait()
	})
	return &benchClientsProc{in: in, out: bufio.NewScanner(out)}
}

func (p *benchClientsProc) ask(b *testing.B) clientsState {
	fmt.Fprintln(p.in, "?")
	if !p.out.Scan() {
		b.Fatalf("the clients' process does not answer: %v", p.out.Err())
	}
	var s clientsState
	if _, err := fmt.Sscan(p.out.Text(), &s.connected, &s.fewest, &s.reconnects, &s.repeats); err != nil {
		b.Fatalf("the clients' process says %q: %v", p.out.Text(), err)
	}
	if s.repeats > 0 {
		b.Fatalf("clients had %d events twice", s.repeats)
	}
	return s
}

// waitFor waits until every client has had n events, for up to a minute: clients
// dropped by a feed that cannot keep up reconnect and catch up.
func (p *benchClientsProc) waitFor(b *testing.B, n int) clientsState {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		s := p.ask(b)
		if s.fewest >= n {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("after a minute, a client has had %d events of %d", s.fewest, n)
		}
	}
}

// TestFeedBenchClients is BenchmarkFeedFanOut's clients, run in a process of their
// own by the benchmark, and skipped otherwise. They follow the feed, each from the
// events after it connected, and when a response ends they reconnect a second
// later with the last id they had, as an EventSource does; they count the events
// each has had and those had twice. A line on stdin asks for "connected fewest
// reconnects repeats".
func TestFeedBenchClients(t *testing.T) {
	url := os.Getenv(benchURLEnv)
	if url == "" {
		t.Skip("the clients of BenchmarkFeedFanOut, run by it")
	}
	n, err := strconv.Atoi(os.Getenv(benchClientsEnv))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	var connected, reconnects, repeats atomic.Int64
	counts := make([]atomic.Int64, n)
	dialing := make(chan struct{}, 50) // connections being opened at once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range n {
		go func() {
			var last uint64
			for first := true; ctx.Err() == nil; first = false {
				if !first {
					time.Sleep(time.Second)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if !first {
					req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
				}
				dialing <- struct{}{}
				resp, err := client.Do(req)
				<-dialing
				if err != nil {
					continue
				}
				if resp.StatusCode != http.StatusOK {
					resp.Body.Close()
					continue
				}
				if first {
					connected.Add(1)
				} else {
					reconnects.Add(1)
				}
				br := bufio.NewReaderSize(resp.Body, 4096)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil && err != bufio.ErrBufferFull {
						break
					}
					if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
						seq, _ := strconv.ParseUint(string(bytes.TrimSpace(id)), 10, 64)
						if seq <= last {
							repeats.Add(1)
							continue
						}
						last = seq
						counts[i].Add(1)
					}
				}
				resp.Body.Close()
			}
		}()
	}
	for sc := bufio.NewScanner(os.Stdin); sc.Scan(); {
		fewest := int64(math.MaxInt64)
		for i := range counts {
			fewest = min(fewest, counts[i].Load())
		}
		fmt.Printf("%d %d %d %d\n", connected.Load(), fewest, reconnects.Load(), repeats.Load())
	}
}
