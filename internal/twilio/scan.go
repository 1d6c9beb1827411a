package twilio

import (
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner is a small validating JSON reader over one response body held as
// a string. It is the hot path of every poll: values are returned as
// substrings of the body (no copy, no allocation; the keeper copies what an
// item keeps) unless a string holds escapes, and everything it skips is still checked, so it accepts exactly
// the documents encoding/json accepts (the fuzz test holds it to that).
//
// The body must be valid UTF-8 (decodePage checks it once up front), which
// spares the per-string rune validation encoding/json does.
type scanner struct {
	s string
	i int
	k *keeper // copies what items keep out of s
}

// maxDepth bounds nesting in skipped values, as encoding/json does, so a
// hostile body cannot exhaust the stack.
const maxDepth = 10000

const errEOF = "unexpected end of JSON (truncated body?)"

func (d *scanner) fail(reason string) *DecodeError {
	return &DecodeError{Offset: d.i, Reason: reason}
}

// failAt reports reason, or a truncation when the input has run out.
func (d *scanner) failAt(reason string) *DecodeError {
	if d.i >= len(d.s) {
		return d.fail(errEOF)
	}
	return d.fail(reason)
}

func (d *scanner) skipWS() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of input.
func (d *scanner) peek() byte {
	d.skipWS()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// end checks that only whitespace follows the top-level value.
func (d *scanner) end() error {
	d.skipWS()
	if d.i != len(d.s) {
		return d.fail("unexpected data after the top-level value")
	}
	return nil
}

// openObject consumes '{'. Members are then read with nextKey.
func (d *scanner) openObject() error {
	if d.peek() != '{' {
		return d.failAt("expected an object")
	}
	d.i++
	return nil
}

// nextKey reads the next member's key and its ':' in an object opened by
// openObject; first must start true. ok is false once '}' is consumed.
func (d *scanner) nextKey(first *bool) (key string, ok bool, err error) {
	c := d.peek()
	if c == '}' {
		d.i++
		return "", false, nil
	}
	if !*first {
		if c != ',' {
			return "", false, d.failAt("expected ',' or '}' in object")
		}
		d.i++
		c = d.peek()
	}
	*first = false
	if c != '"' {
		return "", false, d.failAt("expected a string key in object")
	}
	if key, err = d.str(); err != nil {
		return "", false, err
	}
	if d.peek() != ':' {
		return "", false, d.failAt("expected ':' after object key")
	}
	d.i++
	return key, true, nil
}

// openArray consumes '['. Elements are then announced by nextElem.
func (d *scanner) openArray() error {
	if d.peek() != '[' {
		return d.failAt("expected an array")
	}
	d.i++
	return nil
}

// nextElem reports whether another element follows in an array opened by
// openArray, consuming the ',' before it or the closing ']'.
func (d *scanner) nextElem(first *bool) (bool, error) {
	c := d.peek()
	if c == ']' {
		d.i++
		return false, nil
	}
	if *first {
		*first = false
		return true, nil
	}
	if c != ',' {
		return false, d.failAt("expected ',' or ']' in array")
	}
	d.i++
	return true, nil
}

// strTab marks the bytes that end the fast scan of a string: the quote,
// the backslash and the control characters JSON forbids raw.
var strTab = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialBytes flags (in bit 7 of each byte) the bytes of x that strTab
// marks: '"', '\\' and those below 0x20. It is the classic SWAR zero-byte
// test; flags above the lowest one may be false, the lowest never is, and
// the caller only uses the lowest.
func specialBytes(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x-lsb*0x20)&^x) & msb
}

// load64 reads 8 bytes of s at i, little-endian (one load once compiled).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// strEnd scans the string starting at d.i (its opening quote) and returns
// the index of the closing quote and whether escapes occur, validating
// the escapes on the way.
func (d *scanner) strEnd() (end int, escaped bool, err error) {
	s := d.s
	i := d.i + 1
	for {
		// Eight bytes at a time while nothing special shows (most
		// strings are SIDs, URLs and dates), then byte by byte.
		for i+8 <= len(s) {
			if m := specialBytes(load64(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(s) && !strTab[s[i]] {
			i++
		}
		if i >= len(s) {
			d.i = len(s)
			return 0, false, d.fail(errEOF)
		}
		switch c := s[i]; {
		case c == '"':
			return i, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(s) {
				d.i = len(s)
				return 0, false, d.fail(errEOF)
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) {
					d.i = len(s)
					return 0, false, d.fail(errEOF)
				}
				if hex4(s[i+2:i+6]) < 0 {
					d.i = i
					return 0, false, d.fail("invalid \\u escape in string")
				}
				i += 6
			default:
				d.i = i
				return 0, false, d.fail("invalid escape in string")
			}
		default:
			d.i = i
			return 0, false, d.fail("control character in string")
		}
	}
}

// str reads a string value at d.i. Without escapes it is a substring of the
// body; with escapes it costs exactly one allocation.
func (d *scanner) str() (string, error) {
	raw, escaped, err := d.strRaw()
	if err != nil || !escaped {
		return raw, err
	}
	return unescape(raw), nil
}

// strRaw reads a string value at d.i and returns it as written, between
// its quotes, and whether it holds escapes, for a caller that unescapes it
// into memory of its own (see keeper.keepEscaped).
func (d *scanner) strRaw() (raw string, escaped bool, err error) {
	end, escaped, err := d.strEnd()
	if err != nil {
		return "", false, err
	}
	raw = d.s[d.i+1 : end]
	d.i = end + 1
	return raw, escaped, nil
}

// unescape decodes the escapes of a string already checked by strEnd.
func unescape(raw string) string {
	b := appendUnescaped(make([]byte, 0, len(raw)), raw)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendUnescaped appends raw, a string already checked by strEnd, with its
// escapes decoded by encoding/json's rules: a \u surrogate pair becomes one
// rune, and a lone or broken surrogate becomes U+FFFD. It appends never
// more than len(raw) bytes.
func appendUnescaped(b []byte, raw string) []byte {
	for {
		k := strings.IndexByte(raw, '\\')
		if k < 0 {
			return append(b, raw...)
		}
		b = append(b, raw[:k]...)
		c := raw[k+1]
		raw = raw[k+2:]
		switch c {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := rune(hex4(raw[:4]))
			raw = raw[4:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					r2 = rune(hex4(raw[2:6]))
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					raw = raw[6:]
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, c)
		}
	}
}

// hex4 decodes four hex digits, or returns -1.
func hex4(s string) int {
	if len(s) < 4 {
		return -1
	}
	v := 0
	for i := 0; i < 4; i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | int(c)
	}
	return v
}

// strOrNullRaw is strRaw for a string or null (as "").
func (d *scanner) strOrNullRaw() (raw string, escaped bool, err error) {
	switch d.peek() {
	case '"':
		return d.strRaw()
	case 'n':
		if strings.HasPrefix(d.s[d.i:], "null") {
			d.i += 4
			return "", false, nil
		}
	}
	return "", false, d.failAt("expected a string or null")
}

// strOrNull reads a string or null (as "").
func (d *scanner) strOrNull() (string, error) {
	switch d.peek() {
	case '"':
		return d.str()
	case 'n':
		if strings.HasPrefix(d.s[d.i:], "null") {
			d.i += 4
			return "", nil
		}
	}
	return "", d.failAt("expected a string or null")
}

// skip validates and skips one value of any kind.
func (d *scanner) skip(depth int) error {
	if depth > maxDepth {
		return d.fail("nesting too deep")
	}
	switch c := d.peek(); c {
	case '"':
		end, _, err := d.strEnd()
		if err != nil {
			return err
		}
		d.i = end + 1
		return nil
	case '{':
		d.i++
		for first := true; ; {
			_, ok, err := d.nextKey(&first)
			if err != nil || !ok {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case '[':
		d.i++
		for first := true; ; {
			ok, err := d.nextElem(&first)
			if err != nil || !ok {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return d.number()
		}
		return d.failAt("expected a value")
	}
}

func (d *scanner) literal(lit string) error {
	rest := d.s[d.i:]
	if strings.HasPrefix(rest, lit) {
		d.i += len(lit)
		return nil
	}
	if len(rest) < len(lit) && strings.HasPrefix(lit, rest) {
		d.i = len(d.s)
		return d.fail(errEOF)
	}
	return d.fail("invalid literal")
}

// number skips a number with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *scanner) number() error {
	s, i := d.s, d.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		d.i = i
		return d.fail(errEOF)
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		i = digits(s, i)
	default:
		d.i = i
		return d.fail("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			d.i = j
			return d.failAt("invalid number")
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			d.i = j
			return d.failAt("invalid number")
		}
		i = j
	}
	d.i = i
	return nil
}

func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
