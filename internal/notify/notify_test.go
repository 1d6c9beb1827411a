package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// countingObserver records what the Publisher reports.
type countingObserver struct {
	published, errors atomic.Int64
	up                atomic.Bool
}

func (o *countingObserver) Published(n int) { o.published.Add(int64(n)) }
func (o *countingObserver) PublishError()   { o.errors.Add(1) }
func (o *countingObserver) Connected(up bool) {
	o.up.Store(up)
}

func TestDrainDeliversInOrderWithHeaders(t *testing.T) {
	s := startServer(t, nil)
	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 3000)
	ob.Add(msgs...)
	obs := &countingObserver{}
	cfg := testConfig(s)
	cfg.Observer = obs
	p := newPublisher(t, cfg, ob)
	stop := runPublisher(t, p)
	waitFor(t, "outbox drained", 20*time.Second, func() bool { return ob.Len() == 0 })
	if !p.Connected() || !obs.up.Load() {
		t.Error("Connected() = false while delivering")
	}
	if got := obs.published.Load(); got != 3000 {
		t.Errorf("observer saw %d published, want 3000", got)
	}

	got := streamMsgs(t, s.ClientURL(), DefaultStreamName)
	if diff := cmp.Diff(ids(msgs), idsOf(got)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
	m := got[0]
	if ct := m.Headers().Get("Content-Type"); ct != "application/cloudevents+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if m.Subject() != msgs[0].Subject || string(m.Data()) != string(msgs[0].Data) {
		t.Errorf("first message %s %s, want %s %s", m.Subject(), m.Data(), msgs[0].Subject, msgs[0].Data)
	}

	// Events committed later are delivered on Wake.
	more := makeMsgs(t, 3000, 10)
	ob.Add(more...)
	p.Wake()
	waitFor(t, "woken drain", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p.Connected() {
		t.Error("Connected() = true after Run returned")
	}
	if n := streamCount(t, s.ClientURL(), DefaultStreamName); n != 3010 {
		t.Errorf("stream holds %d messages, want 3010", n)
	}
}

func serverPort(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

func idsOf[M interface{ Headers() nats.Header }](msgs []M) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Headers().Get("Nats-Msg-Id")
	}
	return out
}

// TestExactlyOnceAcrossCrashes interrupts the drain in both places a crash
// can hit: with publishes in flight (cancel mid-drain) and between the
// PubAck and the outbox delete (deletes lost). The rerun replays from the
// outbox, and the stream still holds every event once, in order.
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	s := startServer(t, nil)
	const n = 6000
	msgs := makeMsgs(t, 0, n)
	ob := &memOutbox{}
	ob.Add(msgs...)
	url := s.ClientURL()

	// 1: killed mid-drain, acks in flight.
	stop := runPublisher(t, newPublisher(t, testConfig(s), ob))
	waitFor(t, "a part delivered", 20*time.Second, func() bool { return ob.Len() < n-1000 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	left := ob.Len()
	if left == 0 {
		t.Fatal("the drain finished before it was cancelled; the test proves nothing")
	}
	t.Logf("cancelled with %d of %d events left in the outbox", left, n)

	// 2: every publish acknowledged, no delete lands: a crash right after
	// the PubAcks. Everything left is in the stream, and in the outbox.
	ob.LoseDeletes(true)
	stop = runPublisher(t, newPublisher(t, testConfig(s), ob))
	waitFor(t, "the whole outbox in the stream", 20*time.Second, func() bool { return streamCount(t, url, DefaultStreamName) == n })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ob.Len() != left {
		t.Fatalf("outbox holds %d, want the %d whose deletes were lost", ob.Len(), left)
	}

	// 3: a clean run replays them all; JetStream drops every copy.
	ob.LoseDeletes(false)
	stop = runPublisher(t, newPublisher(t, testConfig(s), ob))
	waitFor(t, "outbox drained", 20*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(ids(msgs), streamIDs(t, url, DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}

// TestOutage stops the server with the publisher running, commits events
// while it is down, and starts it again on the same port and store.
func TestOutage(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{StoreDir: dir}
	s := startServer(t, opts)
	port := serverPort(s)
	cfg := testConfig(s)
	url := s.ClientURL()
	ob := &memOutbox{}
	first := makeMsgs(t, 0, 500)
	ob.Add(first...)
	p := newPublisher(t, cfg, ob)
	stop := runPublisher(t, p)
	waitFor(t, "first batch delivered", 10*time.Second, func() bool { return ob.Len() == 0 })

	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, "disconnect noticed", 10*time.Second, func() bool { return !p.Connected() })
	second := makeMsgs(t, 500, 700)
	ob.Add(second...)
	p.Wake()
	hb := makeMsgs(t, 9000, 1)[0]
	if err := p.PublishNow(context.Background(), hb); !errors.Is(err, ErrNotConnected) {
		t.Errorf("PublishNow while down: %v, want ErrNotConnected", err)
	}
	if ob.Len() != len(second) {
		t.Fatalf("outbox holds %d while NATS is down, want %d", ob.Len(), len(second))
	}

	s2 := startServer(t, &server.Options{Port: port, StoreDir: dir})
	if s2.ClientURL() != url {
		t.Fatalf("restarted on %s, want %s", s2.ClientURL(), url)
	}
	waitFor(t, "backlog delivered after restart", 20*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := append(ids(first), ids(second)...)
	if diff := cmp.Diff(want, streamIDs(t, url, DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}

// TestStartWithNATSDown: Run starts while no server listens, keeps the
// events, and delivers them once a server appears.
func TestStartWithNATSDown(t *testing.T) {
	probe := startServer(t, nil)
	port := serverPort(probe)
	cfg := testConfig(probe)
	probe.Shutdown()
	probe.WaitForShutdown()

	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 100)
	ob.Add(msgs...)
	p := newPublisher(t, cfg, ob)
	stop := runPublisher(t, p)
	if p.Connected() {
		t.Fatal("Connected() with no server")
	}
	s := startServer(t, &server.Options{Port: port})
	waitFor(t, "delivered once the server is up", 20*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(ids(msgs), streamIDs(t, s.ClientURL(), DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}

func TestPublishNowHeartbeat(t *testing.T) {
	s := startServer(t, nil)
	p := newPublisher(t, testConfig(s), &memOutbox{})
	runPublisher(t, p)
	waitFor(t, "connected", 10*time.Second, p.Connected)
	at := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	m, err := event.Render(event.Event{
		ID: event.HeartbeatID("host-a", at), Kind: event.Heartbeat, Time: at,
		Beat: &event.HeartbeatInfo{Instance: "host-a", Seq: 1},
	}, event.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is created by Run; PublishNow may race it at start.
	waitFor(t, "heartbeat stored", 10*time.Second, func() bool {
		return p.PublishNow(context.Background(), m) == nil
	})
	got := streamMsgs(t, s.ClientURL(), DefaultStreamName)
	if len(got) != 1 || got[0].Subject() != "monitord.heartbeat.host-a" {
		t.Fatalf("stream holds %d messages, first %v", len(got), got)
	}
}

func TestCoreMode(t *testing.T) {
	s := startServer(t, nil)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ch := make(chan *nats.Msg, 2000)
	sub, err := nc.ChanSubscribe("monitord.>", ch)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(s)
	cfg.Mode = ModeCore
	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 1500)
	ob.Add(msgs...)
	stop := runPublisher(t, newPublisher(t, cfg, ob))
	var got []*nats.Msg
	waitFor(t, "all received", 10*time.Second, func() bool {
		for {
			select {
			case m := <-ch:
				got = append(got, m)
			default:
				return len(got) == len(msgs)
			}
		}
	})
	waitFor(t, "outbox drained", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	gotIDs := make([]string, len(got))
	for i, m := range got {
		gotIDs[i] = m.Header.Get("Nats-Msg-Id")
	}
	if diff := cmp.Diff(ids(msgs), gotIDs); diff != "" {
		t.Fatalf("ids (-want +got):\n%s", diff)
	}
	if slices.ContainsFunc(got, func(m *nats.Msg) bool { return m.Header.Get("Content-Type") != event.ContentType }) {
		t.Error("a message lacks Content-Type: application/cloudevents+json")
	}
}

// TestDrainStateDB drains the real bbolt outbox, committed the way the
// poller commits: several targets, events interleaved.
func TestDrainStateDB(t *testing.T) {
	s := startServer(t, nil)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var want [3][]string
	var revs [3]state.Revision
	targetOf := map[string]int{}
	for i := range 20 {
		msgs := makeMsgs(t, i*50, 50)
		tn := i % 3
		if revs[tn], err = db.Commit(fmt.Sprintf("participant/target-%d", tn), revs[tn], state.Next{}, msgs); err != nil {
			t.Fatalf("commit: %v", err)
		}
		want[tn] = append(want[tn], ids(msgs)...)
		for _, m := range msgs {
			targetOf[m.ID] = tn
		}
	}
	p := newPublisher(t, testConfig(s), db)
	stop := runPublisher(t, p)
	waitFor(t, "state outbox drained", 20*time.Second, func() bool {
		n, _, _, err := db.OutboxStats()
		return err == nil && n == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Each target's events in commit order, all of them once; order
	// across targets is not promised.
	var got [3][]string
	for _, id := range streamIDs(t, s.ClientURL(), DefaultStreamName) {
		tn, ok := targetOf[id]
		if !ok {
			t.Fatalf("unknown id %s in the stream", id)
		}
		got[tn] = append(got[tn], id)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("stream ids per target (-want +got):\n%s", diff)
	}
}

// TestStopWhileDisconnected: Run started against a server that never
// comes returns cleanly on cancel, and PublishNow refuses meanwhile.
func TestStopWhileDisconnected(t *testing.T) {
	probe := startServer(t, nil)
	cfg := testConfig(probe)
	probe.Shutdown()
	probe.WaitForShutdown()
	p := newPublisher(t, cfg, &memOutbox{})
	stop := runPublisher(t, p)
	if err := p.PublishNow(context.Background(), makeMsgs(t, 0, 1)[0]); !errors.Is(err, ErrNotConnected) {
		t.Errorf("PublishNow: %v, want ErrNotConnected", err)
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("stopped in %v", time.Since(start))
}
