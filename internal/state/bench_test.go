package state

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

// Benchmarks of the poller's hot path, load → diff → commit, against a real
// bbolt file in b.TempDir(). See docs/performance.md for the figures and the
// commands.

const benchPerTarget = 200

// benchListing is target tn's listing: n interactions, the first one's
// outbound status set to out. SIDs are built without fmt: at 2 million
// interactions the generator would otherwise dominate the measurement.
func benchListing(tn, n int, out string) []proxy.Interaction {
	listing := make([]proxy.Interaction, n)
	at := t0.Add(-time.Hour)
	for i := range listing {
		id := uint64(tn)<<20 | uint64(i)
		listing[i] = proxy.Interaction{
			SID: benchSID("KI", id), Type: "message",
			InboundResourceSID: benchSID("SM", id<<1), InboundResourceStatus: "received",
			OutboundResourceSID: benchSID("SM", id<<1|1), OutboundResourceStatus: "delivered",
			OutboundResourceURL: "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/x.json",
			DateCreated:         at, DateUpdated: at,
		}
	}
	listing[0].OutboundResourceStatus = out
	return listing
}

func benchSID(prefix string, id uint64) string {
	var b [34]byte
	copy(b[:], prefix)
	for i := range 32 {
		b[2+i] = '0'
	}
	h := strconv.AppendUint(nil, id, 16)
	copy(b[34-len(h):], h)
	return string(b[:])
}

// seed stores the baseline of targets [0, n) directly, many per
// transaction: setting up 2 million interactions one fsync per target would
// take longer than the measurement.
func seed(b *testing.B, db *DB, n, per int) {
	b.Helper()
	const batch = 250
	for start := 0; start < n; start += batch {
		err := db.db.Update(func(tx *bolt.Tx) error {
			for tn := start; tn < min(start+batch, n); tn++ {
				_, snap := diff.Diff(diff.Snapshot{}, benchListing(tn, per, "delivered"), t0, diff.DefaultRules())
				enc, _ := snap.MarshalBinary()
				k := []byte(target(tn).Key())
				if err := tx.Bucket(bucketSnapshots).Put(k, enc); err != nil {
					return err
				}
				if err := tx.Bucket(bucketTargets).Put(k, appendTargetRecord(nil, targetRecord{rev: 1, nextSeq: 1, health: Health{LastSuccess: t0}})); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchDB(b *testing.B) *DB {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{MaxOutboxEvents: 1 << 30, MaxOutboxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// pollOnce is the poller's path for one target: load, diff, render, commit.
func pollOnce(b *testing.B, db *DB, tn int, listing []proxy.Interaction, now time.Time) int {
	tg := target(tn)
	ts, rev, err := db.Load(tg.Key())
	if err != nil {
		b.Fatal(err)
	}
	changes, next := diff.Diff(ts.Snapshot, listing, now, diff.DefaultRules())
	evs := event.FromChanges(tg, now, changes)
	ts.Health.LastAttempt, ts.Health.LastSuccess = now, now
	if _, err := db.Commit(tg.Key(), rev, Next{Snapshot: SnapshotIfChanged(ts.Snapshot, next), Health: ts.Health}, render(evs)); err != nil {
		b.Fatal(err)
	}
	return len(evs)
}

// BenchmarkDiffSaveUnchanged: the common case, nothing changed since the
// last poll. One op is one poll of a target of 200 interactions.
func BenchmarkDiffSaveUnchanged(b *testing.B) {
	const targets = 100
	db := benchDB(b)
	seed(b, db, targets, benchPerTarget)
	listings := make([][]proxy.Interaction, targets)
	for tn := range listings {
		listings[tn] = benchListing(tn, benchPerTarget, "delivered")
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if n := pollOnce(b, db, i%targets, listings[i%targets], t0.Add(time.Duration(i)*time.Second)); n != 0 {
			b.Fatalf("%d events from an unchanged listing", n)
		}
	}
	b.ReportMetric(float64(b.N*benchPerTarget)/time.Since(start).Seconds(), "interactions/s")
}

// BenchmarkDiffSaveChanged: every poll finds one interaction changed, so
// each op writes the snapshot, one event and an fsync.
func BenchmarkDiffSaveChanged(b *testing.B) {
	const targets = 100
	db := benchDB(b)
	seed(b, db, targets, benchPerTarget)
	statuses := []string{"sent", "delivered"}
	listings := make([][2][]proxy.Interaction, targets)
	for tn := range listings {
		for j, s := range statuses {
			listings[tn][j] = benchListing(tn, benchPerTarget, s)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		// Round r of target tn alternates sent/delivered: always a change.
		tn, round := i%targets, i/targets
		if n := pollOnce(b, db, tn, listings[tn][round%2], t0.Add(time.Duration(i)*time.Second)); n == 0 {
			b.Fatal("no event from a changed listing")
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*benchPerTarget)/el, "interactions/s")
	b.ReportMetric(float64(b.N)/el, "commits/s")
}

// BenchmarkDiffSaveChangedParallel is BenchmarkDiffSaveChanged with 32
// polls in flight, as the poller runs them: concurrent commits share bbolt
// transactions and fsyncs (Options.CommitBatch).
func BenchmarkDiffSaveChangedParallel(b *testing.B) {
	const targets = 256
	db := benchDB(b)
	seed(b, db, targets, benchPerTarget)
	statuses := []string{"sent", "delivered"}
	var nextTarget atomic.Int64
	b.SetParallelism(16) // × GOMAXPROCS goroutines, each with its own target
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		tn := int(nextTarget.Add(1)-1) % targets
		listings := [2][]proxy.Interaction{benchListing(tn, benchPerTarget, statuses[0]), benchListing(tn, benchPerTarget, statuses[1])}
		for round := 0; pb.Next(); round++ {
			if n := pollOnce(b, db, tn, listings[round%2], t0.Add(time.Duration(round)*time.Second)); n == 0 {
				b.Error("no event from a changed listing")
				return
			}
		}
	})
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*benchPerTarget)/el, "interactions/s")
	b.ReportMetric(float64(b.N)/el, "commits/s")
}

// BenchmarkTrackedMemory: heap after polling every one of many targets
// once (default 10,000 targets × 200 = 2 million tracked interactions; set
// MONITORD_BENCH_TARGETS to change). Run it with -benchtime=1x: one op is a
// full pass. heap-B is the live heap after the pass (GC'd), peak-heap-B the
// largest sampled live+garbage heap during it.
func BenchmarkTrackedMemory(b *testing.B) {
	targets := 10_000
	if v := os.Getenv("MONITORD_BENCH_TARGETS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MONITORD_BENCH_TARGETS=%q", v)
		}
		targets = n
	}
	db := benchDB(b)
	seed(b, db, targets, benchPerTarget)
	tracked := targets * benchPerTarget
	b.ResetTimer()
	var ms runtime.MemStats
	var peak uint64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for tn := range targets {
			pollOnce(b, db, tn, benchListing(tn, benchPerTarget, "delivered"), t0.Add(time.Duration(i+1)*time.Minute))
			if tn%500 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fi, err := os.Stat(db.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(ms.HeapAlloc), "heap-B")
	b.ReportMetric(float64(peak), "peak-heap-B")
	b.ReportMetric(float64(ms.HeapAlloc)/float64(tracked), "heap-B/interaction")
	b.ReportMetric(float64(fi.Size())/float64(tracked), "disk-B/interaction")
	b.ReportMetric(float64(b.N*tracked)/el, "interactions/s")
}
