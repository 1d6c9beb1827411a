package notify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func adminJS(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().Config
}

// runToError runs p until it returns or timeout passes.
func runToError(t *testing.T, p *Publisher, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := p.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Run still running after %v", timeout)
	}
	return err
}

func TestStreamCreated(t *testing.T) {
	s := startServer(t, nil)
	cfg := testConfig(s)
	cfg.Stream.Name = "EVENTS"
	cfg.Prefix = "acme.monitord"
	cfg.Stream.Subjects = nil // default: <prefix>.>
	p := newPublisher(t, cfg, &memOutbox{})
	stop := runPublisher(t, p)
	js := adminJS(t, s.ClientURL())
	waitFor(t, "stream created", 10*time.Second, func() bool {
		_, err := js.Stream(context.Background(), "EVENTS")
		return err == nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := streamInfo(t, js, "EVENTS")
	if strings.Join(got.Subjects, ",") != "acme.monitord.>" || got.Duplicates != 2*time.Hour ||
		got.MaxAge != 168*time.Hour || got.Storage != jetstream.FileStorage || got.Replicas != 1 {
		t.Errorf("stream config: subjects %v duplicates %v max age %v storage %v replicas %d",
			got.Subjects, got.Duplicates, got.MaxAge, got.Storage, got.Replicas)
	}
}

func TestStreamUpdated(t *testing.T) {
	s := startServer(t, nil)
	js := adminJS(t, s.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"monitord.>"}, Duplicates: time.Minute, MaxAge: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(s)
	cfg.Stream.Duplicates = 3 * time.Hour
	cfg.Stream.MaxAge = 0 // no limit
	p := newPublisher(t, cfg, &memOutbox{})
	stop := runPublisher(t, p)
	waitFor(t, "stream updated", 10*time.Second, func() bool {
		return streamInfo(t, js, DefaultStreamName).Duplicates == 3*time.Hour
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := streamInfo(t, js, DefaultStreamName); got.MaxAge != 0 {
		t.Errorf("max age %v, want 0 (no limit)", got.MaxAge)
	}
}

func TestStreamMustExist(t *testing.T) {
	s := startServer(t, nil)
	cfg := testConfig(s)
	cfg.Stream.Create = false
	ob := &memOutbox{}
	ob.Add(makeMsgs(t, 0, 3)...)
	err := runToError(t, newPublisher(t, cfg, ob), 10*time.Second)
	want := "jetstream stream MONITORD does not exist and nats.stream.create is false; create it with:\n" +
		"  nats stream add MONITORD --subjects 'monitord.>' --storage file --retention limits --discard old --max-age 168h --dupe-window 2h --replicas 1 --defaults"
	if err == nil || err.Error() != want {
		t.Fatalf("Run: %v\nwant: %s", err, want)
	}
	if ob.Len() != 3 {
		t.Errorf("outbox holds %d, want the 3 events kept", ob.Len())
	}

	// Once the operator creates it, the same config delivers.
	js := adminJS(t, s.ClientURL())
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"monitord.>"}, Duplicates: 2 * time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, newPublisher(t, cfg, ob))
	waitFor(t, "delivered to the existing stream", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStreamMissesSubjects(t *testing.T) {
	s := startServer(t, nil)
	js := adminJS(t, s.ClientURL())
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"monitord.failed.>"},
	}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(s)
	cfg.Stream.Create = false
	err := runToError(t, newPublisher(t, cfg, &memOutbox{}), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), `captures [monitord.failed.>], not "monitord.>"`) ||
		!strings.Contains(err.Error(), "nats stream edit MONITORD --subjects 'monitord.failed.>,monitord.>'") {
		t.Fatalf("Run: %v", err)
	}
}

// TestStreamNoPermission: an account that may publish events and read
// stream info, but not manage streams. With Create on, monitord falls back
// to checking the stream; with it missing, it says what to create.
func TestStreamNoPermission(t *testing.T) {
	limited := &server.Permissions{Publish: &server.SubjectPermission{
		Allow: []string{"monitord.>", "$JS.API.STREAM.INFO.>", "$JS.API.INFO"},
	}}
	s := startServer(t, &server.Options{Users: []*server.User{
		{Username: "admin", Password: "admin-pw"},
		{Username: "monitord", Password: "monitord-pw", Permissions: limited},
	}})
	cfg := testConfig(s)
	cfg.User, cfg.Password = "monitord", "monitord-pw"
	cfg.AckTimeout = 300 * time.Millisecond // a denied request is only a timeout

	err := runToError(t, newPublisher(t, cfg, &memOutbox{}), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "does not exist and creating it failed") ||
		!strings.Contains(err.Error(), "nats stream add MONITORD") {
		t.Fatalf("Run: %v", err)
	}
	// The refusal is named, not left as the timeout the client sees.
	if !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), `Permissions Violation for Publish to "$JS.API.STREAM.CREATE.MONITORD"`) {
		t.Errorf("Run: %v\nwant it to name the permission violation", err)
	}

	js := adminJS(t, s.ClientURL(), nats.UserInfo("admin", "admin-pw"))
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"monitord.>"}, Duplicates: 2 * time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	ob := &memOutbox{}
	ob.Add(makeMsgs(t, 0, 20)...)
	stop := runPublisher(t, newPublisher(t, cfg, ob))
	waitFor(t, "delivered without stream permissions", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestJetStreamOff(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	cfg := testConfig(s)
	err = runToError(t, newPublisher(t, cfg, &memOutbox{}), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "set nats.mode: core") {
		t.Fatalf("Run: %v", err)
	}
}

// TestDrainErrorKeepsEvents: events no stream captures fail to publish;
// the drain reports it and keeps every event for the next attempt.
func TestDrainErrorKeepsEvents(t *testing.T) {
	s := startServer(t, nil)
	cfg := testConfig(s)
	obs := &countingObserver{}
	cfg.Observer = obs
	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 5)
	for i := range msgs {
		msgs[i].Subject = "elsewhere.event"
	}
	ob.Add(msgs...)
	stop := runPublisher(t, newPublisher(t, cfg, ob))
	waitFor(t, "two failed attempts", 10*time.Second, func() bool { return obs.errors.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ob.Len() != 5 || obs.published.Load() != 0 {
		t.Errorf("outbox %d, published %d; want 5 kept, 0 published", ob.Len(), obs.published.Load())
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		filters []string
		subj    string
		want    bool
	}{
		{[]string{"monitord.>"}, "monitord.>", true},
		{[]string{">"}, "monitord.>", true},
		{[]string{"monitord.*"}, "monitord.>", false},
		{[]string{"monitord.failed.>"}, "monitord.>", false},
		{[]string{"a.*.c"}, "a.b.c", true},
		{[]string{"a.*.c"}, "a.*.c", true},
		{[]string{"a.b.c"}, "a.*.c", false},
		{[]string{"x.>", "acme.monitord.>"}, "acme.monitord.>", true},
		{[]string{"monitord"}, "monitord.>", false},
	} {
		if got := covers(tc.filters, tc.subj); got != tc.want {
			t.Errorf("covers(%v, %q) = %v, want %v", tc.filters, tc.subj, got, tc.want)
		}
	}
}

// TestStreamDeletedWhileRunning: an operator deletes the stream under a
// running publisher. Publishing fails, the stream is checked again and,
// with Create on, made anew; the events waiting meanwhile arrive.
func TestStreamDeletedWhileRunning(t *testing.T) {
	s := startServer(t, nil)
	ob := &memOutbox{}
	ob.Add(makeMsgs(t, 0, 10)...)
	p := newPublisher(t, testConfig(s), ob)
	stop := runPublisher(t, p)
	waitFor(t, "first batch", 10*time.Second, func() bool { return ob.Len() == 0 })

	js := adminJS(t, s.ClientURL())
	if err := js.DeleteStream(context.Background(), DefaultStreamName); err != nil {
		t.Fatal(err)
	}
	second := makeMsgs(t, 10, 25)
	ob.Add(second...)
	p.Wake()
	waitFor(t, "second batch after the stream was made again", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := streamIDs(t, s.ClientURL(), DefaultStreamName); strings.Join(got, ",") != strings.Join(ids(second), ",") {
		t.Errorf("stream holds %v, want the second batch", got)
	}
}

// existingStream is another publisher's stream of the name monitord uses:
// a wider subject, a month of history, a one-hour duplicate window, and
// one message of its own.
func existingStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"other.>"}, MaxAge: 720 * time.Hour, Duplicates: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "other.thing", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
}

// TestStreamNeverNarrowed: with create on, an existing stream gains the
// event subjects and keeps its own, keeps its longer max_age (a warning
// names it), and gets the longer duplicate window; the other publisher's
// message and subject survive.
func TestStreamNeverNarrowed(t *testing.T) {
	s := startServer(t, nil)
	js := adminJS(t, s.ClientURL())
	existingStream(t, js)
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(testConfig(s), &memOutbox{}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, p)
	// The log, not the stream: the server may apply the update before
	// its reply reaches the publisher.
	waitFor(t, "stream updated", 10*time.Second, func() bool {
		return logs.FilterMessage("jetstream stream updated").Len() > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := streamInfo(t, js, DefaultStreamName)
	if !slices.Equal(got.Subjects, []string{"other.>", "monitord.>"}) || got.MaxAge != 720*time.Hour || got.Duplicates != 2*time.Hour {
		t.Errorf("stream: subjects %v, max age %v, duplicates %v; want [other.> monitord.>], 720h (kept), 2h (lengthened)",
			got.Subjects, got.MaxAge, got.Duplicates)
	}
	if n := streamCount(t, s.ClientURL(), DefaultStreamName); n != 1 {
		t.Errorf("stream holds %d messages, want the other publisher's 1", n)
	}
	kept := logs.FilterMessage("jetstream stream keeps a longer limit than configured").All()
	if len(kept) != 1 || kept[0].Level != zap.WarnLevel ||
		!strings.Contains(kept[0].ContextMap()["kept"].(string), "nats.stream.max_age 168h0m0s is shorter than the stream's 720h0m0s") {
		t.Errorf("warnings %+v, want one naming max_age", kept)
	}
	if upd := logs.FilterMessage("jetstream stream updated").All(); len(upd) != 1 || upd[0].Level != zap.WarnLevel {
		t.Errorf("update logs %+v, want one warning listing the changes", upd)
	}
}

// TestStreamShrinkAllowed: nats.stream.allow_shrink shortens max_age and
// the duplicate window to the config's; subjects are still only added.
func TestStreamShrinkAllowed(t *testing.T) {
	s := startServer(t, nil)
	js := adminJS(t, s.ClientURL())
	existingStream(t, js)
	cfg := testConfig(s)
	cfg.Stream.AllowShrink = true
	cfg.Stream.Duplicates = 30 * time.Minute
	stop := runPublisher(t, newPublisher(t, cfg, &memOutbox{}))
	waitFor(t, "stream updated", 10*time.Second, func() bool {
		return streamInfo(t, js, DefaultStreamName).MaxAge == 168*time.Hour
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := streamInfo(t, js, DefaultStreamName); !slices.Equal(got.Subjects, []string{"other.>", "monitord.>"}) || got.Duplicates != 30*time.Minute {
		t.Errorf("stream: subjects %v, duplicates %v; want [other.> monitord.>], 30m", got.Subjects, got.Duplicates)
	}
}
