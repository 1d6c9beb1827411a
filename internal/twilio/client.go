// Package twilio is monitord's client for the Twilio Proxy v1 REST API: it
// reads complete listings (every page, or an error), within Twilio's rate
// limits, with retries, and decodes them fast because every poll decodes
// every interaction of every target.
//
// A Client is safe for concurrent use and meant to be shared: its per-Service
// token buckets and its in-flight cap only protect the account if all calls
// go through one Client.
package twilio

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/monitord/monitord/internal/proxy"
)

// Client reads Twilio Proxy listings. Create it with New.
type Client struct {
	cfg       Config
	base      *url.URL
	basePath  string // base.String(), no trailing slash
	authz     string // Authorization header value: holds the secret
	userAgent string
	hc        *http.Client
	own       *http.Transport // nil if the caller gave the HTTP client
	obs       Observer
	limits    *limits
	msgLimits *limits // FetchMessage's own budget
	msgPath   string  // FetchMessage URL up to the Message SID
}

// New checks cfg, fills in defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	base, messages, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("twilio config: %w", err)
	}
	user, pass := cfg.AccountSID, cfg.AuthToken
	if cfg.APIKeySID != "" {
		user, pass = cfg.APIKeySID, cfg.APIKeySecret
	}
	c := &Client{
		cfg:      cfg,
		base:     base,
		basePath: base.String(),
		authz:    "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
		obs:      cfg.Observer,
		limits:   newLimits(cfg.RequestsPerSecond, cfg.Burst, cfg.MaxInFlight, cfg.Buckets),
		// One bucket (key "") for the account's FetchMessage calls, with
		// a burst of one in-flight's worth.
		msgLimits: newLimits(cfg.MessagesPerSecond, cfg.MessagesInFlight, cfg.MessagesInFlight, nil),
		msgPath:   messages.String() + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages/",
	}
	c.userAgent = cfg.UserAgent
	if c.userAgent == "" {
		c.userAgent = "monitord"
		if cfg.Version != "" {
			c.userAgent += "/" + cfg.Version
		}
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		c.own = http.DefaultTransport.(*http.Transport).Clone()
		c.own.MaxIdleConnsPerHost = cfg.MaxInFlight
		hc.Transport = c.own
	}
	// A redirect could carry the request elsewhere; Twilio's API does not
	// redirect GETs, so none is followed and the 3xx becomes an APIError.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

// String names the Client by its base URL; the credentials it holds are
// never printed (also with %+v and %#v).
func (c *Client) String() string { return "twilio.Client(" + c.basePath + ")" }

// GoString is String.
func (c *Client) GoString() string { return c.String() }

// Close releases idle connections of the Client's own transport.
func (c *Client) Close() {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

// ListInteractions returns the complete listing of a target: every item of
// every page, or an error and no items. The result shares no memory with
// the response bodies: they are reused once decoded.
func (c *Client) ListInteractions(ctx context.Context, t proxy.Target) ([]proxy.Interaction, error) {
	items, err := c.AppendInteractions(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	return items, nil
}

// AppendInteractions is ListInteractions appending to dst: the poller
// passes a slice of an earlier poll, so that a steady poll does not
// allocate the items' array (a third of what a 200-interaction poll
// allocated). On error it returns dst unchanged in length; items may
// have been written in its spare capacity.
func (c *Client) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	if err := t.Validate(); err != nil {
		return dst, fmt.Errorf("list interactions: %w", err)
	}
	u := c.interactionsPath(t)
	items, err := list(ctx, c, t.ServiceSID, listEndpoint(t), u, "interactions", dst, decodeInteraction)
	if err == nil {
		err = identified(items[len(dst):], u)
	}
	if err != nil {
		return dst, fmt.Errorf("list interactions: %w", err)
	}
	return items, nil
}

// identified refuses a listing with an item whose sid is null or empty.
// monitord follows an interaction by its SID from one poll to the next: a
// listing with an item it cannot identify is not complete, and dropping the
// item would report the SID it had last time as deleted (and created when
// it came back). So it fails like a bad page, and the previous snapshot
// stands.
func identified(items []proxy.Interaction, listURL string) error {
	for i := range items {
		if items[i].SID == "" {
			return &DecodeError{URL: listURL, Path: "interactions[" + strconv.Itoa(i) + "].sid", Offset: -1,
				Reason: "null or empty: the interaction cannot be identified, so the listing is not complete"}
		}
	}
	return nil
}

// FetchInteraction fetches one interaction of a target's list by its SID.
func (c *Client) FetchInteraction(ctx context.Context, t proxy.Target, sid string) (proxy.Interaction, error) {
	var it proxy.Interaction
	if err := t.Validate(); err != nil {
		return it, fmt.Errorf("fetch interaction: %w", err)
	}
	if err := proxy.CheckSID("sid", "KI", sid); err != nil {
		return it, fmt.Errorf("fetch interaction: %w", err)
	}
	u := c.interactionsPath(t) + "/" + sid
	ep := EndpointMessageInteraction
	if t.Source == proxy.SourceSession {
		ep = EndpointInteraction
	}
	body, err := c.get(ctx, t.ServiceSID, ep, u)
	if err == nil {
		err = decodeOne(bodyString(body), &it, decodeInteraction)
		releaseBody(body)
		setDecodeURL(err, u)
	}
	if err != nil {
		return proxy.Interaction{}, fmt.Errorf("fetch interaction: %w", err)
	}
	return it, nil
}

// FetchSession returns one Session of a Service: the activity index of a
// few configured sessions costs one request each, where the list of a
// large Service costs one per 100 sessions.
func (c *Client) FetchSession(ctx context.Context, serviceSID, sessionSID string) (proxy.Session, error) {
	var s proxy.Session
	if err := proxy.CheckSID("service_sid", "KS", serviceSID); err != nil {
		return s, fmt.Errorf("fetch session: %w", err)
	}
	if err := proxy.CheckSID("session_sid", "KC", sessionSID); err != nil {
		return s, fmt.Errorf("fetch session: %w", err)
	}
	u := c.basePath + "/v1/Services/" + serviceSID + "/Sessions/" + sessionSID
	body, err := c.get(ctx, serviceSID, EndpointSession, u)
	if err == nil {
		err = decodeOne(bodyString(body), &s, decodeSession)
		releaseBody(body)
		setDecodeURL(err, u)
	}
	if err != nil {
		return proxy.Session{}, fmt.Errorf("fetch session: %w", err)
	}
	return s, nil
}

// ListSessions returns every Session of a Service.
func (c *Client) ListSessions(ctx context.Context, serviceSID string) ([]proxy.Session, error) {
	if err := proxy.CheckSID("service_sid", "KS", serviceSID); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	u := c.basePath + "/v1/Services/" + serviceSID + "/Sessions"
	items, err := list(ctx, c, serviceSID, EndpointSessions, u, "sessions", nil, decodeSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return items, nil
}

// ListParticipants returns every Participant of a Session.
func (c *Client) ListParticipants(ctx context.Context, serviceSID, sessionSID string) ([]proxy.Participant, error) {
	if err := proxy.CheckSID("service_sid", "KS", serviceSID); err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	if err := proxy.CheckSID("session_sid", "KC", sessionSID); err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	u := c.basePath + "/v1/Services/" + serviceSID + "/Sessions/" + sessionSID + "/Participants"
	items, err := list(ctx, c, serviceSID, EndpointParticipants, u, "participants", nil, decodeParticipant)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	return items, nil
}

// listEndpoint is the endpoint a target's listing calls.
func listEndpoint(t proxy.Target) Endpoint {
	if t.Source == proxy.SourceSession {
		return EndpointInteractions
	}
	return EndpointMessageInteractions
}

// interactionsPath is the list URL of a validated target, without query.
func (c *Client) interactionsPath(t proxy.Target) string {
	p := c.basePath + "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID
	if t.Source == proxy.SourceSession {
		return p + "/Interactions"
	}
	return p + "/Participants/" + t.ParticipantSID + "/MessageInteractions"
}

// firstPage adds the page size to a list URL. Later pages come only from
// meta.next_page_url: the client never builds a PageToken.
func (c *Client) firstPage(listURL string) string {
	return listURL + "?PageSize=" + strconv.Itoa(c.cfg.PageSize)
}

// itemBytes is about what the JSON of one item takes: 1.0–1.3 KB for an
// interaction as Twilio and the simulator write it, less for a session or
// participant. It sizes the items slice from the body: an estimate too low
// only costs a regrowth of the slice, one too high costs the unused slots
// on every poll (256, the smallest possible interaction, reserved 966
// slots of 320 B for 200 items).
const itemBytes = 1024

// list fetches every page of a listing, following meta.next_page_url until
// it is null. It returns all items or an error, never part of a listing:
// monitord diffs complete sets of SIDs, and a half listing would look like
// deleted interactions.
func list[T any](ctx context.Context, c *Client, serviceSID string, ep Endpoint, listURL, key string, out []T, item func(*scanner, *T) error) ([]T, error) {
	u := c.firstPage(listURL)
	seen := make(map[string]struct{}, 1)
	k := newKeeper(c.cfg.MaxListingBytes, c.cfg.PageSize)
	for pages := 0; ; {
		if pages >= c.cfg.MaxPages {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyPages, c.cfg.MaxPages)
		}
		if _, dup := seen[u]; dup {
			return nil, fmt.Errorf("%w: %s", ErrPageLoop, redactURL(u))
		}
		seen[u] = struct{}{}
		body, err := c.get(ctx, serviceSID, ep, u)
		if err != nil {
			return nil, err
		}
		pages++
		// Room for about the items the page holds: a target with three
		// interactions does not get a slice for a thousand on every poll.
		out = slices.Grow(out, min(c.cfg.PageSize, body.Len()/itemBytes+1))
		var next string
		next, out, err = decodePageKeep(bodyString(body), key, out, k, item)
		releaseBody(body) // nothing decoded refers to it: the next page reuses it
		if err != nil {
			setDecodeURL(err, u)
			return nil, err
		}
		if next == "" {
			c.obs.Listing(pages)
			return out, nil
		}
		if u, err = c.nextPage(u, next); err != nil {
			return nil, err
		}
	}
}

// nextPage resolves and checks a next_page_url. It must stay on the base
// URL's scheme and host (the request carries credentials) and carry no
// userinfo of its own.
func (c *Client) nextPage(current, next string) (string, error) {
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("next page url: %w", err)
	}
	ref, err := url.Parse(next)
	if err != nil {
		return "", &DecodeError{URL: redactURL(current), Path: "meta.next_page_url", Offset: -1,
			Reason: "not a URL"}
	}
	n := cur.ResolveReference(ref)
	if !strings.EqualFold(n.Scheme, c.base.Scheme) || !strings.EqualFold(n.Host, c.base.Host) {
		return "", fmt.Errorf("%w: %s://%s is not the base url's %s://%s", ErrForeignHost,
			n.Scheme, n.Host, c.base.Scheme, c.base.Host)
	}
	if n.User != nil {
		// Same host, but credentials of its own: the URL is not Twilio's
		// own writing. Say so, and never echo the user info itself.
		return "", fmt.Errorf("%w: %s://%s carries user info (credentials in the url are not allowed)",
			ErrForeignHost, n.Scheme, n.Host)
	}
	n.Fragment = ""
	return n.String(), nil
}

// setDecodeURL fills in the URL of a *DecodeError raised by the decoder.
func setDecodeURL(err error, u string) {
	var de *DecodeError
	if errors.As(err, &de) && de.URL == "" {
		de.URL = redactURL(u)
	}
}
