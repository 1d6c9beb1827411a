package config

import (
	"strings"
	"time"
)

// HA is the `ha` section: several instances sharing state and work through
// NATS JetStream (docs/ha.md). Off by default: one instance with the bbolt
// file is what most deployments run.
type HA struct {
	// Enabled moves per-target state and pending events from the bbolt
	// file (state.path, then unused) to a KeyValue bucket, and polls
	// through a work-queue stream with one owner per Twilio Service.
	Enabled bool `koanf:"enabled"`
	// Bucket is the KeyValue bucket of the state.
	Bucket string `koanf:"bucket"`
	// Replicas of the bucket, the tasks stream and its consumers when
	// monitord creates them (1 for a single NATS server).
	Replicas int `koanf:"replicas"`
	// CreateAssets creates the bucket, the tasks stream and its consumers
	// at start. Off, they must exist (`monitord nats-assets` prints the
	// commands) and start fails naming the first one missing.
	CreateAssets bool `koanf:"create_assets"`
	// Balance hands Services over so that they spread evenly over the
	// live instances (docs/ha.md, "Balance"). Off, a Service stays with
	// the instance that took it until that instance stops or dies.
	Balance bool `koanf:"balance"`
	// Tasks is the work-queue stream of poll tasks.
	Tasks HATasks `koanf:"tasks"`
}

// HATasks is the work-queue stream of poll tasks and its consumers, one
// per Twilio Service (internal/work). Every instance must use the same.
type HATasks struct {
	// Stream is the stream's name.
	Stream string `koanf:"stream"`
	// SubjectPrefix starts the task subjects, <prefix>.task.<service>.…;
	// it must differ from nats.subject_prefix, whose events stream
	// captures <nats prefix>.> and so would take the tasks too.
	SubjectPrefix string `koanf:"subject_prefix"`
	// Duplicates is the stream's deduplication window of tick ids.
	Duplicates time.Duration `koanf:"duplicates"`
	// PinnedTTL is how long a Service's owner may stay silent before
	// another instance takes the Service over.
	PinnedTTL time.Duration `koanf:"pinned_ttl"`
	// PullExpiry is the life of one pull request (at most half of
	// pinned_ttl).
	PullExpiry time.Duration `koanf:"pull_expiry"`
	// AckWait is how long a task delivered to a dead owner waits before
	// it is delivered again.
	AckWait time.Duration `koanf:"ack_wait"`
	// Concurrency is how many tasks of one Service an owner runs at once.
	Concurrency int `koanf:"concurrency"`
}

// DefaultHA returns the defaults of the ha section (those of
// internal/work and internal/state/kvstore, which config may not import).
func DefaultHA() HA {
	return HA{
		Bucket:       "monitord_state",
		Replicas:     3,
		CreateAssets: true,
		Balance:      true,
		Tasks: HATasks{
			Stream:        "MONITORD_TASKS",
			SubjectPrefix: "monitord_work",
			Duplicates:    2 * time.Minute,
			PinnedTTL:     15 * time.Second,
			PullExpiry:    5 * time.Second,
			AckWait:       30 * time.Second,
			Concurrency:   8,
		},
	}
}

// validateHA checks the ha section when it is enabled (its keys are not
// used otherwise), and what HA needs of the rest: NATS in JetStream mode,
// task subjects apart from the events stream's. Discovery works with ha:
// each Service's owner refreshes it (internal/ha).
func (c *Config) validateHA(p *Problems) {
	h := c.HA
	if !h.Enabled {
		return
	}
	if c.NATS.Mode != "jetstream" {
		p.addf("ha.enabled: needs nats.mode jetstream (state and poll tasks live in JetStream), got nats.mode %q", c.NATS.Mode)
	}
	if len(c.NATS.URLs) == 0 {
		p.addf("ha.enabled: needs nats.urls (state and poll tasks live in NATS)")
	}
	if h.Bucket == "" || strings.ContainsAny(h.Bucket, ".*>/\\ \t\r\n") {
		p.addf("ha.bucket: %q must be a non-empty bucket name without \".\", \"*\", \">\", slashes or spaces", h.Bucket)
	}
	if h.Replicas < 1 || h.Replicas > 5 {
		p.addf("ha.replicas: must be between 1 and 5, got %d", h.Replicas)
	}
	t := h.Tasks
	if t.Stream == "" || strings.ContainsAny(t.Stream, ".*>/\\ \t\r\n") {
		p.addf("ha.tasks.stream: %q must be a non-empty stream name without \".\", \"*\", \">\", slashes or spaces", t.Stream)
	} else if t.Stream == c.NATS.Stream.Name {
		p.addf("ha.tasks.stream: %q is nats.stream.name too; the tasks need a stream of their own", t.Stream)
	}
	switch {
	case t.SubjectPrefix == "" || !validSubjectToken(t.SubjectPrefix):
		p.addf("ha.tasks.subject_prefix: %q must be one subject token (no \".\", \"*\", \">\" or spaces)", t.SubjectPrefix)
	case t.SubjectPrefix == c.NATS.SubjectPrefix:
		p.addf("ha.tasks.subject_prefix: %q is nats.subject_prefix too; the events stream would capture the tasks", t.SubjectPrefix)
	}
	positive(p, "ha.tasks.duplicates", t.Duplicates)
	if t.PullExpiry < time.Second {
		p.addf("ha.tasks.pull_expiry: %s is under 1s (the NATS client's minimum)", t.PullExpiry)
	}
	if t.PinnedTTL < 2*t.PullExpiry {
		p.addf("ha.tasks.pinned_ttl: %s is under twice ha.tasks.pull_expiry %s; a live owner would lose its Services", t.PinnedTTL, t.PullExpiry)
	}
	if t.AckWait < 3*time.Second/2 {
		p.addf("ha.tasks.ack_wait: %s is under 1.5s (a running poll renews it every third)", t.AckWait)
	}
	atLeast(p, "ha.tasks.concurrency", int64(t.Concurrency), 1)
	if c.Poll.Mode == "activity" {
		// The activity planner drives polls from this process; with ha
		// the work queue decides who polls. Not combined yet.
		p.addf("ha.enabled: poll.mode activity is not supported with ha yet; use poll.mode schedule")
	}
}
