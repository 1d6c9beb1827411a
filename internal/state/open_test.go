package state

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
	if err == nil || !strings.Contains(err.Error(), "schema version 2") || !strings.Contains(err.Error(), path) {
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
