package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/redact"
)

// Sentinel errors for the ways a listing can be refused. They arrive wrapped
// (test with errors.Is); none of them is retried, because asking again gets
// the same answer.
var (
	// ErrForeignHost: a next_page_url points at a scheme or host other
	// than the configured base URL, or carries userinfo. The client refuses
	// to send credentials there. (Redirects are never followed at all: a
	// 3xx is an *APIError.)
	ErrForeignHost = errors.New("next page url refused")
	// ErrPageLoop: a listing was sent to a page URL it had already fetched.
	ErrPageLoop = errors.New("page loop: next page url was already fetched")
	// ErrTooManyPages: a listing needed more than Config.MaxPages pages.
	ErrTooManyPages = errors.New("too many pages")
	// ErrBodyTooLarge: a response body (after decompression) exceeded
	// Config.MaxResponseBytes.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrListingTooLarge: the items of a listing would keep more than
	// Config.MaxListingBytes of text in memory.
	ErrListingTooLarge = errors.New("listing too large")
	// ErrContentType: a 2xx response that is not JSON (an HTML page from a
	// proxy, a captive portal, a misconfigured base URL).
	ErrContentType = errors.New("response is not JSON")
)

// APIError is a non-2xx response from the API. Code, Message and MoreInfo
// come from Twilio's error body ({code, message, more_info, status}) and are
// zero when the body was not such JSON (an HTML 502 page from a load
// balancer, say). Message and MoreInfo are bounded to MaxAPIMessage bytes
// of printable text: they travel into logs, /status and target_error events.
type APIError struct {
	HTTPStatus int
	Code       int
	Message    string
	MoreInfo   string
	// URL is the request URL without credentials (the client authenticates
	// with a header, never in the URL, and strips any userinfo).
	URL string
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(e.URL)
	b.WriteString(": HTTP ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if t := http.StatusText(e.HTTPStatus); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != 0 {
		b.WriteString(", code " + strconv.Itoa(e.Code))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.MoreInfo != "" {
		b.WriteString(" (" + e.MoreInfo + ")")
	}
	return b.String()
}

// MaxAPIMessage bounds APIError.Message and MoreInfo, in bytes. Twilio's
// messages are a sentence; a longer one is some proxy's page or a hostile
// server's, and would otherwise be copied into every log line, /status and
// event that reports the error.
const MaxAPIMessage = 300

// newAPIError builds the typed error of a non-2xx response, bounding what
// the server wrote so that every consumer gets the bounded text.
func newAPIError(status int, u string, code int, message, moreInfo string) *APIError {
	return &APIError{HTTPStatus: status, URL: u, Code: code,
		Message: boundText(message, MaxAPIMessage), MoreInfo: boundText(moreInfo, MaxAPIMessage)}
}

// boundText returns s with control characters (C0, DEL, C1, and the line
// and paragraph separators) replaced by a space, runs of spaces folded,
// invalid UTF-8 dropped, and the result cut on a rune boundary to at most
// max bytes, "…" included.
func boundText(s string, max int) string {
	const ellipsis = "…"
	var b strings.Builder
	b.Grow(min(len(s), max+utf8.UTFMax))
	space := true // no leading space
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			continue // invalid UTF-8 (or U+FFFD itself): says nothing
		case unicode.IsControl(r) || unicode.IsSpace(r):
			if space {
				continue
			}
			r, space = ' ', true
		default:
			space = false
		}
		b.WriteRune(r)
		if b.Len() > max {
			break // enough to know it must be cut
		}
	}
	t := strings.TrimRight(b.String(), " ")
	if len(t) <= max {
		return t
	}
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(t[cut]) {
		cut--
	}
	return strings.TrimRight(t[:cut], " ") + ellipsis
}

// TwilioCodeTooManyRequests is Twilio's error code for the account-wide
// concurrency limit; like HTTP 429 it is safe to retry after backing off.
const TwilioCodeTooManyRequests = 20429

// Is lets errors.Is(err, proxy.ErrNotFound) recognise a 404, so that
// callers outside this package need not import it to tell "gone" from
// "failing".
func (e *APIError) Is(target error) bool {
	return target == proxy.ErrNotFound && e.HTTPStatus == http.StatusNotFound
}

// IsNotFound reports whether err is (or wraps) an API 404: the Service,
// Session or Participant does not exist (any more).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.HTTPStatus == http.StatusNotFound
}

// IsAuth reports whether err is (or wraps) an API 401 or 403: wrong
// credentials or no permission. Retrying does not help.
func IsAuth(err error) bool {
	var e *APIError
	return errors.As(err, &e) &&
		(e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden)
}

// IsRateLimited reports whether err is (or wraps) an HTTP 429 or Twilio
// error 20429.
func IsRateLimited(err error) bool {
	var e *APIError
	return errors.As(err, &e) &&
		(e.HTTPStatus == http.StatusTooManyRequests || e.Code == TwilioCodeTooManyRequests)
}

// IsRetryable reports whether asking again later may succeed: rate limited,
// a 5xx, or a transport failure (connection refused or reset, timeout,
// truncated body). The client has already retried these up to
// Config.MaxAttempts; the caller may try again on its next cycle.
func IsRetryable(err error) bool {
	if IsRateLimited(err) {
		return true
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.HTTPStatus >= 500
	}
	var t *TransportError
	return errors.As(err, &t)
}

// TransportError is a failure to get a complete response: no connection,
// a reset, a per-request timeout, or a body cut short.
type TransportError struct {
	URL string // without credentials
	Err error
}

// Error implements error.
func (e *TransportError) Error() string { return "GET " + e.URL + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// DecodeError is a 2xx response the client cannot accept as a whole: not
// JSON, invalid or truncated JSON, a missing envelope key, a field of the
// wrong type, a SID that does not match its pattern, a bad date. The
// listing it belongs to is discarded.
type DecodeError struct {
	URL string // without credentials
	// Path names the offending value: "interactions[3].outbound_resource_sid",
	// "meta.next_page_url"; empty for the document as a whole.
	Path string
	// Offset is the byte offset in the (decompressed) body, -1 if none.
	Offset int
	Reason string
	// Err is a sentinel such as ErrContentType or ErrBodyTooLarge, or nil.
	Err error
}

// Error implements error. It never quotes field values that may hold
// personal data (message bodies, phone numbers); only SIDs and dates.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("decode ")
	b.WriteString(e.URL)
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if e.Offset >= 0 {
		b.WriteString(" at offset " + strconv.Itoa(e.Offset))
	}
	return b.String()
}

// Unwrap returns the sentinel, if any.
func (e *DecodeError) Unwrap() error { return e.Err }

// inField prefixes the error's path with a field or item name.
func inField(err error, name string) error {
	var de *DecodeError
	if errors.As(err, &de) {
		if de.Path == "" {
			de.Path = strings.Clone(name) // a key may point into the body's buffer
		} else if strings.HasPrefix(de.Path, "[") {
			de.Path = name + de.Path
		} else {
			de.Path = name + "." + de.Path
		}
	}
	return err
}

// inItem prefixes the error's path with "[i]".
func inItem(err error, i int) error {
	var de *DecodeError
	if errors.As(err, &de) {
		p := "[" + strconv.Itoa(i) + "]"
		if de.Path != "" {
			p += "." + de.Path
		}
		de.Path = p
	}
	return err
}

// redactURL returns u without userinfo, for errors and logs; the one
// redaction of the project, shared with config and notify.
func redactURL(u string) string { return redact.URL(u) }

// quoteShort quotes a value for an error message, cut to a length that
// shows what went wrong without flooding a log line.
func quoteShort(s string) string {
	const max = 48
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
