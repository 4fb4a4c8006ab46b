package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// BlindIndex computes keyed digests of normalised personal values (SPEC §10
// duplicates): equal values give equal digests, so duplicates are found by
// comparing digests, and without the key a digest cannot be tested against
// guessed values (a plain hash of an 11-digit phone number could be).
type BlindIndex struct {
	key []byte
}

// NewBlindIndex returns the index of a KeySize-byte key.
func NewBlindIndex(key []byte) (*BlindIndex, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("blind index key must be %d bytes, got %d", KeySize, len(key))
	}
	return &BlindIndex{key: append([]byte(nil), key...)}, nil
}

// Digest is HMAC-SHA256 of the field name, a zero byte and the value: the
// field separates the domains, so a phone never meets an equal name.
func (b *BlindIndex) Digest(field, value string) []byte {
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte(field))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}
