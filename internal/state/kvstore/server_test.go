package kvstore

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startServer runs an in-process nats-server with JetStream on file
// storage in storeDir, on port (-1: a random one). It is shut down at the
// end of the test unless the test does it first.
func startServer(t testing.TB, storeDir string, port int) *server.Server {
	t.Helper()
	return startServerOpts(t, &server.Options{Port: port, StoreDir: storeDir})
}

// startSyncServer is startServer with every JetStream write flushed to
// disk before it is acknowledged (sync_interval: always), as the bbolt
// store's commits are; the server's default flushes every two minutes.
func startSyncServer(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	return startServerOpts(t, &server.Options{Port: -1, StoreDir: storeDir, SyncAlways: true})
}

func startServerOpts(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.JetStream, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// connect opens a connection of its own to s, closed at the end of the
// test: two Stores on two connections are two instances.
func connect(t testing.TB, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// StartServer and Connect are the helpers above, for the external test
// package.
var (
	StartServer     = startServer
	StartSyncServer = startSyncServer
	Connect         = connect
)
