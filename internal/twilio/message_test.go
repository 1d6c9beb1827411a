package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

const testMessageSID = "SM0123456789abcdef0123456789abcdef"

// messageServer serves FetchMessage under /api with handler, counting
// requests and checking the credentials.
func messageServer(t *testing.T, cr proxysim.Credentials, handler func(w http.ResponseWriter, r *http.Request, n int64)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/2010-04-01/Accounts/{ac}/Messages/{sid}", func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		if user, pass, ok := r.BasicAuth(); !ok || user != cr.APIKeySID || pass != cr.APIKeySecret || r.PathValue("ac") != cr.AccountSID {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		handler(w, r, k)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &n
}

func messageJSON(status string, code int, msg string) string {
	c, m := "null", "null"
	if code != 0 {
		c, m = fmt.Sprint(code), fmt.Sprintf("%q", msg)
	}
	return fmt.Sprintf(`{"sid":%q,"status":%q,"error_code":%s,"error_message":%s,"body":"personal","to":"+15555550100"}`,
		testMessageSID, status, c, m)
}

func writeMsg(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

var testCreds = proxysim.Credentials{AccountSID: "AC0123456789abcdef0123456789abcdef",
	APIKeySID: "SK0123456789abcdef0123456789abcdef", APIKeySecret: "s3cr3t-never-print-me"}

func messageClient(t *testing.T, srv *httptest.Server, mod func(*twilio.Config)) *twilio.Client {
	t.Helper()
	cfg := twilio.Config{
		// The Proxy base points nowhere: FetchMessage must use its own.
		BaseURL: "http://127.0.0.1:1", MessagesBaseURL: srv.URL + "/api/",
		AccountSID: testCreds.AccountSID, APIKeySID: testCreds.APIKeySID, APIKeySecret: testCreds.APIKeySecret,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MessagesPerSecond: 1000,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestFetchMessageFromSimulator(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sim := proxysim.New(proxysim.Options{Seed: 3, Interactions: 40, FailureRate: 1, RateLimit: -1,
		Clock: func() time.Time { return clock }})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := simClient(t, sim, func(c *twilio.Config) { c.BaseURL, c.MessagesBaseURL, c.MessagesPerSecond = srv.URL, srv.URL, 1000 })
	ctx := context.Background()
	tg := sim.Targets()[0]
	its, err := c.ListInteractions(ctx, proxy.Target{Source: proxy.SourceParticipant,
		ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID})
	if err != nil {
		t.Fatal(err)
	}
	coded := 0
	for _, it := range its {
		m, err := c.FetchMessage(ctx, it.OutboundResourceSID)
		if err != nil {
			t.Fatalf("%s: %v", it.OutboundResourceSID, err)
		}
		if m.SID != it.OutboundResourceSID || m.Status != it.OutboundResourceStatus {
			t.Errorf("message %+v, leg %s %s", m, it.OutboundResourceSID, it.OutboundResourceStatus)
		}
		if m.Status == "failed" || m.Status == "undelivered" {
			if m.ErrorCode == 0 || m.ErrorMessage == "" {
				t.Errorf("%s %s without a code: %+v", m.SID, m.Status, m)
			}
			coded++
		}
	}
	if coded == 0 {
		t.Fatal("no failed message fetched")
	}

	_, err = c.FetchMessage(ctx, "SM"+strings.Repeat("a", 32))
	if !twilio.IsNotFound(err) || !strings.HasPrefix(err.Error(), "fetch message: ") {
		t.Errorf("unknown SID: %v, want a 404", err)
	}
	if _, err := c.FetchMessage(ctx, its[0].SID); err == nil || !strings.Contains(err.Error(), its[0].SID) {
		t.Errorf("an interaction SID: %v, want an error naming it", err)
	}
}

func TestFetchMessageRetries429And5xx(t *testing.T) {
	srv, n := messageServer(t, testCreds, func(w http.ResponseWriter, r *http.Request, k int64) {
		switch k {
		case 1:
			w.Header().Set("Retry-After", "0")
			writeMsg(w, 429, `{"code":20429,"message":"Too Many Requests","status":429}`)
		case 2:
			writeMsg(w, 503, `{"code":20503,"message":"Service Unavailable","status":503}`)
		default:
			writeMsg(w, 200, messageJSON("undelivered", 30007, "Carrier violation"))
		}
	})
	c := messageClient(t, srv, nil)
	m, err := c.FetchMessage(context.Background(), testMessageSID)
	if err != nil {
		t.Fatal(err)
	}
	want := twilio.Message{SID: testMessageSID, Status: "undelivered", ErrorCode: 30007, ErrorMessage: "Carrier violation"}
	if m != want || n.Load() != 3 {
		t.Errorf("got %+v after %d requests, want %+v after 3", m, n.Load(), want)
	}
}

func TestFetchMessageNotRetriedOn404(t *testing.T) {
	srv, n := messageServer(t, testCreds, func(w http.ResponseWriter, r *http.Request, _ int64) {
		writeMsg(w, 404, `{"code":20404,"message":"The requested resource was not found","status":404}`)
	})
	c := messageClient(t, srv, nil)
	_, err := c.FetchMessage(context.Background(), testMessageSID)
	if !twilio.IsNotFound(err) || n.Load() != 1 {
		t.Errorf("err %v after %d requests, want a 404 after 1", err, n.Load())
	}
	if strings.Contains(err.Error(), testCreds.APIKeySecret) {
		t.Errorf("secret in error: %v", err)
	}
}

// TestFetchMessageBoundedByContext: a Messages API that never answers
// costs the caller its deadline, not more.
func TestFetchMessageBoundedByContext(t *testing.T) {
	release := make(chan struct{})
	srv, _ := messageServer(t, testCreds, func(w http.ResponseWriter, r *http.Request, _ int64) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := messageClient(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.FetchMessage(ctx, testMessageSID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the deadline", err)
	}
}

// TestFetchMessageOwnBudget: FetchMessage calls that hang hold only their
// own in-flight slots; Proxy listings of the same client go through.
func TestFetchMessageOwnBudget(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 4, RateLimit: -1})
	sim.SetMessageFaults(proxysim.Faults{Latency: time.Hour})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := simClient(t, sim, func(c *twilio.Config) {
		c.BaseURL, c.MessagesBaseURL = srv.URL, srv.URL
		c.MaxInFlight, c.MessagesInFlight = 1, 2
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := c.FetchMessage(ctx, "SM"+strings.Repeat("a", 32))
			done <- err
		}()
	}
	waitFor(t, "two message requests in flight", func() bool { return sim.Stats().MaxInFlight >= 2 })
	tg := sim.Targets()[0]
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	if _, err := c.ListInteractions(lctx, proxy.Target{Source: proxy.SourceParticipant,
		ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID}); err != nil {
		t.Errorf("listing while messages hang: %v", err)
	}
	if got := sim.Stats().MaxInFlight; got > 3 {
		t.Errorf("%d requests in flight, want at most 2 messages + 1 listing", got)
	}
	cancel()
	for range 4 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("hung fetch: %v", err)
		}
	}
	srv.CloseClientConnections()
}

func TestNewValidatesMessagesBaseURL(t *testing.T) {
	_, err := twilio.New(twilio.Config{AccountSID: testCreds.AccountSID, AuthToken: "x",
		MessagesBaseURL: "ftp://user:pw@example.com"})
	if err == nil || !strings.Contains(err.Error(), "MessagesBaseURL") || strings.Contains(err.Error(), "pw") {
		t.Errorf("err %v, want one naming MessagesBaseURL without the password", err)
	}
}

// waitFor polls cond until it holds, failing the test after five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFetchMessageFollowsNoRedirect: the credentials go to
// MessagesBaseURL's host only; a redirect elsewhere is an error, not a
// second request.
func TestFetchMessageFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	srv, n := messageServer(t, testCreds, func(w http.ResponseWriter, r *http.Request, _ int64) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	})
	c := messageClient(t, srv, nil)
	_, err := c.FetchMessage(context.Background(), testMessageSID)
	var ae *twilio.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusFound || n.Load() != 1 || elsewhere.Load() != 0 {
		t.Errorf("err %v, %d requests here and %d elsewhere; want the 302 as an error, one request, none elsewhere",
			err, n.Load(), elsewhere.Load())
	}
}

// TestFetchMessageBudgetWaitPastDeadlineIsATimeout: when the next token
// comes after the caller's deadline, the error says deadline, so that the
// poller counts a timeout, not a failure.
func TestFetchMessageBudgetWaitPastDeadlineIsATimeout(t *testing.T) {
	srv, n := messageServer(t, testCreds, func(w http.ResponseWriter, r *http.Request, _ int64) {
		writeMsg(w, 200, messageJSON("delivered", 0, ""))
	})
	c := messageClient(t, srv, func(c *twilio.Config) { c.MessagesPerSecond, c.MessagesInFlight = 0.001, 1 })
	if _, err := c.FetchMessage(context.Background(), testMessageSID); err != nil {
		t.Fatal(err) // spends the one token
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.FetchMessage(ctx, testMessageSID)
	if !errors.Is(err, context.DeadlineExceeded) || n.Load() != 1 {
		t.Errorf("err %v after %d requests, want a deadline error and no second request", err, n.Load())
	}
}
