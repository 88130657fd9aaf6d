package publisher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/publisher"
)

// BenchmarkPublish publishes batches of joins to an embedded JetStream server (file
// storage, one replica) and waits for every acknowledgement, as a cycle does. Every
// iteration moves the stints' start by a millisecond, so that each event has an id
// of its own: the stream stores every one rather than dropping repeats as
// duplicates, which would measure the duplicate check instead.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			js, err := publisher.NewJetStream(natstest.Connect(b, natstest.Start(b)))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := publisher.EnsureStream(ctx, js, streamCfg, quiet()); err != nil {
				b.Fatal(err)
			}
			p := publisher.New(js, "videosdk", quiet())
			changes := make([]diff.Change, n)
			for i := range changes {
				pt := demo1
				pt.ID = fmt.Sprintf("p%07d", i)
				changes[i] = diff.Change{Kind: diff.Joined, Participant: pt}
			}
			iteration := 0
			b.ReportAllocs()
			for b.Loop() {
				iteration++
				for i := range changes {
					changes[i].Participant.JoinedAt = joinedAt.Add(time.Duration(iteration) * time.Millisecond)
				}
				if err := p.Publish(ctx, snap, observedAt, changes); err != nil {
					b.Fatal(err)
				}
			}
			s, err := js.Stream(ctx, streamCfg.Name)
			if err != nil {
				b.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if want := uint64(n * b.N); info.State.Msgs != want {
				b.Fatalf("stream holds %d events, want %d: some were dropped as duplicates", info.State.Msgs, want)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/event")
		})
	}
}

// BenchmarkStoreSave saves a session's state of n participants to the state bucket
// with compare-and-set, as a cycle with changes does: plain JSON at 5, gzipped at
// 100 and 5000 (over 2 KiB).
func BenchmarkStoreSave(b *testing.B) {
	for _, n := range []int{5, 100, 5000} {
		b.Run(fmt.Sprintf("present=%d", n), func(b *testing.B) {
			js, err := publisher.NewJetStream(natstest.Connect(b, natstest.Start(b)))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			s, err := publisher.OpenStore(ctx, js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
			if err != nil {
				b.Fatal(err)
			}
			st := diff.State{RoomID: "r1", Started: true}
			for i := range n {
				pt := demo1
				pt.ID = fmt.Sprintf("p%07d", i)
				st.Present = append(st.Present, pt)
			}
			rev := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				if rev, err = s.Save(ctx, "s1", st, rev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/participant")
		})
	}
}
