package publisher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks matches the stream's acknowledgements to the messages sent. Each message asks
// for its ack on a subject of one inbox, <inbox>.<n>, which one subscription takes in.
// nats.go's own asynchronous publish does the same, but with a future (two channels
// and a timer) for each message and its ack decoded with encoding/json: about 15%
// of the worker's CPU in a first burst, beside what the stream's server spent.
type acks struct {
	nc     *nats.Conn
	prefix string // the inbox, with its last dot

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]waiter
}

// waiter is one message of a run, waiting for its ack.
type waiter struct {
	run *run
	i   int
}

// run is the messages of one try, numbered from first: errs[i] is message i's
// outcome once it is in.
type run struct {
	first   uint64
	errs    []error
	missing int           // acks not yet in
	done    chan struct{} // closed when missing reaches 0
}

func newAcks(nc *nats.Conn) (*acks, error) {
	a := &acks{nc: nc, prefix: nc.NewInbox() + ".", waiting: make(map[uint64]waiter)}
	sub, err := nc.Subscribe(a.prefix+"*", a.receive)
	if err != nil {
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	// Never the limit: at most inFlight acks are awaited at once.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	go a.failOnReconnect(nc.StatusChanged(nats.RECONNECTING, nats.CLOSED))
	return a, nil
}

// failOnReconnect fails every ack awaited when the connection is lost, with
// nats.ErrDisconnected, as nats.go does: a message written just before the loss may
// never have reached the server, and its ack would never come, so it is sent again
// (with the same id) rather than waited for until ackTimeout. It returns when the
// connection closes.
func (a *acks) failOnReconnect(status chan nats.Status) {
	for s := range status {
		if s == nats.CLOSED {
			return
		}
		a.mu.Lock()
		for n, w := range a.waiting {
			delete(a.waiting, n)
			a.record(w, nats.ErrDisconnected)
		}
		a.mu.Unlock()
	}
}

// send publishes msgs, each asking for its ack, and returns their run; a message
// that could not be sent has its error in at once.
func (a *acks) send(msgs []*nats.Msg) *run {
	r := &run{errs: make([]error, len(msgs)), missing: len(msgs), done: make(chan struct{})}
	a.mu.Lock()
	r.first = a.next
	a.next += uint64(len(msgs))
	for i := range msgs {
		a.waiting[r.first+uint64(i)] = waiter{r, i}
	}
	a.mu.Unlock()
	var reply []byte
	for i, m := range msgs {
		reply = strconv.AppendUint(append(reply[:0], a.prefix...), r.first+uint64(i), 10)
		m.Reply = string(reply)
		if err := a.nc.PublishMsg(m); err != nil {
			a.settle(r.first+uint64(i), err)
		}
	}
	return r
}

// forget gives up waiting for the acks of r not yet in, with err as their outcome;
// an ack that comes after is dropped.
func (a *acks) forget(r *run, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range r.errs {
		a.settleLocked(r.first+uint64(i), err)
	}
}

// receive takes in an ack.
func (a *acks) receive(m *nats.Msg) {
	n, err := strconv.ParseUint(m.Subject[len(a.prefix):], 10, 64)
	if err != nil {
		return // not one of ours
	}
	a.settle(n, ackError(m))
}

// settle records the outcome of message n, if it is still awaited.
func (a *acks) settle(n uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settleLocked(n, err)
}

// settleLocked is settle with a.mu held.
func (a *acks) settleLocked(n uint64, err error) {
	if w, ok := a.waiting[n]; ok {
		delete(a.waiting, n)
		a.record(w, err)
	}
}

// record notes w's outcome; a.mu is held.
func (a *acks) record(w waiter, err error) {
	w.run.errs[w.i] = err
	if w.run.missing--; w.run.missing == 0 {
		close(w.run.done)
	}
}

// errDuplicate marks an ack of a message the stream already held: stored once, as
// it should be, and counted.
var errDuplicate = errors.New("duplicate")

// ackError reads an ack as nats.go does: nil for a message stored, errDuplicate for
// one the stream already held, jetstream.ErrNoStreamResponse when no stream captures
// the subject, the stream's own error (a *jetstream.APIError) when it refused it.
// Nearly every ack is {"stream":…,"seq":…} or {"stream":…,"seq":…,"duplicate": true}:
// those are read by looking; anything that mentions an error is decoded in full.
func ackError(m *nats.Msg) error {
	body := m.Data
	if len(body) == 0 && m.Header.Get("Status") == "503" {
		return jetstream.ErrNoStreamResponse
	}
	if bytes.Contains(body, []byte(`"error"`)) {
		var res struct {
			Error     *jetstream.APIError `json:"error"`
			Stream    string              `json:"stream"`
			Duplicate bool                `json:"duplicate"`
		}
		switch err := json.Unmarshal(body, &res); {
		case err != nil:
			return jetstream.ErrInvalidJSAck
		case res.Error != nil:
			return res.Error
		case res.Stream == "":
			return jetstream.ErrInvalidJSAck
		case res.Duplicate:
			return errDuplicate
		}
		return nil // a stream named error, say
	}
	if !bytes.Contains(body, []byte(`"stream"`)) || !bytes.Contains(body, []byte(`"seq"`)) {
		return jetstream.ErrInvalidJSAck
	}
	if _, after, ok := bytes.Cut(body, []byte(`"duplicate"`)); ok {
		after = bytes.TrimLeft(after, " \t\r\n")
		if after, ok = bytes.CutPrefix(after, []byte(":")); ok && bytes.HasPrefix(bytes.TrimLeft(after, " \t\r\n"), []byte("true")) {
			return errDuplicate
		}
	}
	return nil
}
