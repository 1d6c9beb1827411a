package diff

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/twilio"
)

// Pure diff and encoding costs, without bbolt: what the state benchmarks
// add on top is the disk. Figures in docs/performance.md.

func benchTarget(n int) []twilio.Interaction {
	listing := make([]twilio.Interaction, n)
	// Twilio lists newest first, not by SID: start unsorted like the API.
	for i := range listing {
		listing[i] = ix(n-i, "received", "delivered", t0.Add(-time.Hour))
	}
	return listing
}

func BenchmarkDiffUnchanged(b *testing.B) {
	const n = 200
	listing := benchTarget(n)
	_, s := Diff(testTarget, Snapshot{}, listing, t0, DefaultRules())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if evs, _ := Diff(testTarget, s, listing, t0.Add(time.Minute), DefaultRules()); len(evs) != 0 {
			b.Fatal("events")
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "interactions/s")
}

func BenchmarkSnapshotMarshal(b *testing.B) {
	_, s := Diff(testTarget, Snapshot{}, benchTarget(200), t0, DefaultRules())
	buf, _ := s.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _ = s.AppendBinary(buf[:0])
	}
}

func BenchmarkSnapshotUnmarshal(b *testing.B) {
	_, s := Diff(testTarget, Snapshot{}, benchTarget(200), t0, DefaultRules())
	buf, _ := s.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d Snapshot
		if err := d.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}
