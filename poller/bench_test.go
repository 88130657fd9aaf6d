package poller_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
	"github.com/rollcall/rollcall/sim"
)

// benchAPI serves a simulated API over real HTTP with one session of n participants.
// Tokens are minted on the same clock, as the worker mints them on the real one.
func benchAPI(b *testing.B, n int) (*sim.Server, *sim.Clock, string, poller.Tokens) {
	b.Helper()
	clk := sim.NewClock(time.Now().UTC().Truncate(time.Millisecond))
	api := sim.New(sim.Config{APIKey: apiKey, Secret: secret, Now: clk.Now})
	api.StartSession(session, room)
	for i := range n {
		api.Join(session, fmt.Sprintf("p%07d", i), fmt.Sprintf("Participant %d", i))
	}
	srv := httptest.NewServer(api)
	b.Cleanup(srv.Close)
	return api, clk, srv.URL, poller.NewMinter(apiKey, secret, time.Hour, clk.Now)
}

// BenchmarkDecodePage decodes one page of 100 participants as the simulator renders
// it (about 64 KB), fetched once before the timed loop.
func BenchmarkDecodePage(b *testing.B) {
	_, _, url, tokens := benchAPI(b, 100)
	tok, err := tokens.Token()
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, url+"/v2/sessions/"+session+"/participants/active?page=1&perPage=100", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	page, err := poller.DecodePage(body)
	if err != nil || len(page.Sessions) != 1 || len(page.Sessions[0].Participants) != 100 {
		b.Fatalf("page %+v: %v", page, err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := poller.DecodePage(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/participant")
}

// BenchmarkSnapshot scans a session of 1000 participants, 10 pages of 100, over
// loopback HTTP with no rate limit. The simulator serves in the same process, so the
// time includes rendering each page (JSON encoding, token check) as well as fetching
// and decoding it.
func BenchmarkSnapshot(b *testing.B) {
	api, _, url, tokens := benchAPI(b, 1000)
	c := poller.NewClient(poller.ClientConfig{BaseURL: url, Tokens: tokens, PerPage: 100})
	ctx := context.Background()
	before := api.Requests()
	b.ReportAllocs()
	for b.Loop() {
		snap, err := c.Snapshot(ctx, nil, session)
		if err != nil || !snap.Complete || len(snap.Participants) != 1000 {
			b.Fatalf("snapshot of %d participants, complete %v: %v", len(snap.Participants), snap.Complete, err)
		}
	}
	requests := api.Requests() - before
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
	b.ReportMetric(float64(requests)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkPoll runs one poll of one session of 150 participants, two pages of 100,
// against the simulator over loopback HTTP, with an embedded JetStream:
//   - unchanged: nothing changed since the last poll, whose state the session's loop
//     keeps (Cache): fetch both pages, decode, diff; nothing read from or written to
//     KV, nothing published. This is the steady state.
//   - 4 changes: before each poll one participant leaves and a newcomer joins, and one
//     reconnects (the left of the old stint and the joined of the new one): load the
//     state from KV, fetch both pages and confirm the leave with a backward scan (four
//     requests), diff, save the outbox, publish, save. The change of the world, a few
//     map updates in the simulator, is inside the timed loop.
func BenchmarkPoll(b *testing.B) {
	const present = 150
	api, clk, url, tokens := benchAPI(b, present)
	c := poller.NewClient(poller.ClientConfig{BaseURL: url, Tokens: tokens, PerPage: 100})
	ctx := context.Background()
	js, err := publisher.NewJetStream(natstest.Connect(b, natstest.Start(b)))
	if err != nil {
		b.Fatal(err)
	}
	err = publisher.EnsureStream(ctx, js, publisher.StreamConfig{
		Name: "ROLLCALL", Prefix: "videosdk", Replicas: 1, DuplicateWindow: 10 * time.Minute, MaxAge: time.Hour,
	}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	store, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
	if err != nil {
		b.Fatal(err)
	}
	p := poller.New(c, store, publisher.New(js, "videosdk", quiet()))
	log := quiet()
	if _, err := p.Poll(ctx, log, session); err != nil { // everyone joins: not what is measured
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, "ROLLCALL")
	if err != nil {
		b.Fatal(err)
	}
	next := 0 // the oldest participant still present is p<next>

	b.Run("unchanged", func(b *testing.B) {
		var cache poller.Cache
		if _, err := p.PollCached(ctx, log, session, &cache); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if res, err := p.PollCached(ctx, log, session, &cache); err != nil || res.Joined+res.Left > 0 {
				b.Fatalf("%+v: %v", res, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*present), "ns/participant")
	})
	b.Run("4 changes", func(b *testing.B) {
		info, err := stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		eventsBefore := info.State.Msgs
		b.ReportAllocs()
		for b.Loop() {
			clk.Add(time.Millisecond)
			i := next
			api.Leave(session, fmt.Sprintf("p%07d", i))
			api.Join(session, fmt.Sprintf("p%07d", i+present), "newcomer")
			api.Join(session, fmt.Sprintf("p%07d", i+1), "") // a second connection: a new stint
			next++
			if _, err := p.Poll(ctx, log, session); err != nil {
				b.Fatal(err)
			}
		}
		if info, err = stream.Info(ctx); err != nil {
			b.Fatal(err)
		}
		events := info.State.Msgs - eventsBefore
		if events != 4*uint64(b.N) {
			b.Fatalf("%d events in %d cycles, want 4 per cycle", events, b.N)
		}
		b.ReportMetric(float64(events)/float64(b.N), "events/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*present), "ns/participant")
	})
}
