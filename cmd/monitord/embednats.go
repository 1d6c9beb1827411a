package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbeddedNATS runs a nats-server inside this process on a free
// loopback port, with JetStream storing under storeDir when storeDir is not
// empty. The demo uses it so that a newcomer needs no NATS installed, and the
// tests use it because it is the real server, not a stand-in. The caller
// shuts it down (Shutdown, then WaitForShutdown).
func startEmbeddedNATS(storeDir string) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "monitord-embedded",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true, // signals belong to monitord, not to the embedded server
		JetStream:  storeDir != "",
		StoreDir:   storeDir,
		// Small fixed limits: the defaults are sized from the host's memory
		// and disk, which makes no sense for a throwaway demo server.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("embedded nats-server: not ready within 10s")
	}
	return s, nil
}
