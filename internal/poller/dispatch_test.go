package poller

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestDispatchHandsTicksOverWithoutPolling: with Config.Dispatch (several
// instances, internal/ha) every due tick of a current target goes to
// Dispatch with the target, nothing is listed here, and Poll still polls
// a tick handed back by whoever took it.
func TestDispatchHandsTicksOverWithoutPolling(t *testing.T) {
	var (
		mu    sync.Mutex
		ticks = map[string][]Tick{}
	)
	f := newFixture(t, proxysim.Options{Seed: 21, Participants: 1}, func(c *Config) {
		c.Dispatch = func(tg proxy.Target, tk Tick) {
			if tg.Key() != tk.Key {
				t.Errorf("dispatched target %s with tick of %s", tg.Key(), tk.Key)
			}
			mu.Lock()
			ticks[tk.Key] = append(ticks[tk.Key], tk)
			mu.Unlock()
		}
	})
	var listed atomic.Int32
	l := hookLister{f.client, func(context.Context) { listed.Add(1) }}
	specs := every1s(f.specs(l))
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	waitFor(t, "two ticks of every target dispatched", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range specs {
			if len(ticks[s.Target.Key()]) < 2 {
				return false
			}
		}
		return true
	})
	if n := listed.Load(); n != 0 {
		t.Fatalf("%d listings with Dispatch set, want none: the tick's taker polls", n)
	}
	mu.Lock()
	tk := ticks[specs[0].Target.Key()][0]
	mu.Unlock()
	res, err := f.p.Poll(context.Background(), specs[0].Target, tk)
	if err != nil || res != ResultOK {
		t.Fatalf("Poll of a dispatched tick = %q, %v; want ok", res, err)
	}
	if listed.Load() != 1 {
		t.Fatalf("listings after Poll = %d, want 1", listed.Load())
	}
}
