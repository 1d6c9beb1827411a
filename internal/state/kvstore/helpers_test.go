package kvstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/state/kvstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer is the package's test server (server_test.go).
var startServer = kvstore.StartServer

// connect opens a connection of its own (server_test.go).
var connect = kvstore.Connect

var buckets atomic.Int64

// bucketName is a fresh bucket name, so tests on one server never share
// state by accident.
func bucketName() string { return fmt.Sprintf("state_%d", buckets.Add(1)) }

// open opens a Store on bucket with one replica (a single server).
func open(t testing.TB, js jetstream.JetStream, bucket string) *kvstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: bucket, Replicas: 1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return st
}
