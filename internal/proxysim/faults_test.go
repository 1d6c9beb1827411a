package proxysim_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     proxysim.Faults
		check func(t *testing.T, r response)
	}{
		{"5xx", proxysim.Faults{ErrorRate: 1}, func(t *testing.T, r response) {
			if r.status != 500 && r.status != 503 {
				t.Fatalf("status %d", r.status)
			}
			wantError(t, r, r.status, 20000+r.status)
		}},
		{"storm with Retry-After", proxysim.Faults{StormRate: 1, StormRetryAfter: 3 * time.Second}, func(t *testing.T, r response) {
			wantError(t, r, 429, 20429)
			if r.header.Get("Retry-After") != "3" {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
		}},
		{"storm without Retry-After", proxysim.Faults{StormRate: 1}, func(t *testing.T, r response) {
			wantError(t, r, 429, 20429)
			if _, ok := r.header["Retry-After"]; ok {
				t.Error("Retry-After sent")
			}
		}},
		{"HTML error page", proxysim.Faults{HTMLRate: 1}, func(t *testing.T, r response) {
			if r.status != 502 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<html>") {
				t.Errorf("%d %q %q", r.status, r.header.Get("Content-Type"), r.body)
			}
		}},
		{"wrong content type", proxysim.Faults{WrongContentTypeRate: 1}, func(t *testing.T, r response) {
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("%d %q", r.status, r.header.Get("Content-Type"))
			}
		}},
		{"truncated body", proxysim.Faults{TruncateRate: 1}, func(t *testing.T, r response) {
			var v any
			err := json.Unmarshal(r.body, &v)
			if r.status != 200 || err == nil || !strings.HasPrefix(string(r.body), `{"interactions":[`) {
				t.Errorf("%d, decode error %v", r.status, err)
			}
		}},
		{"slow body", proxysim.Faults{SlowBodyRate: 1, SlowBody: 50 * time.Millisecond}, func(t *testing.T, r response) {
			var v any
			if r.status != 200 || json.Unmarshal(r.body, &v) != nil {
				t.Errorf("slow body not whole: %d", r.status)
			}
		}},
		{"latency", proxysim.Faults{Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}, func(t *testing.T, r response) {
			if r.status != 200 {
				t.Errorf("status %d", r.status)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, proxysim.Options{Faults: tc.f})
			path := participantPath(e.sim.Targets()[0])
			tc.check(t, e.get(path))
			if e.sim.Stats().Faults == 0 && tc.f.Latency == 0 {
				t.Error("fault not counted")
			}
			e.sim.SetFaults(proxysim.Faults{})
			if r := e.get(path); r.status != 200 {
				t.Errorf("after clearing faults: %d", r.status)
			}
		})
	}
}

func TestFaultRate(t *testing.T) {
	e := newEnv(t, proxysim.Options{Faults: proxysim.Faults{ErrorRate: 0.25}, RateLimit: -1})
	path := participantPath(e.sim.Targets()[0])
	failed := 0
	for i := 0; i < 400; i++ {
		if e.get(path).status >= 500 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("%d of 400 failed at rate 0.25", failed)
	}
}

func TestTargetError(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 2})
	tgs := e.sim.Targets()
	a, b := tgs[0], tgs[2]
	if err := e.sim.SetTargetError(a, 401); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.get(participantPath(a)), 401, 20003)
	if r := e.get(participantPath(tgs[1])); r.status != 200 {
		t.Errorf("the session's other participant: %d", r.status)
	}
	// Session-wide 404.
	if err := e.sim.SetTargetError(proxysim.Target{ServiceSID: b.ServiceSID, SessionSID: b.SessionSID}, 404); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.get(sessionPath(b)), 404, 20404)
	wantError(t, e.get(participantPath(b)), 404, 20404)
	if err := e.sim.SetTargetError(a, 0); err != nil {
		t.Fatal(err)
	}
	if r := e.get(participantPath(a)); r.status != 200 {
		t.Errorf("after clearing: %d", r.status)
	}
	if err := e.sim.SetTargetError(a, 302); err == nil {
		t.Error("accepted status 302")
	}
}

func TestListenAndClose(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 3})
	srv, err := sim.Start()
	if err != nil {
		t.Fatal(err)
	}
	tg := sim.Targets()[0]
	c := sim.Credentials()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+participantPath(tg), nil)
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), srv.URL+"/v1/") {
		t.Errorf("%d, URLs not on %s", resp.StatusCode, srv.URL)
	}
	// A request parked in a slow body does not hold Close up.
	sim.SetFaults(proxysim.Faults{SlowBodyRate: 1, SlowBody: time.Hour})
	req2, _ := http.NewRequest(http.MethodGet, srv.URL+participantPath(tg), nil)
	req2.SetBasicAuth(c.AccountSID, c.AuthToken)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req2); err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return sim.Stats().Faults > 0 })
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if time.Since(start) > 4*time.Second {
		t.Error("Close waited for the slow body")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestServe(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 3})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/Services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unauthenticated: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestGzip(t *testing.T) {
	e := newEnv(t, proxysim.Options{Gzip: true})
	path := participantPath(e.sim.Targets()[0])
	c := e.sim.Credentials()
	for _, accept := range []string{"gzip", "br;q=1, gzip;q=0.5", ""} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.SetBasicAuth(c.AccountSID, c.AuthToken)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept) // also turns off transparent decompression
		} else {
			req.Header.Set("Accept-Encoding", "identity")
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if accept != "" {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q", accept, resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		} else if resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("identity: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
		}
		var p map[string]any
		if err := json.NewDecoder(body).Decode(&p); err != nil || p["interactions"] == nil {
			t.Errorf("Accept-Encoding %q: %v", accept, err)
		}
		resp.Body.Close()
	}
}
