package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/monitord/monitord/internal/proxy"
)

func TestListRetriesRateLimited(t *testing.T) {
	cases := []struct {
		name       string
		retryAfter func() string
		code       int
		minGap     time.Duration
	}{
		{name: "no Retry-After", retryAfter: func() string { return "" }, code: 20429},
		{name: "Retry-After seconds", retryAfter: func() string { return "1" }, minGap: time.Second},
		{name: "Retry-After HTTP-date", retryAfter: func() string {
			return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		}, minGap: time.Second}, // the date has whole seconds: 1..2 s ahead
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var times []time.Time
			a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
				times = append(times, time.Now())
				if len(times) == 1 {
					if v := tc.retryAfter(); v != "" {
						w.Header().Set("Retry-After", v)
					}
					writeError(w, 429, tc.code, "Too Many Requests")
					return
				}
				writeJSON(w, 200, pageJSON(0, 2, ""))
			})
			rec := &recorder{}
			cfg := testConfig(a)
			cfg.MaxBackoff = 3 * time.Second
			cfg.MinBackoff = 10 * time.Millisecond
			cfg.Observer = rec
			got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
			if err != nil || len(got) != 2 {
				t.Fatalf("err %v, %d items", err, len(got))
			}
			if len(times) != 2 {
				t.Fatalf("%d requests, want 2", len(times))
			}
			if gap := times[1].Sub(times[0]); gap < tc.minGap {
				t.Errorf("retried after %v, Retry-After asked for at least %v", gap, tc.minGap)
			}
			if len(rec.retries) != 1 || rec.retries[0] != "rate_limited" {
				t.Errorf("Observer.Retry %v", rec.retries)
			}
		})
	}
}

func TestListFailsFastOnLongRetryAfter(t *testing.T) {
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		w.Header().Set("Retry-After", "3600")
		writeError(w, 429, 20429, "Too Many Requests")
	})
	_, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	if !IsRateLimited(err) || !IsRetryable(err) {
		t.Fatalf("err %v, want rate limited", err)
	}
	if n := a.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1: an hour's Retry-After is not waited for", n)
	}
}

func TestListRetriesServerErrorsThenSucceeds(t *testing.T) {
	var calls int
	b := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		calls++
		switch calls {
		case 1:
			writeError(w, 500, 20500, "Internal Server Error")
		case 2:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			_, _ = w.Write([]byte("<html><body>Service Unavailable</body></html>"))
		case 3: // a connection cut mid-response: a transport error
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"interac"))
			_ = conn.Close()
		default:
			writeJSON(w, 200, pageJSON(0, 3, ""))
		}
	})
	rec := &recorder{}
	cfg := testConfig(b)
	cfg.MaxAttempts = 4
	cfg.Observer = rec
	got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	if err != nil || len(got) != 3 {
		t.Fatalf("err %v, %d items", err, len(got))
	}
	want := []string{"server_error", "server_error", "transport"}
	if fmt.Sprint(rec.retries) != fmt.Sprint(want) {
		t.Errorf("Observer.Retry %v, want %v", rec.retries, want)
	}
}

func TestListGivesUpAfterMaxAttempts(t *testing.T) {
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = w.Write([]byte("<html>Bad Gateway</html>"))
	})
	cfg := testConfig(a)
	cfg.MaxAttempts = 3
	_, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 502 || !IsRetryable(err) {
		t.Fatalf("err %v, want a retryable 502 APIError", err)
	}
	if n := a.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestListClientErrorsAreNotRetried(t *testing.T) {
	cases := []struct {
		name   string
		secret string
		status int
		code   int
		check  func(error) bool
	}{
		{"401 wrong secret", "wrong", 401, 20003, IsAuth},
		{"404 unknown participant", testSecret, 404, 20404, IsNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
				writeError(w, 404, 20404, "The requested resource was not found")
			})
			cfg := testConfig(a)
			cfg.APIKeySecret = tc.secret
			got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
			var ae *APIError
			if !errors.As(err, &ae) || got != nil {
				t.Fatalf("err %v, want APIError", err)
			}
			if ae.HTTPStatus != tc.status || ae.Code != tc.code || ae.Message == "" ||
				ae.MoreInfo == "" || !strings.HasPrefix(ae.URL, a.srv.URL+basePath+"/v1/") {
				t.Errorf("APIError %+v", ae)
			}
			if !tc.check(err) || IsRetryable(err) {
				t.Errorf("classified wrongly: %v", err)
			}
			// Packages that must not import the client (discover) tell a
			// 404 from the domain's sentinel.
			if got, want := errors.Is(err, proxy.ErrNotFound), tc.status == 404; got != want {
				t.Errorf("errors.Is(err, proxy.ErrNotFound) = %v, want %v", got, want)
			}
			if n := a.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestListRejectsBadBodies(t *testing.T) {
	big := pageJSON(0, 50, "")
	cases := []struct {
		name     string
		ctype    string
		body     string
		sentinel error
		reason   string
	}{
		{"truncated JSON", "application/json", big[:len(big)/2], nil, "unexpected end of JSON"},
		{"HTML with HTML type", "text/html; charset=utf-8", "<html><body>Oops</body></html>", ErrContentType, "not JSON"},
		{"HTML with JSON type", "application/json", "<html><body>Oops</body></html>", nil, "expected an object"},
		{"no content type", "", pageJSON(0, 1, ""), ErrContentType, "not JSON"},
		{"invalid JSON", "application/json", `{"interactions":[],"meta":{"next_page_url":null}}}`, nil, "after the top-level value"},
		{"not a list", "application/json", `{"code":20404}`, nil, "not a list page"},
		{"no next_page_url", "application/json", `{"interactions":[],"meta":{}}`, nil, "missing"},
		{"oversized", "application/json", pageJSON(0, 200, ""), ErrBodyTooLarge, "exceeds"},
		{"bad SID", "application/json", strings.Replace(pageJSON(0, 3, ""), `"sid":"KI00000000000000000000000000000002"`, `"sid":"KIzz"`, 1), nil, `interactions[2].sid: "KIzz" does not match`},
		// An item that cannot be identified makes the listing incomplete:
		// dropping it would report its SID deleted (issue 15).
		{"null sid", "application/json", strings.Replace(pageJSON(0, 3, ""), `"sid":"KI00000000000000000000000000000002"`, `"sid":null`, 1), nil, `interactions[2].sid: null or empty: the interaction cannot be identified`},
		{"empty sid", "application/json", strings.Replace(pageJSON(0, 3, ""), `"sid":"KI00000000000000000000000000000001"`, `"sid":""`, 1), nil, `interactions[1].sid: null or empty`},
		{"no sid", "application/json", strings.Replace(pageJSON(0, 3, ""), `"sid":"KI00000000000000000000000000000000",`, ``, 1), nil, `interactions[0].sid: null or empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				} else {
					w.Header()["Content-Type"] = nil // stop net/http sniffing one
				}
				_, _ = w.Write([]byte(tc.body))
			})
			cfg := testConfig(a)
			cfg.MaxResponseBytes = 64 << 10
			got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
			var de *DecodeError
			if !errors.As(err, &de) || got != nil {
				t.Fatalf("got %d items, err %v; want a DecodeError", len(got), err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("err %v is not %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), basePath+"/v1/") {
				t.Errorf("err %q does not say %q and name the URL", err, tc.reason)
			}
			if IsRetryable(err) {
				t.Errorf("decode errors are not retried")
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	authz := base64.StdEncoding.EncodeToString([]byte(testKey + ":" + testSecret))
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		switch page {
		case 0:
			writeJSON(w, 200, pageJSON(0, 1, a.pageURL(1)))
		case 1:
			writeJSON(w, 200, pageJSON(0, 1, "http://elsewhere.example/x?PageToken=PT2"))
		}
	})
	c := newClient(t, testConfig(a))
	_, err1 := c.ListInteractions(context.Background(), testTarget)
	cfg := testConfig(a)
	cfg.BaseURL = "http://127.0.0.1:1" + basePath // nothing listens
	cfg.MaxAttempts = 1
	_, err2 := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	_, err3 := New(Config{AccountSID: "bad", APIKeySID: testKey, APIKeySecret: testSecret, PageSize: 5000})
	for _, err := range []error{err1, err2, err3} {
		if err == nil {
			t.Fatal("want an error")
		}
		for _, s := range []string{testSecret, authz} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q holds a secret", err)
			}
		}
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, authz) {
			t.Errorf("printed Config or Client holds the secret: %s", s)
		}
	}
}

// TestRetryWithinListingRetriesThatPageOnly: a failure on page 1 repeats
// page 1, not the listing; a request that outlives RequestTimeout is a
// transport error and retried too.
func TestRetryWithinListingRetriesThatPageOnly(t *testing.T) {
	var mu sync.Mutex
	perPage := map[int]int{}
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		mu.Lock()
		perPage[page]++
		n := perPage[page]
		mu.Unlock()
		switch {
		case page == 1 && n == 1:
			writeError(w, 503, 20503, "Service Unavailable")
		case page == 1 && n == 2:
			<-r.Context().Done() // hangs until the client's per-request timeout
		case page == 0:
			writeJSON(w, 200, pageJSON(0, 2, a.pageURL(1)))
		default:
			writeJSON(w, 200, pageJSON(2, 4, ""))
		}
	})
	rec := &recorder{}
	cfg := testConfig(a)
	cfg.RequestTimeout = 100 * time.Millisecond
	cfg.Observer = rec
	got, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	if err != nil || len(got) != 4 {
		t.Fatalf("err %v, %d items", err, len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	if perPage[0] != 1 || perPage[1] != 3 {
		t.Errorf("requests per page %v, want page 0 once and page 1 three times", perPage)
	}
	if fmt.Sprint(rec.retries) != "[server_error transport]" || fmt.Sprint(rec.statuses) != "[200 503 0 200]" {
		t.Errorf("observed retries %v, statuses %v", rec.retries, rec.statuses)
	}
}

// An error body's message reaches logs, /status and target_error events, so
// the APIError the client builds holds a bounded, printable version of it.
func TestAPIErrorMessageIsBounded(t *testing.T) {
	huge := "ANSI \x1b[31mred\x1b[0m\r\nforged: level=info\t" + strings.Repeat("€", 60<<10/3)
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		body, _ := json.Marshal(map[string]any{"code": 20404, "message": huge, "more_info": strings.Repeat("x\n", 1000), "status": 404})
		writeJSON(w, 404, string(body))
	})
	_, err := newClient(t, testConfig(a)).ListInteractions(context.Background(), testTarget)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != 20404 {
		t.Fatalf("err %v, want the 404 APIError", err)
	}
	for name, v := range map[string]string{"Message": ae.Message, "MoreInfo": ae.MoreInfo} {
		if len(v) > MaxAPIMessage || !utf8.ValidString(v) || !strings.HasSuffix(v, "…") {
			t.Errorf("%s: %d bytes, valid UTF-8 %v, want at most %d ending in …", name, len(v), utf8.ValidString(v), MaxAPIMessage)
		}
		if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
			t.Errorf("%s: control character %q at %d", name, v[i], i)
		}
	}
	if want := "ANSI [31mred [0m forged: level=info €€"; !strings.HasPrefix(ae.Message, want) {
		t.Errorf("Message %q, want it to start %q", ae.Message[:60], want)
	}
	if n := len(err.Error()); n > 1000 {
		t.Errorf("error text is %d bytes", n)
	}
}

func TestBoundText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Not found", "Not found"},
		{"  a\n\n\tb \x00c\u2028d\x7f ", "a b c d"},
		{"bad \xff utf-8", "bad utf-8"},
		{strings.Repeat("a", 10), strings.Repeat("a", 10)},      // exactly max: kept whole
		{strings.Repeat("a", 11), strings.Repeat("a", 7) + "…"}, // cut, … counted
		{"aaaaaa€€", "aaaaaa…"},                                 // never inside a rune
	} {
		if got := boundText(tc.in, 10); got != tc.want {
			t.Errorf("boundText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
