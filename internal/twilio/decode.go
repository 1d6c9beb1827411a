package twilio

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/monitord/monitord/internal/proxy"
)

// Decoding rules, the same for every resource:
//
//   - Every field may be null (the spec's own examples send null even where
//     the schema has no nullable flag). Null decodes to "" or the zero time.
//   - An empty string is treated exactly like null, for SIDs, dates and
//     meta.next_page_url alike: Twilio documents several fields as "always
//     empty", a SID pattern cannot match "", and an empty next page URL
//     cannot name a page. Plain strings keep "" either way.
//   - SIDs must match their pattern; a mismatch is a *DecodeError naming the
//     field and the item index ("interactions[3].outbound_resource_sid").
//   - Dates are RFC 3339 as Twilio sends them ("2015-07-30T20:00:00Z"),
//     returned in UTC.
//   - type and the statuses are open strings: unknown values pass through.
//   - Unknown keys are skipped (and still validated as JSON). A known key
//     that occurs twice in one object is an error: which one Twilio meant
//     is unknowable, and encoding/json would silently keep the last.
//   - The body must be valid UTF-8 JSON with one top-level object holding
//     the list key (an array) and meta.next_page_url; anything else is an
//     error and the whole listing is discarded.

// decodePage decodes one list page, appending the items under key to out.
// next is meta.next_page_url ("" when null: the last page). On error out is
// returned at its original length. Nothing returned refers to body's memory.
func decodePage[T any](body, key string, out []T, item func(*scanner, *T) error) (next string, _ []T, err error) {
	return decodePageKeep(body, key, out, newKeeper(math.MaxInt64, 0), item)
}

// decodePageKeep is decodePage with the listing's keeper.
func decodePageKeep[T any](body, key string, out []T, k *keeper, item func(*scanner, *T) error) (next string, _ []T, err error) {
	base := len(out)
	k.page(len(body))
	next, out, err = decodePageInto(body, key, out, k, item)
	if err != nil {
		return "", out[:base], err
	}
	return next, out, nil
}

func decodePageInto[T any](body, key string, out []T, k *keeper, item func(*scanner, *T) error) (string, []T, error) {
	if !utf8.ValidString(body) {
		return "", out, &DecodeError{Offset: -1, Reason: "body is not valid UTF-8"}
	}
	d := scanner{s: body, k: k}
	if err := d.openObject(); err != nil {
		return "", out, err
	}
	var next string
	var haveItems, haveMeta, haveNext bool
	for first := true; ; {
		k, ok, err := d.nextKey(&first)
		if err != nil {
			return "", out, err
		}
		if !ok {
			break
		}
		switch k {
		case key:
			if haveItems {
				return "", out, d.fail("duplicate key " + quoteShort(k))
			}
			haveItems = true
			out, err = decodeItems(&d, out, item)
			if err != nil {
				return "", out, inField(err, key)
			}
		case "meta":
			if haveMeta {
				return "", out, d.fail("duplicate key \"meta\"")
			}
			haveMeta = true
			next, haveNext, err = d.meta()
			if err != nil {
				return "", out, inField(err, "meta")
			}
		default:
			if err := d.skip(1); err != nil {
				return "", out, inField(err, k)
			}
		}
	}
	if err := d.end(); err != nil {
		return "", out, err
	}
	if !haveItems {
		return "", out, &DecodeError{Offset: -1, Reason: "no " + quoteShort(key) + " array: not a list page"}
	}
	if !haveNext {
		return "", out, &DecodeError{Path: "meta.next_page_url", Offset: -1, Reason: "missing: cannot tell whether more pages follow"}
	}
	return next, out, nil
}

// decodeItems decodes an array of items in place at the end of out, so an
// item is written once rather than built and copied.
func decodeItems[T any](d *scanner, out []T, item func(*scanner, *T) error) ([]T, error) {
	if err := d.openArray(); err != nil {
		return out, err
	}
	var zero T
	for first, i := true, 0; ; i++ {
		ok, err := d.nextElem(&first)
		if err != nil || !ok {
			return out, err
		}
		if d.k.maxItems > 0 && i == d.k.maxItems {
			// Twilio never sends more than the PageSize asked for; a page
			// of millions of tiny items would otherwise cost memory
			// unrelated to its size.
			return out, d.fail("more than " + strconv.Itoa(d.k.maxItems) + " items, the page size asked for")
		}
		out = append(out, zero)
		if err := item(d, &out[len(out)-1]); err != nil {
			return out, inItem(err, i)
		}
	}
}

// meta reads the page's meta object; only next_page_url matters (paging
// never builds a URL, never trusts page or page_size).
func (d *scanner) meta() (next string, found bool, err error) {
	if err := d.openObject(); err != nil {
		return "", false, err
	}
	for first := true; ; {
		key, ok, err := d.nextKey(&first)
		if err != nil || !ok {
			return next, found, err
		}
		if key != "next_page_url" {
			if err := d.skip(2); err != nil {
				return "", false, inField(err, key)
			}
			continue
		}
		if found {
			return "", false, d.fail("duplicate key \"next_page_url\"")
		}
		found = true
		if next, err = d.strOrNull(); err != nil {
			return "", false, inField(err, key)
		}
		next = strings.Clone(next) // outlives the body's buffer
	}
}

// decodeOne decodes a single resource (a fetch), the whole body. Nothing
// decoded refers to body's memory.
func decodeOne[T any](body string, v *T, item func(*scanner, *T) error) error {
	if !utf8.ValidString(body) {
		return &DecodeError{Offset: -1, Reason: "body is not valid UTF-8"}
	}
	k := newKeeper(math.MaxInt64, 0)
	k.page(len(body))
	d := scanner{s: body, k: k}
	if err := item(&d, v); err != nil {
		return err
	}
	return d.end()
}

// sid reads a SID field (string or null), checks its pattern and stores it
// in canonical form (CanonicalSID); prefix "" accepts any two letters.
func (d *scanner) sid(dst *string, prefix string) error {
	return d.sidKeep(dst, prefix, -1)
}

// sidCommon is sid for a SID that repeats in every item of a listing.
func (d *scanner) sidCommon(dst *string, prefix string, slot int) error {
	return d.sidKeep(dst, prefix, slot)
}

// sidKeep reads a SID and keeps it, interned in slot unless that is -1.
func (d *scanner) sidKeep(dst *string, prefix string, slot int) error {
	v, ok := d.quotedSID(prefix)
	if ok {
		return d.keepSID(dst, v, slot)
	}
	start := d.i
	v, err := d.strOrNull()
	if err != nil {
		return err
	}
	if v != "" && !proxy.ValidSID(prefix, v) {
		p := prefix
		if p == "" {
			p = "[a-zA-Z]{2}"
		}
		return &DecodeError{Offset: start, Reason: quoteShort(v) + " does not match ^" + p + "[0-9a-fA-F]{32}$"}
	}
	return d.keepSID(dst, proxy.CanonicalSID(v), slot)
}

// keepSID keeps a checked, canonical SID, interned in slot unless -1.
func (d *scanner) keepSID(dst *string, v string, slot int) (err error) {
	if slot < 0 {
		*dst, err = d.k.keep(d.s, v)
	} else {
		*dst, err = d.k.intern(d.s, v, slot)
	}
	return err
}

// quotedSID is the common case of sidKeep in one pass: at d.i (after
// whitespace) a quote, a SID with prefix in canonical form (lower-case
// hex), and a quote. Such a string holds nothing that the general path
// (strEnd, proxy.ValidSID, proxy.CanonicalSID: three passes over the same
// 34 bytes, a sixth of decoding) would act on, so it gives the same value.
// Anything else (null, upper-case hex, a bad SID) returns false with d.i
// unmoved but for whitespace, for the general path and its errors.
func (d *scanner) quotedSID(prefix string) (string, bool) {
	const n = 34
	if d.peek() != '"' || d.i+n+1 >= len(d.s) || d.s[d.i+n+1] != '"' {
		return "", false
	}
	v := d.s[d.i+1 : d.i+n+1]
	if prefix != "" {
		if v[:2] != prefix {
			return "", false
		}
	} else if !isLetter(v[0]) || !isLetter(v[1]) {
		return "", false
	}
	for i := 2; i < n; i++ {
		if !lowerHex[v[i]] {
			return "", false
		}
	}
	d.i += n + 2
	return v, true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// lowerHex marks the hex digits of a canonical SID.
var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

// text reads a plain string field (string or null).
func (d *scanner) text(dst *string) error {
	raw, escaped, err := d.strOrNullRaw()
	switch {
	case err != nil:
	case escaped: // data, mostly: unescaped straight into kept memory
		*dst, err = d.k.keepEscaped(raw)
	default:
		*dst, err = d.k.keep(d.s, raw)
	}
	return err
}

// textCommon is text for a value from a small set (type, a status).
func (d *scanner) textCommon(dst *string, slot int) error {
	v, err := d.strOrNull()
	if err == nil {
		*dst, err = d.k.intern(d.s, v, slot)
	}
	return err
}

// date reads an RFC 3339 date-time field (string or null).
func (d *scanner) date(dst *time.Time) error {
	start := d.i
	v, err := d.strOrNull()
	if err != nil || v == "" {
		return err
	}
	if t, ok := parseUTCSeconds(v); ok {
		*dst = t
		return nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return &DecodeError{Offset: start, Reason: quoteShort(v) + " is not an RFC 3339 date-time"}
	}
	*dst = t.UTC()
	return nil
}

// parseUTCSeconds parses the one layout Twilio sends, "2006-01-02T15:04:05Z",
// without time.Parse's generality. It only accepts what time.Parse accepts
// with the same result; anything else (fractions, offsets, odd values) is
// left to time.Parse.
func parseUTCSeconds(s string) (time.Time, bool) {
	if len(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

func num(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
