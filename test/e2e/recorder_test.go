//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamName is the stream monitord creates (nats.stream.name default).
const streamName = "MONITORD"

// received is one event as the subscriber got it.
type received struct {
	MsgID     string // Nats-Msg-Id header
	Subject   string
	StreamSeq uint64
	At        time.Time // when the subscriber received it
	CE        cloudEvent
}

// cloudEvent is the part of monitord's CloudEvents envelope the checks read.
type cloudEvent struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data struct {
		ServiceSID     string `json:"service_sid"`
		SessionSID     string `json:"session_sid"`
		ParticipantSID string `json:"participant_sid"`
		InteractionSID string `json:"interaction_sid"`
		Leg            string `json:"leg"`
		PreviousStatus string `json:"previous_status"`
		Status         string `json:"status"`
		Class          string `json:"class"`
		HTTPStatus     int    `json:"http_status"`
		Outage         uint64 `json:"outage"`
	} `json:"data"`
}

// Kind is the event kind, the second subject token.
func (r received) Kind() string {
	s := r.Subject
	i := len("monitord.")
	for j := i; j < len(s); j++ {
		if s[j] == '.' {
			return s[i:j]
		}
	}
	return s[i:]
}

// TargetKey is service/session/participant from the data.
func (r received) TargetKey() string {
	return r.CE.Data.ServiceSID + "/" + r.CE.Data.SessionSID + "/" + r.CE.Data.ParticipantSID
}

// recorder is a JetStream subscriber that records every event of the
// stream, from its first message on, through an ordered consumer: the kind
// of subscriber the delivery guarantee is promised to. The ordered consumer
// is recreated by nats.go after a server restart from the last sequence it
// delivered, so a NATS outage does not make it miss or repeat messages.
type recorder struct {
	nc   *nats.Conn
	cc   jetstream.ConsumeContext
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	events   []received
	byID     map[string]int // msg id → times received
	lastSeq  uint64
	decodeEr error
	notify   chan struct{}
}

// startRecorder connects to url, waits (up to wait) for monitord to create
// the stream, and records from its first message. Stopped by the test's
// cleanup.
func startRecorder(t testing.TB, url string, wait time.Duration) *recorder {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.Name("e2e-recorder"))
	if err != nil {
		t.Fatalf("recorder connect: %v", err)
	}
	r := &recorder{nc: nc, byID: map[string]int{}, notify: make(chan struct{}, 1), done: make(chan struct{})}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("recorder: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	var stream jetstream.Stream
	deadline := time.Now().Add(wait)
	for {
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		stream, err = js.Stream(sctx, streamName)
		scancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			nc.Close()
			t.Fatalf("recorder: stream %s did not appear within %v: %v", streamName, wait, err)
		}
		time.Sleep(100 * time.Millisecond) // polling for the stream monitord creates
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		cancel()
		nc.Close()
		t.Fatalf("recorder: ordered consumer: %v", err)
	}
	r.cc, err = cons.Consume(r.handle)
	if err != nil {
		cancel()
		nc.Close()
		t.Fatalf("recorder: consume: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) handle(m jetstream.Msg) {
	at := time.Now()
	ev := received{MsgID: m.Headers().Get(jetstream.MsgIDHeader), Subject: m.Subject(), At: at}
	if md, err := m.Metadata(); err == nil {
		ev.StreamSeq = md.Sequence.Stream
	}
	err := json.Unmarshal(m.Data(), &ev.CE)
	r.mu.Lock()
	if err != nil && r.decodeEr == nil {
		r.decodeEr = fmt.Errorf("event %s on %s: %w", ev.MsgID, ev.Subject, err)
	}
	r.events = append(r.events, ev)
	r.byID[ev.MsgID]++
	r.lastSeq = max(r.lastSeq, ev.StreamSeq)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Close stops consuming and disconnects.
func (r *recorder) Close() {
	if r.cc != nil {
		r.cc.Stop()
		<-r.cc.Closed()
		r.cc = nil
	}
	if r.stop != nil {
		r.stop()
	}
	if !r.nc.IsClosed() {
		r.nc.Close()
	}
}

// Events returns a copy of everything received, in receipt order.
func (r *recorder) Events() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.events...)
}

// Has reports whether the event with this msg id was received.
func (r *recorder) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id] > 0
}

// Duplicates lists msg ids received more than once.
func (r *recorder) Duplicates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, n := range r.byID {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", id, n))
		}
	}
	return out
}

// DecodeError is the first event that was not monitord's JSON.
func (r *recorder) DecodeError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.decodeEr
}

// WaitCaughtUp waits until the recorder has received every message the
// stream holds now (its last sequence), or fails after d.
func (r *recorder) WaitCaughtUp(t testing.TB, d time.Duration) {
	t.Helper()
	js, err := jetstream.New(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	err = waitFor(d, 200*time.Millisecond, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, streamName)
		if err != nil {
			return false, nil // the server may be restarting
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false, nil
		}
		last = info.State.LastSeq
		r.mu.Lock()
		got := r.lastSeq
		r.mu.Unlock()
		return got >= last, nil
	})
	if err != nil {
		r.mu.Lock()
		got := r.lastSeq
		r.mu.Unlock()
		t.Fatalf("recorder: received up to stream seq %d of %d: %v", got, last, err)
	}
}

// errTimeout is waitFor's error when the condition never held.
var errTimeout = errors.New("condition not met before the deadline")

// waitFor polls cond every step until it holds, returns an error, or d
// passes.
func waitFor(d, step time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(step)
	}
}
