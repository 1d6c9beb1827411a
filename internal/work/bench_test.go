package work

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkDedupeWindow measures what the deduplication window costs the
// server: each op publishes one task of a distinct target; then the
// stream is purged, as polling empties a work queue, and heap-B/task is
// the heap still held per task published. The ids stay in the window for
// Config.Duplicates whether or not the task was polled, so the difference
// between the "tick-id" and "no-id" rows is the window's cost per id on
// each replica. "hashed-id" is the shorter id a target hash would give (16
// hex digits + "@" + ms).
//
//	go test -run '^$' -bench DedupeWindow -benchtime 20000x -count 3 ./internal/work/
func BenchmarkDedupeWindow(b *testing.B) {
	for _, mode := range []string{"no-id", "tick-id", "hashed-id"} {
		b.Run(mode, func(b *testing.B) {
			cl := natstest.StartCluster(b, 1)
			nc, err := nats.Connect(cl.URLs())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			c := DefaultConfig()
			c.Replicas = 1
			sc := StreamConfig(c)
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, sc); err != nil {
				b.Fatal(err)
			}
			due := time.UnixMilli(1700000000000)
			msgs := make([]*nats.Msg, b.N)
			for i := range msgs {
				t := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: sid("KS", 1),
					SessionSID: sid("KC", i), ParticipantSID: sid("KP", i)}
				m := &nats.Msg{Subject: Subject(c.Prefix, t), Header: nats.Header{},
					Data: fmt.Appendf(nil, `{"source":"participant","service_sid":"%s","session_sid":"%s","participant_sid":"%s","due_ms":%d}`,
						t.ServiceSID, t.SessionSID, t.ParticipantSID, due.UnixMilli())}
				switch mode {
				case "tick-id":
					m.Header.Set(jetstream.MsgIDHeader, poller.Tick{Key: t.Key(), Due: due}.ID())
				case "hashed-id":
					sum := sha256.Sum256([]byte(t.Key()))
					m.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(sum[:8])+"@"+fmt.Sprint(due.UnixMilli()))
				}
				msgs[i] = m
			}
			before := heap()
			b.ResetTimer()
			for i := range b.N {
				if _, err := js.PublishMsg(ctx, msgs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// A work queue's tasks are gone once polled; their ids stay.
			// The purge leaves the window, as the ack of a task does: the
			// first task published again is still a duplicate.
			st, err := js.Stream(ctx, sc.Name)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Purge(ctx); err != nil {
				b.Fatal(err)
			}
			after := heap()
			ack, err := js.PublishMsg(ctx, msgs[0])
			if err != nil {
				b.Fatal(err)
			}
			if ack.Duplicate != (mode != "no-id") {
				b.Fatalf("%s: republished task duplicate = %v", mode, ack.Duplicate)
			}
			b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/task")
			runtime.KeepAlive(msgs)
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
