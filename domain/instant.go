package domain

import (
	"errors"
	"strings"
	"time"
)

// Errors returned by ParseInstant; callers branch on them to build messages.
var (
	ErrInstantSyntax    = errors.New("must be an RFC 3339 time such as 2024-05-02T10:00:00+08:00")
	ErrInstantOffset    = errors.New("must have an RFC 3339 offset: Z or ±hh:mm with hh at most 23 and mm at most 59")
	ErrInstantPrecision = errors.New("must not be more precise than a microsecond (6 fractional digits), which is what is stored")
)

// Instant is a point in time together with the UTC offset it was written
// with, so that it is shown back as it was sent: 1900-01-01T00:00:00+08:00
// stays that, instead of becoming the zone's local mean time of 1900.
type Instant struct {
	Time time.Time
	// Offset is the offset as sent, "Z" or "±hh:mm"; "" means none was sent.
	Offset string
}

// ParseInstant parses a strict RFC 3339 time: Go's parser also takes
// offsets such as +24:00, which RFC 3339 forbids, and the log stores
// microseconds, so a finer fraction that is not zero is refused rather than
// cut.
func ParseInstant(s string) (Instant, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Instant{}, ErrInstantSyntax
	}
	offset := ""
	switch {
	case strings.HasSuffix(s, "Z"):
		offset = "Z"
	case len(s) >= 6:
		offset = s[len(s)-6:]
	}
	if !validOffset(offset) {
		return Instant{}, ErrInstantOffset
	}
	if t.Nanosecond()%int(time.Microsecond) != 0 {
		return Instant{}, ErrInstantPrecision
	}
	return Instant{Time: t, Offset: offset}, nil
}

func validOffset(o string) bool {
	if o == "Z" {
		return true
	}
	if len(o) != 6 || (o[0] != '+' && o[0] != '-') || o[3] != ':' || !allDigits(o[1:3]) || !allDigits(o[4:]) {
		return false
	}
	return o[1:3] <= "23" && o[4:] <= "59"
}

// FormatInstant writes t in RFC 3339 with the offset it was sent with, or,
// when none is known, in loc.
func FormatInstant(t time.Time, offset string, loc *time.Location) string {
	if zone, ok := offsetZone(offset); ok {
		return t.In(zone).Format(time.RFC3339Nano)
	}
	return t.In(loc).Format(time.RFC3339Nano)
}

// offsetZone turns a valid sent offset into a fixed zone.
func offsetZone(o string) (*time.Location, bool) {
	if o == "Z" {
		return time.UTC, true
	}
	if !validOffset(o) {
		return nil, false
	}
	secs := (int(o[1]-'0')*10+int(o[2]-'0'))*3600 + (int(o[4]-'0')*10+int(o[5]-'0'))*60
	if o[0] == '-' {
		secs = -secs
	}
	return time.FixedZone(o, secs), true
}
