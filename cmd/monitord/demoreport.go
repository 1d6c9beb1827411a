package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/poller"
)

// demoStats is what the demo saw: polls from the poller, events from the
// NATS subscription. The demo's test reads it to check every stage worked.
type demoStats struct {
	mu      sync.Mutex
	polls   int
	pollsOK int
	byKind  map[string]int
	total   uint64
	ids     map[string]int // times each event id was received
}

func newDemoStats() *demoStats { return &demoStats{byKind: map[string]int{}, ids: map[string]int{}} }

// event counts one event received from NATS.
func (s *demoStats) event(subject string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[kindFromSubject(subject)]++
	s.total++
	if e, err := event.Decode(data); err == nil && e.ID != "" {
		s.ids[e.ID]++
	}
}

// twice returns how many distinct event ids were received, and how many
// of them more than once (none, if no event was published twice).
func (s *demoStats) twice() (distinct, twice int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.ids {
		if n > 1 {
			twice++
		}
	}
	return len(s.ids), twice
}

func (s *demoStats) addPolls(n, ok int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls += n
	s.pollsOK += ok
}

func (s *demoStats) received() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// summary is the demo's last line.
func (s *demoStats) summary(held uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	kinds := make([]string, 0, len(s.byKind))
	for k, n := range s.byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	polls := fmt.Sprintf("%d polls (%d complete); ", s.polls, s.pollsOK)
	if s.polls == 0 {
		polls = "" // demo --ha does not count the instances' polls
	}
	return fmt.Sprintf("\nsummary: %s%d events received back from NATS (%s); the stream holds %d. Removing temp files.",
		polls, s.total, strings.Join(kinds, ", "), held)
}

// demoOutbox is the part of the state file the poll reporter reads.
type demoOutbox interface {
	OutboxStats() (events int, bytes int64, oldest time.Time, err error)
}

// reportPolls prints a line each time the poller completes a cycle (every
// target polled once since the last line), or every 10 s while some target
// keeps failing so no cycle completes. It reads the poller's per-target
// status rather than hooking into the poll itself: the demo watches the
// daemon from outside, as /status does.
func reportPolls(ctx context.Context, pl *poller.Poller, db demoOutbox, p *eventPrinter, stats *demoStats) {
	last := map[string]time.Time{}
	var lastCycle time.Time
	lastLine := time.Now()
	polls, ok := 0, 0
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, st := range pl.Status() {
			if !st.LastAttempt.After(last[st.Key]) {
				continue
			}
			last[st.Key] = st.LastAttempt
			polls++
			if !st.LastSuccess.Before(st.LastAttempt) {
				ok++
			}
		}
		cycle := pl.LastCycle()
		if polls == 0 || (!cycle.After(lastCycle) && time.Since(lastLine) < 10*time.Second) {
			continue
		}
		lastCycle, lastLine = cycle, time.Now()
		stats.addPolls(polls, ok)
		sum := pl.Summary()
		outbox, _, _, _ := db.OutboxStats()
		p.line(fmt.Sprintf("%s  %-16s  %s, %d complete · targets %d healthy, %d failing · outbox %d",
			time.Now().Format("15:04:05"), "polled", plural(polls, "poll"), ok, sum.Healthy, sum.Failing, outbox))
		polls, ok = 0, 0
	}
}

// line prints a line that is not an event (banner, poll summaries) in
// between event lines, never inside one.
func (p *eventPrinter) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprintln(p.w, s)
	p.check(err)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
