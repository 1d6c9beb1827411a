package ha

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// BenchmarkHAEventPath measures events per second through the HA path on
// a 3-node cluster in this process, 3 replicas everywhere: commits of 100
// events per target into the KV outbox, drained into the events stream by
// one publisher or by three (every instance drains the shared outbox), until
// the stream holds them all. docs/performance.md has the command and the
// figures.
func BenchmarkHAEventPath(b *testing.B) {
	cl := natstest.StartCluster(b, 3)
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ncfg := notify.DefaultConfig()
	ncfg.URLs = strings.Split(cl.URLs(), ",")
	ncfg.Stream.Replicas = 3
	stream, err := js.CreateStream(ctx, notify.ProvisionedStream(ncfg))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 600) // about a rendered failed event
	run := 0
	for _, pubs := range []int{1, 3} {
		b.Run(fmt.Sprintf("publishers=%d", pubs), func(b *testing.B) {
			run++
			store, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: fmt.Sprintf("bench_%d", run), Replicas: 3})
			if err != nil {
				b.Fatal(err)
			}
			info, err := stream.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			base := info.State.Msgs
			rctx, stop := context.WithCancel(context.Background())
			var dones []chan struct{}
			var ps []*notify.Publisher
			for range pubs {
				p, err := notify.New(ncfg, store, nil)
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				go func() { defer close(done); _ = p.Run(rctx) }()
				ps, dones = append(ps, p), append(dones, done)
			}
			defer func() {
				stop()
				for _, d := range dones {
					<-d
				}
			}()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += 100 {
				key := fmt.Sprintf("participant/KS%032x/KC%032x/KP%032x", run, i, i)
				var msgs []event.Message
				for j := i; j < min(i+100, b.N); j++ {
					id := fmt.Sprintf("%d-%d", run, j)
					msgs = append(msgs, event.Message{ID: id, Subject: "monitord.failed.x.y.z", Data: data})
				}
				if _, err := store.Commit(key, 0, state.Next{}, msgs); err != nil {
					b.Fatal(err)
				}
				for _, p := range ps {
					p.Wake()
				}
			}
			// The stream's count, not the outbox: a publisher's view of
			// an empty outbox may lag (docs/ha.md).
			for {
				info, err := stream.Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if info.State.Msgs-base >= uint64(b.N) {
					break
				}
				select {
				case <-ctx.Done():
					b.Fatalf("%d of %d events in the stream", info.State.Msgs-base, b.N)
				case <-time.After(5 * time.Millisecond):
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
