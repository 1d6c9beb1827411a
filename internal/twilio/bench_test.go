package twilio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/monitord/monitord/internal/proxy"
	twclient "github.com/twilio/twilio-go/client"
	proxyv1 "github.com/twilio/twilio-go/rest/proxy/v1"
)

// twilio-go is imported here only, in a _test file, so it never enters the
// daemon's binary.

// BenchmarkListPage fetches and decodes one 1000-interaction page from the
// same httptest server with this client and with Twilio's official Go SDK
// (twilio-go ListMessageInteraction), side by side in one run:
//
//	go test -run '^$' -bench BenchmarkListPage -benchmem -count 5 ./internal/twilio/
func BenchmarkListPage(b *testing.B) {
	body := []byte(pageJSON(0, 1000, ""))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	b.Run("ours", func(b *testing.B) {
		c, err := New(Config{
			BaseURL: srv.URL, AccountSID: testAccount, APIKeySID: testKey, APIKeySecret: testSecret,
			RequestsPerSecond: 1e9, Burst: 1 << 20, // measure decoding, not the limiter
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			items, err := c.ListInteractions(context.Background(), testTarget)
			if err != nil || len(items) != 1000 {
				b.Fatal(len(items), err)
			}
		}
	})

	b.Run("twilio-go", func(b *testing.B) {
		target, _ := url.Parse(srv.URL)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		tc := &twclient.Client{
			Credentials: twclient.NewCredentials(testKey, "benchSecret0123"),
			HTTPClient:  &http.Client{Transport: rehost{to: target, rt: tr}},
		}
		tc.SetAccountSid(testAccount)
		svc := proxyv1.NewApiServiceWithClient(tc)
		params := (&proxyv1.ListMessageInteractionParams{}).SetPageSize(1000)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			items, err := svc.ListMessageInteraction(testService, testSession, testPart, params)
			if err != nil || len(items) != 1000 {
				b.Fatal(len(items), err)
			}
		}
	})
}

// reportCPU adds the process CPU time per operation to the results: on a
// shared machine wall time (ns/op) swings with the neighbours' load, while
// CPU time is what the goal is about. Call as defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// rehost sends twilio-go's requests (always to https://proxy.twilio.com)
// to the test server instead.
type rehost struct {
	to *url.URL
	rt http.RoundTripper
}

func (h rehost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = h.to.Scheme, h.to.Host, h.to.Host
	return h.rt.RoundTrip(r)
}

// BenchmarkDecodePage is decoding alone, without HTTP: the scanner against
// encoding/json into pointer-field structs (what SDKs generate).
//
//	go test -run '^$' -bench BenchmarkDecodePage -benchmem -count 5 ./internal/twilio/
func BenchmarkDecodePage(b *testing.B) {
	body := pageJSON(0, 1000, "")
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			// Sized up front as list does: growth would be measured otherwise.
			_, items, err := decodePage(body, "interactions", make([]proxy.Interaction, 0, 1000), decodeInteraction)
			if err != nil || len(items) != 1000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		raw := []byte(body)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			var page struct {
				Interactions []proxyv1.ProxyV1MessageInteraction `json:"interactions"`
				Meta         struct {
					NextPageURL *string `json:"next_page_url"`
				} `json:"meta"`
			}
			if err := json.Unmarshal(raw, &page); err != nil || len(page.Interactions) != 1000 {
				b.Fatal(err)
			}
		}
	})
}
