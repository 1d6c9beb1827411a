package state

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/event"
)

// v1File copies testdata/v1.db.gz, a state file written by the version 1
// code (testdata/README.md says how), to a temp dir.
func v1File(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "v1.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var v uint64
	_ = bdb.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	return v
}

// The events the version 1 file holds, in its outbox order.
var v1IDs = []string{
	"a7114aa40fcc1d14d7e177d3d906781f", // target 1: status_changed
	"ade86ba4f1a46610681daf01fa33e144", // target 1: failed
	"4add3af55c89b0909223de288d622e85", // target 1: created
	"0f7e2c1d9a8b4c3e5f6a7b8c9d0e1f2a", // target 2: target_error
	"64dcdae571b2121a7952e39b527a3a99", // target 1: deleted
}

func TestMigrateV1(t *testing.T) {
	path := v1File(t)
	if v := schemaOf(t, path); v != 1 {
		t.Fatalf("golden file has schema %d", v)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := db.Keys()
	if want := []string{target(1).Key(), target(2).Key(), target(3).Key()}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("keys %v %v", keys, err)
	}
	t2 := t0.Add(2 * time.Minute)
	ts, rev, err := db.Load(target(1).Key())
	if err != nil || rev != 1 || !ts.Snapshot.Baselined || ts.Snapshot.Len() != 2 || !ts.Health.LastSuccess.Equal(t2) {
		t.Fatalf("target 1: rev %d, %+v, %v", rev, ts, err)
	}
	if _, ok := ts.Snapshot.Find(ix(3, "", t0).SID); !ok {
		t.Fatal("target 1's snapshot lost KI…3")
	}
	ts, rev, err = db.Load(target(2).Key())
	if err != nil || rev != 1 || !ts.Health.Failing || ts.Health.Outage != 1 || ts.Health.LastError != "list interactions: HTTP 503" {
		t.Fatalf("target 2: rev %d, %+v, %v", rev, ts, err)
	}
	// The outbox comes back whole, in its old order, under the empty key.
	recs, err := db.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(v1IDs, ids(recs)); d != "" {
		t.Fatalf("migrated outbox (-want +got):\n%s", d)
	}
	for i, r := range recs {
		if r.Target != "" || r.Seq != uint64(i+1) || r.Subject == "" || len(r.Data) == 0 {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	n, size, oldest, err := db.OutboxStats()
	if err != nil || n != 5 || size <= 0 || oldest.IsZero() {
		t.Fatalf("stats %d %d %v %v", n, size, oldest, err)
	}
	// The migrated target commits on, its new events after the old ones.
	msgs := poll(t, db, target(1), nil, t2.Add(time.Minute))
	if len(msgs) != 2 {
		t.Fatalf("deleting both interactions: %v", ids(msgs))
	}
	if _, rev, _ := db.Load(target(1).Key()); rev != 2 {
		t.Fatalf("revision after a commit %d", rev)
	}
	all, _ := db.Peek(event.Position{}, 0)
	if d := cmp.Diff(append(slices.Clone(v1IDs), ids(msgs)...), ids(all)); d != "" {
		t.Fatalf("outbox after a commit (-want +got):\n%s", d)
	}
	if err := db.Delete([]event.Position{recs[0].Position}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Opened again it is version 2 and not migrated twice.
	if v := schemaOf(t, path); v != SchemaVersion {
		t.Fatalf("schema after migration %d", v)
	}
	db = open(t, path, Options{})
	left, _ := db.Peek(event.Position{}, 0)
	if d := cmp.Diff(append(slices.Clone(v1IDs[1:]), ids(msgs)...), ids(left)); d != "" {
		t.Fatalf("after reopening (-want +got):\n%s", d)
	}
}

// A migration that dies before it commits leaves the version 1 file as it
// was, readable by the old code, and the next start migrates it.
func TestMigrateV1Interrupted(t *testing.T) {
	path := v1File(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crash := errors.New("power cut")
	migrateHook = func() error { return crash }
	_, err = Open(path, Options{})
	migrateHook = nil
	if !errors.Is(err, crash) || !bytes.Contains([]byte(err.Error()), []byte("schema version 1")) {
		t.Fatalf("err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("an interrupted migration changed the file")
	}
	if v := schemaOf(t, path); v != 1 {
		t.Fatalf("schema %d after an interrupted migration", v)
	}
	db := open(t, path, Options{})
	recs, err := db.Peek(event.Position{}, 0)
	if err != nil || !slices.Equal(ids(recs), v1IDs) {
		t.Fatalf("after migrating again: %v %v", ids(recs), err)
	}
}
