package poller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

var firstSID = regexp.MustCompile(`"sid":\s*"KI[0-9a-fA-F]{32}"`)

// TestNullSIDFailsThePoll: a listing with an item whose sid is null is not
// complete. It used to drop the item, so the SID it had before was reported
// deleted (and created when it came back). Now the poll fails like a bad
// page: nothing but health is committed, the target's health says why, a
// target_error follows after the threshold, and when the listing is whole
// again only target_recovered is published.
func TestNullSIDFailsThePoll(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 3, Participants: 1}, func(c *Config) { c.FailureThreshold = 2 })
	// The simulator's API, with the first interaction's sid nulled while
	// null is set: the real client, decoder and poller see it.
	var null atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept-Encoding")
		rec := httptest.NewRecorder()
		f.sim.ServeHTTP(rec, r)
		body := rec.Body.String()
		if null.Load() && strings.HasSuffix(r.URL.Path, "/MessageInteractions") {
			loc := firstSID.FindStringIndex(body)
			if loc == nil {
				t.Errorf("no interaction sid in %s", body)
			} else {
				body = body[:loc[0]] + `"sid": null` + body[loc[1]:]
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	cr := f.sim.Credentials()
	c, err := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID,
		APIKeySecret: cr.APIKeySecret, MaxAttempts: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := f.p.SetTargets(f.specs(c)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("baseline: %v", res)
	}
	f.outbox(t)
	key := f.p.Status()[0].Key
	before, _, err := f.db.Load(key)
	if err != nil {
		t.Fatal(err)
	}

	null.Store(true)
	f.now.Add(60)
	if res := f.p.PollAll(ctx); res[ResultError] != 1 {
		t.Fatalf("listing with a null sid: %v, want error", res)
	}
	if got := f.outbox(t); len(got) != 0 {
		t.Fatalf("listing with a null sid published %v, want nothing (below the threshold)", got)
	}
	st := f.p.Status()[0]
	if !strings.Contains(st.LastError, "].sid: null or empty: the interaction cannot be identified") {
		t.Errorf("status %+v, want the last error naming the sid", st)
	}
	after, _, err := f.db.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Snapshot.Equal(before.Snapshot) {
		t.Error("the snapshot moved")
	}
	f.now.Add(60)
	f.p.PollAll(ctx)
	if got := f.outbox(t); len(got) != 1 || got[0] != event.TargetError {
		t.Fatalf("second failed poll: %v, want [target_error]", got)
	}
	if st := f.p.Status()[0]; st.Health != HealthFailing || st.ErrorClass != ClassInvalidResponse {
		t.Errorf("status %+v, want failing, class %s", st, ClassInvalidResponse)
	}

	null.Store(false)
	f.now.Add(60)
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("whole listing again: %v", res)
	}
	if got := f.outbox(t); len(got) != 1 || got[0] != event.TargetRecovered {
		t.Fatalf("whole listing again: %v, want [target_recovered] and no deleted or created", got)
	}
}
