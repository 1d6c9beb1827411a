// Package redact hides the credentials a URL may carry (user:password@ or
// token@) before the URL goes into an error, a log line or check's output.
// It is the one place that does this, so config, notify, the Twilio client
// and the command line redact the same way, parseable URL or not.
package redact

import (
	"net/url"
	"strings"
)

// Marker stands in for removed user info in a URL that does not parse.
const Marker = "[redacted]"

// URL returns s without its user info. A URL that parses loses it
// entirely: a user name alone (nats://TOKEN@host) is a token, so it goes
// too. A string that does not parse keeps its scheme and what follows the
// last "@", since a password may itself hold "@" and the parser cannot be
// trusted to have found the boundary: nats://u:p@[::1 becomes
// nats://[redacted]@[::1.
func URL(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		u.User = nil
		// "user:pw@host" without "//" parses as scheme "user" and an
		// opaque "pw@host".
		if at := strings.LastIndexByte(u.Opaque, '@'); at >= 0 {
			u.Opaque = Marker + "@" + u.Opaque[at+1:]
		}
		return u.String()
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	prefix := ""
	if i := strings.Index(s[:at], "://"); i >= 0 {
		prefix = s[:i+3]
	}
	return prefix + Marker + "@" + s[at+1:]
}

// URLs redacts a comma-separated list of URLs, as nats.Connect takes them,
// each item trimmed of spaces.
func URLs(list string) string {
	parts := strings.Split(list, ",")
	for i, s := range parts {
		parts[i] = URL(strings.TrimSpace(s))
	}
	return strings.Join(parts, ",")
}
