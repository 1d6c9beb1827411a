package event

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite the examples in docs/events.md from Render")

const (
	docsPath   = "../../docs/events.md"
	schemaPath = "../../docs/event.schema.json"
)

var (
	exTarget = proxy.Target{
		Source:         proxy.SourceParticipant,
		ServiceSID:     "KS2b2e4d7f6c0a4d3e9b1f5a8c7d6e5f40",
		SessionSID:     "KC9a8b7c6d5e4f30211f2e3d4c5b6a7980",
		ParticipantSID: "KP0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	}
	exTime    = time.Date(2026, 11, 26, 20, 15, 4, 512000000, time.UTC)
	exCreated = time.Date(2026, 11, 26, 20, 14, 31, 0, time.UTC)
	exUpdated = time.Date(2026, 11, 26, 20, 14, 58, 0, time.UTC)
)

const (
	exInteraction = "KI5d6c7b8a9f0e1d2c3b4a5968778695a4"
	exInbound     = "SM1a2b3c4d5e6f708192a3b4c5d6e7f801"
	exOutbound    = "SM8f7e6d5c4b3a29180f1e2d3c4b5a6978"
	exOutboundURL = "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/" + exOutbound + ".json"
)

// examples are the events docs/events.md shows, one per kind, in Kinds order.
func examples() []Event {
	// As internal/diff builds them: created and deleted ids leave the
	// status out; created carries the outbound status, deleted the last
	// one seen as previous_status and no URL (snapshots keep none).
	interaction := func(k Kind, leg Leg, prev, status string) Event {
		idStatus := status
		if k == Created || k == Deleted {
			idStatus = ""
		}
		return Event{
			ID: InteractionID(exInteraction, k, leg, idStatus), Kind: k, Target: exTarget, Time: exTime,
			InteractionSID: exInteraction, Leg: leg, PrevStatus: prev, Status: status, Type: "message",
			DateCreated: exCreated, DateUpdated: exUpdated,
			InboundResourceSID: exInbound, OutboundResourceSID: exOutbound, OutboundResourceURL: exOutboundURL,
		}
	}
	created := interaction(Created, NoLeg, "", "queued")
	failed := interaction(Failed, Outbound, "sent", "undelivered")
	failed.ErrorCode, failed.ErrorMessage = 30007, "Carrier violation"
	stuck := interaction(Stuck, Outbound, "", "queued")
	stuck.DateUpdated = exCreated
	deleted := interaction(Deleted, NoLeg, "delivered", "")
	deleted.OutboundResourceURL = ""
	outage := &TargetErrorInfo{
		Class: "auth", HTTPStatus: 401, Code: 20003, Message: "Authenticate",
		Since: exTime.Add(-3 * time.Minute), Failures: 3, Outage: 4,
	}
	recovered := *outage
	recovered.Failures = 7
	return []Event{
		created,
		interaction(StatusChanged, Outbound, "queued", "sent"),
		failed,
		stuck,
		deleted,
		{ID: TargetID(exTarget, TargetError, 4), Kind: TargetError, Target: exTarget, Time: exTime, Error: outage},
		{ID: TargetID(exTarget, TargetRecovered, 4), Kind: TargetRecovered, Target: exTarget, Time: exTime.Add(4 * time.Minute), Error: &recovered},
		{ID: HeartbeatID("monitord-a", exTime), Kind: Heartbeat, Time: exTime, Beat: &HeartbeatInfo{
			Instance: "monitord-a", Seq: 1042, TargetsHealthy: 118, TargetsFailing: 2, OutboxDepth: 0,
			LastCompleteCycle: exTime.Add(-20 * time.Second),
		}},
	}
}

// exampleBlock is what docs/events.md shows for e: its subject and its
// pretty-printed JSON.
func exampleBlock(t *testing.T, e Event) string {
	t.Helper()
	m, err := Render(e, RenderOptions{})
	if err != nil {
		t.Fatalf("render %s: %v", e.Kind, err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, m.Data, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", e.Kind, err)
	}
	return fmt.Sprintf("NATS subject: `%s`, header `Nats-Msg-Id: %s`\n\n```json\n%s\n```\n", m.Subject, m.ID, pretty.String())
}

var exampleRE = regexp.MustCompile(`(?s)(<!-- begin example:(\w+) -->\n)(.*?)(<!-- end example:(\w+) -->)`)

// TestDocsExamples keeps the examples in docs/events.md equal to what
// Render produces; go test ./internal/event -run Docs -update rewrites them.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, e := range examples() {
		want[string(e.Kind)] = exampleBlock(t, e)
	}
	seen := map[string]bool{}
	out := exampleRE.ReplaceAllStringFunc(string(doc), func(block string) string {
		m := exampleRE.FindStringSubmatch(block)
		kind := m[2]
		if m[5] != kind {
			t.Errorf("docs: example:%s ends with example:%s", kind, m[5])
			return block
		}
		seen[kind] = true
		w, ok := want[kind]
		if !ok {
			t.Errorf("docs: example for unknown kind %q", kind)
			return block
		}
		if m[3] != w && !*update {
			t.Errorf("docs: the %s example differs from Render (run go test ./internal/event -run Docs -update):\n got: %s\nwant: %s", kind, m[3], w)
		}
		return m[1] + w + m[4]
	})
	for _, k := range Kinds {
		if !seen[string(k)] {
			t.Errorf("docs: no example for %s (add <!-- begin example:%s --><!-- end example:%s -->)", k, k, k)
		}
	}
	if *update && out != string(doc) {
		if err := os.WriteFile(docsPath, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("event.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("rendered event is not JSON: %v\n%s", err, data)
	}
	return s.Validate(inst)
}

// TestSchemaAcceptsEveryKind validates every variant of every kind.
func TestSchemaAcceptsEveryKind(t *testing.T) {
	s := compileSchema(t)
	for name, e := range variants() {
		m, err := Render(e, RenderOptions{IncludeBody: true, Prefix: "acme.monitord"})
		if err != nil {
			t.Errorf("%s: render: %v", name, err)
			continue
		}
		if err := validate(t, s, m.Data); err != nil {
			t.Errorf("%s: %s\n%v", name, m.Data, err)
		}
	}
}

// variants is every kind in its documented form and in the sparse and
// maximal forms the API's nulls and the options give.
func variants() map[string]Event {
	cases := map[string]Event{}
	for _, e := range examples() {
		cases[string(e.Kind)] = e
		sparse := e
		sparse.PrevStatus, sparse.Type, sparse.DateCreated, sparse.DateUpdated = "", "", time.Time{}, time.Time{}
		sparse.InboundResourceSID, sparse.OutboundResourceSID, sparse.OutboundResourceURL = "", "", ""
		sparse.ErrorCode, sparse.ErrorMessage = 0, ""
		if e.Error != nil {
			sparse.Error = &TargetErrorInfo{Class: "unavailable", Failures: 1, Outage: 1, Since: exTime}
		}
		if e.Beat != nil {
			sparse.Beat = &HeartbeatInfo{Instance: "b"}
			owner := e
			owner.Beat = &HeartbeatInfo{Instance: "mon-a", OwnedServices: []string{exTarget.ServiceSID}}
			cases["heartbeat/ha"] = owner
			standby := e
			standby.Beat = &HeartbeatInfo{Instance: "mon-b", OwnedServices: []string{}}
			cases["heartbeat/ha-standby"] = standby
		}
		cases[string(e.Kind)+"/sparse"] = sparse
		session := sparse
		session.Target = proxy.Target{Source: proxy.SourceSession, ServiceSID: exTarget.ServiceSID, SessionSID: exTarget.SessionSID}
		cases[string(e.Kind)+"/session"] = session
		full := e
		full.Body, full.ErrorCode, full.ErrorMessage = `{"body": "hello"}`, 30003, "Unreachable destination handset"
		cases[string(e.Kind)+"/body"] = full
		if e.Kind == Failed {
			// Raised by a target's first listing: nothing seen before it.
			baseline := e
			baseline.PrevStatus, baseline.Baseline = "", true
			cases["failed/baseline"] = baseline
		}
	}
	return cases
}

// TestSchemaRejects shows the schema is not vacuous.
func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	m, err := Render(examples()[2], RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(map[string]any){
		"no id":          func(v map[string]any) { delete(v, "id") },
		"bad type":       func(v map[string]any) { v["type"] = "io.monitord.interaction.exploded" },
		"bad sid":        func(v map[string]any) { v["data"].(map[string]any)["service_sid"] = "KS.>" },
		"unknown field":  func(v map[string]any) { v["data"].(map[string]any)["surprise"] = 1 },
		"bad time":       func(v map[string]any) { v["time"] = "yesterday" },
		"no participant": func(v map[string]any) { delete(v["data"].(map[string]any), "participant_sid") },
		"code as text":   func(v map[string]any) { v["data"].(map[string]any)["error_code"] = "30007" },
		"empty message":  func(v map[string]any) { v["data"].(map[string]any)["error_message"] = "" },
	} {
		var v map[string]any
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		mutate(v)
		b, _ := json.Marshal(v)
		if validate(t, s, b) == nil {
			t.Errorf("%s: schema accepted %s", name, b)
		}
	}
}

func TestRenderEnvelope(t *testing.T) {
	e := examples()[2] // failed
	e.Body = `{"body": "hello"}`
	m, err := Render(e, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != e.ID || m.Subject != "monitord.failed."+exTarget.ServiceSID+"."+exTarget.SessionSID+"."+exTarget.ParticipantSID {
		t.Errorf("message id %s subject %s", m.ID, m.Subject)
	}
	if bytes.Contains(m.Data, []byte("hello")) {
		t.Error("body rendered without IncludeBody")
	}
	with, err := Render(e, RenderOptions{IncludeBody: true, Prefix: "acme.monitord"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(with.Data, []byte(`"body":"{\"body\": \"hello\"}"`)) {
		t.Errorf("body missing with IncludeBody: %s", with.Data)
	}
	if !strings.HasPrefix(with.Subject, "acme.monitord.failed.") {
		t.Errorf("subject %s ignores the prefix", with.Subject)
	}
	// Same event, any instance: same bytes.
	again, _ := Render(e, RenderOptions{})
	if !bytes.Equal(again.Data, m.Data) {
		t.Error("rendering is not deterministic")
	}
	var v struct {
		Time string `json:"time"`
	}
	local := e
	local.Time = exTime.In(time.FixedZone("CET", 3600))
	lm, _ := Render(local, RenderOptions{})
	if err := json.Unmarshal(lm.Data, &v); err != nil || v.Time != "2026-11-26T20:15:04.512Z" {
		t.Errorf("time %q, want UTC 2026-11-26T20:15:04.512Z (%v)", v.Time, err)
	}
}

func TestRenderRejects(t *testing.T) {
	ok := examples()[2]
	hb := examples()[7]
	for name, tc := range map[string]struct {
		e    Event
		o    RenderOptions
		want string
	}{
		"empty id":           {e: with(ok, func(e *Event) { e.ID = "" }), want: "empty id"},
		"zero time":          {e: with(ok, func(e *Event) { e.Time = time.Time{} }), want: "zero time"},
		"unknown kind":       {e: with(ok, func(e *Event) { e.Kind = "exploded" }), want: `unknown kind "exploded"`},
		"wildcard in sid":    {e: with(ok, func(e *Event) { e.Target.SessionSID = "KC>" }), want: "session_sid"},
		"no interaction sid": {e: with(ok, func(e *Event) { e.InteractionSID = "" }), want: "without interaction sid"},
		"dotted instance":    {e: with(hb, func(e *Event) { e.Beat = &HeartbeatInfo{Instance: "a.b"} }), want: "instance name"},
		"heartbeat no info":  {e: with(hb, func(e *Event) { e.Beat = nil }), want: "without heartbeat info"},
		"bad prefix":         {e: ok, o: RenderOptions{Prefix: "monitord.*"}, want: "subject prefix"},
		"space in prefix":    {e: ok, o: RenderOptions{Prefix: "my monitord"}, want: "subject prefix"},
	} {
		_, err := Render(tc.e, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, tc.want)
		}
	}
}

func with(e Event, f func(*Event)) Event {
	f(&e)
	return e
}

// BenchmarkRender renders a failed event (about 600 bytes of JSON), the
// common case at commit time.
func BenchmarkRender(b *testing.B) {
	e := examples()[2]
	b.ReportAllocs()
	var n int
	for b.Loop() {
		m, err := Render(e, RenderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n = len(m.Data)
	}
	b.ReportMetric(float64(n), "bytes/event")
}
