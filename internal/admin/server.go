// Package admin serves monitord's operational HTTP endpoints: /metrics for
// Prometheus, /healthz (the process is alive and its scheduler ticks),
// /readyz (state open, NATS connected, a complete poll cycle done),
// /status (every target's health as JSON) and, when asked for,
// /debug/pprof/ (Go's profiler).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// DefaultAddr is loopback only: metrics and status are for the host's
// own scraper unless the operator opens them up.
const DefaultAddr = "127.0.0.1:9464"

// pprofWriteTimeout bounds a response while pprof is on: profiles and
// traces of up to a little under two minutes.
const pprofWriteTimeout = 2 * time.Minute

// Check is one named condition of /healthz or /readyz; Fn returns nil when
// it holds, else the reason it does not.
type Check struct {
	Name string
	Fn   func() error
}

// Config configures a Server.
type Config struct {
	Addr    string      // listen address; default DefaultAddr; ":0"-style ports allowed
	Metrics *Metrics    // required
	Status  func() any  // the /status document; nil serves {}
	Live    []Check     // /healthz
	Ready   []Check     // /readyz
	Log     *zap.Logger // may be nil
	// Pprof serves net/http/pprof at /debug/pprof/ (admin.pprof), off by
	// default: a profile shows the code's hot paths and a goroutine dump
	// the targets being polled, and taking one costs the daemon CPU, so an
	// operator turns it on to take a profile, not always.
	Pprof bool
}

// Server is the admin HTTP server.
type Server struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
}

// New listens on cfg.Addr at once, so a port already in use fails start-up
// (before systemd is told READY) rather than later.
func New(cfg Config) (*Server, error) {
	if cfg.Metrics == nil {
		return nil, errors.New("admin: Metrics is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	write := 30 * time.Second
	if cfg.Pprof {
		// pprof refuses a profile as long as the write timeout, and its
		// default is 30 s: leave room for that and a minute-long trace.
		write = pprofWriteTimeout
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       60 * time.Second,
	}
	return s, nil
}

// Addr is the address the server listens on (with the real port).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler returns the mux of every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.Registry(), promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(s.cfg.Log),
	}))
	mux.HandleFunc("GET /healthz", s.checks(s.cfg.Live))
	mux.HandleFunc("GET /readyz", s.checks(s.cfg.Ready))
	mux.HandleFunc("GET /status", s.status)
	if s.cfg.Pprof {
		// Registered on this mux, not http.DefaultServeMux (importing
		// net/http/pprof registers there too, but nothing serves it).
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Run serves until ctx is done, then shuts down, giving requests in
// progress up to 5 seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return nil
}

// Close releases the listener of a server that was never Run.
func (s *Server) Close() error { return s.ln.Close() }

// checkResult is the JSON body of /healthz and /readyz.
type checkResult struct {
	OK     bool              `json:"ok"`
	Checks map[string]string `json:"checks"`
}

// checks answers 200 when every check holds, else 503, with each check's
// verdict in the body so an operator sees which one failed.
func (s *Server) checks(list []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		res := checkResult{OK: true, Checks: make(map[string]string, len(list))}
		for _, c := range list {
			if err := c.Fn(); err != nil {
				res.OK = false
				res.Checks[c.Name] = err.Error()
			} else {
				res.Checks[c.Name] = "ok"
			}
		}
		code := http.StatusOK
		if !res.OK {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, res)
	}
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	var doc any = struct{}{}
	if s.cfg.Status != nil {
		doc = s.cfg.Status()
	}
	writeJSON(w, http.StatusOK, doc)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}

// Recent returns a check that fails when last() is zero or older than max:
// /healthz uses it on the scheduler's tick, /readyz on the poll cycle.
func Recent(what string, last func() time.Time, max time.Duration) func() error {
	return func() error {
		t := last()
		if t.IsZero() {
			return fmt.Errorf("no %s yet", what)
		}
		if age := time.Since(t); max > 0 && age > max {
			return fmt.Errorf("last %s %s ago (limit %s)", what, age.Round(time.Second), max)
		}
		return nil
	}
}
