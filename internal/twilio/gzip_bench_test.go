package twilio

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/monitord/monitord/internal/proxysim"
)

// BenchmarkGunzip decompresses the simulator's gzip answer for a target of
// 200 and of 1000 interactions (`simulate --gzip`, which compresses at
// BestSpeed) with compress/gzip, what the client uses, and with
// klauspost/compress/gzip, side by side, each reader reused with Reset as
// the client pools it. klauspost is only imported here, to measure it.
//
//	go test -run '^$' -bench BenchmarkGunzip -benchmem -count 5 ./internal/twilio/
func BenchmarkGunzip(b *testing.B) {
	for _, n := range []int{200, 1000} {
		body := simGzipPage(b, n)
		b.Run("n="+strconv.Itoa(n)+"/stdlib", func(b *testing.B) {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			benchGunzip(b, body, zr.Reset, zr)
		})
		b.Run("n="+strconv.Itoa(n)+"/klauspost", func(b *testing.B) {
			zr, err := kgzip.NewReader(bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			benchGunzip(b, body, zr.Reset, zr)
		})
	}
}

func benchGunzip(b *testing.B, body []byte, reset func(io.Reader) error, zr io.Reader) {
	var out bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	defer reportCPU(b)()
	for b.Loop() {
		if err := reset(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
		out.Reset()
		if _, err := out.ReadFrom(zr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len())/float64(len(body)), "ratio")
}

// simGzipPage is the simulator's gzip body for one participant's listing
// of n interactions.
func simGzipPage(b *testing.B, n int) []byte {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sim := proxysim.New(proxysim.Options{Seed: 16, Participants: 1, Interactions: n, Gzip: true,
		Clock: func() time.Time { return now }, RateLimit: -1})
	t := sim.Targets()[0]
	cr := sim.Credentials()
	r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/v1/Services/"+t.ServiceSID+"/Sessions/"+t.SessionSID+
		"/Participants/"+t.ParticipantSID+"/MessageInteractions?PageSize=1000", nil)
	r.SetBasicAuth(cr.APIKeySID, cr.APIKeySecret)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, r)
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" {
		b.Fatalf("simulator answered %d, encoding %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	return w.Body.Bytes()
}
