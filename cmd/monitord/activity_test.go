package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// stoppableClock is the wall clock until Stop, then that instant for ever:
// the simulated world runs in real time, then stops changing, so that a
// test can wait for the daemon to catch up with a world that holds still.
type stoppableClock struct {
	at atomic.Pointer[time.Time]
}

func (c *stoppableClock) Now() time.Time {
	if t := c.at.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (c *stoppableClock) Stop() time.Time {
	now := time.Now()
	c.at.Store(&now)
	return now
}

// failedEvents counts the failed events in the MONITORD stream by
// interaction and leg, as the payload names them.
type failedEvents struct {
	mu     sync.Mutex
	byLeg  map[string]int
	events int
}

func (f *failedEvents) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byLeg[key]
}

func followFailed(t *testing.T, ctx context.Context, url string) *failedEvents {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var stream jetstream.Stream
	waitFor(t, "the daemon to create the stream", 20*time.Second, func() bool {
		stream, err = js.Stream(ctx, "MONITORD")
		return err == nil
	})
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubjects: []string{"monitord.failed.>"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &failedEvents{byLeg: map[string]int{}}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev struct {
			Data struct {
				InteractionSID string `json:"interaction_sid"`
				Leg            string `json:"leg"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Errorf("event %s: %v", m.Subject(), err)
			return
		}
		f.mu.Lock()
		f.byLeg[legOf(ev.Data.InteractionSID, ev.Data.Leg)]++
		f.events++
		f.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return f
}

func legOf(sid, leg string) string { return strings.ToLower(sid) + "/" + leg }

// TestDaemonActivityEveryFailureOnce runs the daemon in poll.mode activity,
// its Service discovered, against the simulator's activity world in real
// time (compressed: bursts every 20 s, receipts within seconds, late ones
// 5–10 s after sent) with Twilio's per-endpoint limit on, and an in-process
// JetStream. Every failure the world made — before the daemon started
// (reported by the baseline, all within rules.baseline.alert_recent) and
// while it ran — reaches the stream exactly once, with no 429. /status
// shows each target's class and /metrics the planner's account.
func TestDaemonActivityEveryFailureOnce(t *testing.T) {
	noLeaks(t)
	clock := &stoppableClock{}
	sim := proxysim.New(proxysim.Options{Seed: 13, Sessions: 12, Participants: 2, FailureRate: 0.3,
		Clock: clock.Now, Activity: &proxysim.Activity{Share: 0.5, Window: 20 * time.Second, ReplyGap: time.Second,
			History: 2 * time.Minute, SendDelay: time.Second, SentDelay: time.Second, ReceiptMedian: time.Second,
			LateShare: 0.25, LateMin: 5 * time.Second, LateMax: 10 * time.Second}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	ns := testNATS(t)
	dir := t.TempDir()
	admin := freePort(t)
	cr := sim.Credentials()
	svc := sim.Services()[0]
	cfg := fmt.Sprintf(`instance: e2e
twilio:
  base_url: %[1]s
  messages_base_url: %[1]s
  account_sid: %[2]s
  api_key_sid: %[3]s
  api_key_secret: %[4]s
  limits: {request_timeout: 5s}
discover:
  - {service_sid: %[5]s}
poll:
  mode: activity
  activity: {index_every: 1s, hot_min: 1s, hot_max: 4s, cold_every: 8s, settle: 1m}
  heartbeat_interval: 1s
  shutdown_timeout: 5s
rules: {stuck_after: 24h}
state: {path: %[6]s}
nats: {urls: [%[7]s]}
admin: {listen: %[8]q}
log: {level: debug}
`, srv.URL, cr.AccountSID, cr.APIKeySID, cr.APIKeySecret, svc, filepath.Join(dir, "state.db"), ns.ClientURL(), admin)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	done, _ := startRun(t, ctx, path)
	failed := followFailed(t, ctx, ns.ClientURL())

	// Let the world fail a good number of messages while the daemon runs.
	waitFor(t, "failures in the world while the daemon runs", 90*time.Second, func() bool {
		return len(sim.Failures(started, clock.Now())) >= 10
	})
	end := clock.Stop()
	want := sim.Failures(time.Time{}, end)
	waitFor(t, "an event for every failure", 60*time.Second, func() bool {
		for _, f := range want {
			if failed.count(legOf(f.InteractionSID, string(f.Leg))) == 0 {
				return false
			}
		}
		return true
	})
	// Every failure once: JetStream drops a replayed id, so a second event
	// for a leg would be a second id, a page twice.
	for _, f := range want {
		if n := failed.count(legOf(f.InteractionSID, string(f.Leg))); n != 1 {
			t.Errorf("failure %s %s→%s at %v: %d events", f.InteractionSID, f.From, f.To, f.Time.Sub(started), n)
		}
	}
	failed.mu.Lock()
	if failed.events != len(want) {
		t.Errorf("%d failed events for %d failures in the world", failed.events, len(want))
	}
	failed.mu.Unlock()
	if st := sim.Stats(); st.TooManyRequests() != 0 {
		t.Errorf("%d 429s", st.TooManyRequests())
	}

	code, body := httpGet("http://" + admin + "/status")
	var doc struct {
		Status []struct {
			Key, Class, Schedule string
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil || len(doc.Status) != 24 {
		t.Fatalf("/status: %d, %v, %d targets, want 24", code, err, len(doc.Status))
	}
	for _, s := range doc.Status {
		if s.Class != "hot" && s.Class != "cold" && s.Class != "new" || s.Schedule != "" {
			t.Errorf("/status of %s: class %q, schedule %q", s.Key, s.Class, s.Schedule)
		}
	}
	_, metrics := httpGet("http://" + admin + "/metrics")
	for _, m := range []string{`monitord_activity_actions_total{class="index",service="` + svc + `"}`,
		`monitord_activity_lag_seconds_count{class="cold",service="` + svc + `"}`,
		`monitord_activity_skipped_polls_total{class="hot",service="` + svc + `"}`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
	t.Logf("%d failures, %d of them while the daemon ran; %d requests", len(want),
		len(sim.Failures(started, end)), sim.Stats().Requests)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// metricValue returns the value of the sample line that starts with name
// (its labels included) in a /metrics body, or -1.
func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestActivityRestartPaysNoColdRefresh: the planners' state (index,
// classes, discovery's participants) survives a restart. The first start
// lists every session's participants and polls every target; the second,
// the world unchanged, lists no participants and polls nothing before its
// second index read: every target keeps its class and is due at its saved
// time, and no session moved. (Without the saved state it listed 8 sessions'
// participants and polled all 16 targets again.)
func TestActivityRestartPaysNoColdRefresh(t *testing.T) {
	noLeaks(t)
	sim, url := frozenSim(t, proxysim.Options{Seed: 8, Sessions: 8, Participants: 2})
	ns := testNATS(t)
	dir := t.TempDir()
	admin := freePort(t)
	cr := sim.Credentials()
	svc := sim.Services()[0]
	state := filepath.Join(dir, "state.db")
	cfg := fmt.Sprintf(`instance: e2e
twilio:
  base_url: %[1]s
  messages_base_url: %[1]s
  account_sid: %[2]s
  api_key_sid: %[3]s
  api_key_secret: %[4]s
discover:
  - {service_sid: %[5]s}
poll:
  mode: activity
  activity: {index_every: 1s, cold_every: 1h}
  shutdown_timeout: 5s
state: {path: %[6]s}
nats: {urls: [%[7]s]}
admin: {listen: %[8]q}
`, url, cr.AccountSID, cr.APIKeySID, cr.APIKeySecret, svc, state, ns.ClientURL(), admin)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	participants := func() int64 {
		return sim.Stats().Endpoints[proxysim.Key{Endpoint: proxysim.EndpointParticipants, ServiceSID: svc}].Requests
	}
	metric := func(class string) float64 {
		_, body := httpGet("http://" + admin + "/metrics")
		return metricValue(body, `monitord_activity_actions_total{class="`+class+`",service="`+svc+`"}`)
	}
	start := func() (context.CancelFunc, <-chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done, _ := startRun(t, ctx, path)
		// The second index read starts only once every target due after
		// the first was handed out: the planner serves what is due first.
		waitFor(t, "the second index read", 30*time.Second, func() bool { return metric("index") >= 2 })
		return cancel, done
	}

	classes := func() map[string]string {
		_, body := httpGet("http://" + admin + "/status")
		var doc struct{ Status []struct{ Key, Class string } }
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, s := range doc.Status {
			m[s.Key] = s.Class
		}
		return m
	}

	cancel, done := start()
	before := classes()
	if len(before) != 16 {
		t.Fatalf("first start: %d targets in /status, want 16", len(before))
	}
	if n := participants(); n != 8 {
		t.Errorf("first start: %d participants lists, want 8", n)
	}
	if n := metric("cold"); n != 16 {
		t.Errorf("first start: %v cold polls, want 16", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(activityStatePath(state)); err != nil {
		t.Fatalf("no activity state saved: %v", err)
	}

	sim.ResetStats()
	cancel, done = start()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if n := participants(); n != 0 {
		t.Errorf("restart: %d participants lists, want 0", n)
	}
	for _, class := range []string{"new", "hot", "cold"} {
		if n := metric(class); n != 0 {
			t.Errorf("restart: %v %s polls before the second index, want 0", n, class)
		}
	}
	if got := classes(); !maps.Equal(got, before) {
		t.Errorf("restart: classes %v, want those before it %v", got, before)
	}
}

// TestActivitySaveDuringRefresh: saving the planners' state while a
// discovery refresh is under way neither deadlocks nor waits for it to
// hand its targets over. (The save once read discovery's participants
// holding the wiring's lock, which the refresh, holding its entry's lock,
// needed to hand its targets over: each waited for the other for ever.)
func TestActivitySaveDuringRefresh(t *testing.T) {
	noLeaks(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 9, Sessions: 2, Participants: 2})
	block := make(chan struct{})
	inList := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Participants") {
			select {
			case inList <- struct{}{}:
			default:
			}
			<-block
		}
		proxyTo(w, r, simURL)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cr := sim.Credentials()
	svc := sim.Services()[0]
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`twilio:
  base_url: %[1]s
  messages_base_url: %[1]s
  account_sid: %[2]s
  api_key_sid: %[3]s
  api_key_secret: %[4]s
discover: [{service_sid: %[5]s}]
poll: {mode: activity}
state: {path: %[6]s}
admin: {listen: ""}
`, srv.URL, cr.AccountSID, cr.APIKeySID, cr.APIKeySecret, svc, filepath.Join(dir, "state.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(context.Background(), cfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()

	refreshed := make(chan error, 1)
	go func() {
		_, err := d.targets.byService[svc].RefreshService(context.Background(), svc)
		refreshed <- err
	}()
	<-inList // the refresh holds its entry's lock, listing participants
	saved := make(chan error, 1)
	go func() { saved <- d.activity.save() }()
	close(block)
	for _, c := range []struct {
		what string
		ch   chan error
	}{{"the refresh", refreshed}, {"the save", saved}} {
		select {
		case err := <-c.ch:
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never ended: the save and the refresh wait for each other", c.what)
		}
	}
	if n := len(d.activity.Classes()); n != 4 {
		t.Errorf("%d targets planned after the refresh, want 4", n)
	}
}

// proxyTo forwards r to the server at base and copies its answer.
func proxyTo(w http.ResponseWriter, r *http.Request, base string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestActivityIndexOfFewConfiguredTargets: configured targets in fewer
// sessions than their Service's sessions list has pages read their index
// session by session: one list (3 pages of the 250 sessions) tells the
// size, then each index costs one request, not three.
func TestActivityIndexOfFewConfiguredTargets(t *testing.T) {
	noLeaks(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 10, Sessions: 250, Participants: 2, Interactions: 1})
	ns := testNATS(t)
	dir := t.TempDir()
	admin := freePort(t)
	cfg := e2eConfig{SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(),
		State: filepath.Join(dir, "state.db"), Admin: admin, Targets: sim.Targets()[:2], Schedule: "@every 1m", Mode: "activity"}
	path := filepath.Join(dir, "config.yaml")
	cfg.write(t, path)
	svc := sim.Services()[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, _ := startRun(t, ctx, path)
	index := func() float64 {
		_, body := httpGet("http://" + admin + "/metrics")
		return metricValue(body, `monitord_activity_actions_total{class="index",service="`+svc+`"}`)
	}
	waitFor(t, "four index reads", 30*time.Second, func() bool { return index() >= 5 })
	st := sim.Stats()
	lists := st.Endpoints[proxysim.Key{Endpoint: proxysim.EndpointSessions, ServiceSID: svc}].Requests
	fetches := st.Endpoints[proxysim.Key{Endpoint: proxysim.EndpointSession, ServiceSID: svc}].Requests
	if lists != 3 {
		t.Errorf("%d sessions list pages, want 3 (one list of 250 sessions)", lists)
	}
	if fetches < 3 {
		t.Errorf("%d session fetches after four index reads, want at least 3", fetches)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
