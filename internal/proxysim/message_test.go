package proxysim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/monitord/monitord/internal/errcode"
	"github.com/monitord/monitord/internal/proxysim"
)

// messageValidator validates against Twilio's FetchMessage spec
// (testdata/README.md), served by the simulator.
func messageValidator(t *testing.T, e *env) *validator {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("testdata/twilio_api_v2010_message_fetch.json")
	if err != nil {
		t.Fatal(err)
	}
	const path = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
	item := doc.Paths.Find(path)
	if item == nil || item.Get == nil {
		t.Fatalf("spec has no GET %s", path)
	}
	return &validator{t: t, e: e, router: messageRouter{&routers.Route{
		Spec: doc, Path: path, PathItem: item, Method: http.MethodGet, Operation: item.Get,
	}}}
}

// messageRouter routes the one FetchMessage path. kin-openapi's legacy
// router cannot match a parameter followed by ".json" in one segment; a
// regular expression can, without another dependency.
type messageRouter struct{ route *routers.Route }

var messagePathRE = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages/([^/]+)\.json$`)

func (r messageRouter) FindRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	m := messagePathRE.FindStringSubmatch(req.URL.Path)
	if m == nil {
		return nil, nil, routers.ErrPathNotFound
	}
	return r.route, map[string]string{"AccountSid": m[1], "Sid": m[2]}, nil
}

type message struct {
	SID          string  `json:"sid"`
	Status       string  `json:"status"`
	Direction    string  `json:"direction"`
	ErrorCode    *int    `json:"error_code"`
	ErrorMessage *string `json:"error_message"`
	Body         string  `json:"body"`
	URI          string  `json:"uri"`
}

func messagePath(e *env, sid string) string {
	return "/2010-04-01/Accounts/" + e.sim.Credentials().AccountSID + "/Messages/" + sid + ".json"
}

// TestMessagesMatchOpenAPISpec fetches the Message behind every leg of every
// interaction, at the epoch and later, and validates each response against
// Twilio's spec; statuses must equal the legs' and every failed or
// undelivered message must carry a code.
func TestMessagesMatchOpenAPISpec(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 3, Participants: 3, Interactions: 20, BacklogGap: 5 * time.Second,
		FailureRate: 0.5, StuckRate: 0.1, InteractionEvery: 10 * time.Second, RateLimit: -1})
	v := messageValidator(t, e)
	codes := map[int]int{}
	failures := 0
	for round := 0; round < 3; round++ {
		for _, tg := range e.sim.Targets() {
			items, _ := e.listAll(participantPath(tg) + "?PageSize=1000")
			for _, it := range items {
				for _, leg := range []string{"inbound", "outbound"} {
					sid, _ := it[leg+"_resource_sid"].(string)
					if sid == "" {
						continue
					}
					r := v.get(messagePath(e, sid))
					if r.status != http.StatusOK {
						t.Fatalf("%s: %d %s", sid, r.status, r.body)
					}
					var m message
					if err := json.Unmarshal(r.body, &m); err != nil {
						t.Fatal(err)
					}
					if want := it[leg+"_resource_status"]; m.Status != want || m.SID != sid {
						t.Errorf("%s %s: message %s status %q, leg says %v", it["sid"], leg, m.SID, m.Status, want)
					}
					if want := map[string]string{"inbound": "inbound", "outbound": "outbound-api"}[leg]; m.Direction != want {
						t.Errorf("%s: direction %q, want %q", sid, m.Direction, want)
					}
					failed := m.Status == "failed" || m.Status == "undelivered"
					if failed != (m.ErrorCode != nil) || failed != (m.ErrorMessage != nil) {
						t.Errorf("%s: status %s with error_code %v error_message %v", sid, m.Status, m.ErrorCode, m.ErrorMessage)
					}
					if m.ErrorCode != nil {
						failures++
						codes[*m.ErrorCode]++
						if _, known := errcode.Lookup(*m.ErrorCode); !known {
							t.Errorf("%s: code %d is not in errcode's table", sid, *m.ErrorCode)
						}
					}
				}
			}
		}
		e.clock.Advance(45 * time.Second)
	}
	if failures < 50 || len(codes) < 4 {
		t.Errorf("%d failures with codes %v: want a realistic mix", failures, codes)
	}
	// Unknown SIDs, another account, a Proxy-looking SID: Twilio's 404.
	wantError(t, v.get(messagePath(e, "SM"+strings.Repeat("a", 32))), http.StatusNotFound, 20404)
	wantError(t, v.get(messagePath(e, "MM"+strings.Repeat("0", 32))), http.StatusNotFound, 20404)
	wantError(t, e.get("/2010-04-01/Accounts/AC"+strings.Repeat("b", 32)+"/Messages/SM"+strings.Repeat("a", 32)+".json"),
		http.StatusNotFound, 20404)
	wantError(t, e.get("/2010-04-01/Accounts/"+e.sim.Credentials().AccountSID+"/Calls.json"), http.StatusNotFound, 20404)
	// Authentication as for the Proxy endpoints.
	sid, err := e.sim.MessageSID(firstInteraction(e), proxysim.LegOutbound)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, e.getAuth(messagePath(e, sid), e.sim.Credentials().AccountSID, "wrong"), http.StatusUnauthorized, 20003)
	// The validator does bite: a status outside the spec's enum fails it.
	if err := e.sim.SetStatus(firstInteraction(e), proxysim.LegOutbound, "not-in-the-enum"); err != nil {
		t.Fatal(err)
	}
	v.do(messagePath(e, sid), true, false)
	if v.n < 200 {
		t.Errorf("only %d responses validated", v.n)
	}
}

func firstInteraction(e *env) string {
	return e.list(participantPath(e.sim.Targets()[0])).Interactions[0]["sid"].(string)
}

// TestMessageErrorPinnedAndDeterministic: the same seed serves the same
// bytes; SetMessageError pins a code while the leg is failed; a deleted
// interaction's message is gone; message faults leave Proxy alone.
func TestMessageErrorPinnedAndDeterministic(t *testing.T) {
	o := proxysim.Options{Participants: 2, Interactions: 30, FailureRate: 0.6, RateLimit: -1}
	a, b := newEnv(t, o), newEnv(t, o)
	ki := firstInteraction(a)
	sid, err := a.sim.MessageSID(ki, proxysim.LegOutbound)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := a.get(messagePath(a, sid)), b.get(messagePath(b, sid))
	if ra.status != http.StatusOK || !bytes.Equal(ra.body, rb.body) {
		t.Fatalf("same seed, different messages:\n%s\n%s", ra.body, rb.body)
	}

	if err := a.sim.SetMessageError(ki, proxysim.LegOutbound, 30007, "Carrier violation"); err != nil {
		t.Fatal(err)
	}
	if err := a.sim.SetStatus(ki, proxysim.LegOutbound, "delivered"); err != nil {
		t.Fatal(err)
	}
	var m message
	json.Unmarshal(a.get(messagePath(a, sid)).body, &m) //nolint:errcheck // checked below
	if m.Status != "delivered" || m.ErrorCode != nil {
		t.Errorf("delivered message: %+v, want no code", m)
	}
	a.clock.Advance(time.Second)
	if err := a.sim.SetStatus(ki, proxysim.LegOutbound, "undelivered"); err != nil {
		t.Fatal(err)
	}
	m = message{}
	json.Unmarshal(a.get(messagePath(a, sid)).body, &m) //nolint:errcheck // checked below
	if m.Status != "undelivered" || m.ErrorCode == nil || *m.ErrorCode != 30007 || *m.ErrorMessage != "Carrier violation" {
		t.Errorf("pinned message: %+v", m)
	}

	a.sim.SetMessageFaults(proxysim.Faults{ErrorRate: 1})
	if r := a.get(messagePath(a, sid)); r.status < 500 {
		t.Errorf("message fault: status %d", r.status)
	}
	if r := a.get(participantPath(a.sim.Targets()[0])); r.status != http.StatusOK {
		t.Errorf("message faults reached Proxy: %d", r.status)
	}
	a.sim.SetMessageFaults(proxysim.Faults{})

	if err := a.sim.DeleteInteraction(ki); err != nil {
		t.Fatal(err)
	}
	wantError(t, a.get(messagePath(a, sid)), http.StatusNotFound, 20404)
	if st := a.sim.Stats().Endpoints[proxysim.Key{Endpoint: proxysim.EndpointMessage}]; st.Requests < 4 {
		t.Errorf("message requests counted %+v", st)
	}
}
