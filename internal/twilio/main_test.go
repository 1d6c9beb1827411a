package twilio

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test credentials. The secret is distinctive so tests can prove it never
// shows up in an error.
const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testKey     = "SK0123456789abcdef0123456789abcdef"
	testSecret  = "s3cr3t-never-print-me"
	testService = "KS0123456789abcdef0123456789abcdef"
	testSession = "KC0123456789abcdef0123456789abcdef"
	testPart    = "KP0123456789abcdef0123456789abcdef"
	basePath    = "/proxy" // the API is served under a non-empty path
)

var testTarget = proxy.Target{Source: proxy.SourceParticipant, ServiceSID: testService, SessionSID: testSession, ParticipantSID: testPart}

// api is an httptest server that serves a test's pages for the seed
// endpoint under basePath. Page n is asked for with PageToken=PTn (page 0
// with none), the way Twilio's opaque tokens work; handler decides the
// response.
type api struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	log      []*http.Request // every request, in order
}

// newAPI starts a server whose handler gets the page number asked for.
func newAPI(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, page int)) *api {
	t.Helper()
	a := &api{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+basePath+"/v1/Services/{ks}/Sessions/{kc}/Participants/{kp}/MessageInteractions", func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		a.mu.Lock()
		a.log = append(a.log, r)
		a.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); !ok || user != testKey || pass != testSecret {
			writeError(w, 401, 20003, "Authenticate")
			return
		}
		page := 0
		if tok := r.URL.Query().Get("PageToken"); tok != "" {
			if _, err := fmt.Sscanf(tok, "PT%d", &page); err != nil {
				writeError(w, 400, 20001, "bad PageToken")
				return
			}
		}
		handler(w, r, page)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// listURL is the seed endpoint's URL on the test server.
func (a *api) listURL() string {
	return a.srv.URL + basePath + "/v1/Services/" + testService + "/Sessions/" + testSession +
		"/Participants/" + testPart + "/MessageInteractions"
}

// pageURL is the absolute next_page_url of page n, as Twilio writes it.
func (a *api) pageURL(n int) string {
	return fmt.Sprintf("%s?PageSize=1000&PageToken=PT%d", a.listURL(), n)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, fmt.Sprintf(`{"code":%d,"message":%q,"more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`,
		code, msg, code, status))
}

// interactionJSON is a complete interaction item with SIDs derived from n.
func interactionJSON(n int) string {
	return fmt.Sprintf(`{"sid":"KI%032x","account_sid":"%s","service_sid":"%s","session_sid":"%s","participant_sid":"%s",`+
		`"data":"{\"body\":\"message number %d\"}","type":"message",`+
		`"inbound_participant_sid":null,"inbound_resource_sid":null,"inbound_resource_status":null,"inbound_resource_type":null,"inbound_resource_url":null,`+
		`"outbound_participant_sid":"%s","outbound_resource_sid":"SM%032x","outbound_resource_status":"delivered","outbound_resource_type":"Message",`+
		`"outbound_resource_url":"https://api.twilio.com/2010-04-01/Accounts/%s/Messages/SM%032x.json",`+
		`"date_created":"2026-11-26T20:%02d:%02dZ","date_updated":"2026-11-26T21:%02d:%02dZ",`+
		`"url":"https://proxy.twilio.com/v1/Services/%s/Sessions/%s/Participants/%s/MessageInteractions/KI%032x"}`,
		n, testAccount, testService, testSession, testPart, n, testPart, n, testAccount, n,
		n/60%60, n%60, n/60%60, n%60, testService, testSession, testPart, n)
}

// pageJSON is a list page holding items [from, to) with the given
// next_page_url ("" for null).
func pageJSON(from, to int, next string) string {
	var b strings.Builder
	b.WriteString(`{"interactions":[`)
	for i := from; i < to; i++ {
		if i > from {
			b.WriteByte(',')
		}
		b.WriteString(interactionJSON(i))
	}
	nu := "null"
	if next != "" {
		nu = fmt.Sprintf("%q", next)
	}
	fmt.Fprintf(&b, `],"meta":{"page":0,"page_size":1000,"first_page_url":"x","previous_page_url":null,"url":"x","next_page_url":%s,"key":"interactions"}}`, nu)
	return b.String()
}

// testConfig is a Config for srv with short backoffs and loose limits, so
// tests spend no time waiting unless they mean to.
func testConfig(a *api) Config {
	return Config{
		BaseURL:           a.srv.URL + basePath,
		AccountSID:        testAccount,
		APIKeySID:         testKey,
		APIKeySecret:      testSecret,
		Version:           "test",
		RequestsPerSecond: 1000,
		Burst:             1000,
		MinBackoff:        time.Millisecond,
		MaxBackoff:        20 * time.Millisecond,
		RequestTimeout:    5 * time.Second,
	}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	retries  []string
	listings []int
}

func (r *recorder) Request(status int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}

func (r *recorder) Retry(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, reason)
}

func (r *recorder) Listing(pages int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listings = append(r.listings, pages)
}
