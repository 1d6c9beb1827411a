package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// instancePrefix starts the keys of the instance records in the state
// bucket: i.<instance>. The store's own keys start with t., c. and p.; o.
// and d. are the ownership and discovery records.
const instancePrefix = "i."

// Instance is an instance record: that an instance is live, and how many
// Services it owns, so the others can balance against it.
type Instance struct {
	Instance string    `json:"instance"`
	Seen     time.Time `json:"seen"`     // when it last wrote this (every pinned TTL, and when Owned changes)
	Owned    int       `json:"owned"`    // Services it owned then
	Services int       `json:"services"` // Services it serves (runs a worker for)
}

// liveFor is how long after its Seen an instance counts as live: three
// pinned TTLs. A record is rewritten every pinned TTL, so a live instance
// may miss two writes (a slow KV round, a loaded host) or have its clock a
// TTL off before it drops out; a dead one drops out after about the time
// its Services take to fail over (pinned TTL + ack wait), so it does not
// linger in the fair share for long.
func (n *Node) liveFor() time.Duration { return 3 * n.cfg.Work.PinnedTTL }

// cooldown is the least time between two hand-overs of this instance: two
// pinned TTLs. A hand-over settles within about one (the hold-off, the
// taker's first pull, both instances' records rewritten within a pull
// expiry), so the next decision sees its result and does not flap.
func (n *Node) cooldown() time.Duration { return 2 * n.cfg.Work.PinnedTTL }

// holdOff is how long a worker that handed its Service over stays off
// pulling it: one pinned TTL, long enough for a pull already waiting on
// another instance to take the pin, and for a Service passed on to a
// third instance not to come straight back.
func (n *Node) holdOff() time.Duration { return n.cfg.Work.PinnedTTL }

// writeInstance writes i.<instance> when a pinned TTL has passed since the
// last write, or the owned count changed since (so the others balance on a
// fresh count).
func (n *Node) writeInstance(ctx context.Context, now time.Time) {
	n.mu.Lock()
	rec := Instance{Instance: n.cfg.Instance, Seen: now, Owned: len(n.owned), Services: len(n.want)}
	due := now.Sub(n.liveWritten) >= n.cfg.Work.PinnedTTL || rec.Owned != n.liveOwned || rec.Services != n.liveServices
	n.mu.Unlock()
	if !due {
		return
	}
	b, _ := json.Marshal(rec)
	if _, err := n.kv.Put(ctx, instancePrefix+n.cfg.Instance, b); err != nil {
		n.log.Debug("ha: write instance record", zap.Error(err))
		return
	}
	n.mu.Lock()
	n.liveWritten, n.liveOwned, n.liveServices = now, rec.Owned, rec.Services
	n.mu.Unlock()
	n.instanceWrites.Add(1)
}

// deleteInstance removes i.<instance> at a graceful stop: the others stop
// counting this instance at once.
func (n *Node) deleteInstance(ctx context.Context) {
	if err := n.kv.Delete(ctx, instancePrefix+n.cfg.Instance); err != nil {
		n.log.Debug("ha: delete instance record", zap.Error(err))
	}
}

// Instances lists the instance records of bucket, sorted by name, for
// `monitord status --cluster`: the instances that run (or ran: a record
// whose Seen is older than three pinned TTLs is one that died without
// stopping), and how many Services each owns and serves.
func Instances(ctx context.Context, js jetstream.JetStream, bucket string) ([]Instance, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", bucket, err)
	}
	return readInstances(ctx, kv)
}

// readInstances lists the instance records in kv, sorted by name, stale
// ones included (Seen tells).
func readInstances(ctx context.Context, kv jetstream.KeyValue) ([]Instance, error) {
	return readRecords(ctx, kv, instancePrefix, "instances", func(in *Instance, name string) { in.Instance = name })
}

// balance hands one owned Service over when this instance owns at least
// two more than the least loaded live instance: the Services then spread
// so that no two instances differ by more than one. That is always so when
// it owns more than its fair share, ceil(S/L) (S the Services it serves, L
// the live instances), and also when an instance owns nothing while the
// others own their fair share (4 Services, 2+2+0). Of the instances in
// that position only the one owning most (ties: the first by name) acts,
// so two do not give at once and pass Services between themselves; and at
// most once per cooldown. A dead instance's record keeps the count it had,
// so it never looks like the least loaded one while it is still counted.
func (n *Node) balance(ctx context.Context, now time.Time) {
	if !n.cfg.Balance {
		return
	}
	n.mu.Lock()
	// Nothing to give below two Services (another instance owning none
	// is one less, not two); the records change once per pinned TTL at
	// most, so they are read no more often than that.
	wait := len(n.owned) < 2 || n.lastHandover.Add(n.cooldown()).After(now) ||
		n.balanceRead.Add(n.cfg.Work.PinnedTTL).After(now)
	if !wait {
		n.balanceRead = now
	}
	n.mu.Unlock()
	if wait {
		return
	}
	recs, err := readInstances(ctx, n.kv)
	if err != nil {
		n.log.Debug("ha: read instance records", zap.Error(err))
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	mine := len(n.owned)
	live := []Instance{{Instance: n.cfg.Instance, Owned: mine}}
	for _, r := range recs {
		if r.Instance != n.cfg.Instance && now.Sub(r.Seen) <= n.liveFor() {
			live = append(live, r)
		}
	}
	least, first := mine, live[0]
	for _, r := range live[1:] {
		least = min(least, r.Owned)
		if r.Owned > first.Owned || r.Owned == first.Owned && r.Instance < first.Instance {
			first = r
		}
	}
	if mine < least+2 || first.Instance != n.cfg.Instance {
		return
	}
	// The Service taken last goes: the others have been polled here
	// longest, and a Service just passed on moves on rather than back.
	var give Owner
	for _, o := range n.owned {
		if give.Service == "" || o.Since.After(give.Since) || o.Since.Equal(give.Since) && o.Service > give.Service {
			give = o
		}
	}
	sw, ok := n.workers[give.Service]
	if !ok || !sw.w.HandOver(give.Service, n.holdOff()) {
		return
	}
	n.lastHandover = now
	n.handovers.Add(1)
	fair := (len(n.want) + len(live) - 1) / len(live)
	n.log.Info("ha: service handed over to balance", zap.String("service", give.Service),
		zap.Int("owned", mine), zap.Int("fair_share", fair), zap.Int("live_instances", len(live)))
}

// Handovers is how many Services this instance handed over to balance the
// load (ha.balance).
func (n *Node) Handovers() int64 { return n.handovers.Load() }
