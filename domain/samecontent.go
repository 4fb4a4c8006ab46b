package domain

import (
	"bytes"
	"time"
)

// SameContent reports whether two envelopes carrying one event_id say the
// same thing, which makes the second a duplicate of the first (and anything
// else a reused event_id). The same content means: the same type and
// customer; the same occurred_at instant at microsecond precision (both
// absent counts as the same), and the same offset when both offsets are
// known; and data that encodes to the same canonical JSON (EncodeData),
// personal fields compared in plaintext. Provenance is not content: source
// and correlation_id may differ (the same fact imported from two files, or
// relayed by another system), and neither may the event_id itself or
// expected_version.
func SameContent(a, b *Envelope) (bool, error) {
	if a.Type != b.Type || a.Customer != b.Customer {
		return false, nil
	}
	if !a.OccurredAt.Truncate(time.Microsecond).Equal(b.OccurredAt.Truncate(time.Microsecond)) ||
		(a.OccurredOffset != "" && b.OccurredOffset != "" && a.OccurredOffset != b.OccurredOffset) {
		return false, nil
	}
	if a.Data == nil || b.Data == nil {
		return a.Data == nil && b.Data == nil, nil
	}
	da, err := EncodeData(a.Data)
	if err != nil {
		return false, err
	}
	db, err := EncodeData(b.Data)
	if err != nil {
		return false, err
	}
	return bytes.Equal(da, db), nil
}
