package domain

import (
	"crypto/sha1" //nolint:gosec // G505: UUIDv5 is defined over SHA-1; these ids are names, not secrets
	"encoding/hex"

	"github.com/google/uuid"
)

// Name-based (version 5) UUIDs, built as uuid.NewSHA1 builds them but
// without its allocations (a hash object, a copy of the name, the digest):
// the projector derives a stream id, change ids and alert ids for every
// event, and in a rebuild these were about a tenth of all allocations.
//
//	k := nameKey(&buf, ns) // the namespace, then the caller appends the name
//	id := nameUUID(k)

// nameBuf holds a hash input on the caller's stack; longer names spill to
// the heap and stay correct.
type nameBuf [256]byte

// nameKey starts the hash input of a name in namespace ns.
func nameKey(buf *nameBuf, ns uuid.UUID) []byte {
	return append(buf[:0], ns[:]...)
}

// nameUUID is the version 5 UUID of a hash input begun by nameKey.
func nameUUID(key []byte) uuid.UUID {
	sum := sha1.Sum(key) //nolint:gosec // G401: see the import
	var u uuid.UUID
	copy(u[:], sum[:len(u)])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// appendUUIDText appends u in its canonical text form (as u.String()).
func appendUUIDText(b []byte, u uuid.UUID) []byte {
	var t [36]byte
	hex.Encode(t[0:8], u[0:4])
	t[8] = '-'
	hex.Encode(t[9:13], u[4:6])
	t[13] = '-'
	hex.Encode(t[14:18], u[6:8])
	t[18] = '-'
	hex.Encode(t[19:23], u[8:10])
	t[23] = '-'
	hex.Encode(t[24:], u[10:])
	return append(b, t[:]...)
}
