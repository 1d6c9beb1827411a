package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

// TestProvisionedStream: a stream created from ProvisionedStream (as the
// demo does) is the one the Publisher wants: its create-or-update at start
// changes nothing, and events reach it.
func TestProvisionedStream(t *testing.T) {
	s := startServer(t, nil)
	cfg := testConfig(s)
	cfg.Prefix = "acme.monitord"
	cfg.Stream.Name = "EVENTS"
	cfg.Stream.Subjects = nil // default: <prefix>.>
	cfg.Stream.Storage = "memory"
	cfg.Stream.MaxAge = time.Hour
	cfg.Stream.Duplicates = 10 * time.Minute

	sc := ProvisionedStream(cfg)
	if sc.Name != "EVENTS" || strings.Join(sc.Subjects, ",") != "acme.monitord.>" || sc.Storage != jetstream.MemoryStorage ||
		sc.MaxAge != time.Hour || sc.Duplicates != 10*time.Minute || sc.Replicas != 1 {
		t.Fatalf("ProvisionedStream: %+v", sc)
	}
	js := adminJS(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	before := streamInfo(t, js, "EVENTS")

	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 10)
	for i := range msgs {
		msgs[i].Subject = "acme." + msgs[i].Subject
	}
	ob.Add(msgs...)
	p := newPublisher(t, cfg, ob)
	stop := runPublisher(t, p)
	if err := p.WaitEmpty(ctx); err != nil {
		t.Fatalf("WaitEmpty: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(before, streamInfo(t, js, "EVENTS")); diff != "" {
		t.Errorf("the publisher changed the stream made from ProvisionedStream (-before +after):\n%s", diff)
	}
	if n := streamCount(t, s.ClientURL(), "EVENTS"); n != len(msgs) {
		t.Errorf("stream holds %d events, want %d", n, len(msgs))
	}
}
