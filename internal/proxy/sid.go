package proxy

import "fmt"

// ValidSID reports whether s is a Twilio SID with the given two-letter
// prefix: the prefix followed by exactly 32 hexadecimal digits. An empty
// prefix accepts any two ASCII letters (the spec's pattern for resource SIDs).
func ValidSID(prefix, s string) bool {
	if len(s) != 34 {
		return false
	}
	if prefix != "" {
		if s[:2] != prefix {
			return false
		}
	} else if !isLetter(s[0]) || !isLetter(s[1]) {
		return false
	}
	for i := 2; i < 34; i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// CanonicalSID returns the SID s with the hex digits in lower case, the form
// Twilio writes: s itself, not a copy, when none is upper case. The pattern
// accepts either case, and SIDs are compared as strings everywhere (diff,
// state keys, event ids), so a SID whose hex changed case between two polls
// would look like a new interaction and a deleted one. The decoder stores
// every SID it reads in this form; s must be a valid SID (ValidSID).
func CanonicalSID(s string) string {
	for i := 2; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'F' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// CheckSID returns an error naming field when s is not a SID with prefix.
func CheckSID(field, prefix, s string) error {
	if ValidSID(prefix, s) {
		return nil
	}
	p := prefix
	if p == "" {
		p = "[a-zA-Z]{2}"
	}
	return fmt.Errorf("%s: %q does not match ^%s[0-9a-fA-F]{32}$", field, s, p)
}

// isHex is a table lookup: SIDs are checked for every field of every
// decoded interaction, 32 digits each.
func isHex(c byte) bool { return hexDigit[c] }

var hexDigit = func() (t [256]bool) {
	for _, r := range "0123456789abcdefABCDEF" {
		t[r] = true
	}
	return t
}()

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
