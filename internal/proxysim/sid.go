package proxysim

import (
	"encoding/binary"
	"encoding/hex"
)

// SIDs are not stored: every resource of the generated world is addressed by
// small indexes (service, session, participant, interaction), and its SID is
// those indexes sealed with a seed-keyed Feistel permutation. That makes SIDs
// look random like Twilio's, keeps them stable for a seed, and lets a request
// path be decoded back to indexes without a lookup table — the reason the
// simulator can serve millions of interactions in a few megabytes.

// Kinds of sealed identifiers; each yields a distinct SID space.
const (
	kindService byte = iota + 1
	kindSession
	kindParticipant
	kindInteraction
	kindOutboundMessage
	kindInboundMessage
	kindAccount
	kindAuthToken
	kindAPIKey
	kindAPISecret
	kindPhoneNumber
	kindPageToken
	kindMessagingService
)

// addedFlag marks indexes created through the Go API (OpenSession,
// AddInteraction) rather than generated from the seed.
const addedFlag = 1 << 31

// ixKey addresses one interaction (or, with idx unused, a participant or a
// session) of the world.
type ixKey struct {
	svc  uint16
	sess uint32
	part uint8
	idx  uint32
}

func (k ixKey) session() ixKey     { return ixKey{svc: k.svc, sess: k.sess} }
func (k ixKey) participant() ixKey { return ixKey{svc: k.svc, sess: k.sess, part: k.part} }

// sealer seals and opens identifiers for one seed.
type sealer struct {
	seed uint64
	keys [4]uint64
}

func newSealer(seed uint64) sealer {
	s := sealer{seed: seed}
	x := seed
	for i := range s.keys {
		x = splitmix(x + uint64(i) + 0x5eed)
		s.keys[i] = x
	}
	return s
}

// splitmix is SplitMix64's finaliser: a cheap, well-mixing 64-bit hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (s sealer) check(kind byte, k ixKey) uint32 {
	h := splitmix(s.seed ^ uint64(kind)<<56 ^ uint64(k.svc)<<40 ^ uint64(k.part)<<32 ^ uint64(k.sess))
	return uint32(splitmix(h ^ uint64(k.idx)))
}

// seal returns the 16 bytes behind a SID's 32 hex digits.
func (s sealer) seal(kind byte, k ixKey) [16]byte {
	var b [16]byte
	b[0] = kind
	binary.BigEndian.PutUint16(b[1:], k.svc)
	binary.BigEndian.PutUint32(b[3:], k.sess)
	b[7] = k.part
	binary.BigEndian.PutUint32(b[8:], k.idx)
	binary.BigEndian.PutUint32(b[12:], s.check(kind, k))
	l, r := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for _, key := range s.keys {
		l, r = r, l^splitmix(r^key)
	}
	binary.BigEndian.PutUint64(b[:8], l)
	binary.BigEndian.PutUint64(b[8:], r)
	return b
}

// open reverses seal; ok is false for bytes no seal of this kind produced.
func (s sealer) open(kind byte, b [16]byte) (ixKey, bool) {
	l, r := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for i := len(s.keys) - 1; i >= 0; i-- {
		l, r = r^splitmix(l^s.keys[i]), l
	}
	binary.BigEndian.PutUint64(b[:8], l)
	binary.BigEndian.PutUint64(b[8:], r)
	if b[0] != kind {
		return ixKey{}, false
	}
	k := ixKey{
		svc:  binary.BigEndian.Uint16(b[1:]),
		sess: binary.BigEndian.Uint32(b[3:]),
		part: b[7],
		idx:  binary.BigEndian.Uint32(b[8:]),
	}
	if binary.BigEndian.Uint32(b[12:]) != s.check(kind, k) {
		return ixKey{}, false
	}
	return k, true
}

// appendSID appends prefix and the sealed key as 32 lower-case hex digits.
func (s sealer) appendSID(dst []byte, prefix string, kind byte, k ixKey) []byte {
	b := s.seal(kind, k)
	dst = append(dst, prefix...)
	return hex.AppendEncode(dst, b[:])
}

func (s sealer) sid(prefix string, kind byte, k ixKey) string {
	return string(s.appendSID(make([]byte, 0, 34), prefix, kind, k))
}

// parseSID opens a SID with the given prefix and kind.
func (s sealer) parseSID(prefix string, kind byte, sid string) (ixKey, bool) {
	if len(sid) != 34 || sid[:2] != prefix {
		return ixKey{}, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(sid[2:])); err != nil {
		return ixKey{}, false
	}
	return s.open(kind, b)
}

// pageToken seals "continue after key" for the listing at scope. Twilio's
// tokens are opaque; so are these. The scope keys the seal, so a token minted
// for another listing, or edited, fails to open.
func (s sealer) pageToken(scope string, after uint64) string {
	k := ixKey{svc: uint16(after >> 48), sess: uint32(after >> 16), idx: uint32(after & 0xffff)}
	return s.scoped(scope).sid("PA", kindPageToken, k)
}

func (s sealer) parsePageToken(scope, tok string) (uint64, bool) {
	k, ok := s.scoped(scope).parseSID("PA", kindPageToken, tok)
	if !ok || k.part != 0 || k.idx > 0xffff {
		return 0, false
	}
	return uint64(k.svc)<<48 | uint64(k.sess)<<16 | uint64(k.idx), true
}

func (s sealer) scoped(scope string) sealer {
	return newSealer(s.seed ^ uint64(fnv32(scope))<<32 ^ 0x70a6e)
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
