package alertmgr

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAM is Alertmanager's POST /api/v2/alerts: it answers status (503
// while "down") and records the alerts it accepted, by interaction.
type fakeAM struct {
	status atomic.Int32
	mu     sync.Mutex
	alerts map[string]Alert
	posts  int
	auth   string
}

func newFakeAM(t *testing.T) (*fakeAM, string) {
	f := &fakeAM{alerts: map[string]Alert{}}
	f.status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/am/api/v2/alerts" {
			http.Error(w, "not found", 404)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.auth = r.Header.Get("Authorization")
		if s := int(f.status.Load()); s != 200 {
			http.Error(w, "down for the test", s)
			return
		}
		var got []Alert
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.posts++
		for _, a := range got {
			f.alerts[a.Labels["interaction"]] = a
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL + "/am/"
}

func (f *fakeAM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.alerts)
}

func runNATS(t *testing.T) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "MONITORD", Subjects: []string{"monitord.>"}}); err != nil {
		t.Fatal(err)
	}
	return js, nc
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishFailed publishes n failed events with distinct interactions.
func publishFailed(t *testing.T, js jetstream.JetStream, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		sid := ki[:len(ki)-4] + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
		data := strings.ReplaceAll(failedEvent(""), ki, sid)
		data = strings.Replace(data, `"id":"e1"`, `"id":"e`+itoa(i)+`"`, 1)
		subj := "monitord.failed." + svc + "." + ses + "." + par
		if _, err := js.Publish(context.Background(), subj, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func testConfig(url string) Config {
	return Config{
		URLs: []string{url}, Timeout: 2 * time.Second, BearerToken: "tok-secret",
		Stream: "MONITORD", Prefix: "monitord", Consumer: "am", Kinds: []event.Kind{event.Failed},
		ResolveAfter: time.Hour, BatchSize: 10,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		AckWait: time.Second, FetchWait: 100 * time.Millisecond, Metrics: NewMetrics(),
	}
}

// TestBridgeAcksOnlyAccepted: while Alertmanager answers 503 the batch is
// retried, stays unacknowledged, and is not redelivered although the
// outage outlasts the ack wait (in-progress acks); once Alertmanager
// accepts, every event is one alert and the consumer has nothing pending.
func TestBridgeAcksOnlyAccepted(t *testing.T) {
	js, _ := runNATS(t)
	am, url := newFakeAM(t)
	am.status.Store(503)
	cfg := testConfig(url)
	b, err := New(cfg, js, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	publishFailed(t, js, 0, 10) // one batch
	// 15 failed attempts at >= 25ms..200ms each outlast the 1s ack wait.
	waitFor(t, "failed posts", 20*time.Second, func() bool { return value(cfg.Metrics.postErrors) >= 15 })
	cons, err := js.Consumer(ctx, "MONITORD", "am")
	if err != nil {
		t.Fatal(err)
	}
	// A second bridge on the same consumer (or this one's next fetch)
	// must not be handed the batch being retried.
	other, err := cons.Fetch(10, jetstream.FetchMaxWait(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range other.Messages() {
		n++
		_ = m.Nak()
	}
	if n != 0 {
		t.Errorf("%d events of the batch being retried were redelivered to another puller", n)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 10 || info.NumRedelivered != 0 || info.AckFloor.Consumer != 0 {
		t.Errorf("during the outage: %d ack pending, %d redelivered, ack floor %d; want 10 (one batch), 0, 0",
			info.NumAckPending, info.NumRedelivered, info.AckFloor.Consumer)
	}
	if n := am.count(); n != 0 {
		t.Fatalf("%d alerts accepted while down", n)
	}
	publishFailed(t, js, 10, 15) // events keep coming while Alertmanager is down

	am.status.Store(200)
	waitFor(t, "25 alerts", 20*time.Second, func() bool { return am.count() == 25 })
	waitFor(t, "every event acked", 20*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 25
	})
	if got := value(cfg.Metrics.posted); got != 25 {
		t.Errorf("posted %v, want 25", got)
	}
	am.mu.Lock()
	if am.auth != "Bearer tok-secret" {
		t.Errorf("Authorization %q", am.auth)
	}
	am.mu.Unlock()
}

// TestBridgeResends: an Alertmanager that restarted (forgot its alerts)
// gets the active alerts again; a bad event is terminated, not retried.
func TestBridgeResends(t *testing.T) {
	js, _ := runNATS(t)
	am, url := newFakeAM(t)
	cfg := testConfig(url)
	cfg.ResendInterval = 200 * time.Millisecond
	b, err := New(cfg, js, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()

	publishFailed(t, js, 0, 3)
	if _, err := js.Publish(ctx, "monitord.failed."+svc+"."+ses+"._", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 alerts", 10*time.Second, func() bool { return am.count() == 3 })
	waitFor(t, "the bad event dropped", 10*time.Second, func() bool { return value(cfg.Metrics.invalid) == 1 })
	am.mu.Lock()
	am.alerts = map[string]Alert{} // the restart
	am.mu.Unlock()
	waitFor(t, "the 3 alerts again", 10*time.Second, func() bool { return am.count() == 3 })
}

// TestBridgeNeverLogsSecrets: Alertmanager refusing the credentials is
// logged with its answer and the URL, never with the password or the
// Authorization header.
func TestBridgeNeverLogsSecrets(t *testing.T) {
	js, _ := runNATS(t)
	am, url := newFakeAM(t)
	am.status.Store(401)
	cfg := testConfig(url)
	cfg.BearerToken, cfg.User, cfg.Password = "", "pager", "pw-s3cret"
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	b, err := New(cfg, js, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	publishFailed(t, js, 0, 1)
	waitFor(t, "refused posts", 10*time.Second, func() bool { return value(cfg.Metrics.postErrors) >= 3 })
	cancel()
	<-done
	out := buf.String()
	if !strings.Contains(out, "401 Unauthorized: down for the test") || !strings.Contains(out, url) {
		t.Errorf("the log does not say what Alertmanager answered:\n%s", out)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("pager:pw-s3cret"))
	for _, secret := range []string{"pw-s3cret", basic} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret:\n%s", out)
		}
	}
	am.mu.Lock()
	if am.auth != "Basic "+basic {
		t.Errorf("Authorization %q, want basic auth", am.auth)
	}
	am.mu.Unlock()
}

// TestBridgeRestoresActiveAfterRestart: a bridge restarted together with
// Alertmanager posts the alerts still active again, at once, from the
// events an earlier run posted, with about the same endsAt; alerts past
// their endsAt are not restored.
func TestBridgeRestoresActiveAfterRestart(t *testing.T) {
	js, _ := runNATS(t)
	am1, url1 := newFakeAM(t)
	cfg := testConfig(url1)
	cfg.ResendInterval = time.Hour // only the start-up re-send runs here
	run := func(cfg Config) (stop func()) {
		b, err := New(cfg, js, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run(cfg)
	publishFailed(t, js, 0, 3)
	waitFor(t, "3 alerts", 10*time.Second, func() bool { return am1.count() == 3 })
	cons, err := js.Consumer(context.Background(), "MONITORD", "am")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the 3 events acked", 10*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 3
	})
	stop()

	// Both restart: a new Alertmanager that knows nothing, a new bridge.
	am2, url2 := newFakeAM(t)
	cfg2 := testConfig(url2)
	cfg2.ResendInterval = time.Hour
	stop = run(cfg2)
	waitFor(t, "the 3 alerts posted again", 10*time.Second, func() bool { return am2.count() == 3 })
	stop()
	am1.mu.Lock()
	am2.mu.Lock()
	for id, a := range am2.alerts {
		was := am1.alerts[id].EndsAt
		if a.EndsAt.After(was) || was.Sub(a.EndsAt) > 5*time.Second {
			t.Errorf("alert %s restored with endsAt %v, first posted with %v", id, a.EndsAt, was)
		}
	}
	am2.mu.Unlock()
	am1.mu.Unlock()

	// Past resolve_after the alerts have ended: nothing to restore.
	cfg3 := testConfig(url2)
	cfg3.ResendInterval = time.Hour
	cfg3.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	b, err := New(cfg3, js, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.consumer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := b.restore(context.Background(), c); n != 0 {
		t.Errorf("restored %d alerts past their endsAt", n)
	}
}
