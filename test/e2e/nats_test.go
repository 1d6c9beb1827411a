//go:build linux

package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsServer is a real nats-server with JetStream on file storage, run in
// this process. It can be stopped and started again on the same port and
// store directory, which is what a NATS outage looks like to monitord.
type natsServer struct {
	t        testing.TB
	storeDir string
	port     int
	srv      *server.Server // nil while stopped
}

// startNATS starts a server on a free loopback port; the test's cleanup
// stops it.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, storeDir: t.TempDir(), port: server.RANDOM_PORT}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

// URL is the client URL, stable across restarts.
func (n *natsServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Start starts the server (again) on its port and store.
func (n *natsServer) Start() error {
	if n.srv != nil {
		return nil
	}
	opts := &server.Options{
		ServerName:         "e2e",
		Host:               "127.0.0.1",
		Port:               n.port,
		NoLog:              true,
		NoSigs:             true,
		JetStream:          true,
		StoreDir:           n.storeDir,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  4 << 30,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("nats-server on port %d not ready within 20s", n.port)
	}
	n.srv = s
	return nil
}

// Stop shuts the server down and waits until it is gone.
func (n *natsServer) Stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}
