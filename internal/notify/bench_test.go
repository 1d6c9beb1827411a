package notify

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// benchMsgs returns n events of about size bytes each: rendered failed
// events (about 1 KB) when size is 0, else padded to size like the
// 600-byte messages natscli's bench uses, so the figures compare.
func benchMsgs(b *testing.B, n, size int) []event.Message {
	msgs := makeMsgs(b, 0, n)
	if size == 0 {
		return msgs
	}
	for i := range msgs {
		d := make([]byte, size)
		copy(d, msgs[i].Data)
		msgs[i].Data = d
	}
	return msgs
}

// doneObserver closes done when want events were published.
type doneObserver struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (o *doneObserver) Published(n int) {
	if o.n.Add(int64(n)) == o.want {
		close(o.done)
	}
}
func (o *doneObserver) PublishError()  {}
func (o *doneObserver) Connected(bool) {}

type benchOutbox interface {
	Outbox
	add(b *testing.B, msgs []event.Message)
}

type memBench struct{ *memOutbox }

func (m memBench) add(_ *testing.B, msgs []event.Message) { m.Add(msgs...) }

// dbBench commits events the way the poller does: a poll's events in one
// transaction (here 200 at a time, a burst of failures on a target).
type dbBench struct{ *state.DB }

func (d dbBench) add(b *testing.B, msgs []event.Message) {
	for i := 0; i < len(msgs); i += 200 {
		key := fmt.Sprintf("participant/bench-%d", i/200%50)
		_, rev, err := d.Load(key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Commit(key, rev, state.Next{}, msgs[i:min(i+200, len(msgs))]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrain measures draining an outbox of b.N events to a local
// JetStream on file storage, removal from the outbox included. Run with a
// fixed count, e.g. -benchtime=100000x, so each run drains one backlog.
func BenchmarkDrain(b *testing.B) {
	for _, outbox := range []string{"memory", "bbolt"} {
		for _, size := range []int{600, 0} {
			for _, pending := range []int{256, 1024} {
				sz := "1KB-event"
				if size > 0 {
					sz = fmt.Sprintf("%dB", size)
				}
				b.Run(fmt.Sprintf("outbox=%s/size=%s/pending=%d", outbox, sz, pending), func(b *testing.B) {
					benchDrain(b, outbox, size, pending)
				})
			}
		}
	}
}

func benchDrain(b *testing.B, outbox string, size, pending int) {
	s := startServer(b, nil)
	var ob benchOutbox
	switch outbox {
	case "memory":
		ob = memBench{&memOutbox{}}
	default:
		db, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		ob = dbBench{db}
	}
	msgs := benchMsgs(b, b.N, size)
	obs := &doneObserver{want: int64(b.N), done: make(chan struct{})}
	cfg := testConfig(s)
	cfg.MaxPending = pending
	cfg.AckTimeout = 10 * time.Second
	cfg.RetryInterval = time.Second
	cfg.Observer = obs
	p := newPublisher(b, cfg, ob)
	stop := runPublisher(b, p)
	// Connected and stream provisioned before the clock starts.
	waitFor(b, "stream ready", time.Minute, func() bool { return streamExists(s.ClientURL()) })
	ob.add(b, msgs)

	b.SetBytes(int64(len(msgs[0].Data)))
	cpu0 := cpuTime(b)
	b.ResetTimer()
	p.Wake()
	select {
	case <-obs.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("drained %d of %d in 5 minutes", obs.n.Load(), b.N)
	}
	b.StopTimer()
	reportRates(b, cpu0)
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}

func streamExists(url string) bool {
	nc, err := nats.Connect(url)
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.Stream(ctx, DefaultStreamName)
	return err == nil
}

// BenchmarkSyncPublish is the baseline the drain is compared with: one
// JetStream publish at a time, each waiting for its PubAck, same server
// setup and 600-byte messages.
func BenchmarkSyncPublish(b *testing.B) {
	s := startServer(b, nil)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cfg := DefaultConfig()
	p := &Publisher{cfg: cfg}
	if _, err := js.CreateStream(ctx, p.streamConfig()); err != nil {
		b.Fatal(err)
	}
	msgs := benchMsgs(b, b.N, 600)
	b.SetBytes(600)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for _, m := range msgs {
		if _, err := js.PublishMsg(ctx, natsMsg(m)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRates(b, cpu0)
}

// cpuTime is the process's user+system CPU time: client and embedded
// server together. The machine is shared, so wall-clock rates move with
// the load of others; CPU per event does not.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRates(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}
