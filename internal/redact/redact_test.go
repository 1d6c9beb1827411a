package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:SEKRET@127.0.0.1:4222":  "nats://127.0.0.1:4222",
		"nats://TOKEN@host:4222":          "nats://host:4222",
		"https://proxy.twilio.com/v1":     "https://proxy.twilio.com/v1",
		"nats://u:SEKRET@[::1":            "nats://[redacted]@[::1",
		"nats://u:SEK@RET@[::1":           "nats://[redacted]@[::1",
		"https://u:SEK%zzRET@proxy:443/x": "https://[redacted]@proxy:443/x",
		"u:SEKRET@[::1":                   "u:[redacted]@[::1",
		"nats://[::1":                     "nats://[::1",
		"":                                "",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"SEKRET", "SEK", "TOKEN"} {
			if strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q shows %q", in, got, secret)
			}
		}
	}
}

func TestURLs(t *testing.T) {
	got := URLs("nats://u:pw@a:4222, nats://tok@b:4222,nats://c:4222,nats://x:pw2@[::1")
	want := "nats://a:4222,nats://b:4222,nats://c:4222,nats://[redacted]@[::1"
	if got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
}
