package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// noLeaks checks, after every cleanup of the test has run, that the
// goroutines the test started (daemon, servers, clients) are all gone.
func noLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// testNATS runs a real nats-server with JetStream in the test process.
func testNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// frozenSim is a simulator whose clock moves only when the test says, so
// the only changes are the test's edits.
func frozenSim(t *testing.T, o proxysim.Options) (*proxysim.Sim, string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	o.Clock = func() time.Time { return now }
	o.RateLimit = -1 // a frozen clock never slides the simulator's rate window
	sim := proxysim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type e2eConfig struct {
	SimURL   string
	Creds    proxysim.Credentials
	NATSURL  string
	State    string
	Admin    string
	Targets  []proxysim.Target
	Schedule string
	// Mode is poll.mode ("" is schedule); activity polls every target at
	// least every 2 s, as the tests' schedules of a second do.
	Mode string
}

func (c e2eConfig) write(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "instance: e2e\n")
	fmt.Fprintf(&b, "twilio:\n  base_url: %s\n  messages_base_url: %s\n  account_sid: %s\n  api_key_sid: %s\n  api_key_secret: %s\n",
		c.SimURL, c.SimURL, c.Creds.AccountSID, c.Creds.APIKeySID, c.Creds.APIKeySecret)
	fmt.Fprintf(&b, "  limits: {max_attempts: 1, request_timeout: 5s}\n")
	b.WriteString("targets:\n")
	for _, tg := range c.Targets {
		fmt.Fprintf(&b, "  - {service_sid: %s, session_sid: %s, participant_sid: %s}\n",
			tg.ServiceSID, tg.SessionSID, tg.ParticipantSID)
	}
	fmt.Fprintf(&b, "poll: {schedule: %q, heartbeat_interval: 1s, shutdown_timeout: 5s", c.Schedule)
	if c.Mode != "" {
		fmt.Fprintf(&b, ", mode: %s, activity: {index_every: 1s, hot_min: 1s, hot_max: 2s, cold_every: 2s}", c.Mode)
	}
	b.WriteString("}\n")
	b.WriteString("rules: {stuck_after: 24h, target_error_after: 2}\n")
	fmt.Fprintf(&b, "state: {path: %s}\n", c.State)
	fmt.Fprintf(&b, "nats: {urls: [%s]}\n", c.NATSURL)
	fmt.Fprintf(&b, "admin: {listen: %q}\n", c.Admin)
	b.WriteString("log: {level: debug}\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// got is an event as the subscriber saw it.
type got struct {
	ID, Subject string
}

// kindOf returns "<kind>/<participant>" of a subject
// monitord.<kind>.<service>.<session>.<participant>.
func kindOf(subject string) string {
	p := strings.Split(subject, ".")
	return p[1] + "/" + p[4]
}

// streamEvents follows the MONITORD stream (once the daemon created it)
// with an ordered consumer, skipping heartbeats.
type streamEvents struct {
	mu     sync.Mutex
	events []got
	beats  atomic.Int64
}

func followStream(t *testing.T, ctx context.Context, url string) *streamEvents {
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
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	se := &streamEvents{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if strings.Contains(m.Subject(), ".heartbeat.") {
			se.beats.Add(1)
			return
		}
		se.mu.Lock()
		se.events = append(se.events, got{ID: m.Headers().Get(jetstream.MsgIDHeader), Subject: m.Subject()})
		se.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return se
}

// deliveredSID lists a target through the real client and returns an
// interaction whose outbound leg is not in an alert status.
func deliveredSID(t *testing.T, ctx context.Context, base string, cr proxysim.Credentials, tg proxysim.Target) string {
	t.Helper()
	c, err := twilio.New(twilio.Config{BaseURL: base, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.ListInteractions(ctx, proxy.Target{Source: proxy.SourceParticipant,
		ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range list {
		if s := it.OutboundResourceStatus; s != "failed" && s != "undelivered" {
			return it.SID
		}
	}
	t.Fatal("no interaction outside the alert statuses")
	return ""
}

// waitStream waits until the daemon has made its events stream on the
// server at url. A test that stops the daemon and the server sooner can
// catch the server creating the stream while it shuts down, which leaves
// the stream's file store goroutines behind (nats-server), and the leak
// checks of the next tests fail on them.
func waitStream(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events stream", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Stream(ctx, "MONITORD")
		return err == nil
	})
}

// storedEvents counts the messages in the stream that are not heartbeats.
func storedEvents(t *testing.T, url string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "MONITORD")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for subj, c := range info.State.Subjects {
		if !strings.Contains(subj, ".heartbeat.") {
			n += int(c)
		}
	}
	return n
}

func (se *streamEvents) kinds() []string {
	se.mu.Lock()
	defer se.mu.Unlock()
	var out []string
	for _, e := range se.events {
		out = append(out, kindOf(e.Subject))
	}
	slices.Sort(out)
	return out
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

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startRun runs `monitord run -c cfgPath` until ctx is done, in process.
// The returned channel gets run's result; the daemon's logs are printed
// when the test fails.
func startRun(t *testing.T, ctx context.Context, cfgPath string) (<-chan error, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfgPath}, io.Discard, logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	})
	return done, logs
}

// syncBuffer is a bytes.Buffer that commands and loggers write to on their
// own goroutines while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
