package twilio

import (
	"bytes"
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

	// klauspost's gzip reader, a drop-in for compress/gzip's, gunzips the
	// API's pages with 1.4-1.6x less CPU (BenchmarkGunzip,
	// docs/performance.md); the module is already in the build for NATS.
	"github.com/klauspost/compress/gzip"
)

// maxErrorBody caps what is read of a non-2xx body: Twilio's error JSON is
// a few hundred bytes, anything longer is some proxy's HTML page.
const maxErrorBody = 64 << 10

// response is the outcome of one attempt.
type response struct {
	body       *bytes.Buffer // pooled: releaseBody when decoded
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
		if body, err := readBody(resp, maxErrorBody); err == nil {
			if json.Unmarshal(body.Bytes(), &tb) != nil { // copies what it keeps
				tb.Code, tb.Message, tb.MoreInfo = 0, "", ""
			}
			releaseBody(body)
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
	bodyBuffers sync.Pool // *bytes.Buffer
)

// maxPooledBuffer keeps an unusually large body's buffer out of the pool:
// the garbage collector returns it instead of the pool holding on to it.
const maxPooledBuffer = 8 << 20

// readBody reads the whole body, gunzipping it if needed, into a pooled
// buffer, failing with ErrBodyTooLarge past max decompressed bytes. The
// caller decodes it in place and gives it back with releaseBody: decoding
// copies what it keeps (see keeper), so a page's memory is reused by the
// next page rather than held by its items. Bodies are the largest
// allocation of a poll, so reuse is most of what a poll does not allocate.
func readBody(resp *http.Response, max int64) (*bytes.Buffer, error) {
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
				return nil, err // cut short in transit
			}
			return nil, &DecodeError{Offset: -1, Reason: "bad gzip stream: " + err.Error()}
		}
		defer gzipReaders.Put(zr)
		r, n = zr, -1
	default:
		return nil, &DecodeError{Offset: -1, Reason: "unsupported content encoding " + quoteShort(enc)}
	}
	if n > max {
		return nil, ErrBodyTooLarge
	}
	buf, _ := bodyBuffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if n >= 0 {
		// ReadFrom grows the buffer unless MinRead bytes are free at the end.
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, max+1)); err != nil {
		releaseBody(buf)
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return nil, &DecodeError{Offset: -1, Reason: "bad gzip stream: " + err.Error()}
		}
		return nil, err
	}
	if int64(buf.Len()) > max {
		releaseBody(buf)
		return nil, ErrBodyTooLarge
	}
	if n >= 0 && int64(buf.Len()) != n {
		releaseBody(buf)
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

// releaseBody returns a body's buffer to the pool. No string may refer to
// its bytes any more.
func releaseBody(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= maxPooledBuffer {
		bodyBuffers.Put(buf)
	}
}

// bodyString views a body's bytes as a string, without a copy, for the
// decoder; it is valid until releaseBody.
func bodyString(buf *bytes.Buffer) string {
	b := buf.Bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
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
