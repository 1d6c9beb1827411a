package proxysim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is a simulator listening on a real socket.
type Server struct {
	// URL is the base URL to configure a client with: "http://127.0.0.1:PORT".
	URL string

	srv    *http.Server
	cancel context.CancelFunc
	done   chan error
}

// Listen serves the simulator on addr ("127.0.0.1:0" picks a free port)
// until Close.
func (s *Sim) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	srv := &Server{
		URL:    "http://" + ln.Addr().String(),
		srv:    s.httpServer(base),
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { srv.done <- srv.srv.Serve(ln) }()
	return srv, nil
}

// Start is Listen on a free loopback port.
func (s *Sim) Start() (*Server, error) { return s.Listen("127.0.0.1:0") }

// Close stops the server: requests in flight (including injected latency
// and slow bodies, which are cut short) get up to five seconds to finish.
func (srv *Server) Close() error {
	srv.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.srv.Close()
	}
	if serr := <-srv.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Serve serves the simulator on ln until ctx is done, then shuts down
// cleanly. It returns nil after a clean shutdown.
func (s *Sim) Serve(ctx context.Context, ln net.Listener) error {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs := s.httpServer(base)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	<-done
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func (s *Sim) httpServer(base context.Context) *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}
