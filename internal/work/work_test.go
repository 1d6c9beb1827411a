package work

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"prefix wildcard", func(c *Config) { c.Prefix = "a.>" }, `work prefix "a.>"`},
		{"stream dot", func(c *Config) { c.Stream = "A.B" }, `work stream "A.B"`},
		{"replicas", func(c *Config) { c.Replicas = 0 }, "work replicas 0"},
		{"duplicates", func(c *Config) { c.Duplicates = 0 }, "work duplicates 0s"},
		{"pull expiry", func(c *Config) { c.PullExpiry = 500 * time.Millisecond }, "work pull expiry 500ms"},
		{"pinned ttl", func(c *Config) { c.PinnedTTL = 6 * time.Second }, "work pinned ttl 6s: want at least twice the pull expiry 5s"},
		{"ack wait", func(c *Config) { c.AckWait = time.Second }, "work ack wait 1s"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "work concurrency 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeTask(t *testing.T) {
	good := makeTargets(1, 1)[0]
	for _, tc := range []struct {
		name, data, want string
	}{
		{"ok", `{"source":"participant","service_sid":"` + good.ServiceSID + `","session_sid":"` + good.SessionSID +
			`","participant_sid":"` + good.ParticipantSID + `","due_ms":1700000000000}`, ""},
		{"not json", `poll!`, "decode task"},
		{"bad session", `{"source":"participant","service_sid":"` + good.ServiceSID + `","session_sid":"KCzz","participant_sid":"` +
			good.ParticipantSID + `","due_ms":1}`, "task target: session_sid"},
		{"no due", `{"source":"participant","service_sid":"` + good.ServiceSID + `","session_sid":"` + good.SessionSID +
			`","participant_sid":"` + good.ParticipantSID + `"}`, "task due_ms 0"},
		{"discover ok", `{"kind":"discover","service_sid":"` + good.ServiceSID + `","due_ms":1700000000000}`, ""},
		{"discover bad service", `{"kind":"discover","service_sid":"KSzz","due_ms":1}`, "discover task: service_sid"},
		{"discover no due", `{"kind":"discover","service_sid":"` + good.ServiceSID + `"}`, "discover task due_ms 0"},
		{"unknown kind", `{"kind":"sweep","service_sid":"` + good.ServiceSID + `","due_ms":1}`, `task kind "sweep"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, tick, discover, err := decodeTask([]byte(tc.data))
			if tc.want == "" && discover {
				if err != nil || tg.ServiceSID != good.ServiceSID || tick.Due.UnixMilli() != 1700000000000 {
					t.Fatalf("decodeTask = %v, %v, %v; want a discover task of %s at 1700000000000", tg, tick, err, good.ServiceSID)
				}
				return
			}
			if tc.want == "" {
				if err != nil || tg != good || tick.ID() != good.Key()+"@1700000000000" {
					t.Fatalf("decodeTask = %v, %v, %v; want %v at 1700000000000", tg, tick, err, good)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decodeTask error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestBadTaskTerminated: a task a worker cannot read is dropped
// with a log line naming what was wrong, and never reaches the poller or
// comes back.
func TestBadTaskTerminated(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	c := testConfig()
	c.Replicas = 1
	targets := makeTargets(1, 1)
	ensure(t, cl, c, targets)
	_, js := cl.Connect()
	core, logs := observer.New(zap.InfoLevel)
	j := newJournal()
	w, err := NewWorker(js, c, &recPoller{inst: "a", j: j}, servicesOf(targets), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := js.Publish(pctx, Subject(c.Prefix, targets[0]), []byte(`{"source":"bogus"}`)); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the bad task logged and removed", 10*time.Second, func() bool {
		s, err := js.Stream(pctx, c.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(pctx)
		return err == nil && info.State.Msgs == 0 && logs.FilterMessage("work: bad task dropped").Len() == 1
	})
	entry := logs.FilterMessage("work: bad task dropped").All()[0]
	if got := entry.ContextMap()["error"]; !strings.Contains(got.(string), `source "bogus"`) {
		t.Errorf("log error = %q, want it to name the bad source", got)
	}
	if n := len(j.snapshot()); n != 0 {
		t.Errorf("poller called %d times for a bad task", n)
	}

	// A good task of the same target is then queued and polled.
	q, err := NewQueue(js, c)
	if err != nil {
		t.Fatal(err)
	}
	tick := poller.Tick{Key: targets[0].Key(), Due: time.UnixMilli(1700000000000)}
	if o, err := q.Publish(pctx, targets[0], tick); err != nil || o != Queued {
		t.Fatalf("Publish = %v, %v; want queued", o, err)
	}
	j.waitUntil(t, "the good task polled", 10*time.Second, func(ps []poll) bool { return len(ps) == 1 })
}

// TestClusterPublishOutcomes: on a replicated stream, a tick's copy is a
// duplicate, and a later tick of a target whose task is still queued is
// refused as busy, never queued behind it.
func TestClusterPublishOutcomes(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	c := testConfig()
	targets := makeTargets(1, 2)
	ensure(t, cl, c, targets)
	_, js := cl.Connect()
	q, err := NewQueue(js, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	due := time.UnixMilli(1700000000000)
	tick := func(tg int, d time.Duration) poller.Tick {
		return poller.Tick{Key: targets[tg].Key(), Due: due.Add(d)}
	}
	for _, step := range []struct {
		target int
		after  time.Duration
		want   Outcome
	}{
		{0, 0, Queued},
		{0, 0, Duplicate},
		{0, time.Minute, Busy},
		{1, time.Minute, Queued}, // another target has a subject of its own
	} {
		got, err := q.Publish(ctx, targets[step.target], tick(step.target, step.after))
		if err != nil || got != step.want {
			t.Fatalf("Publish(target %d, +%v) = %v, %v; want %v", step.target, step.after, got, err, step.want)
		}
	}
	s, err := js.Stream(ctx, c.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d tasks, want 2 (one per target)", info.State.Msgs)
	}
}

// TestHALongPollKeepsItsTask: a poll that runs for three ack waits sends
// in-progress acks, so its task is neither delivered to the standby nor
// polled twice.
func TestHALongPollKeepsItsTask(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	c := testConfig()
	targets := makeTargets(1, 1)
	ensure(t, cl, c, targets)
	j := newJournal()
	var stops []func()
	for _, name := range []string{"a", "b"} {
		nc, err := nats.Connect(cl.URLs())
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWorker(js, c, &recPoller{inst: name, j: j, took: 3 * c.AckWait}, servicesOf(targets), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		stops = append(stops, func() { cancel(); <-done; nc.Close() })
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	_, js := cl.Connect()
	q, err := NewQueue(js, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := q.Publish(ctx, targets[0], poller.Tick{Key: targets[0].Key(), Due: time.UnixMilli(1700000000000)}); err != nil {
		t.Fatal(err)
	}
	j.waitUntil(t, "the long poll done", 30*time.Second, func(ps []poll) bool { return len(ps) > 0 })
	natstest.WaitFor(t, "the task acknowledged", 10*time.Second, func() bool {
		s, err := js.Stream(ctx, c.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	cons, err := js.Consumer(ctx, c.Stream, ConsumerName(targets[0].ServiceSID))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Delivered counts redeliveries too; a redelivered task would have
	// started a second poll long before the first one ended.
	if info.Delivered.Consumer != 1 || len(j.snapshot()) != 1 {
		t.Errorf("a poll of %v with ack wait %v: delivered %d times, %d polls; want 1 and 1",
			3*c.AckWait, c.AckWait, info.Delivered.Consumer, len(j.snapshot()))
	}
}

// TestClusterConsumerRecreated: a Service's consumer deleted (an operator,
// a lost stream) and created again: the workers find it again and the
// Service is polled.
func TestClusterConsumerRecreated(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	c := testConfig()
	targets := makeTargets(1, 3)
	ensure(t, cl, c, targets)
	j := newJournal()
	every := 500 * time.Millisecond
	for _, name := range []string{"a", "b"} {
		startInstance(t, name, cl.URLs(), c, targets, every, j)
	}
	j.waitUntil(t, "a first poll", 30*time.Second, func(ps []poll) bool { return len(ps) > 0 })

	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, c.Stream, ConsumerName(targets[0].ServiceSID)); err != nil {
		t.Fatal(err)
	}
	ensure(t, cl, c, targets)
	recreated := time.Now()
	j.waitUntil(t, "a poll through the new consumer", 30*time.Second, func(ps []poll) bool {
		for _, p := range ps {
			if p.start.After(recreated) {
				return true
			}
		}
		return false
	})
}

func TestNewWorkerBadService(t *testing.T) {
	_, err := NewWorker(nil, DefaultConfig(), &recPoller{}, []string{"KS123"}, nil)
	if err == nil || !strings.Contains(err.Error(), "service_sid") || !strings.Contains(err.Error(), "KS123") {
		t.Fatalf("NewWorker with service KS123: error %v, want it to name service_sid and the value", err)
	}
}
