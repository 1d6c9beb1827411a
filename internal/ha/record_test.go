package ha

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// TestHADiscoveryRecordRoundTrip: the owner's set, live and in grace, of
// either source, reads back as it was written; a record naming a bad SID
// is refused naming it.
func TestHADiscoveryRecordRoundTrip(t *testing.T) {
	svc := "KS" + strings.Repeat("a", 32)
	kc := func(c byte) string { return "KC" + strings.Repeat(string(c), 32) }
	kp := func(c byte) string { return "KP" + strings.Repeat(string(c), 32) }
	grace := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)
	due := grace.Add(time.Hour)
	part := func(s, p byte) proxy.Target {
		return proxy.Target{Source: proxy.SourceParticipant, ServiceSID: svc, SessionSID: kc(s), ParticipantSID: kp(p)}
	}
	sess := func(s byte) proxy.Target {
		return proxy.Target{Source: proxy.SourceSession, ServiceSID: svc, SessionSID: kc(s)}
	}
	for name, tc := range map[string]struct {
		src     proxy.Source
		tracked map[proxy.Target]time.Time
	}{
		"participants": {proxy.SourceParticipant, map[proxy.Target]time.Time{
			part('1', '1'): {}, part('1', '2'): {}, part('2', '3'): grace, part('2', '4'): {}}},
		"sessions": {proxy.SourceSession, map[proxy.Target]time.Time{sess('1'): {}, sess('2'): grace}},
		"empty":    {proxy.SourceParticipant, map[proxy.Target]time.Time{}},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := newDiscoveryRecord("a", due, due, tc.src, tc.tracked).encode(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := decodeDiscovery(data)
			if err != nil {
				t.Fatal(err)
			}
			got := rec.tracked(&DiscoveredService{Service: svc, Source: tc.src})
			if !maps.EqualFunc(got, tc.tracked, time.Time.Equal) || rec.DueMillis != due.UnixMilli() || rec.Instance != "a" {
				t.Fatalf("read back %v due %d by %q, want %v due %d by a", got, rec.DueMillis, rec.Instance, tc.tracked, due.UnixMilli())
			}
		})
	}
	for name, tc := range map[string]struct{ json, want string }{
		"bad session":     {`{"sessions":[{"s":"KCzz"}]}`, "discovery record: session_sid"},
		"bad participant": {`{"sessions":[{"s":"` + kc('1') + `","p":["KPzz"]}]}`, "discovery record: participant_sid"},
		"not json":        {`{`, "decode discovery record"},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write([]byte(tc.json))
			_ = zw.Close()
			if _, err := decodeDiscovery(buf.Bytes()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := decodeDiscovery([]byte("plain")); err == nil || !strings.Contains(err.Error(), "decode discovery record") {
		t.Fatalf("decode of an uncompressed value = %v, want decode discovery record: …", err)
	}
}

// BenchmarkHADiscoveryRecord encodes the record of 10,000 live sessions of
// two participants (random SIDs, as Twilio's are) and reports its size
// per session: what bounds the sessions one value holds.
func BenchmarkHADiscoveryRecord(b *testing.B) {
	svc := "KS" + strings.Repeat("a", 32)
	tracked := map[proxy.Target]time.Time{}
	const sessions = 10000
	for i := range sessions {
		for j := range 2 {
			tracked[proxy.Target{Source: proxy.SourceParticipant, ServiceSID: svc, SessionSID: sid("KC", i, 9),
				ParticipantSID: sid("KP", i, j)}] = time.Time{}
		}
	}
	now := time.Now()
	var size int
	for b.Loop() {
		data, err := newDiscoveryRecord("a", now, now, proxy.SourceParticipant, tracked).encode(1 << 20)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size)/sessions, "bytes/session")
}

// nopDiscovery and nopTracker only fill DiscoveredService's fields.
type nopDiscovery struct{}

func (nopDiscovery) RefreshService(context.Context, string) ([]proxy.Session, error) { return nil, nil }
func (nopDiscovery) Seed(string, map[proxy.Target]time.Time) error                   { return nil }

type nopTracker struct{}

func (nopTracker) Tracked() map[proxy.Target]time.Time { return nil }
func (nopTracker) Adopt(map[proxy.Target]time.Time)    {}

// TestHADiscoverRefusesBadEntries: Discover names what is wrong with an
// entry, and a discovered Service is served (its consumer made, its
// worker run) before it has any target.
func TestHADiscoverRefusesBadEntries(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, js, Config{Instance: "a", Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1}, CreateAssets: true})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := cron.ParseStandard("@every 1m")
	if err != nil {
		t.Fatal(err)
	}
	svc := "KS" + strings.Repeat("a", 32)
	good := DiscoveredService{Service: svc, Schedule: sched, Discovery: nopDiscovery{}, Tracker: nopTracker{}}
	bad := good
	bad.Service = "KSzz"
	noTracker := good
	noTracker.Tracker = nil
	for _, tc := range []struct {
		ds   DiscoveredService
		want string
	}{
		{bad, "ha discover: service_sid"},
		{noTracker, "ha discover " + svc + ": schedule, discovery and tracker are required"},
		{good, ""},
		{good, "ha discover " + svc + ": a second entry for one Service"},
	} {
		err := n.Discover(tc.ds)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Discover(%s) = %v, want %q", tc.ds.Service, err, tc.want)
		}
	}
	if got := n.Services(); !slices.Equal(got, []string{svc}) {
		t.Errorf("Services() = %v, want the discovered Service with no target", got)
	}
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, testWork(1).Stream, work.ConsumerName(svc)); err != nil {
		t.Errorf("consumer of the discovered Service: %v", err)
	}
}

// recTracker records what it is asked to adopt.
type recTracker struct{ adopted []int }

func (r *recTracker) Tracked() map[proxy.Target]time.Time { return nil }
func (r *recTracker) Adopt(m map[proxy.Target]time.Time)  { r.adopted = append(r.adopted, len(m)) }

// TestHAStaleRecordNotAdopted: a record the watch delivers after a newer
// one was adopted or written is not adopted over it: it would put back,
// for a moment, targets the owner dropped and forgot.
func TestHAStaleRecordNotAdopted(t *testing.T) {
	svc := "KS" + strings.Repeat("a", 32)
	kc := func(c byte) string { return "KC" + strings.Repeat(string(c), 32) }
	kp := "KP" + strings.Repeat("1", 32)
	rec := func(due int64, sessions ...byte) *discoveryRecord {
		r := &discoveryRecord{DueMillis: due}
		for _, s := range sessions {
			r.Sessions = append(r.Sessions, recordedTarget{Session: kc(s), Participants: []string{kp}})
		}
		return r
	}
	tr := &recTracker{}
	ds := &discState{DiscoveredService: DiscoveredService{Service: svc, Source: proxy.SourceParticipant, Tracker: tr}}
	ds.adoptLocked(rec(2000, '1', '2'))
	ds.adoptLocked(rec(1000, '1', '2', '3')) // late: the owner dropped session 3 at 2000
	ds.adoptLocked(rec(2000, '1', '2'))      // the same again (the owner's own write)
	ds.adoptLocked(rec(3000, '1'))
	if !slices.Equal(tr.adopted, []int{2, 1}) {
		t.Fatalf("adopted sets of sizes %v, want [2 1]: the records of ticks 2000 and 3000 only", tr.adopted)
	}
}

// TestHADiscoveryRecordTooLarge: a record over what the bucket takes is
// refused before the write, naming the sizes.
func TestHADiscoveryRecordTooLarge(t *testing.T) {
	tracked := map[proxy.Target]time.Time{}
	for i := range 50 {
		tracked[proxy.Target{Source: proxy.SourceSession, ServiceSID: sid("KS", 1, 1), SessionSID: sid("KC", i, 9)}] = time.Time{}
	}
	now := time.Now()
	_, err := newDiscoveryRecord("a", now, now, proxy.SourceSession, tracked).encode(64)
	if err == nil || !strings.Contains(err.Error(), "50 sessions make") || !strings.Contains(err.Error(), "over the 64 a value holds") {
		t.Errorf("encode into 64 bytes: %v, want the sizes named", err)
	}
}

// sid is a valid SID of prefix, different for each i, j.
func sid(prefix string, i, j int) string {
	h := sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(j)})
	return prefix + hex.EncodeToString(h[:16])
}

// TestHADiscoveryTicksInTheScheduleZone: a discover schedule is read in
// poll.timezone (DiscoveredService.Location), as the poll ticks and
// single-instance discovery read it, not in the host's zone: "0 3 * * *"
// is 03:00 there. Two hosts in different zones must compute the same
// instants, or their ticks' ids differ and the Service is refreshed twice.
func TestHADiscoveryTicksInTheScheduleZone(t *testing.T) {
	spec, err := schedule.Parse("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("UTC-5", -5*3600)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC) // 05:00 in zone
	want := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC) // 03:00 in zone
	if got := lastDue(poller.Aligned(spec), spec, now.In(zone)); !got.Equal(want) {
		t.Errorf("last refresh instant %v, want %v (03:00 in the schedule's zone)", got.UTC(), want)
	}
	// Read in the host's zone (UTC here), as before, it was 03:00 UTC.
	if got := lastDue(poller.Aligned(spec), spec, now); got.Equal(want) {
		t.Errorf("the host's zone gave the schedule zone's instant: the test shows nothing")
	}
	ds := DiscoveredService{Service: "KS" + strings.Repeat("1", 32), Schedule: spec,
		Discovery: nopDiscovery{}, Tracker: nopTracker{}}
	n := &Node{discovered: map[string]*discState{}}
	if err := n.Discover(ds); err != nil {
		t.Fatal(err)
	}
	if loc := n.discovered[ds.Service].Location; loc != time.UTC {
		t.Errorf("an entry without a Location reads its schedule in %v, want UTC", loc)
	}
}
