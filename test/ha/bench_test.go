package ha

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/twilio"
)

// The HA path's costs side by side with the single-instance one, in one
// run: docs/performance.md ("Several instances") has the figures and the
// commands.

// benchStore is what the benchmarks need of a store.
type benchStore interface {
	poller.Store
	notify.Outbox
}

// benchStores opens the three stores compared: the bbolt file, the KV
// bucket on one server (one replica) and on a 3-node cluster (three
// replicas, each write waiting for a quorum). It also returns, per store,
// the URLs of the NATS that goes with it, for the publisher.
func benchStores(b *testing.B) (map[string]benchStore, map[string]string) {
	b.Helper()
	db, err := state.Open(filepath.Join(b.TempDir(), "bench.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	one, three := natstest.StartCluster(b, 1), natstest.StartCluster(b, 3)
	stores := map[string]benchStore{"bbolt": db}
	urls := map[string]string{"bbolt": one.URLs(), "kv-R1": one.URLs(), "kv-R3": three.URLs()}
	for name, cl := range map[string]*natstest.Cluster{"kv-R1": one, "kv-R3": three} {
		nc, err := nats.Connect(cl.URLs())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		st, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: bucket, Replicas: len(cl.Nodes)})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		stores[name] = st
	}
	return stores, urls
}

var benchNames = []string{"bbolt", "kv-R1", "kv-R3"}

// BenchmarkHAPoll is the cost of one whole poll (load, list the
// simulator in process, diff, commit) of one 200-interaction target per
// store. Unchanged: nothing changed, the common poll. Changed: one
// interaction changed status, so the poll commits the next snapshot and
// an event, which the publisher's peek and delete then clear (no NATS
// publish: BenchmarkHAEvents has that).
func BenchmarkHAPoll(b *testing.B) {
	stores, _ := benchStores(b)
	sim := proxysim.New(proxysim.Options{Seed: 12, Participants: 1, Interactions: 200, RateLimit: -1,
		Epoch: time.Now().Add(-24 * time.Hour)})
	st := sim.Targets()[0]
	target := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: st.ServiceSID, SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID}
	cr := sim.Credentials()
	client, err := twilio.New(twilio.Config{BaseURL: "https://proxy.twilio.test", AccountSID: cr.AccountSID,
		APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret, HTTPClient: &http.Client{Transport: sim.Transport()},
		RequestsPerSecond: 1e6, Burst: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.Close)
	sid, err := sim.AddInteraction(st, "sent")
	if err != nil {
		b.Fatal(err)
	}
	pollers := map[string]*poller.Poller{}
	for _, name := range benchNames {
		p, err := poller.New(poller.Config{Rules: diff.DefaultRules(), Store: stores[name], Log: zaptest.NewLogger(b, zaptest.Level(zap.WarnLevel)),
			Render: func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) }})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.SetTargets([]poller.TargetSpec{{Target: target, Lister: client}}); err != nil {
			b.Fatal(err)
		}
		pollers[name] = p
	}
	poll := func(b *testing.B, p *poller.Poller) {
		if res, err := p.Poll(context.Background(), target, poller.Tick{}); err != nil || res != poller.ResultOK {
			b.Fatalf("poll: %s, %v", res, err)
		}
	}
	drain := func(b *testing.B, st benchStore) {
		recs, err := st.Peek(event.Position{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		ps := make([]event.Position, len(recs))
		for i, r := range recs {
			ps[i] = r.Position
		}
		if err := st.Delete(ps); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range benchNames {
		poll(b, pollers[name]) // the baseline
		drain(b, stores[name])
	}
	for _, name := range benchNames {
		b.Run("Unchanged/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				poll(b, pollers[name])
			}
		})
	}
	statuses := [2]string{"delivered", "sent"}
	for _, name := range benchNames {
		b.Run("Changed/"+name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := sim.SetStatus(sid, proxysim.LegOutbound, statuses[i%2]); err != nil {
					b.Fatal(err)
				}
				poll(b, pollers[name])
				drain(b, stores[name])
			}
		})
	}
}

// eventSeq numbers the benchmark's events across runs, so the stream's
// duplicate window drops none.
var eventSeq atomic.Int64

// BenchmarkHAEvents is the throughput of the commit order's second half
// per store: 8 writers commit one event each per iteration (load, commit
// with the event) to 64 targets, while a notify.Publisher drains the
// store into an events stream with as many replicas as the store; an
// iteration is one event, and the run ends when the last is in the
// stream. bbolt publishes to the one-node server, as a single instance
// does.
func BenchmarkHAEvents(b *testing.B) {
	stores, urls := benchStores(b)
	const writers, targets = 8, 64
	for _, name := range benchNames {
		b.Run(name, func(b *testing.B) {
			st := stores[name]
			cfg := notify.DefaultConfig()
			cfg.URLs = strings.Split(urls[name], ",")
			cfg.Stream.Name = "EVENTS_" + strings.ReplaceAll(name, "-", "_")
			cfg.Stream.Subjects = []string{"bench." + strings.ReplaceAll(name, "-", "_") + ".>"}
			cfg.Stream.Replicas = 1
			if name == "kv-R3" {
				cfg.Stream.Replicas = 3
			}
			pub, err := notify.New(cfg, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var run sync.WaitGroup
			run.Go(func() {
				if err := pub.Run(ctx); err != nil {
					b.Error(err)
				}
			})
			defer func() { cancel(); run.Wait() }()
			subject := cfg.Stream.Subjects[0][:len(cfg.Stream.Subjects[0])-1] + "failed"
			data := make([]byte, 600)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						key := fmt.Sprintf("bench/%d", (int(i)*writers+w)%targets)
						for {
							_, rev, err := st.Load(key)
							if err != nil {
								b.Error(err)
								return
							}
							m := event.Message{ID: fmt.Sprintf("ev-%d", eventSeq.Add(1)), Subject: subject, Data: data}
							_, err = st.Commit(key, rev, state.Next{Health: state.Health{Outage: uint64(i)}}, []event.Message{m})
							if err == nil {
								break
							}
							if !errors.Is(err, state.ErrConflict) {
								b.Error(err)
								return
							}
						}
						pub.Wake()
					}
				})
			}
			wg.Wait()
			wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
			defer wcancel()
			if err := pub.WaitEmpty(wctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
