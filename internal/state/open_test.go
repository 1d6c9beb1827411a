package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/event"
)

func TestOpenCreatesPrivateFileAndDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "sub", "monitord.db")
	db := open(t, path, Options{})
	if db.Path() != path {
		t.Fatalf("Path() = %q", db.Path())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", di.Mode().Perm())
	}
}

func TestSecondOpenerTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	open(t, path, Options{})
	// flock is per open file description, so a second Open in this process
	// contends exactly like a second monitord would.
	_, err := Open(path, Options{OpenTimeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another monitord") {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", SchemaVersion+1)) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refused file was modified")
	}
}

func TestCorruptFileRefusedUntouched(t *testing.T) {
	dir := t.TempDir()
	garbage := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	// A valid file whose both meta pages are damaged.
	damaged := filepath.Join(dir, "damaged.db")
	db := open(t, damaged, Options{})
	poll(t, db, target(1), nil, t0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(damaged)
	for _, off := range []int{16, 4096 + 16} { // inside meta pages 0 and 1
		content[off] ^= 0xff
	}
	files := map[string][]byte{
		"garbage.db": garbage,
		"text.db":    []byte("not a database\n"),
		"damaged.db": content,
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "untouched") {
			t.Fatalf("%s: err = %v", name, err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(data, after) {
			t.Fatalf("%s: corrupt file was modified", name)
		}
	}
}

func TestForeignBoltFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err })
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Close()
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a monitord state file") {
		t.Fatalf("err = %v", err)
	}
}

func TestNegativeOptionsRefused(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{MaxOutboxEvents: -1}); err == nil {
		t.Fatal("negative MaxOutboxEvents accepted")
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/monitord:/var/lib/other")
	if got := DefaultPath(); got != filepath.Join("/var/lib/monitord", "monitord.db") {
		t.Fatalf("DefaultPath = %q", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := DefaultPath(); got != "monitord.db" {
		t.Fatalf("DefaultPath without systemd = %q", got)
	}
}

// damagedFile is a closed state file of 120 targets × 20 interactions,
// some of them failed so the outbox holds events too, and the ids of its
// pages that bbolt reads: every page that starts a branch, leaf or freelist
// page (not free pages, nor the overflow pages that continue a value).
func damagedFile(t *testing.T) (content []byte, size int, heads []int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "full.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for tn := range 120 {
		poll(t, db, target(tn), benchListing(tn, 20, "delivered"), t0)
		poll(t, db, target(tn), benchListing(tn, 20, "failed"), t0.Add(time.Minute))
	}
	err = db.db.View(func(tx *bolt.Tx) error {
		size = int(tx.Size())
		for id := 2; ; {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type != "free" {
				heads = append(heads, id)
			}
			id += 1 + info.OverflowCount
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	content, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return content, size, heads
}

// readAll reads everything the daemon reads: every target's state and the
// outbox, so a damaged page Open did not read is met here.
func readAll(db *DB) error {
	keys, err := db.Keys()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, _, err := db.Load(k); err != nil {
			return err
		}
	}
	_, err = db.Peek(event.Position{}, 1<<20)
	return err
}

// TestTruncatedOrDamagedFileIsCorrupt: a state file cut short at any
// offset, or with any page bbolt reads damaged, gives ErrCorrupt — at Open,
// or for a page Open does not read, at the first read of it — never a panic,
// and the file is left byte for byte as it was.
func TestTruncatedOrDamagedFileIsCorrupt(t *testing.T) {
	content, size, heads := damagedFile(t)
	const page = 4096
	type tc struct {
		name string
		data []byte
	}
	var cases []tc
	for _, n := range []int{2*page + 1, 3 * page, size / 4, size / 2, size * 3 / 4, size - page, size - 1} {
		cases = append(cases, tc{fmt.Sprintf("truncated to %d of %d", n, size), bytes.Clone(content[:n])})
	}
	for _, id := range heads {
		// The page header: the page's own id, which bbolt asserts on
		// every read, its type, item count and overflow.
		data := bytes.Clone(content)
		copy(data[id*page:], bytes.Repeat([]byte{0xde}, 16))
		cases = append(cases, tc{fmt.Sprintf("page %d damaged", id), data})
	}
	t.Logf("%d bytes in use, %d pages read by bbolt", size, len(heads))
	if len(heads) < 10 {
		t.Fatalf("only %d pages: the file is too small to test much", len(heads))
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{})
			if err == nil {
				err = readAll(db)
				if cerr := db.Close(); cerr != nil && err == nil {
					err = cerr
				}
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "left untouched") {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(c.data, after) {
				t.Fatal("corrupt file was modified")
			}
		})
	}
}
