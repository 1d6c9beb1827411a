package proxysim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

var interactionFields = []string{
	"account_sid", "data", "date_created", "date_updated",
	"inbound_participant_sid", "inbound_resource_sid", "inbound_resource_status",
	"inbound_resource_type", "inbound_resource_url",
	"outbound_participant_sid", "outbound_resource_sid", "outbound_resource_status",
	"outbound_resource_type", "outbound_resource_url",
	"service_sid", "session_sid", "sid", "type", "url",
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestListShapes(t *testing.T) {
	e := newEnv(t, proxysim.Options{Interactions: 5, Participants: 2})
	tg := e.sim.Targets()[0]
	host, _ := url.Parse(e.srv.URL)

	r := e.get(participantPath(tg))
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	p := e.list(participantPath(tg))
	if len(p.Interactions) != 5 {
		t.Fatalf("%d interactions, want 5", len(p.Interactions))
	}
	want := append(slices.Clone(interactionFields), "participant_sid")
	slices.Sort(want)
	relayed, created := 0, 0
	for _, it := range p.Interactions {
		if got := keys(it); !slices.Equal(got, want) {
			t.Fatalf("participant item keys %v, want %v", got, want)
		}
		if it["participant_sid"] != tg.ParticipantSID || it["outbound_participant_sid"] != tg.ParticipantSID {
			t.Errorf("participant fields %v / %v", it["participant_sid"], it["outbound_participant_sid"])
		}
		if it["service_sid"] != tg.ServiceSID || it["session_sid"] != tg.SessionSID {
			t.Errorf("parent SIDs %v %v", it["service_sid"], it["session_sid"])
		}
		for _, f := range []string{"date_created", "date_updated"} {
			if _, err := time.Parse("2006-01-02T15:04:05Z", it[f].(string)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		var data map[string]string
		if err := json.Unmarshal([]byte(it["data"].(string)), &data); err != nil || data["body"] == "" {
			t.Errorf("data %q: %v", it["data"], err)
		}
		u, err := url.Parse(it["url"].(string))
		if err != nil || u.Host != host.Host || !strings.HasSuffix(u.Path, "/MessageInteractions/"+it["sid"].(string)) {
			t.Errorf("url %v", it["url"])
		}
		if it["inbound_participant_sid"] == nil {
			created++
			for _, f := range []string{"inbound_resource_sid", "inbound_resource_status", "inbound_resource_type", "inbound_resource_url"} {
				if it[f] != nil {
					t.Errorf("created interaction has %s = %v, want null", f, it[f])
				}
			}
		} else {
			relayed++
		}
	}
	if relayed+created != 5 {
		t.Fatal("miscounted")
	}
	meta := keys(p.Meta)
	if want := []string{"first_page_url", "key", "next_page_url", "page", "page_size", "previous_page_url", "url"}; !slices.Equal(meta, want) {
		t.Fatalf("meta keys %v, want %v", meta, want)
	}
	if p.Meta["key"] != "interactions" || p.Meta["page_size"] != 50.0 || p.Meta["page"] != 0.0 ||
		p.Meta["next_page_url"] != nil || p.Meta["previous_page_url"] != nil {
		t.Errorf("meta %v", p.Meta)
	}
	for _, f := range []string{"first_page_url", "url"} {
		u, err := url.Parse(p.Meta[f].(string))
		if err != nil || u.Host != host.Host || u.Path != participantPath(tg) {
			t.Errorf("meta %s %v", f, p.Meta[f])
		}
	}

	// The session list has the same items without participant_sid.
	s := e.list(sessionPath(tg))
	if len(s.Interactions) != 10 {
		t.Fatalf("session list has %d items, want 10", len(s.Interactions))
	}
	want = slices.Clone(interactionFields)
	slices.Sort(want)
	for _, it := range s.Interactions {
		if got := keys(it); !slices.Equal(got, want) {
			t.Fatalf("session item keys %v, want %v", got, want)
		}
		if !strings.Contains(it["url"].(string), "/Interactions/") {
			t.Errorf("session item url %v", it["url"])
		}
	}

	sessions := e.list("/v1/Services/" + tg.ServiceSID + "/Sessions")
	if len(sessions.Sessions) != 1 || sessions.Sessions[0]["sid"] != tg.SessionSID ||
		sessions.Sessions[0]["status"] != "in-progress" || sessions.Meta["key"] != "sessions" {
		t.Fatalf("sessions %v %v", sessions.Sessions, sessions.Meta)
	}
	parts := e.list("/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID + "/Participants")
	if len(parts.Participants) != 2 || parts.Participants[0]["sid"] != tg.ParticipantSID || parts.Meta["key"] != "participants" {
		t.Fatalf("participants %v %v", parts.Participants, parts.Meta)
	}
}

func TestFetch(t *testing.T) {
	e := newEnv(t, proxysim.Options{Interactions: 3})
	tg := e.sim.Targets()[0]
	for _, it := range e.list(participantPath(tg)).Interactions {
		sid := it["sid"].(string)
		r := e.get(participantPath(tg) + "/" + sid)
		var got map[string]any
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("fetch %s: %d %v", sid, r.status, err)
		}
		if !equalJSON(got, it) {
			t.Errorf("fetched %v\nlisted  %v", got, it)
		}
		r = e.get(sessionPath(tg) + "/" + sid)
		got = nil
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("fetch session-level %s: %d %v", sid, r.status, err)
		}
		if _, ok := got["participant_sid"]; ok || got["sid"] != sid || got["outbound_resource_status"] != it["outbound_resource_status"] {
			t.Errorf("session-level fetch %v", got)
		}
	}
	r := e.get("/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID)
	if r.status != 200 || !strings.Contains(string(r.body), `"sid":"`+tg.SessionSID+`"`) {
		t.Errorf("fetch session: %d %s", r.status, r.body)
	}
	r = e.get("/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID + "/Participants/" + tg.ParticipantSID)
	if r.status != 200 || !strings.Contains(string(r.body), `"sid":"`+tg.ParticipantSID+`"`) {
		t.Errorf("fetch participant: %d %s", r.status, r.body)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestPaging(t *testing.T) {
	e := newEnv(t, proxysim.Options{Interactions: 25, Participants: 3, Sessions: 7})
	tg := e.sim.Targets()[0]
	all := e.list(participantPath(tg) + "?PageSize=1000").Interactions
	if len(all) != 25 {
		t.Fatalf("%d interactions, want 25", len(all))
	}
	for _, size := range []int{1, 7, 10, 24, 25, 26} {
		items, pages := e.listAll(participantPath(tg) + "?PageSize=" + strconv.Itoa(size))
		if wantPages := (25 + size - 1) / size; pages != wantPages {
			t.Errorf("PageSize %d: %d pages, want %d", size, pages, wantPages)
		}
		if !equalJSON(items, all) {
			t.Errorf("PageSize %d: pages do not add up to the whole listing", size)
		}
	}
	// Meta of a middle page, and previous_page_url leads back.
	p0 := e.list(participantPath(tg) + "?PageSize=10")
	p1 := e.list(p0.Meta["next_page_url"].(string))
	if p1.Meta["page"] != 1.0 || p1.Meta["page_size"] != 10.0 || p1.Meta["url"] != p0.Meta["next_page_url"] ||
		p1.Meta["first_page_url"] != p0.Meta["first_page_url"] {
		t.Errorf("page 1 meta %v", p1.Meta)
	}
	back := e.list(p1.Meta["previous_page_url"].(string))
	if !equalJSON(back.Interactions, p0.Interactions) {
		t.Error("previous_page_url of page 1 is not page 0")
	}
	p2 := e.list(p1.Meta["next_page_url"].(string))
	if back := e.list(p2.Meta["previous_page_url"].(string)); !equalJSON(back.Interactions, p1.Interactions) {
		t.Error("previous_page_url of page 2 is not page 1")
	}
	if len(p2.Interactions) != 5 || p2.Meta["next_page_url"] != nil {
		t.Errorf("last page: %d items, next %v", len(p2.Interactions), p2.Meta["next_page_url"])
	}

	// A new interaction between pages neither repeats nor hides the rest.
	p0 = e.list(participantPath(tg) + "?PageSize=10")
	if _, err := e.sim.AddInteraction(tg, "queued"); err != nil {
		t.Fatal(err)
	}
	rest, _ := e.listAll(p0.Meta["next_page_url"].(string))
	if got := len(p0.Interactions) + len(rest); got != 26 {
		t.Errorf("listing across an insert: %d items, want 26", got)
	}

	// Sessions and session Interactions serve at most 100 per page.
	big := e.list(sessionPath(tg) + "?PageSize=1000")
	if len(big.Interactions) != 76 || big.Meta["page_size"] != 100.0 {
		t.Errorf("session list at PageSize=1000: %d items, page_size %v", len(big.Interactions), big.Meta["page_size"])
	}
	e3 := newEnv(t, proxysim.Options{Interactions: 60, Participants: 3})
	capped := e3.list(sessionPath(e3.sim.Targets()[0]) + "?PageSize=1000")
	if len(capped.Interactions) != 100 || capped.Meta["page_size"] != 100.0 || capped.Meta["next_page_url"] == nil {
		t.Errorf("capped page: %d items, meta %v", len(capped.Interactions), capped.Meta)
	}
	if all, pages := e3.listAll(sessionPath(e3.sim.Targets()[0]) + "?PageSize=1000"); len(all) != 180 || pages != 2 {
		t.Errorf("capped listing: %d items in %d pages", len(all), pages)
	}
	e4 := newEnv(t, proxysim.Options{Interactions: 60, Participants: 3, Uncapped: true})
	if n := len(e4.list(sessionPath(e4.sim.Targets()[0]) + "?PageSize=1000").Interactions); n != 180 {
		t.Errorf("Uncapped: %d items, want 180", n)
	}

	sess, _ := e.listAll(sessionPath(tg) + "?PageSize=4")
	if len(sess) != 3*25+1 {
		t.Errorf("session listing: %d items, want 76", len(sess))
	}
	sessions, pages := e.listAll("/v1/Services/" + tg.ServiceSID + "/Sessions?PageSize=3")
	if len(sessions) != 7 || pages != 3 {
		t.Errorf("sessions: %d in %d pages, want 7 in 3", len(sessions), pages)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, proxysim.Options{})
	tg := e.sim.Targets()[0]
	c := e.sim.Credentials()
	if !strings.HasPrefix(c.AccountSID, "AC") || !strings.HasPrefix(c.APIKeySID, "SK") || len(c.AuthToken) != 32 || len(c.APIKeySecret) != 32 {
		t.Fatalf("credentials %+v", c)
	}
	path := participantPath(tg)
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{c.AccountSID, c.AuthToken, true},
		{c.APIKeySID, c.APIKeySecret, true},
		{"", "", false},
		{c.AccountSID, "wrong", false},
		{c.APIKeySID, c.AuthToken, false},
		{c.AccountSID, c.APIKeySecret, false},
	} {
		r := e.getAuth(path, tc.user, tc.pass)
		if tc.ok {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d", tc.user, r.status)
			}
			continue
		}
		wantError(t, r, http.StatusUnauthorized, 20003)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		if strings.Contains(string(r.body), c.AuthToken) {
			t.Error("error body leaks the token")
		}
	}
	// Credentials given in Options are the ones accepted.
	e2 := newEnv(t, proxysim.Options{AccountSID: "AC" + strings.Repeat("ab", 16), AuthToken: "tok"})
	if r := e2.getAuth(participantPath(e2.sim.Targets()[0]), "AC"+strings.Repeat("ab", 16), "tok"); r.status != 200 {
		t.Errorf("configured credentials: %d", r.status)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, proxysim.Options{Interactions: 3})
	tg := e.sim.Targets()[0]
	other := newEnv(t, proxysim.Options{Seed: 2}).sim.Targets()[0]
	p := participantPath(tg)
	first := e.list(p + "?PageSize=1")
	tok := strings.SplitAfter(first.Meta["next_page_url"].(string), "PageToken=")[1]
	for _, tc := range []struct {
		path         string
		status, code int
	}{
		{"/v1/Services/" + other.ServiceSID + "/Sessions", 404, 20404},
		{"/v1/Services/KSnot-a-sid/Sessions", 404, 20404},
		{"/v1/Services/" + tg.ServiceSID + "/Sessions/" + other.SessionSID + "/Interactions", 404, 20404},
		{"/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID + "/Participants/" + other.ParticipantSID + "/MessageInteractions", 404, 20404},
		{p + "/KI" + strings.Repeat("0", 32), 404, 20404},
		{sessionPath(tg) + "/KI" + strings.Repeat("0", 32), 404, 20404},
		{"/v2/Services", 404, 20404},
		{"/v1/Services/" + tg.ServiceSID + "/Nope", 404, 20404},
		{p + "?PageSize=0", 400, 20001},
		{p + "?PageSize=1001", 400, 20001},
		{p + "?PageSize=ten", 400, 20001},
		{p + "?Page=-1", 400, 20001},
		{p + "?PageToken=PAdeadbeef", 400, 20001},
		{p + "?PageToken=" + tok[:len(tok)-1] + "0", 400, 20001},
		{sessionPath(tg) + "?PageToken=" + tok, 400, 20001}, // minted for another listing
	} {
		t.Run(tc.path, func(t *testing.T) { wantError(t, e.get(tc.path), tc.status, tc.code) })
	}
	if r := e.get(p + "?PageSize=1000"); r.status != 200 {
		t.Errorf("PageSize=1000: %d", r.status)
	}

	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+p, nil)
	c := e.sim.Credentials()
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
