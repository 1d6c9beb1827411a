package proxysim

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
)

// Transport returns an http.RoundTripper that serves requests with the
// simulator in the calling goroutine, without a socket: a client built on
// it talks to the simulator as to any host, and a simulated-clock
// benchmark runs without network, goroutines or real time (only injected
// latency and slow bodies still wait in real time). The URL's scheme and
// host are kept in the URLs the simulator writes, as over a socket, so that
// a client's same-host check for next_page_url holds. Bodies are
// buffered whole; gzip is passed through as sent, for a client that asked
// for it itself.
func (s *Sim) Transport() http.RoundTripper { return transport{s} }

type transport struct{ s *Sim }

// RoundTrip serves req.
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// What a server would see: the request URI and the host it was sent to.
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.Host = req.URL.Host
	if req.Host != "" {
		sr.Host = req.Host
	}
	if req.URL.Scheme == "https" {
		sr.TLS = &tls.ConnectionState{}
	}
	w := &bufferedResponse{h: http.Header{}}
	t.s.ServeHTTP(w, sr)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        strconv.Itoa(w.code) + " " + http.StatusText(w.code),
		StatusCode:    w.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.h,
		Body:          io.NopCloser(bytes.NewReader(w.body)),
		ContentLength: int64(len(w.body)),
		Request:       req,
	}, nil
}

// bufferedResponse is a ResponseWriter that keeps the whole response.
type bufferedResponse struct {
	h    http.Header
	code int
	body []byte
}

func (w *bufferedResponse) Header() http.Header { return w.h }

func (w *bufferedResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}
