package proxysim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTransport: a client on the in-process transport gets the bytes a
// client over a socket gets, with the URLs on the host it asked for.
func TestTransport(t *testing.T) {
	o := activityOptions(250)
	e := newEnv(t, o)
	e.clock.Advance(20 * time.Minute)
	client := &http.Client{Transport: e.sim.Transport()}
	const base = "https://proxy.twilio.test"
	c := e.sim.Credentials()
	get := func(ctx context.Context, url, pass string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(c.APIKeySID, pass)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	pages := 0
	path := "/v1/Services/" + e.sim.Services()[0] + "/Sessions?PageSize=100"
	for next := base + path; next != ""; pages++ {
		resp, body, err := get(context.Background(), next, c.APIKeySecret)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", next, resp, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		over := e.get(strings.TrimPrefix(next, base))
		if want := bytes.ReplaceAll(over.body, []byte(e.srv.URL), []byte(base)); !bytes.Equal(body, want) {
			t.Fatalf("GET %s: the transport's body differs from the socket's", next)
		}
		next = ""
		if i := bytes.Index(body, []byte(`"next_page_url":"`)); i >= 0 {
			rest := body[i+len(`"next_page_url":"`):]
			next = string(rest[:bytes.IndexByte(rest, '"')])
			if !strings.HasPrefix(next, base+"/") {
				t.Fatalf("next_page_url %s not on %s", next, base)
			}
		}
	}
	if pages != 3 {
		t.Errorf("%d pages of 250 sessions, want 3", pages)
	}
	if resp, _, err := get(context.Background(), base+path, "wrong"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad secret: %v %v", resp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := get(ctx, base+path, c.APIKeySecret); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
}
