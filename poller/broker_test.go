package poller_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// broker is a JetStream server that a test can stop and start again on the same port
// and store, and a connection that reconnects to it.
type broker struct {
	t    *testing.T
	dir  string
	port int

	mu sync.Mutex
	ns *server.Server
	nc *nats.Conn
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{t: t, dir: t.TempDir()}
	b.ns = natstest.StartIn(t, b.dir, -1)
	b.port = b.ns.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(b.ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	return b
}

func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ns.Shutdown()
	b.ns.WaitForShutdown()
}

func (b *broker) start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ns = natstest.StartIn(b.t, b.dir, b.port)
}

// stoppingPublisher stops the broker as a cycle begins to publish, and calls back.
type stoppingPublisher struct {
	poller.Publisher
	once    sync.Once
	stopped func()
}

func (s *stoppingPublisher) Publish(ctx context.Context, snap diff.Snapshot, at time.Time, changes []diff.Change) error {
	s.once.Do(s.stopped)
	return s.Publisher.Publish(ctx, snap, at, changes)
}

// TestPollBrokerFaults: the NATS server stops just as a cycle publishes. Back within
// the publisher's patience, the cycle's events are acknowledged and the cycle
// succeeds; gone for longer, the cycle is abandoned with its events in the outbox, and
// the next cycle after the server is back sends them (the same ids) before the rest.
// Either way, the stream ends up with every event once.
func TestPollBrokerFaults(t *testing.T) {
	tests := []struct {
		name     string
		down     time.Duration // how long the server stays down; 0 = until the cycle gives up
		patience time.Duration // the cycle's
		wantErr  bool
	}{
		{name: "restarted mid-publish", down: 500 * time.Millisecond, patience: 3 * time.Second},
		{name: "unreachable until the cycle is abandoned", patience: time.Second, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "a", "b", "c")
			b := newBroker(t)
			js, err := publisher.NewJetStream(b.nc)
			if err != nil {
				t.Fatal(err)
			}
			ensureStream(t, js)
			store, err := publisher.OpenStore(context.Background(), js, "ROLLCALL_STATE", 1, time.Hour, quiet(), nil)
			if err != nil {
				t.Fatal(err)
			}
			restarted := make(chan struct{})
			pub := &stoppingPublisher{Publisher: publisher.New(js, "videosdk", quiet()), stopped: func() {}}
			p := poller.New(w.client(2), store, pub)
			r := &rig{world: w, js: js, store: store, poller: p}
			if _, err := p.Poll(context.Background(), quiet(), session); err != nil {
				t.Fatal(err)
			}
			r.newEvents(t)

			w.clock.Add(7 * time.Second) // 10
			w.api.Leave(session, "a")
			w.api.Join(session, "d", "name-d")
			pub.once = sync.Once{}
			pub.stopped = func() {
				b.stop()
				if tt.down > 0 {
					time.AfterFunc(tt.down, func() { b.start(); close(restarted) })
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.patience)
			_, err = p.Poll(ctx, quiet(), session)
			cancel()
			if (err != nil) != tt.wantErr {
				t.Fatalf("cycle with the broker down: %v, want error %v", err, tt.wantErr)
			}
			if tt.down == 0 {
				w.api.Leave(session, "d") // seen in the outbox only
				b.start()
			} else {
				<-restarted
			}
			if _, err := p.Poll(context.Background(), quiet(), session); err != nil {
				t.Fatal(err)
			}
			want := []string{"participant.left a@1 until 10", "participant.joined d@10"}
			if tt.down == 0 {
				want = append(want, "participant.left d@10 until 10")
			}
			if d := cmp.Diff(want, r.newEvents(t)); d != "" {
				t.Errorf("events after the broker came back (-want +got):\n%s", d)
			}
			checkIDs(t, js)
			if st, _, err := store.Load(context.Background(), session); err != nil || st.Outbox != nil {
				t.Errorf("state after the broker came back: outbox %+v, %v; want none", st.Outbox, err)
			}
		})
	}
}
