package proxysim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/proxysim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator behind httptest with a fake clock.
type env struct {
	t     *testing.T
	sim   *proxysim.Sim
	srv   *httptest.Server
	clock *fakeClock
}

func newEnv(t *testing.T, o proxysim.Options) *env {
	t.Helper()
	c := newClock()
	if o.Clock == nil {
		o.Clock = c.Now
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	sim := proxysim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv, clock: c}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// get fetches path (or an absolute URL) with the account credentials.
func (e *env) get(path string) response {
	e.t.Helper()
	c := e.sim.Credentials()
	return e.getAuth(path, c.AccountSID, c.AuthToken)
}

func (e *env) getAuth(path, user, pass string) response {
	e.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// listPage is the envelope, decoded loosely so that every key can be checked.
type listPage struct {
	Interactions []map[string]any `json:"interactions"`
	Sessions     []map[string]any `json:"sessions"`
	Participants []map[string]any `json:"participants"`
	Meta         map[string]any   `json:"meta"`
}

func (e *env) list(path string) listPage {
	e.t.Helper()
	r := e.get(path)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var p listPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return p
}

// listAll follows next_page_url to the end and returns every interaction.
func (e *env) listAll(path string) (items []map[string]any, pages int) {
	e.t.Helper()
	for next := path; next != ""; pages++ {
		p := e.list(next)
		items = append(items, p.Interactions...)
		items = append(items, p.Sessions...)
		items = append(items, p.Participants...)
		next, _ = p.Meta["next_page_url"].(string)
		if pages > 10000 {
			e.t.Fatal("paging does not end")
		}
	}
	return items, pages
}

func participantPath(t proxysim.Target) string {
	return "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID +
		"/Participants/" + t.ParticipantSID + "/MessageInteractions"
}

func sessionPath(t proxysim.Target) string {
	return "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID + "/Interactions"
}

type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// wantError checks a Twilio error response.
func wantError(t *testing.T, r response, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Code != code || e.Status != status || e.Message == "" ||
		!strings.HasPrefix(e.MoreInfo, "https://www.twilio.com/docs/errors/") {
		t.Errorf("error body %+v, want code %d status %d", e, code, status)
	}
}
