package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memOutbox is an in-memory Outbox of one target: the contract of
// state.DB without the disk, for tests that need to reach into it (lost
// deletes, late commits) and the publish-path benchmark. Tests of several
// targets use state.Memory or state.DB.
type memOutbox struct {
	mu   sync.Mutex
	recs []event.Record // ascending Seq, Target ""
	next uint64
	// loseDeletes makes Delete succeed without removing anything: the
	// effect of a crash after the PubAcks, before the delete committed.
	loseDeletes bool
}

func (o *memOutbox) Add(msgs ...event.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range msgs {
		o.next++
		o.recs = append(o.recs, event.Record{Position: event.Position{Seq: o.next}, Message: m})
	}
}

func (o *memOutbox) Peek(after event.Position, max int) ([]event.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := sort.Search(len(o.recs), func(i int) bool { return o.recs[i].Seq > after.Seq })
	j := min(i+max, len(o.recs))
	return slices.Clone(o.recs[i:j]), nil
}

func (o *memOutbox) Delete(seqs []event.Position) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.loseDeletes {
		return nil
	}
	// The drain deletes from the front in order; take the fast path then.
	n := 0
	for n < len(seqs) && n < len(o.recs) && o.recs[n].Position == seqs[n] {
		n++
	}
	if n == len(seqs) {
		o.recs = o.recs[n:]
		return nil
	}
	drop := make(map[event.Position]bool, len(seqs))
	for _, s := range seqs {
		drop[s] = true
	}
	o.recs = slices.DeleteFunc(o.recs, func(r event.Record) bool { return drop[r.Position] })
	return nil
}

func (o *memOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.recs)
}

func (o *memOutbox) LoseDeletes(lose bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.loseDeletes = lose
}

// startServer runs an in-process nats-server with JetStream on file storage.
// Pass opts to set auth; Port, StoreDir and JetStream are filled in when zero.
func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	opts.JetStream = true
	opts.NoLog = true
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// testConfig points at s with short retry delays, so outage tests are quick.
func testConfig(s *server.Server) Config {
	c := DefaultConfig()
	c.URLs = []string{s.ClientURL()}
	c.ReconnectWait = 10 * time.Millisecond
	c.MaxReconnectWait = 100 * time.Millisecond
	c.RetryInterval = 100 * time.Millisecond
	c.AckTimeout = 2 * time.Second
	return c
}

// runPublisher starts p.Run and returns a stop function that cancels it
// and returns Run's error.
func runPublisher(t testing.TB, p *Publisher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("Run did not return within 20s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func newPublisher(t testing.TB, cfg Config, ob Outbox) *Publisher {
	t.Helper()
	var log *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt)
	}
	p, err := New(cfg, ob, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var testTarget = proxy.Target{
	Source:         proxy.SourceParticipant,
	ServiceSID:     "KS" + strings.Repeat("0", 31) + "1",
	SessionSID:     "KC" + strings.Repeat("0", 31) + "2",
	ParticipantSID: "KP" + strings.Repeat("0", 31) + "3",
}

// makeMsgs renders n failed events (about 600 bytes each) numbered from
// start, each with a distinct interaction SID and so a distinct id.
func makeMsgs(t testing.TB, start, n int) []event.Message {
	t.Helper()
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	msgs := make([]event.Message, n)
	for i := range msgs {
		sid := fmt.Sprintf("KI%032x", start+i)
		e := event.Event{
			ID:                  event.InteractionID(sid, event.Failed, event.Outbound, "undelivered"),
			Kind:                event.Failed,
			Target:              testTarget,
			Time:                at.Add(time.Duration(start+i) * time.Millisecond),
			InteractionSID:      sid,
			Leg:                 event.Outbound,
			PrevStatus:          "sent",
			Status:              "undelivered",
			Type:                "message",
			DateCreated:         at.Add(-time.Minute),
			DateUpdated:         at,
			InboundResourceSID:  fmt.Sprintf("SM%032x", 2*(start+i)),
			OutboundResourceSID: fmt.Sprintf("SM%032x", 2*(start+i)+1),
			OutboundResourceURL: fmt.Sprintf("https://api.twilio.com/2010-04-01/Accounts/AC%032x/Messages/SM%032x.json", 7, 2*(start+i)+1),
		}
		m, err := event.Render(e, event.RenderOptions{})
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		msgs[i] = m
	}
	return msgs
}

func ids(msgs []event.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// streamMsgs reads every message of the stream, in stream order, on a
// connection of its own.
func streamMsgs(t testing.TB, url, stream string, opts ...nats.Option) []jetstream.Msg {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	total := int(info.State.Msgs)
	if total == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var out []jetstream.Msg
	for len(out) < total {
		batch, err := c.Fetch(min(total-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if n == 0 {
			t.Fatalf("fetch returned nothing after %d of %d messages", len(out), total)
		}
	}
	return out
}

// streamIDs is the Nats-Msg-Id of every message in the stream, in order.
func streamIDs(t testing.TB, url, stream string, opts ...nats.Option) []string {
	t.Helper()
	msgs := streamMsgs(t, url, stream, opts...)
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Headers().Get(jetstream.MsgIDHeader)
	}
	return out
}

func streamCount(t testing.TB, url, stream string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return int(info.State.Msgs)
}
