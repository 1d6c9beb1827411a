package twilio

import (
	"strconv"
	"unsafe"
)

// A page body is read into a pooled buffer and decoded in place: the scanner
// returns substrings of it. Nothing decoded may keep pointing into it, or
// every page of a listing would stay in memory until the listing is dropped
// (max_pages × max_response_bytes, 1.6 GB with the defaults), and the buffer
// could not be reused. A keeper copies what an item keeps out of the body:
//
//   - values that repeat in every item of a listing (the account, Service,
//     session and participant SIDs, type, statuses) are interned, one copy
//     per listing;
//   - the rest (the item's own SIDs, URLs, data) go into shared chunks, a
//     few allocations per page rather than one per string;
//   - and everything a listing keeps is counted against its budget, so that
//     whatever a server sends, a listing holds at most MaxListingBytes of
//     text besides its items (at most PageSize per page).
type keeper struct {
	budget   int64 // bytes the listing may still keep
	limit    int64 // the budget at the start, for the error
	maxItems int   // items per page, 0 for no cap
	common   map[string]string
	last     [numSlots]string // the last value interned per field: usually the next one
	chunk    []byte           // free tail of the current chunk
	chunkLen int              // size of the next chunk
}

const (
	// maxCommon bounds the interned values of one listing: a hostile server
	// could make every "status" unique, and those are then copied instead.
	maxCommon = 256
	// maxChunk bounds a chunk; a string over a quarter of a chunk gets its
	// own allocation so that a chunk's tail wastes little.
	maxChunk = 32 << 10
	minChunk = 512
)

// newKeeper returns a keeper for one listing (or one fetch).
func newKeeper(budget int64, maxItems int) *keeper {
	return &keeper{budget: budget, limit: budget, maxItems: maxItems}
}

// page sizes the chunks after the page about to be decoded: the text an
// item keeps is well under half its JSON, so a page needs about one chunk.
func (k *keeper) page(bodyLen int) {
	k.chunkLen = min(max(bodyLen/2, minChunk), maxChunk)
}

// spend takes n bytes from the budget.
func (k *keeper) spend(n int) error {
	k.budget -= int64(n)
	if k.budget < 0 {
		return &DecodeError{Offset: -1, Err: ErrListingTooLarge,
			Reason: "listing keeps more than " + strconv.FormatInt(k.limit, 10) + " bytes of text"}
	}
	return nil
}

// keep returns v with memory of its own: copied out of body if it is a
// substring of it (an unescaped string already is a copy).
func (k *keeper) keep(body, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if err := k.spend(len(v)); err != nil {
		return "", err
	}
	if !within(body, v) {
		return v, nil
	}
	return k.copy(v), nil
}

// Slots of the fields whose values repeat: each remembers its last value,
// which a comparison finds cheaper than a map lookup.
const (
	slotAccount = iota
	slotService
	slotSession
	slotParticipant
	slotInParticipant
	slotOutParticipant
	slotType
	slotInStatus
	slotInType
	slotOutStatus
	slotOutType
	numSlots
)

// intern is keep for values that repeat across the items of a listing.
func (k *keeper) intern(body, v string, slot int) (string, error) {
	if v == "" {
		return "", nil
	}
	if v == k.last[slot] {
		return k.last[slot], nil
	}
	if s, ok := k.common[v]; ok {
		k.last[slot] = s
		return s, nil
	}
	s, err := k.keep(body, v)
	if err != nil {
		return "", err
	}
	if len(k.common) < maxCommon {
		if k.common == nil {
			k.common = make(map[string]string, 16)
		}
		k.common[s] = s
	}
	k.last[slot] = s
	return s, nil
}

// copy copies v into the current chunk, or a new one.
func (k *keeper) copy(v string) string {
	if k.chunkLen == 0 {
		k.chunkLen = minChunk
	}
	if len(v) > k.chunkLen/4 {
		b := make([]byte, len(v))
		copy(b, v)
		return unsafe.String(&b[0], len(b))
	}
	if len(v) > cap(k.chunk) {
		k.chunk = make([]byte, 0, k.chunkLen)
	}
	k.chunk = append(k.chunk, v...)
	s := unsafe.String(&k.chunk[0], len(v))
	// The chunk's head is now owned by s and never written again.
	k.chunk = k.chunk[len(v):]
	return s
}

// keepEscaped unescapes raw (checked by the scanner) into kept memory.
func (k *keeper) keepEscaped(raw string) (string, error) {
	// Charged before the copy, at most len(raw); the rest is refunded.
	if err := k.spend(len(raw)); err != nil {
		return "", err
	}
	if k.chunkLen == 0 {
		k.chunkLen = minChunk
	}
	var b []byte
	if len(raw) > k.chunkLen/4 {
		b = appendUnescaped(make([]byte, 0, len(raw)), raw)
	} else {
		if len(raw) > cap(k.chunk) {
			k.chunk = make([]byte, 0, k.chunkLen)
		}
		// Appends no more than len(raw) bytes: it stays within the chunk.
		b = appendUnescaped(k.chunk[:0], raw)
		k.chunk = k.chunk[len(b):len(b)]
	}
	k.budget += int64(len(raw) - len(b))
	if len(b) == 0 {
		return "", nil
	}
	return unsafe.String(&b[0], len(b)), nil
}

// within reports whether v's bytes lie inside s.
func within(s, v string) bool {
	if len(s) == 0 || len(v) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(v))), uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return p >= lo && p < lo+uintptr(len(s))
}
