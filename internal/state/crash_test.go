package state

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

// crash simulates a process dying: the file is closed without Close's
// orderly work, the way the kernel releases it after SIGKILL.
func crash(t *testing.T, db *DB) {
	t.Helper()
	if err := db.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrashBetweenSaveAndPublishRepublishesSameIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := target(1)
	poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0), ix(2, "sent", t0)}, t0)
	committed := poll(t, db, tg, []proxy.Interaction{ix(1, "failed", t0), ix(2, "delivered", t0), ix(3, "queued", t0)}, t0.Add(time.Minute))
	if len(committed) == 0 {
		t.Fatal("no events to publish")
	}
	// The publisher read the outbox, maybe even sent some, then the process died before Delete.
	if _, err := db.Peek(event.Position{}, 0); err != nil {
		t.Fatal(err)
	}
	crash(t, db)

	db = open(t, path, Options{})
	recs, err := db.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ids(committed), ids(recs)); d != "" {
		t.Fatalf("republished (-committed +outbox):\n%s", d)
	}
	// And the next poll of the same listing adds nothing: the snapshot was saved with them.
	if again := poll(t, db, tg, []proxy.Interaction{ix(1, "failed", t0), ix(2, "delivered", t0), ix(3, "queued", t0)}, t0.Add(2*time.Minute)); len(again) != 0 {
		t.Fatalf("re-derived after commit: %v", ids(again))
	}
}

func TestCrashBeforeSaveRederivesSameEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := target(1)
	poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0), ix(2, "sent", t0)}, t0)
	listing := []proxy.Interaction{ix(1, "undelivered", t0), ix(3, "sent", t0)}
	ts, _, _ := db.Load(tg.Key())
	changes, _ := diff.Diff(ts.Snapshot, listing, t0.Add(time.Minute), diff.DefaultRules())
	lost := event.FromChanges(tg, t0.Add(time.Minute), changes)
	// Died after diffing, before Commit.
	crash(t, db)

	db = open(t, path, Options{})
	got := poll(t, db, tg, listing, t0.Add(5*time.Minute))
	if d := cmp.Diff(ids(render(lost)), ids(got)); d != "" {
		t.Fatalf("re-derived (-lost +got):\n%s", d)
	}
	recs, _ := db.Peek(event.Position{}, 0)
	if d := cmp.Diff(ids(got), ids(recs)); d != "" {
		t.Fatalf("outbox (-want +got):\n%s", d)
	}
}

func TestFailedPollChangesNothing(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0)}, t0)
	before, rev, _ := db.Load(tg.Key())
	// A failed poll has no listing: the poller records only health.
	h := before.Health
	h.LastAttempt = t0.Add(time.Minute)
	h.ConsecutiveFailures = 1
	if _, err := db.Commit(tg.Key(), rev, Next{Health: h}, nil); err != nil {
		t.Fatal(err)
	}
	after, _, _ := db.Load(tg.Key())
	if !after.Snapshot.Equal(before.Snapshot) {
		t.Fatal("failed poll moved the snapshot")
	}
	if n, _, _, _ := db.OutboxStats(); n != 0 {
		t.Fatalf("failed poll left %d events", n)
	}
}

// The SIGKILL test: a child process commits in a loop; the parent kills it
// at a random instant, then checks that the file opens and that the
// snapshot and the outbox agree. Each commit sets the tracked interaction's
// outbound status to "v<N>" and appends one event whose data is N, so
// after any kill the snapshot's N must equal the highest N in the outbox
// (the child only ever deletes older events, as a publisher would).

const crashChildEnv = "MONITORD_STATE_CRASH_CHILD"

var crashTarget = target(42)

func crashListing(n int) []proxy.Interaction {
	// 300 interactions so each snapshot spans several pages.
	listing := make([]proxy.Interaction, 300)
	for i := range listing {
		listing[i] = ix(i, "delivered", t0)
	}
	listing[0].OutboundResourceStatus = "v" + strconv.Itoa(n)
	return listing
}

func snapshotN(s diff.Snapshot) (int, error) {
	e, ok := s.Find(fmt.Sprintf("KI%032x", 0))
	if !ok {
		return 0, nil
	}
	return strconv.Atoi(e.OutboundStatus[1:])
}

// crashChild runs in the re-executed test binary until it is killed.
func crashChild() int {
	db, err := Open(os.Getenv(crashChildEnv), Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	rules := diff.Rules{AlertStatuses: []string{"failed"}}
	deadline := time.Now().Add(30 * time.Second) // never outlive a dead parent for long
	for time.Now().Before(deadline) {
		ts, rev, err := db.Load(crashTarget.Key())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		n, err := snapshotN(ts.Snapshot)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		now := t0.Add(time.Duration(n) * time.Second)
		changes, next := diff.Diff(ts.Snapshot, crashListing(n+1), now, rules)
		evs := event.FromChanges(crashTarget, now, changes)
		msgs := []event.Message{{ID: fmt.Sprintf("n-%d", n+1), Subject: "crash", Data: []byte(strconv.Itoa(n + 1))}}
		for _, e := range evs {
			msgs = append(msgs, event.Message{ID: e.ID, Subject: "crash", Data: []byte(strconv.Itoa(n + 1))})
		}
		if _, err := db.Commit(crashTarget.Key(), rev, Next{Snapshot: SnapshotIfChanged(ts.Snapshot, next), Health: Health{Outage: uint64(n + 1)}}, msgs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if n%7 == 0 { // publish: delete all but the newest few
			recs, err := db.Peek(event.Position{}, 0)
			if err == nil && len(recs) > 5 {
				var ps []event.Position
				for _, r := range recs[:len(recs)-5] {
					ps = append(ps, r.Position)
				}
				err = db.Delete(ps)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return 0
}

func TestSIGKILLDuringCommitsLeavesConsistentState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	lastN := 0
	deadline := time.Now().Add(20 * time.Second)
	for iter := 0; iter < 15 && time.Now().Before(deadline); iter++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr limitedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("child said %q", line)
			}
			ready <- err
		}()
		select {
		case err := <-ready:
			if err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("iteration %d: child: %v; stderr: %s", iter, err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("iteration %d: child not ready; stderr: %s", iter, stderr.String())
		}
		// A random instant within the commit loop.
		time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("iteration %d: child ended with %v before the kill; stderr: %s", iter, err, stderr.String())
		}
		n := checkCrashFile(t, path)
		if n < lastN {
			t.Fatalf("iteration %d: snapshot went back from %d to %d", iter, lastN, n)
		}
		t.Logf("iteration %d: killed at N=%d", iter, n)
		lastN = n
	}
	if lastN == 0 {
		t.Fatal("the children never committed")
	}
}

// checkCrashFile opens the file after a kill and checks it, returning N.
func checkCrashFile(t *testing.T, path string) int {
	t.Helper()
	db, err := Open(path, Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer func() { _ = db.Close() }()
	err = db.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bbolt check after kill: %v", err)
	}
	ts, _, err := db.Load(crashTarget.Key())
	if err != nil {
		t.Fatal(err)
	}
	n, err := snapshotN(ts.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Health.Outage != uint64(n) {
		t.Fatalf("health says commit %d, snapshot %d", ts.Health.Outage, n)
	}
	recs, err := db.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for len(recs) > 0 { // Peek pages by 1000
		more, _ := db.Peek(recs[len(recs)-1].Position, 0)
		if len(more) == 0 {
			break
		}
		recs = append(recs, more...)
	}
	maxN, seen := 0, map[string]bool{}
	for _, r := range recs {
		if seen[r.ID] {
			t.Fatalf("id %s twice in the outbox", r.ID)
		}
		seen[r.ID] = true
		v, err := strconv.Atoi(string(r.Data))
		if err != nil {
			t.Fatalf("record %d: %q", r.Seq, r.Data)
		}
		maxN = max(maxN, v)
	}
	if maxN != n {
		t.Fatalf("snapshot at commit %d but newest outbox event from commit %d", n, maxN)
	}
	var size int64
	_ = db.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(_, v []byte) error { size += int64(len(v)); return nil })
	})
	if cnt, bytes, _, _ := db.OutboxStats(); cnt != len(recs) || bytes != size {
		t.Fatalf("outbox counters %d events %d bytes, actual %d events %d bytes", cnt, bytes, len(recs), size)
	}
	return n
}

// limitedBuffer keeps the first 4 KiB a child writes to stderr.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
