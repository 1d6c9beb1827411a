package twilio

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// maxErrorBody caps what is read of a non-2xx body: Twilio's error JSON is
// a few hundred bytes, anything longer is some proxy's HTML page.
const maxErrorBody = 64 << 10

// response is the outcome of one attempt.
type response struct {
	body       string
	status     int           // 0 when no response arrived
	retryAfter time.Duration // from Retry-After, if hasRetry
	hasRetry   bool
}

// roundTrip makes one GET attempt and reads the whole body. Errors are
// *APIError (non-2xx), *TransportError, or *DecodeError (2xx that is not
// JSON, or too large).
func (c *Client) roundTrip(ctx context.Context, u string) (response, error) {
	var r response
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return r, &DecodeError{URL: redactURL(u), Offset: -1, Reason: "bad request url"}
	}
	req.Header.Set("Authorization", c.authz)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	// Asking for gzip ourselves turns off net/http's transparent
	// decompression, so the size cap below counts decompressed bytes.
	req.Header.Set("Accept-Encoding", "gzip")

	resp, err := c.hc.Do(req)
	if err != nil {
		return r, &TransportError{URL: redactURL(u), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		r.retryAfter, r.hasRetry = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return r, c.apiError(resp, u)
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return r, &DecodeError{URL: redactURL(u), Offset: -1, Err: ErrContentType,
			Reason: "content type " + quoteShort(resp.Header.Get("Content-Type")) + " is not JSON"}
	}
	r.body, err = readBody(resp, c.cfg.MaxResponseBytes)
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			return r, &DecodeError{URL: redactURL(u), Offset: -1, Err: ErrBodyTooLarge,
				Reason: "body exceeds " + strconv.FormatInt(c.cfg.MaxResponseBytes, 10) + " bytes"}
		}
		var de *DecodeError
		if errors.As(err, &de) {
			de.URL = redactURL(u)
			return r, de
		}
		return r, &TransportError{URL: redactURL(u), Err: err}
	}
	return r, nil
}

// unwrapURLError drops *url.Error's wrapper: it repeats the method and
// URL, which TransportError already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// apiError builds the typed error of a non-2xx response from Twilio's
// {code, message, more_info, status} body when there is one.
func (c *Client) apiError(resp *http.Response, u string) error {
	var tb struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
	}
	if isJSON(resp.Header.Get("Content-Type")) {
		if body, err := readBody(resp, maxErrorBody); err == nil && json.Unmarshal([]byte(body), &tb) != nil {
			tb.Code, tb.Message, tb.MoreInfo = 0, "", ""
		}
	}
	return newAPIError(resp.StatusCode, redactURL(u), tb.Code, tb.Message, tb.MoreInfo)
}

// isJSON accepts application/json and any +json type, with parameters.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

var (
	gzipReaders sync.Pool // *gzip.Reader
	bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// maxPooledBuffer keeps an unusually large body's buffer out of the pool.
const maxPooledBuffer = 8 << 20

// readBody reads the whole body, gunzipping it if needed, into one string,
// failing with ErrBodyTooLarge past max decompressed bytes.
//
// With a Content-Length the body is read straight into a buffer of that
// size which then becomes the string without a copy. Otherwise (chunked,
// gzip) it goes through a pooled buffer and is copied once, so no growth
// garbage is left per response.
func readBody(resp *http.Response, max int64) (string, error) {
	var r io.Reader = resp.Body
	n := resp.ContentLength
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(resp.Body)
		} else {
			err = zr.Reset(resp.Body)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "", err // cut short in transit
			}
			return "", &DecodeError{Offset: -1, Reason: "bad gzip stream: " + err.Error()}
		}
		defer gzipReaders.Put(zr)
		r, n = zr, -1
	default:
		return "", &DecodeError{Offset: -1, Reason: "unsupported content encoding " + quoteShort(enc)}
	}
	if n > max {
		return "", ErrBodyTooLarge
	}
	if n >= 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		if n == 0 {
			return "", nil
		}
		// b is never written again and nothing else refers to it: the
		// string may own its memory (what strings.Builder does too).
		return unsafe.String(&b[0], len(b)), nil
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			bodyBuffers.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r, max+1)); err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return "", &DecodeError{Offset: -1, Reason: "bad gzip stream: " + err.Error()}
		}
		return "", err
	}
	if int64(buf.Len()) > max {
		return "", ErrBodyTooLarge
	}
	return buf.String(), nil
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
