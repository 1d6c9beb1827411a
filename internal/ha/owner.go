package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/work"
)

// ownerPrefix starts the keys of the ownership records in the state
// bucket: o.<service SID>. The store's own keys start with t., c. and p.
const ownerPrefix = "o."

// Owner says which instance polls a Service.
type Owner struct {
	Service  string    `json:"service"`
	Instance string    `json:"instance"`
	Since    time.Time `json:"since"` // when the instance found it held the pin
	Seen     time.Time `json:"seen"`  // when it last confirmed it (every pinned TTL)
}

// ownerLoop checks, every pull expiry, which Services this instance owns:
// a Service is owned when the pin id of the last task delivered to its
// worker is the one its consumer pins now. The server knows the pin and
// tells nobody when it moves, so this is the one place that compares. An
// owner writes o.<service> when it takes the Service and again every
// pinned TTL; the next owner overwrites it. It also creates the consumers
// still missing (a Service added while NATS was away), keeps this
// instance's record i.<instance> and, with Config.Balance, hands a Service
// over when this instance owns more than its share (balance.go).
func (n *Node) ownerLoop(ctx context.Context) {
	tk := time.NewTicker(n.cfg.Work.PullExpiry)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		ectx, cancel := context.WithTimeout(ctx, n.cfg.Work.PullExpiry)
		if err := n.EnsureServices(ectx); err != nil && ctx.Err() == nil {
			// A Service whose consumer is missing is not polled by anyone
			// (create_assets: false, a Service added by a reload): say so.
			n.ensureLog.Do(func() { n.log.Warn("ha: consumers not ensured; their Services are not polled", zap.Error(err)) })
		}
		n.checkOwnership(ectx)
		now := time.Now().UTC()
		n.writeInstance(ectx, now)
		n.balance(ectx, now)
		cancel()
	}
}

// checkOwnership updates the owned set and the records of this instance.
func (n *Node) checkOwnership(ctx context.Context) {
	n.mu.Lock()
	type svcPin struct{ svc, pin string }
	var list []svcPin
	for svc, sw := range n.workers {
		list = append(list, svcPin{svc, sw.w.Pin(svc)})
	}
	removed := n.removed
	n.removed = nil
	n.mu.Unlock()
	for _, svc := range removed {
		n.deleteOwner(ctx, svc) // a Service no longer in the target set
	}
	now := time.Now().UTC()
	for _, sp := range list {
		held := false
		if sp.pin != "" {
			pinned, err := n.pinnedID(ctx, sp.svc)
			if err != nil {
				n.unconfirmed(sp.svc, now, err)
				continue
			}
			held = pinned == sp.pin
		}
		n.mu.Lock()
		n.confirmed[sp.svc] = now
		prev, was := n.owned[sp.svc]
		_, wanted := n.workers[sp.svc]
		switch {
		case held && wanted && !was:
			prev = Owner{Service: sp.svc, Instance: n.cfg.Instance, Since: now}
			fallthrough
		case held && wanted && now.Sub(prev.Seen) >= n.cfg.Work.PinnedTTL:
			prev.Seen = now
			n.owned[sp.svc] = prev
			n.mu.Unlock()
			if !was {
				n.log.Info("ha: service owned", zap.String("service", sp.svc))
			}
			n.writeOwner(ctx, prev)
			continue
		case !held && was:
			delete(n.owned, sp.svc)
			n.mu.Unlock()
			n.log.Info("ha: service handed over", zap.String("service", sp.svc))
			n.deleteOwner(ctx, sp.svc)
			continue
		}
		n.mu.Unlock()
	}
}

// unconfirmed handles a check of svc that could not reach the consumer
// (NATS unreachable, no quorum): the belief stands for one pinned TTL, the
// time the server keeps a silent owner's pin; past it the pin has moved or
// will when the cluster answers, so /status and the heartbeat stop
// claiming the Service. The record in the bucket cannot be removed from
// here; the next owner overwrites it.
func (n *Node) unconfirmed(svc string, now time.Time, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, was := n.owned[svc]; !was || now.Sub(n.confirmed[svc]) <= n.cfg.Work.PinnedTTL {
		return
	}
	delete(n.owned, svc)
	n.log.Warn("ha: service ownership unconfirmed for a pinned ttl; no longer claimed", zap.String("service", svc), zap.Error(err))
}

// pinnedID is the id the consumer of svc pins now ("" for none).
func (n *Node) pinnedID(ctx context.Context, svc string) (string, error) {
	c, err := n.js.Consumer(ctx, n.cfg.Work.Stream, work.ConsumerName(svc))
	if err != nil {
		return "", err
	}
	// js.Consumer fetched the info already: no second request.
	for _, g := range c.CachedInfo().PriorityGroups {
		if g.Group == work.Group {
			return g.PinnedClientID, nil
		}
	}
	return "", nil
}

func (n *Node) writeOwner(ctx context.Context, o Owner) {
	b, _ := json.Marshal(o)
	if _, err := n.kv.Put(ctx, ownerPrefix+o.Service, b); err != nil {
		n.log.Debug("ha: write ownership record", zap.String("service", o.Service), zap.Error(err))
	}
}

// deleteOwner removes o.<svc> if it still names this instance: a newer
// owner's record stays.
func (n *Node) deleteOwner(ctx context.Context, svc string) {
	e, err := n.kv.Get(ctx, ownerPrefix+svc)
	if err != nil {
		return
	}
	var o Owner
	if json.Unmarshal(e.Value(), &o) != nil || o.Instance != n.cfg.Instance {
		return
	}
	if err := n.kv.Delete(ctx, ownerPrefix+svc, jetstream.LastRevision(e.Revision())); err != nil {
		n.log.Debug("ha: delete ownership record", zap.String("service", svc), zap.Error(err))
	}
}

// dropOwnership removes the records of the Services this instance owned,
// at a graceful stop: its workers have unpinned them.
func (n *Node) dropOwnership() {
	n.mu.Lock()
	var svcs []string
	for svc := range n.owned {
		svcs = append(svcs, svc)
	}
	clear(n.owned)
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, svc := range svcs {
		n.deleteOwner(ctx, svc)
	}
	n.deleteInstance(ctx)
}

// Owners lists the ownership records of bucket, by Service: which instance
// polls which Service, for `monitord status --cluster`. A record whose Seen
// is older than about twice the pinned TTL is an owner that died without
// handing over; the next owner overwrites it.
func Owners(ctx context.Context, js jetstream.JetStream, bucket string) ([]Owner, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", bucket, err)
	}
	return readRecords(ctx, kv, ownerPrefix, "owners", func(o *Owner, name string) { o.Service = name })
}

// readRecords reads every JSON record under prefix in kv, sorted by the
// key's name after the prefix, which name sets on each. A key deleted
// meanwhile is skipped; a record that does not decode is an error naming
// it. what names the records in errors.
func readRecords[T any](ctx context.Context, kv jetstream.KeyValue, prefix, what string, name func(*T, string)) ([]T, error) {
	kl, err := kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	// The channel also closes when ctx ends: that listing is incomplete.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	sort.Strings(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", what, k, err)
		}
		var v T
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return nil, fmt.Errorf("read %s %s: %w", what, k, err)
		}
		name(&v, strings.TrimPrefix(k, prefix))
		out = append(out, v)
	}
	return out, nil
}
