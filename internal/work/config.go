// Package work distributes poll tasks between monitord instances through a
// JetStream work queue (issue 12, "Work" and "Ownership"): every instance's
// scheduler publishes one task per target per tick (Queue.Publish), the
// stream drops the copies the other schedulers publish, and one instance at
// a time, the pinned client of the Service's consumer, polls a Service
// (Worker). No leader election is written here: JetStream's deduplication,
// per-subject limits and pinned priority groups do the work. The design and
// its costs are in docs/ha.md.
package work

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/nats-io/nats.go/jetstream"
)

// Group is the priority group every worker pulls in; a consumer pins one
// client of it at a time.
const Group = "owner"

// Config is the work queue's layout and timing. Every instance of a
// deployment must use the same Prefix, Stream and timing.
type Config struct {
	// Prefix starts every task subject: <Prefix>.task.<service>.<target-hash>.
	Prefix string
	// Stream is the work-queue stream's name.
	Stream string
	// Replicas of the stream and its consumers (1 for a single server).
	Replicas int
	// Duplicates is the stream's deduplication window: a copy of a task
	// published later than this after the first is not recognised, so it
	// must exceed how late one scheduler can be behind another. Every id
	// in the window costs server memory (docs/ha.md).
	Duplicates time.Duration
	// PinnedTTL is how long a Service's owner may go without asking for
	// tasks before the server pins another instance: the failover time of
	// queued tasks.
	PinnedTTL time.Duration
	// PullExpiry is how long one pull request waits. A pinned worker
	// renews its pin with every pull, so it must be well under PinnedTTL.
	PullExpiry time.Duration
	// AckWait is how long a delivered task may go unacknowledged before
	// the server delivers it again; a running poll sends in-progress acks
	// every AckWait/3, so only a dead owner's task waits it out.
	AckWait time.Duration
	// Concurrency is how many tasks of one Service a worker runs at once
	// (the consumer's max_ack_pending). The poller's per-Service limit
	// still applies inside it.
	Concurrency int
}

// DefaultConfig is the configuration of a deployment with three NATS
// servers.
func DefaultConfig() Config {
	return Config{
		Prefix:      "monitord",
		Stream:      "MONITORD_TASKS",
		Replicas:    3,
		Duplicates:  2 * time.Minute,
		PinnedTTL:   15 * time.Second,
		PullExpiry:  5 * time.Second,
		AckWait:     30 * time.Second,
		Concurrency: 8,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Prefix == "" || strings.ContainsAny(c.Prefix, " \t*>"):
		return fmt.Errorf("work prefix %q: want a subject prefix without spaces or wildcards", c.Prefix)
	case c.Stream == "" || strings.ContainsAny(c.Stream, " \t.*>/\\"):
		return fmt.Errorf("work stream %q: want a stream name without spaces, dots, slashes or wildcards", c.Stream)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("work replicas %d: want 1 to 5", c.Replicas)
	case c.Duplicates <= 0:
		return fmt.Errorf("work duplicates %v: want a positive window", c.Duplicates)
	case c.PullExpiry < time.Second:
		return fmt.Errorf("work pull expiry %v: want at least 1s (the client's minimum)", c.PullExpiry)
	case c.PinnedTTL < 2*c.PullExpiry:
		return fmt.Errorf("work pinned ttl %v: want at least twice the pull expiry %v, or a live owner loses its pin", c.PinnedTTL, c.PullExpiry)
	case c.AckWait < 3*time.Second/2:
		return fmt.Errorf("work ack wait %v: want at least 1.5s (in-progress acks go every third of it)", c.AckWait)
	case c.Concurrency < 1:
		return fmt.Errorf("work concurrency %d: want at least 1", c.Concurrency)
	}
	return nil
}

// Subject is target t's task subject. The target is hashed (64 bits of
// SHA-256, 16 hex digits) so that a subject has a fixed, short length; the
// server keeps per-subject state for every target, and a collision among
// 100,000 targets has a chance of about 3 in 10^10. The Service stays
// readable because each Service's consumer filters on it.
func Subject(prefix string, t proxy.Target) string {
	sum := sha256.Sum256([]byte(t.Key()))
	return prefix + ".task." + t.ServiceSID + "." + hex.EncodeToString(sum[:8])
}

// ConsumerName is the durable consumer of service's tasks.
func ConsumerName(service string) string { return "tasks_" + service }

// StreamConfig is the work-queue stream: one task per subject at most
// (MaxMsgsPerSubject 1 with DiscardNew and DiscardNewPerSubject), so a
// new tick of a target whose task is still queued or running is refused
// instead of piling up, and a Nats-Msg-Id window that drops the copies of
// a task the other instances publish.
func StreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 c.Stream,
		Description:          "monitord poll tasks: one per target, deduplicated by target and tick",
		Subjects:             []string{c.Prefix + ".task.>"},
		Retention:            jetstream.WorkQueuePolicy,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    1,
		Duplicates:           c.Duplicates,
		Replicas:             c.Replicas,
		Storage:              jetstream.FileStorage,
	}
}

// ConsumerConfig is service's consumer: it sees only that Service's
// tasks, and pins one client of Group at a time, so one instance spends
// the Service's request budget.
func ConsumerConfig(c Config, service string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(service),
		Description:    "monitord poll tasks of " + service,
		FilterSubject:  c.Prefix + ".task." + service + ".>",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.Concurrency,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{Group},
		PinnedTTL:      c.PinnedTTL,
		Replicas:       c.Replicas,
	}
}
