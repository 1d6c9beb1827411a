package twilio

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

func TestListFollowsNextPageURLUntilNull(t *testing.T) {
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		switch page {
		case 0: // a short first page: not the end, next_page_url says so
			writeJSON(w, 200, pageJSON(0, 2, a.pageURL(1)))
		case 1:
			writeJSON(w, 200, pageJSON(2, 5, a.pageURL(2)))
		case 2:
			writeJSON(w, 200, pageJSON(5, 5, ""))
		}
	})
	rec := &recorder{}
	cfg := testConfig(a)
	cfg.Observer = rec
	c := newClient(t, cfg)
	got, err := c.ListInteractions(context.Background(), testTarget)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d interactions, want 5", len(got))
	}
	for i, it := range got {
		if want := fmt.Sprintf("KI%032x", i); it.SID != want {
			t.Errorf("item %d: SID %s, want %s", i, it.SID, want)
		}
	}
	if n := a.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	first := a.log[0]
	if got := first.URL.Query().Get("PageSize"); got != "1000" {
		t.Errorf("first request PageSize=%q, want 1000", got)
	}
	if got := first.Header.Get("User-Agent"); got != "monitord/test" {
		t.Errorf("User-Agent %q", got)
	}
	if got := first.Header.Get("Accept-Encoding"); got != "gzip" {
		t.Errorf("Accept-Encoding %q", got)
	}
	if got := a.log[2].URL.Query().Get("PageToken"); got != "PT2" {
		t.Errorf("third request PageToken=%q: the client must use next_page_url as given", got)
	}
	if len(rec.listings) != 1 || rec.listings[0] != 3 {
		t.Errorf("Observer.Listing calls %v, want [3]", rec.listings)
	}
	if len(rec.statuses) != 3 || rec.statuses[0] != 200 {
		t.Errorf("Observer.Request statuses %v", rec.statuses)
	}
}

func TestListRefusesForeignNextPageURL(t *testing.T) {
	other := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		writeJSON(w, 200, pageJSON(0, 0, ""))
	})
	cases := map[string]func(a *api) string{
		"other host": func(*api) string { return other.pageURL(1) },
		"other scheme": func(a *api) string {
			return strings.Replace(a.pageURL(1), "http://", "https://", 1)
		},
		"userinfo": func(a *api) string {
			return strings.Replace(a.pageURL(1), "http://", "http://evil:pw@", 1)
		},
	}
	for name, next := range cases {
		t.Run(name, func(t *testing.T) {
			var a *api
			a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
				writeJSON(w, 200, pageJSON(0, 3, next(a)))
			})
			got, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
			if !errors.Is(err, ErrForeignHost) || got != nil {
				t.Fatalf("got %d items, err %v; want ErrForeignHost and nothing", len(got), err)
			}
			if n := other.requests.Load(); n != 0 {
				t.Fatalf("the foreign host got %d requests", n)
			}
			// The message says why, and never the user info itself.
			want := map[string]string{"other host": "is not the base url's", "other scheme": "is not the base url's",
				"userinfo": "carries user info (credentials in the url are not allowed)"}[name]
			if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "evil") || strings.Contains(msg, ":pw") {
				t.Errorf("error %q: want the reason %q and no user info", msg, want)
			}
		})
	}
}

func TestListDetectsPageLoop(t *testing.T) {
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		next := a.pageURL(page + 1)
		if page == 2 {
			next = a.pageURL(1)
		}
		writeJSON(w, 200, pageJSON(page, page+1, next))
	})
	got, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	if !errors.Is(err, ErrPageLoop) || got != nil {
		t.Fatalf("err %v, %d items; want ErrPageLoop", err, len(got))
	}
	if n := a.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestListCapsPages(t *testing.T) {
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		writeJSON(w, 200, pageJSON(page, page+1, a.pageURL(page+1)))
	})
	cfg := testConfig(a)
	cfg.MaxPages = 4
	got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	if !errors.Is(err, ErrTooManyPages) || got != nil {
		t.Fatalf("err %v, %d items; want ErrTooManyPages", err, len(got))
	}
	if n := a.requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestListReturnsNothingWhenALaterPageFails(t *testing.T) {
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		if page == 0 {
			writeJSON(w, 200, pageJSON(0, 10, a.pageURL(1)))
			return
		}
		writeJSON(w, 200, pageJSON(10, 12, "")[:100])
	})
	got, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	if err == nil || got != nil {
		t.Fatalf("got %d items, err %v; want no items and an error", len(got), err)
	}
}

func TestListStopsOnCancelMidListing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		if page == 0 {
			writeJSON(w, 200, pageJSON(0, 10, a.pageURL(1)))
			return
		}
		cancel() // the caller gives up while page 1 is in flight
		<-r.Context().Done()
	})
	got, err := newClient(t, testConfig(a)).ListInteractions(ctx, testTarget)
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Fatalf("got %d items, err %v; want context.Canceled", len(got), err)
	}
	if n := a.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (no retry after cancel)", n)
	}
}

func TestListAcceptsGzip(t *testing.T) {
	body := pageJSON(0, 300, "")
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Error("no Accept-Encoding: gzip")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write([]byte(body))
		_ = zw.Close()
	})
	got, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	if err != nil || len(got) != 300 {
		t.Fatalf("err %v, %d items", err, len(got))
	}

	// The size cap counts decompressed bytes: a small gzip stream that
	// inflates past it is refused.
	cfg := testConfig(a)
	cfg.MaxResponseBytes = int64(len(body)) / 2
	_, err = newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{BaseURL: "ftp://x", AccountSID: "AC1", APIKeySID: "SK1", PageSize: 2000, MaxBackoff: -1})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, field := range []string{"BaseURL", "AccountSID", "APIKeySID", "APIKeySecret", "PageSize", "MaxBackoff"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	c, err := New(Config{AccountSID: testAccount, AuthToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if c.basePath != DefaultBaseURL || c.cfg.PageSize != 1000 || c.userAgent != "monitord" {
		t.Errorf("defaults not applied: %s %d %s", c.basePath, c.cfg.PageSize, c.userAgent)
	}
}

func TestOtherListings(t *testing.T) {
	mux := http.NewServeMux()
	var srv *httptest.Server
	sessionItem := `{"sid":"KC0123456789abcdef0123456789abcdef","service_sid":"` + testService + `","account_sid":"` + testAccount + `",` +
		`"date_started":"2015-07-30T20:00:00Z","date_ended":null,"date_last_interaction":null,"date_expiry":null,` +
		`"unique_name":"Order #1234","status":"open","closed_reason":"","ttl":3600,"mode":"voice-and-message",` +
		`"date_created":"2015-07-30T20:00:00Z","date_updated":"2015-07-30T20:00:00Z","url":"u","links":{"interactions":"i","participants":"p"}}`
	mux.HandleFunc("GET "+basePath+"/v1/Services/{ks}/Sessions", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("PageToken") == "" {
			next := srv.URL + basePath + "/v1/Services/" + testService + "/Sessions?PageSize=1000&PageToken=PT1"
			writeJSON(w, 200, `{"sessions":[`+sessionItem+`],"meta":{"key":"sessions","next_page_url":"`+next+`"}}`)
			return
		}
		writeJSON(w, 200, `{"meta":{"key":"sessions","next_page_url":null},"sessions":[`+sessionItem+`]}`)
	})
	mux.HandleFunc("GET "+basePath+"/v1/Services/{ks}/Sessions/{kc}/Participants", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"participants":[{"sid":"`+testPart+`","session_sid":"`+testSession+`","service_sid":"`+testService+`",`+
			`"account_sid":"`+testAccount+`","identifier":"+14155551212","proxy_identifier":"+14155559999",`+
			`"proxy_identifier_sid":"PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","friendly_name":"friendly_name","date_deleted":null,`+
			`"date_updated":"2015-07-30T20:00:00Z","date_created":"2015-07-30T20:00:00Z","url":"u","links":{"message_interactions":"m"}}],`+
			`"meta":{"next_page_url":null}}`)
	})
	mux.HandleFunc("GET "+basePath+"/v1/Services/{ks}/Sessions/{kc}/Interactions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, pageJSON(0, 2, ""))
	})
	mux.HandleFunc("GET "+basePath+"/v1/Services/{ks}/Sessions/{kc}/Interactions/{ki}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, interactionJSON(7))
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, testConfig(&api{srv: srv}))
	ctx := context.Background()

	sessions, err := c.ListSessions(ctx, testService)
	if err != nil || len(sessions) != 2 {
		t.Fatalf("sessions: err %v, %d items", err, len(sessions))
	}
	if s := sessions[0]; s.Status != "open" || s.UniqueName != "Order #1234" || s.Mode != "voice-and-message" ||
		!s.DateStarted.Equal(time.Date(2015, 7, 30, 20, 0, 0, 0, time.UTC)) || !s.DateEnded.IsZero() {
		t.Errorf("session %+v", s)
	}
	parts, err := c.ListParticipants(ctx, testService, testSession)
	if err != nil || len(parts) != 1 || parts[0].Identifier != "+14155551212" || parts[0].ProxyIdentifierSID == "" {
		t.Fatalf("participants: err %v, %+v", err, parts)
	}
	st := proxy.Target{Source: proxy.SourceSession, ServiceSID: testService, SessionSID: testSession}
	its, err := c.ListInteractions(ctx, st)
	if err != nil || len(its) != 2 {
		t.Fatalf("session interactions: err %v, %d items", err, len(its))
	}
	it, err := c.FetchInteraction(ctx, st, fmt.Sprintf("KI%032x", 7))
	if err != nil || it.SID != fmt.Sprintf("KI%032x", 7) {
		t.Fatalf("fetch: err %v, %+v", err, it)
	}
	if _, err := c.ListSessions(ctx, "KSnope"); err == nil || !strings.Contains(err.Error(), "service_sid") {
		t.Errorf("bad service SID: err %v", err)
	}
}

// TestListCanonicalisesSIDCase: Twilio's SID pattern accepts upper-case
// hex, and SIDs are compared as strings downstream, so the client returns
// every SID with lower-case hex: the same interaction keeps one identity
// whichever case a page writes it in.
func TestListCanonicalisesSIDCase(t *testing.T) {
	upper := func(s string) string { return s[:2] + strings.ToUpper(s[2:]) }
	sid, sm := fmt.Sprintf("KI%032x", 0xabc), fmt.Sprintf("SM%032x", 0xdef)
	body := strings.NewReplacer(fmt.Sprintf("KI%032x", 0), upper(sid), fmt.Sprintf("SM%032x", 0), upper(sm)).Replace(pageJSON(0, 1, ""))
	if !strings.Contains(body, upper(sid)) || !strings.Contains(body, upper(sm)) {
		t.Fatalf("test page lacks the upper-case SIDs: %s", body)
	}
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) { writeJSON(w, 200, body) })
	got, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SID != sid || got[0].OutboundResourceSID != sm || got[0].ServiceSID != testService {
		t.Fatalf("got %+v, want sid %s, outbound %s", got, sid, sm)
	}
}
