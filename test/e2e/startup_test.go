//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// testStartup is scenario 7: start-up with a large state file. The state
// is written directly through internal/state (10,000 targets × 200
// interactions = 2 million with -e2e.long; 200 × 100 otherwise), the
// config lists the same targets, and the time from exec to systemd's
// READY=1 (on a NOTIFY_SOCKET this test listens on) is measured, as well
// as to the "monitord started" log line.
func testStartup(t *testing.T) {
	sessions, perTarget, runs := 100, 100, 2
	if *long {
		sessions, perTarget, runs = 5000, 200, 5
	}
	world := proxysim.Options{Seed: *seed, Sessions: sessions, Participants: 2, Interactions: 1, RateLimit: -1}
	// Polls are not what is measured: an hourly schedule keeps them out of
	// the way (each target's first poll is spread over the hour).
	r := newRig(t, rigOptions{Sim: world, Schedule: "@every 1h"})
	genStart := time.Now()
	n, err := writeBigState(r.cfg.StatePath, r.cfg.Targets, perTarget)
	if err != nil {
		t.Fatal(err)
	}
	figure(t, "startup: state of %d targets × %d = %d interactions written in %v", len(r.cfg.Targets), perTarget, n, time.Since(genStart).Round(time.Millisecond))

	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The config alone: load and validate the 10,000 targets.
	checkStart := time.Now()
	if out, err := exec.Command(r.bin, "check", "-c", r.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("monitord check: %v\n%s", err, out)
	}
	figure(t, "startup: `monitord check` of the config with %d targets: %v", len(r.cfg.Targets), time.Since(checkStart).Round(time.Millisecond))

	readies := map[bool][]time.Duration{} // cold → times
	for i := range runs {
		// Odd runs start cold: the state file's pages are dropped from
		// the page cache first (posix_fadvise DONTNEED on this file only,
		// not the whole machine's cache), as after a reboot.
		cold := i%2 == 0
		if cold {
			if err := dropFromPageCache(r.cfg.StatePath); err != nil {
				t.Fatal(err)
			}
		}
		d := r.start("NOTIFY_SOCKET=" + sock)
		ready, err := waitNotify(conn, "READY=1", 60*time.Second)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, d.LogTail(20))
		}
		took := ready.Sub(d.started)
		var logged time.Duration
		waitFor(10*time.Second, 5*time.Millisecond, func() (bool, error) {
			logged = logLineTime(d.Log(), `"monitord started"`, d.started)
			return logged > 0, nil
		})
		m := d.MustMetrics()
		readies[cold] = append(readies[cold], took)
		figure(t, "startup: run %d (%s page cache): READY=1 %v after exec (\"monitord started\" logged by %v); RSS %.0f MiB, Go heap in use %.0f MiB",
			i+1, map[bool]string{true: "cold", false: "warm"}[cold], took.Round(time.Millisecond), logged.Round(time.Millisecond),
			m["process_resident_memory_bytes"]/(1<<20), m["go_memstats_heap_inuse_bytes"]/(1<<20))
		if code := d.Stop(30 * time.Second); code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i+1, code, d.LogTail(20))
		}
		drain(conn)
	}
	for _, cold := range []bool{true, false} {
		rs := readies[cold]
		if len(rs) == 0 {
			continue
		}
		slices.Sort(rs)
		figure(t, "startup: %d interactions in state, %s page cache: time to READY=1 min %v, median %v, max %v over %d runs (goal ≤ 1s)",
			n, map[bool]string{true: "cold", false: "warm"}[cold], rs[0].Round(time.Millisecond),
			rs[len(rs)/2].Round(time.Millisecond), rs[len(rs)-1].Round(time.Millisecond), len(rs))
	}
}

// writeBigState commits a baselined snapshot of perTarget interactions
// for every target, from many goroutines so that bbolt batches the
// commits into few transactions.
func writeBigState(path string, targets []proxysim.Target, perTarget int) (int, error) {
	db, err := state.Open(path, state.Options{})
	if err != nil {
		return 0, err
	}
	base := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	work := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tg := targets[i]
				entries := make([]diff.Entry, perTarget)
				for j := range entries {
					at := base.Add(time.Duration(j) * time.Minute)
					entries[j] = diff.Entry{
						SID:                 fmt.Sprintf("KI%016x%016x", i, j),
						Type:                "message",
						InboundStatus:       "delivered",
						OutboundStatus:      "delivered",
						InboundResourceSID:  fmt.Sprintf("SM%016x%016x", i, 2*j),
						OutboundResourceSID: fmt.Sprintf("SM%016x%016x", i, 2*j+1),
						DateCreated:         at,
						DateUpdated:         at.Add(30 * time.Second),
						OutboundSince:       at.Add(30 * time.Second),
					}
				}
				key := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: tg.ServiceSID,
					SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID}.Key()
				next := state.Next{
					Snapshot: &diff.Snapshot{Baselined: true, Entries: entries},
					Health:   state.Health{LastAttempt: base, LastSuccess: base},
				}
				if _, err := db.Commit(key, 0, next, nil); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range targets {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	cerr := db.Close()
	if err := <-errs; err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return len(targets) * perTarget, nil
}

// waitNotify reads sd_notify datagrams until one holds want.
func waitNotify(conn *net.UnixConn, want string, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			return time.Time{}, fmt.Errorf("no %s on NOTIFY_SOCKET within %v: %w", want, within, err)
		}
		if strings.Contains(string(buf[:n]), want) {
			return time.Now(), nil
		}
	}
}

// drain discards datagrams already queued (STOPPING=1 and the like).
func drain(conn *net.UnixConn) {
	buf := make([]byte, 4096)
	for range 1000 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, _, err := conn.ReadFromUnix(buf); err != nil {
			return
		}
	}
}

// logLineTime is the time of the first JSON log line holding s, relative
// to start (0 if none yet).
func logLineTime(log, s string, start time.Time) time.Duration {
	line := firstLine(log, s)
	i := strings.Index(line, `"time":"`)
	if i < 0 {
		return 0
	}
	rest := line[i+len(`"time":"`):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return 0
	}
	at, err := time.Parse(time.RFC3339Nano, rest[:j])
	if err != nil {
		return 0
	}
	return at.Sub(start)
}

// dropFromPageCache syncs path and asks the kernel to drop its cached
// pages, so the next reader starts from the disk.
func dropFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}
