package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// Assets are the JetStream assets of a deployment: the state bucket, the
// tasks stream and one consumer per Service. Open and EnsureServices create
// exactly these (through kvstore.BucketConfig, work.StreamConfig and
// work.ConsumerConfig); Commands prints them for an operator.
type Assets struct {
	Bucket    jetstream.KeyValueConfig
	Stream    jetstream.StreamConfig
	Consumers []jetstream.ConsumerConfig
}

// AssetsOf returns the assets of cfg for services.
func AssetsOf(cfg Config, services []string) Assets {
	a := Assets{Bucket: kvstore.BucketConfig(cfg.KV), Stream: work.StreamConfig(cfg.Work)}
	for _, svc := range services {
		a.Consumers = append(a.Consumers, work.ConsumerConfig(cfg.Work, svc))
	}
	return a
}

// Commands returns the natscli commands that create the assets, one per
// line, for a NATS user that may not create them itself (create_assets:
// false). Every setting monitord relies on is spelled out; --defaults
// answers the prompts for the rest.
func (a Assets) Commands() []string {
	b := a.Bucket
	out := []string{fmt.Sprintf("nats kv add %s --history %d --replicas %d --storage %s --description %s",
		b.Bucket, b.History, b.Replicas, storageFlag(b.Storage), quote(b.Description))}
	if b.Replicas > 1 {
		// A replicated bucket must answer reads from its leader: direct
		// gets from a lagging replica made commits conflict with
		// themselves (kvstore.Open makes this change when it may).
		out = append(out, fmt.Sprintf("nats stream edit KV_%s --no-allow-direct --force", b.Bucket))
	}
	s := a.Stream
	discardPerSubject := ""
	if s.DiscardNewPerSubject {
		discardPerSubject = " --discard-per-subject"
	}
	out = append(out, fmt.Sprintf("nats stream add %s --subjects %s --storage %s --replicas %d --retention %s --discard %s%s --max-msgs-per-subject %d --dupe-window %s --description %s --defaults",
		s.Name, quote(strings.Join(s.Subjects, ",")), storageFlag(s.Storage), s.Replicas, retentionFlag(s.Retention),
		discardFlag(s.Discard), discardPerSubject, s.MaxMsgsPerSubject, durationFlag(s.Duplicates), quote(s.Description)))
	for _, c := range a.Consumers {
		out = append(out, fmt.Sprintf("nats consumer add %s %s --pull --filter %s --ack %s --wait %s --max-deliver %d --max-pending %d --deliver all --replay instant --replicas %d --pinned-groups %s --pinned-ttl %s --description %s --defaults",
			s.Name, c.Durable, quote(c.FilterSubject), ackFlag(c.AckPolicy), durationFlag(c.AckWait), c.MaxDeliver,
			c.MaxAckPending, c.Replicas, strings.Join(c.PriorityGroups, ","), durationFlag(c.PinnedTTL), quote(c.Description)))
	}
	return out
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func storageFlag(s jetstream.StorageType) string {
	if s == jetstream.MemoryStorage {
		return "memory"
	}
	return "file"
}

func retentionFlag(r jetstream.RetentionPolicy) string {
	switch r {
	case jetstream.WorkQueuePolicy:
		return "work"
	case jetstream.InterestPolicy:
		return "interest"
	}
	return "limits"
}

func discardFlag(d jetstream.DiscardPolicy) string {
	if d == jetstream.DiscardNew {
		return "new"
	}
	return "old"
}

func ackFlag(a jetstream.AckPolicy) string {
	switch a {
	case jetstream.AckNonePolicy:
		return "none"
	case jetstream.AckAllPolicy:
		return "all"
	}
	return "explicit"
}

// durationFlag formats d as natscli reads it ("2m", "15s", "1500ms").
func durationFlag(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// missing is the error of an asset that must exist (create_assets off).
func missing(what string, err error) error {
	return fmt.Errorf("%s: %w (ha.create_assets is false: create it with the commands `monitord nats-assets` prints)", what, err)
}

// checkBucket checks that bucket exists, and that it reads from its
// leader: a replicated bucket with direct gets on (as created before
// monitord turned them off) would let a lagging replica answer, and
// kvstore.Open, which turns them off, may not edit streams here.
func checkBucket(ctx context.Context, js jetstream.JetStream, bucket string) error {
	if _, err := js.KeyValue(ctx, bucket); err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return missing("kv bucket "+bucket+" missing", err)
		}
		return fmt.Errorf("kv bucket %s: %w", bucket, err)
	}
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("kv bucket %s: stream: %w", bucket, err)
	}
	if c := s.CachedInfo().Config; c.AllowDirect && c.Replicas > 1 {
		return fmt.Errorf("kv bucket %s has direct gets on over %d replicas, so a lagging replica would answer reads "+
			"(ha.create_assets is false: turn them off with the stream edit `monitord nats-assets` prints)", bucket, c.Replicas)
	}
	return nil
}

func checkStream(ctx context.Context, js jetstream.JetStream, stream string) error {
	if _, err := js.Stream(ctx, stream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return missing("stream "+stream+" missing", err)
		}
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	return nil
}

func checkConsumer(ctx context.Context, js jetstream.JetStream, stream, svc string) error {
	name := work.ConsumerName(svc)
	if _, err := js.Consumer(ctx, stream, name); err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return missing("consumer "+name+" of stream "+stream+" missing", err)
		}
		return fmt.Errorf("consumer %s of stream %s: %w", name, stream, err)
	}
	return nil
}
