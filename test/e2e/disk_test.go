//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; the test's cleanup unmounts it. A tmpfs is the only way to give
// monitord a small or read-only file system here: running as root ignores
// permission bits.
func mountTmpfs(t *testing.T, size int64) (string, error) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return "", fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir, nil
}

func remount(dir string, readOnly bool) error {
	flags := uintptr(syscall.MS_REMOUNT)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, ""); err != nil {
		return fmt.Errorf("remount %s (read-only %v): %w", dir, readOnly, err)
	}
	return nil
}

// fill writes zeros to a file in dir until the file system is full and
// returns the file's path.
func fill(dir string) (string, int64, error) {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for range 1 << 20 { // bounded: 64 GiB
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// Take the last few bytes too.
			for _, sz := range []int{4096, 512, 1} {
				for {
					w, err := f.Write(buf[:sz])
					n += int64(w)
					if err != nil {
						break
					}
				}
			}
			return path, n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
	return "", n, errors.New("file system never filled up")
}

// testDisk is scenario 6: the state directory on a file system that is
// full, or read-only. Only with -e2e.long: it needs mount(2) (root or
// CAP_SYS_ADMIN).
func testDisk(t *testing.T) {
	longOnly(t)
	t.Run("full", testDiskFull)
	t.Run("read_only_at_start", testReadOnlyAtStart)
}

// testDiskFull fills the state file's file system while monitord runs and
// the world changes, then frees it. Wanted: a clear error, /readyz failing
// while commits fail, the process alive, no corruption, and nothing lost
// once space is back.
func testDiskFull(t *testing.T) {
	dir, err := mountTmpfs(t, 8<<20)
	if err != nil {
		t.Fatalf("cannot test a full disk here: %v", err)
	}
	r := newRig(t, rigOptions{Sim: churningWorld(5), Schedule: "@every 1s", StateDir: dir})
	d := r.start()
	firstStart := d.started
	d.WaitReady(60 * time.Second)
	baselined := time.Now()

	filler, size, err := fill(dir)
	if err != nil {
		t.Fatal(err)
	}
	full := time.Now()
	m0 := d.MustMetrics()
	// Wait until a commit fails (the world adds interactions every few
	// seconds, so the snapshots must grow) and see what /readyz says.
	var readyDuring int
	var readyBody []byte
	err = waitFor(60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if !d.Running() {
			return false, fmt.Errorf("monitord exited on a full disk: %v", d.waitErr)
		}
		m := d.MustMetrics()
		return m[`monitord_polls_total{result="state_error"}`] > m0[`monitord_polls_total{result="state_error"}`], nil
	})
	failedAfter := time.Since(full)
	if err != nil {
		t.Errorf("no commit failed within 60s of the disk filling up (%d bytes of filler): %v", size, err)
	} else {
		// Give /readyz a few seconds to notice (a poll cycle is 1s here).
		waitFor(5*time.Second, 200*time.Millisecond, func() (bool, error) {
			readyDuring, readyBody = d.get("/readyz")
			return readyDuring != http.StatusOK, nil
		})
	}
	logLine := firstLine(d.Log(), "no space left on device")
	figure(t, "disk/full: %d-byte tmpfs filled (%d bytes of filler); first failed commit %v later; /readyz then answered %d %s",
		8<<20, size, failedAfter.Round(time.Millisecond), readyDuring, strings.TrimSpace(string(readyBody)))
	figure(t, "disk/full: log: %s", logLine)
	if readyDuring == http.StatusOK {
		t.Errorf("/readyz answered 200 while commits failed with a full disk")
	}
	if logLine == "" {
		t.Errorf("no log line names the cause (no space left on device)\n%s", d.LogTail(20))
	}
	if !d.Running() {
		t.Fatalf("monitord exited on a full disk: %v\n%s", d.waitErr, d.LogTail(20))
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	d.WaitReady(60 * time.Second)
	figure(t, "disk/full: ready again %v after space was freed", time.Since(freed).Round(time.Millisecond))
	v := r.finish(d, firstStart, baselined, nil, nil)
	figure(t, "disk/full: %s", v)
	if !v.OK() {
		t.Error(v)
	}
	rep, err := checkState(r.cfg.StatePath)
	if err != nil {
		t.Errorf("state file after the full disk: %v", err)
	}
	figure(t, "disk/full: state file opens afterwards: %d targets, %d outbox events", rep.Targets, rep.Outbox)
}

// testReadOnlyAtStart starts monitord on a state directory that is
// read-only (a tmpfs remounted ro) with an existing state file. A running
// monitord cannot be put in that position by a remount: the kernel refuses
// to make a file system read-only while a file on it is open for writing,
// which bbolt's is.
func testReadOnlyAtStart(t *testing.T) {
	dir, err := mountTmpfs(t, 64<<20)
	if err != nil {
		t.Fatalf("cannot test a read-only state directory here: %v", err)
	}
	r := newRig(t, rigOptions{Sim: churningWorld(2), Schedule: "@every 1s", StateDir: dir})
	d := r.start()
	d.WaitReady(60 * time.Second)
	if err := remount(dir, true); err == nil {
		t.Errorf("the kernel made the state directory read-only while monitord had its file open")
	}
	if code := d.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if err := remount(dir, true); err != nil {
		t.Fatal(err)
	}
	d = r.start()
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("monitord kept running on a read-only state directory\n%s", d.LogTail(20))
	}
	code := d.cmd.ProcessState.ExitCode()
	line := firstLine(d.Log(), "read-only")
	figure(t, "disk/read_only: monitord exited %d in %v: %s", code, time.Since(d.started).Round(time.Millisecond), line)
	if code != 1 || line == "" {
		t.Errorf("want exit 1 and an error naming the read-only file system, got %d\n%s", code, d.LogTail(10))
	}
	if err := remount(dir, false); err != nil {
		t.Fatal(err)
	}
	rep, err := checkState(r.cfg.StatePath)
	if err != nil {
		t.Errorf("state file after the read-only start: %v", err)
	}
	figure(t, "disk/read_only: state file opens afterwards: %d targets", rep.Targets)
}

// firstLine is the first line of log holding s ("" if none).
func firstLine(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
