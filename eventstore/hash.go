package eventstore

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// HashSize is the size of an event hash (SHA-256).
const HashSize = sha256.Size

// genesisHash is the "previous hash" of a stream's first event.
var genesisHash = make([]byte, HashSize)

// hashInput is everything an event's hash covers.
type hashInput struct {
	Prev       []byte
	Position   int64
	StreamID   uuid.UUID
	Customer   string
	Version    int64
	EventID    uuid.UUID
	Type       string
	OccurredAt time.Time
	RecordedAt time.Time
	Data       []byte
	Metadata   []byte
}

// computeHash returns the chained hash of one event: SHA-256 over the
// previous event's hash in the same stream and every stored field, each
// length-prefixed so no two different events encode alike. Times are taken
// at microsecond precision, which is what PostgreSQL stores.
func computeHash(in hashInput) []byte {
	h := sha256.New()
	var buf [8]byte
	writeBytes := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	writeInt := func(v int64) {
		binary.BigEndian.PutUint64(buf[:], uint64(v)) //nolint:gosec // two's-complement bits, hashed, not used as a number
		h.Write(buf[:])
	}
	h.Write([]byte("segments/event/v1\x00"))
	writeBytes(in.Prev)
	writeInt(in.Position)
	h.Write(in.StreamID[:])
	writeBytes([]byte(in.Customer))
	writeInt(in.Version)
	h.Write(in.EventID[:])
	writeBytes([]byte(in.Type))
	writeInt(in.OccurredAt.UnixMicro())
	writeInt(in.RecordedAt.UnixMicro())
	writeBytes(in.Data)
	writeBytes(in.Metadata)
	return h.Sum(nil)
}
