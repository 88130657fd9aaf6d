package webhook

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/httpserver"
)

// BenchmarkReceiver measures verified webhooks through a real HTTP server with
// rollcall's limits (internal/httpserver), from parallel clients on kept-alive
// connections: ns/op is the time per webhook of the whole server (so 1e9/ns/op
// webhooks a second), allocs/op the server's and the client's together. Each client
// waits for its answer before the next request (a closed loop), so p99-ms, the 99th
// percentile of the answer time each client sees, is the latency at the benchmark's
// full load, not at a paced rate, where answers queue less. The acceptance (1,000
// webhooks a second with a p99 of at most 50 ms while polls run) is measured paced,
// through the worker, by internal/worker's BenchmarkWebhooksWhilePolling.
func BenchmarkReceiver(b *testing.B) {
	key := newKey(b)
	var handed atomic.Int64
	recv, err := New(Config{Path: "/webhook", Key: &key.PublicKey, Hint: func(Hint) { handed.Add(1) }})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := httpserver.New(recv, nil)
	go func() { _ = httpserver.Serve(srv, l) }()
	defer func() { _ = srv.Close() }()
	url := "http://" + l.Addr().String() + "/webhook"
	body := joined("r10p-2qz8-si67", "64bb3619669942e088479mm0", "iqpq5uen")
	sig := sign(b, key, body)
	b.SetParallelism(4) // 4 clients a core: enough to keep the server busy
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	var mu sync.Mutex
	var latencies []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set(SignatureHeader, sig)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(start))
			if resp.StatusCode != http.StatusNoContent {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if int(handed.Load()) != len(latencies) {
		b.Errorf("%d hints for %d webhooks", handed.Load(), len(latencies))
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	}
}
