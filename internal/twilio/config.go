package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// Config configures a Client. Zero values take the defaults documented on
// each field.
type Config struct {
	// BaseURL is the API's scheme, host and optional path prefix
	// (default https://proxy.twilio.com). Pages are only ever fetched
	// from this scheme and host.
	BaseURL string

	// AccountSID (AC…) is required. Authenticate with an API key
	// (APIKeySID SK… + APIKeySecret, recommended) or with the account's
	// AuthToken; set exactly one of the two.
	AccountSID   string
	APIKeySID    string
	APIKeySecret string // secret: never logged, never in an error
	AuthToken    string // secret: never logged, never in an error

	// Version goes into the User-Agent "monitord/<Version>"; UserAgent, if
	// set, replaces that header value entirely.
	Version   string
	UserAgent string

	// HTTPClient is used for requests (default: a client with its own
	// transport). The client refuses redirects whatever this client says.
	HTTPClient *http.Client

	// RequestsPerSecond is the token bucket rate per Service (default 27,
	// 90 % of Twilio's 30/s per endpoint per Service); Burst its depth
	// (default 10). In any 5 s window a Service sees at most
	// Burst + 5*RequestsPerSecond requests: 145 by default, under
	// Twilio's 150.
	RequestsPerSecond float64
	Burst             int
	// LimitScope is what one bucket covers: ScopeService (default, every
	// endpoint of a Service shares it) or ScopeEndpoint (each endpoint of a
	// Service has its own, as Twilio documents its limit).
	LimitScope string
	// Buckets, when set, supplies the bucket of a key instead of a token
	// bucket of RequestsPerSecond and Burst (see BucketFunc).
	Buckets BucketFunc
	// MaxInFlight caps requests in flight across the Client (default 10),
	// for Twilio's account-wide concurrency limit.
	MaxInFlight int

	// MessagesBaseURL is the root of the 2010-04-01 API that serves
	// FetchMessage (default https://api.twilio.com). It is fetched with the
	// same credentials, so it gets the same checks as BaseURL.
	MessagesBaseURL string
	// MessagesPerSecond (default 10) and MessagesInFlight (default 4) are
	// FetchMessage's own budget, apart from the Proxy Services' buckets and
	// MaxInFlight: a burst of failures spends it and never delays a poll,
	// and a busy poll cycle never starves the reasons. The account's
	// concurrency limit sees MaxInFlight + MessagesInFlight at most.
	MessagesPerSecond float64
	MessagesInFlight  int

	// PageSize is asked of every list (1..1000, default 1000).
	PageSize int
	// MaxPages caps the pages of one listing (default 100).
	MaxPages int
	// MaxResponseBytes caps one response body after decompression
	// (default 16 MiB).
	MaxResponseBytes int64
	// MaxListingBytes caps the text (SIDs, URLs, statuses, data) the items
	// of one listing keep in memory (default 4 × MaxResponseBytes). Page
	// bodies are not kept, so with at most PageSize items per page this
	// bounds a listing's memory whatever the server sends; a real listing
	// keeps under 500 bytes of text per interaction.
	MaxListingBytes int64

	// MaxAttempts bounds the attempts per request, first included
	// (default 4). MinBackoff and MaxBackoff bound the jittered exponential
	// backoff (defaults 500 ms and 30 s); a Retry-After longer than
	// MaxBackoff is not waited for: the request fails as rate limited.
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	// RequestTimeout bounds one attempt, body included (default 30 s).
	RequestTimeout time.Duration

	// Observer receives metrics; nil for none.
	Observer Observer
}

// Observer receives the client's metrics. Calls come from the goroutines
// making requests, so implementations must be safe for concurrent use and
// quick.
type Observer interface {
	// Request is called once per attempt; statusCode is 0 for a transport
	// error.
	Request(statusCode int, d time.Duration)
	// Retry is called before waiting to retry: reason is "rate_limited",
	// "server_error" or "transport".
	Retry(reason string)
	// Listing is called once per complete listing with its page count.
	Listing(pages int)
}

// String redacts the secrets, so a Config printed with %v or %+v is safe.
func (c Config) String() string {
	cp := c
	if cp.APIKeySecret != "" {
		cp.APIKeySecret = "REDACTED"
	}
	if cp.AuthToken != "" {
		cp.AuthToken = "REDACTED"
	}
	type plain Config // drops this method
	return fmt.Sprintf("%+v", plain(cp))
}

// GoString redacts the secrets for %#v too.
func (c Config) GoString() string { return c.String() }

// Defaults.
const (
	DefaultBaseURL          = "https://proxy.twilio.com"
	DefaultMessagesBaseURL  = "https://api.twilio.com"
	DefaultPageSize         = 1000
	DefaultMaxPages         = 100
	DefaultMaxResponseBytes = 16 << 20
)

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.MessagesBaseURL == "" {
		c.MessagesBaseURL = DefaultMessagesBaseURL
	}
	if c.LimitScope == "" {
		c.LimitScope = ScopeService
	}
	if c.MessagesPerSecond == 0 {
		c.MessagesPerSecond = 10
	}
	if c.MessagesInFlight == 0 {
		c.MessagesInFlight = 4
	}
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = 27
	}
	if c.Burst == 0 {
		c.Burst = 10
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 10
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxPages == 0 {
		c.MaxPages = DefaultMaxPages
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.MaxListingBytes == 0 {
		c.MaxListingBytes = 4 * c.MaxResponseBytes
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
}

// checkBase parses a base URL; field names it in the error.
func checkBase(field, raw string) (*url.URL, error) {
	base, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %v", field, err)
	case base.Scheme != "https" && base.Scheme != "http":
		return nil, fmt.Errorf("%s: scheme must be https or http", field)
	case base.Host == "":
		return nil, fmt.Errorf("%s: no host", field)
	case base.User != nil:
		return nil, fmt.Errorf("%s: must not hold credentials", field)
	case base.RawQuery != "" || base.Fragment != "":
		return nil, fmt.Errorf("%s: must not have a query or fragment", field)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	return base, nil
}

// validate reports every problem at once, each naming its field.
func (c *Config) validate() (base, messages *url.URL, _ error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	base, err := checkBase("BaseURL", c.BaseURL)
	if err != nil {
		errs = append(errs, err)
	}
	messages, err = checkBase("MessagesBaseURL", c.MessagesBaseURL)
	if err != nil {
		errs = append(errs, err)
	}
	if c.MessagesPerSecond < 0 {
		bad("MessagesPerSecond: must be positive")
	}
	if c.MessagesInFlight < 0 {
		bad("MessagesInFlight: must be positive")
	}
	if err := proxy.CheckSID("AccountSID", "AC", c.AccountSID); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.APIKeySID != "" && c.AuthToken != "":
		bad("APIKeySID and AuthToken: set one way to authenticate, not both")
	case c.APIKeySID != "":
		if err := proxy.CheckSID("APIKeySID", "SK", c.APIKeySID); err != nil {
			errs = append(errs, err)
		}
		if c.APIKeySecret == "" {
			bad("APIKeySecret: required with APIKeySID")
		}
	case c.AuthToken == "":
		bad("APIKeySID+APIKeySecret or AuthToken: one is required")
	case c.APIKeySecret != "":
		bad("APIKeySecret: set without APIKeySID")
	}
	if c.RequestsPerSecond < 0 {
		bad("RequestsPerSecond: must be positive")
	}
	if c.Burst < 0 {
		bad("Burst: must be positive")
	}
	if c.LimitScope != ScopeService && c.LimitScope != ScopeEndpoint {
		bad("LimitScope: %q is not %q or %q", c.LimitScope, ScopeService, ScopeEndpoint)
	}
	if c.MaxInFlight < 0 {
		bad("MaxInFlight: must be positive")
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		bad("PageSize: %d is not in 1..1000", c.PageSize)
	}
	if c.MaxPages < 0 {
		bad("MaxPages: must be positive")
	}
	if c.MaxResponseBytes < 0 {
		bad("MaxResponseBytes: must be positive")
	}
	if c.MaxListingBytes < 0 {
		bad("MaxListingBytes: must be positive")
	}
	if c.MaxAttempts < 0 {
		bad("MaxAttempts: must be positive")
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		bad("MinBackoff, MaxBackoff: need 0 < MinBackoff <= MaxBackoff")
	}
	if c.RequestTimeout < 0 {
		bad("RequestTimeout: must be positive")
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return base, messages, nil
}

type nopObserver struct{}

func (nopObserver) Request(int, time.Duration) {}
func (nopObserver) Retry(string)               {}
func (nopObserver) Listing(int)                {}
