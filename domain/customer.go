package domain

import (
	"github.com/google/uuid"
)

// CustomerCode is the customer identifier chosen upstream, e.g. "KH202405010001".
type CustomerCode string

// MaxCustomerCodeLen is the longest accepted customer code.
const MaxCustomerCodeLen = 64

// customerStreamNamespace is the UUIDv5 namespace of customer streams. It must
// never change: stream ids of stored events are derived from it.
var customerStreamNamespace = uuid.MustParse("6f1c3a52-7d0e-5b8a-9c43-2f4e8d1b0a77")

// ValidCustomerCode reports whether s is 1–64 letters, digits, '-', '_' or '.'.
// Letters are ASCII only: codes travel in URLs and NATS subjects.
func ValidCustomerCode(s string) bool {
	if s == "" || len(s) > MaxCustomerCodeLen {
		return false
	}
	if s == "." || s == ".." {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// StreamID is the id of the customer's event stream: a UUIDv5 of the code,
// so the same code always maps to the same stream.
func (c CustomerCode) StreamID() uuid.UUID {
	var buf nameBuf
	return nameUUID(append(nameKey(&buf, customerStreamNamespace), c...))
}
