package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/notify"
)

// createDemoStream creates the stream the daemon publishes to, before the
// daemon starts, from the publisher's own stream config; the publisher then
// finds it and only updates it, as it would a stream an operator made.
// Creating it here, to completion, keeps
// stream creation out of the shutdown: nats-server leaks the goroutines of
// a file store created while it shuts down, which a Ctrl-C in the demo's
// first second would otherwise provoke. Not tied to the demo's context for
// the same reason.
func createDemoStream(nc *nats.Conn, cfg *config.Config) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := notify.ProvisionedStream(notifyConfig(cfg))
	if _, err = js.CreateStream(ctx, s); err != nil {
		return fmt.Errorf("create stream %s: %w", s.Name, err)
	}
	return nil
}

// waitCaughtUp waits, up to max, until the subscription has printed every
// message the stream holds, and returns how many it holds.
func waitCaughtUp(nc *nats.Conn, stream string, stats *demoStats, max time.Duration) uint64 {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), max)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	held := info.State.Msgs
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for stats.received() < held {
		select {
		case <-ctx.Done():
			return held
		case <-tick.C:
		}
	}
	return held
}

// startEmbeddedNATS runs a nats-server inside this process on a free
// loopback port, with JetStream storing under storeDir when storeDir is not
// empty. The demo uses it so that a newcomer needs no NATS installed, and the
// tests use it because it is the real server, not a stand-in. The caller
// shuts it down (Shutdown, then WaitForShutdown).
func startEmbeddedNATS(storeDir string) (*server.Server, error) {
	s, err := server.NewServer(embeddedOptions("monitord-embedded", storeDir))
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

// embeddedOptions are the options of an in-process nats-server on a free
// loopback port, with JetStream storing under storeDir when it is not "".
func embeddedOptions(name, storeDir string) *server.Options {
	return &server.Options{
		ServerName: name,
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
}
