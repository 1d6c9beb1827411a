package ha

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// words splits a command line as a POSIX shell would split the quoting
// Commands uses ('…' with '\” inside).
func words(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// flags parses "--name value" and "--name" (boolean) after the positional
// words; every flag must be one of known.
func flags(t *testing.T, ws []string, positional int, booleans ...string) ([]string, map[string]string) {
	t.Helper()
	pos, fs := ws[:positional], map[string]string{}
	for i := positional; i < len(ws); i++ {
		name, ok := strings.CutPrefix(ws[i], "--")
		if !ok {
			t.Fatalf("%q: not a flag in %q", ws[i], ws)
		}
		if _, dup := fs[name]; dup {
			t.Fatalf("--%s twice", name)
		}
		isBool := false
		for _, b := range booleans {
			isBool = isBool || b == name
		}
		if isBool {
			fs[name] = "true"
			continue
		}
		i++
		fs[name] = ws[i]
	}
	return pos, fs
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustInt(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterAssetsCommandsMatchEnsure: the natscli commands `monitord
// nats-assets` prints, read back into the client's config structs, are the
// assets Open and EnsureServices create, as the server reports them.
func TestClusterAssetsCommandsMatchEnsure(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Instance: "a", Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1}, CreateAssets: true}
	svcs := []string{"KS" + strings.Repeat("1", 32), "KS" + strings.Repeat("2", 32)}
	n, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Targets(nopPoller{}).SetTargets(specsOf(svcs))
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}

	lines := AssetsOf(cfg, svcs).Commands()
	if len(lines) != 2+len(svcs) {
		t.Fatalf("%d commands, want %d:\n%s", len(lines), 2+len(svcs), strings.Join(lines, "\n"))
	}
	// The bucket.
	pos, f := flags(t, words(t, lines[0]), 4)
	if strings.Join(pos[:3], " ") != "nats kv add" {
		t.Fatalf("first command %q, want nats kv add", lines[0])
	}
	kv, err := js.KeyValue(ctx, pos[3])
	if err != nil {
		t.Fatalf("bucket %s of the command: %v", pos[3], err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs := st.(*jetstream.KeyValueBucketStatus)
	got := fmt.Sprintf("history %s replicas %s storage %s", f["history"], f["replicas"], f["storage"])
	want := fmt.Sprintf("history %d replicas %d storage %s", bs.History(), bs.StreamInfo().Config.Replicas, storageFlag(bs.StreamInfo().Config.Storage))
	if got != want || bs.TTL() != 0 {
		t.Errorf("bucket command says %s; the bucket Open made has %s, ttl %v", got, want, bs.TTL())
	}

	// The stream, read back into a StreamConfig.
	pos, f = flags(t, words(t, lines[1]), 4, "discard-per-subject", "defaults")
	s, err := js.Stream(ctx, pos[3])
	if err != nil {
		t.Fatalf("stream %s of the command: %v", pos[3], err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	printed := jetstream.StreamConfig{Name: pos[3], Description: f["description"], Subjects: strings.Split(f["subjects"], ","),
		Replicas: mustInt(t, f["replicas"]), MaxMsgsPerSubject: int64(mustInt(t, f["max-msgs-per-subject"])),
		Duplicates: mustDuration(t, f["dupe-window"]), DiscardNewPerSubject: f["discard-per-subject"] == "true"}
	for flag, into := range map[string]any{"storage": &printed.Storage, "retention": &printed.Retention, "discard": &printed.Discard} {
		v := f[flag]
		if flag == "retention" && v == "work" {
			v = "workqueue"
		}
		if err := into.(interface{ UnmarshalJSON([]byte) error }).UnmarshalJSON([]byte(strconv.Quote(v))); err != nil {
			t.Fatalf("--%s %s: %v", flag, f[flag], err)
		}
	}
	c := info.Config
	server := jetstream.StreamConfig{Name: c.Name, Description: c.Description, Subjects: c.Subjects, Replicas: c.Replicas,
		MaxMsgsPerSubject: c.MaxMsgsPerSubject, Duplicates: c.Duplicates, DiscardNewPerSubject: c.DiscardNewPerSubject,
		Storage: c.Storage, Retention: c.Retention, Discard: c.Discard}
	if d := cmp.Diff(server, printed); d != "" {
		t.Errorf("stream command differs from the stream Open made (-made +printed):\n%s", d)
	}

	// The consumers.
	for i, svc := range svcs {
		pos, f = flags(t, words(t, lines[2+i]), 5, "pull", "defaults")
		if pos[3] != cfg.Work.Stream || pos[4] != work.ConsumerName(svc) {
			t.Fatalf("command %q: want consumer %s of %s", lines[2+i], work.ConsumerName(svc), cfg.Work.Stream)
		}
		cons, err := js.Consumer(ctx, pos[3], pos[4])
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		printed := jetstream.ConsumerConfig{Durable: pos[4], Description: f["description"], FilterSubject: f["filter"],
			AckWait: mustDuration(t, f["wait"]), MaxDeliver: mustInt(t, f["max-deliver"]), MaxAckPending: mustInt(t, f["max-pending"]),
			Replicas: mustInt(t, f["replicas"]), PriorityGroups: strings.Split(f["pinned-groups"], ","),
			PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: mustDuration(t, f["pinned-ttl"])}
		if err := printed.AckPolicy.UnmarshalJSON([]byte(strconv.Quote(f["ack"]))); err != nil {
			t.Fatal(err)
		}
		c := ci.Config
		server := jetstream.ConsumerConfig{Durable: c.Durable, Description: c.Description, FilterSubject: c.FilterSubject,
			AckWait: c.AckWait, MaxDeliver: c.MaxDeliver, MaxAckPending: c.MaxAckPending, Replicas: c.Replicas,
			PriorityGroups: c.PriorityGroups, PriorityPolicy: c.PriorityPolicy, PinnedTTL: c.PinnedTTL, AckPolicy: c.AckPolicy}
		if server.Replicas == 0 {
			server.Replicas = 1 // the server reports 0 for "as the stream"
		}
		if d := cmp.Diff(server, printed); d != "" {
			t.Errorf("consumer command differs from the consumer EnsureServices made (-made +printed):\n%s", d)
		}
	}
}

// TestClusterAssetsMissingNamed: with create_assets off, Open and
// EnsureServices name the first asset missing and say how to create it.
func TestClusterAssetsMissingNamed(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Instance: "a", Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1}}
	svc := "KS" + strings.Repeat("3", 32)

	_, err := Open(ctx, js, cfg)
	if err == nil || !strings.Contains(err.Error(), "kv bucket st missing") || !strings.Contains(err.Error(), "monitord nats-assets") {
		t.Fatalf("Open without the bucket: %v; want it named, with the way to create it", err)
	}
	if _, err := js.CreateKeyValue(ctx, kvstore.BucketConfig(cfg.KV)); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, js, cfg)
	if err == nil || !strings.Contains(err.Error(), "stream MONITORD_TASKS missing") {
		t.Fatalf("Open without the stream: %v; want it named", err)
	}
	if _, err := js.CreateStream(ctx, work.StreamConfig(cfg.Work)); err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Targets(nopPoller{}).SetTargets(specsOf([]string{svc}))
	err = n.EnsureServices(ctx)
	if err == nil || !strings.Contains(err.Error(), "consumer tasks_"+svc+" of stream MONITORD_TASKS missing") ||
		!errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("EnsureServices without the consumer: %v; want it named", err)
	}
	if _, err := js.CreateConsumer(ctx, cfg.Work.Stream, work.ConsumerConfig(cfg.Work, svc)); err != nil {
		t.Fatal(err)
	}
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatalf("EnsureServices with the consumer created: %v", err)
	}
}

// nopPoller takes targets and polls nothing: for tests of the assets.
type nopPoller struct{}

func (nopPoller) SetTargets([]poller.TargetSpec) error { return nil }
func (nopPoller) Poll(context.Context, proxy.Target, poller.Tick) (string, error) {
	return poller.ResultOK, nil
}

// specsOf returns one target in each of svcs.
func specsOf(svcs []string) []poller.TargetSpec {
	var out []poller.TargetSpec
	for i, svc := range svcs {
		out = append(out, poller.TargetSpec{Target: proxy.Target{Source: proxy.SourceParticipant, ServiceSID: svc,
			SessionSID: fmt.Sprintf("KC%032x", i), ParticipantSID: fmt.Sprintf("KP%032x", i)}})
	}
	return out
}

// TestAssetsReplicatedBucketReadsFromLeader: for a replicated bucket the
// commands turn direct gets off right after creating it, as
// kvstore.Open does when it may.
func TestAssetsReplicatedBucketReadsFromLeader(t *testing.T) {
	cfg := Config{Instance: "a", Work: testWork(3), KV: kvstore.Config{Bucket: "st", Replicas: 3}}
	lines := AssetsOf(cfg, nil).Commands()
	if len(lines) < 2 || lines[1] != "nats stream edit KV_st --no-allow-direct --force" {
		t.Errorf("commands:\n%s\nwant the second to turn direct gets off", strings.Join(lines, "\n"))
	}
	cfg.KV.Replicas = 1
	for _, l := range AssetsOf(cfg, nil).Commands() {
		if strings.Contains(l, "allow-direct") {
			t.Errorf("a single replica keeps direct gets: %s", l)
		}
	}
}

// TestClusterAssetsDirectGetsNamed: with create_assets off, a replicated
// bucket that still reads with direct gets (created before monitord turned
// them off) fails Open with what is wrong and how to fix it, instead of the
// permission error of an edit this instance may not make.
func TestClusterAssetsDirectGetsNamed(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Instance: "a", Work: testWork(3), KV: kvstore.Config{Bucket: "st", Replicas: 3}}
	if _, err := js.CreateKeyValue(ctx, kvstore.BucketConfig(cfg.KV)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, js, cfg)
	if err == nil || !strings.Contains(err.Error(), "direct gets on over 3 replicas") ||
		!strings.Contains(err.Error(), "monitord nats-assets") {
		t.Fatalf("Open over a replicated bucket with direct gets: %v; want it named, with the fix", err)
	}
	s, err := js.Stream(ctx, "KV_st")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.AllowDirect = false
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, js, cfg); err == nil || !strings.Contains(err.Error(), "stream MONITORD_TASKS missing") {
		t.Fatalf("Open once direct gets are off: %v; want the next missing asset named", err)
	}
}
