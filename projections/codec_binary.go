package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// The stored projection document in a compact binary form. The projector
// rewrites a customer's document at every event of the customer, so its
// size is paid again and again: encoding it, copying it through the driver,
// and in PostgreSQL, where a row over ~2 KB goes through the TOAST path
// (compression and an extra WAL record at each update). As JSON a typical
// document was ~2.5 KB; in this form it is well under half that, and
// encoding it is a few appends per field (docs/BENCHMARKS.md, session 8).
//
// The layout is storedProjection's fields in declaration order: integers as
// varints, strings and lists length-prefixed, times as (offset kind, Unix
// seconds, nanoseconds) so that they come back with the offset they had, as
// from JSON. A list or map of length 0 decodes as nil: the domain never
// tells an empty one from nil, and this keeps documents byte-identical
// however they were produced. Maps are written in key order.
//
// The first byte is the format: docBinaryV5, which adds the values of the
// operator-defined labels (name, value pairs after the alerts) to
// docBinaryV4, which adds the latest
// recommendation score to the state and the value facts of SPEC §11 to the
// facts (after profile_missing), to docBinaryV3, which adds each alert's
// acknowledged_at, snoozed_until and escalated_at (SPEC §8) to docBinaryV2,
// which adds each alert's delivery suppression reason (empty: delivered) to
// docBinaryV1. V1 to V3 documents, and those stored as JSON by earlier
// versions (beginning with '{'), are still read (decodeProjection, which
// recomputes the value facts an older document lacks).
const (
	docBinaryV1 = 0x01
	docBinaryV2 = 0x02
	docBinaryV3 = 0x03
	docBinaryV4 = 0x04
	docBinaryV5 = 0x05
)

// errBadDocument: a binary document that is truncated or malformed.
var errBadDocument = errors.New("malformed binary projection document")

// appendBinaryProjection appends sp's binary document to b.
func appendBinaryProjection(b []byte, sp *storedProjection) []byte {
	return appendBinaryProjectionAs(b, sp, docBinaryV5)
}

// appendBinaryProjectionAs writes sp in format (V3 or V4: tests write the
// older one to check it is still read).
func appendBinaryProjectionAs(b []byte, sp *storedProjection, format byte) []byte {
	w := binWriter{b: append(b, format), format: format}
	w.state(&sp.State)
	w.str(sp.ValueTier)
	w.str(sp.Activity)
	w.str(sp.Need)
	w.str(sp.Lifecycle)
	w.strings(sp.Tags)
	f := &sp.Facts
	w.varint(int64(f.NetAmount))
	w.varint(f.OrderCount)
	w.varint(f.Orders3m)
	w.varint(f.Orders6m)
	w.varint(f.Inquiries3m)
	w.varint(f.InquiryCount)
	w.varint(f.LatestSatisfaction)
	w.bool(f.HasSatisfaction)
	w.b = append(w.b, f.ProfileMissing)
	if format >= docBinaryV4 {
		w.valueFacts(f)
	}
	w.varint(int64(sp.RuleVersion))
	w.time(sp.EvaluatedAt)
	w.time(sp.Next)
	w.uvarint(uint64(len(sp.Since)))
	if len(sp.Since) > 0 {
		keys := make([]string, 0, len(sp.Since))
		for k := range sp.Since {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w.str(k)
			w.time(sp.Since[k])
		}
	}
	w.uvarint(uint64(len(sp.Alerts)))
	for i := range sp.Alerts {
		a := &sp.Alerts[i]
		w.uuid(a.ID)
		w.str(a.Kind)
		w.str(a.From)
		w.str(a.To)
		w.time(a.CreatedAt)
		w.time(a.DueAt)
		w.str(a.Owner)
		w.str(a.Status)
		w.time(a.ResolvedAt)
		w.uuid(a.ResolvedBy)
		w.varint(int64(a.RuleVersion))
		w.uuid(a.Escalates)
		w.str(a.Suppressed)
		w.time(a.AcknowledgedAt)
		w.time(a.SnoozedUntil)
		w.time(a.EscalatedAt)
	}
	if format >= docBinaryV5 {
		w.strings(sp.Dims)
	}
	return w.b
}

type binWriter struct {
	b      []byte
	format byte
}

func (w *binWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *binWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *binWriter) uuid(u uuid.UUID) { w.b = append(w.b, u[:]...) }

func (w *binWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *binWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *binWriter) strings(v []string) {
	w.uvarint(uint64(len(v)))
	for _, s := range v {
		w.str(s)
	}
}

// Offset kinds of a time.
const (
	timeZero   = 0 // the zero time.Time
	timeUTC    = 1 // offset 0, read back in UTC (as RFC 3339's "Z")
	timeOffset = 2 // followed by the offset east of UTC in seconds
)

func (w *binWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, timeZero)
		return
	}
	if _, off := t.Zone(); off == 0 {
		w.b = append(w.b, timeUTC)
	} else {
		w.b = append(w.b, timeOffset)
		w.varint(int64(off))
	}
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond())) //nolint:gosec // G115: 0 ≤ nanoseconds < 1e9
}

func (w *binWriter) state(s *domain.CustomerState) {
	w.str(string(s.Customer))
	w.varint(s.Version)
	p := &s.Profile
	w.bool(p.Registered)
	w.str(p.Name)
	w.str(string(p.Kind))
	w.str(p.Industry)
	w.str(p.Region)
	w.bool(p.Employees != nil)
	if p.Employees != nil {
		w.varint(*p.Employees)
	}
	w.bool(p.AnnualRevenue != nil)
	if p.AnnualRevenue != nil {
		w.varint(int64(*p.AnnualRevenue))
	}
	w.str(p.SourceChannel)
	w.str(p.Owner)
	w.str(p.Contact.Name)
	w.str(p.Contact.Title)
	w.str(p.Contact.Phone)
	w.str(p.Contact.Email)
	w.bool(p.Erased)
	w.uvarint(uint64(len(s.Orders)))
	for i := range s.Orders {
		o := &s.Orders[i]
		w.str(o.ID)
		w.varint(int64(o.Amount))
		w.varint(int64(o.Refunded))
		w.time(o.At)
	}
	w.varint(int64(s.NetAmount))
	w.time(s.LastOrderAt)
	w.uvarint(uint64(len(s.Inquiries)))
	for _, t := range s.Inquiries {
		w.time(t)
	}
	writeTimed(w, s.Satisfaction, func(v int) { w.varint(int64(v)) })
	writeTimed(w, s.CoreNeeds, w.strings)
	writeTimed(w, s.Preference, w.str)
	writeTimed(w, s.Sensitivity, w.str)
	writeTimed(w, s.LastFollowUp, w.uuid)
	if w.format >= docBinaryV4 {
		writeTimed(w, s.Recommendation, func(v int) { w.varint(int64(v)) })
	}
}

// valueFacts writes the facts of SPEC §11 (docBinaryV4).
func (w *binWriter) valueFacts(f *domain.Facts) {
	for _, v := range []int64{int64(f.AvgOrderValue), f.FirstOrderAt, int64(f.Sales6m), int64(f.SalesPrev6m), f.OrdersPrev6m,
		f.Growth6m, int64(f.RFMRecency), int64(f.RFMFrequency), int64(f.RFMMonetary), int64(f.LTVPredicted), f.RecommendationScore} {
		w.varint(v)
	}
	w.bool(f.HasGrowth6m)
	w.bool(f.HasRecommendation)
}

// valueFacts reads what binWriter.valueFacts wrote.
func (r *binReader) valueFacts(f *domain.Facts) {
	f.AvgOrderValue = domain.Money(r.varint())
	f.FirstOrderAt = r.varint()
	f.Sales6m = domain.Money(r.varint())
	f.SalesPrev6m = domain.Money(r.varint())
	f.OrdersPrev6m = r.varint()
	f.Growth6m = r.varint()
	f.RFMRecency = r.score()
	f.RFMFrequency = r.score()
	f.RFMMonetary = r.score()
	f.LTVPredicted = domain.Money(r.varint())
	f.RecommendationScore = r.varint()
	f.HasGrowth6m = r.bool()
	f.HasRecommendation = r.bool()
}

// score reads an RFM score (0–5).
func (r *binReader) score() int8 {
	v := r.varint()
	if v < 0 || v > 5 {
		r.fail("bad RFM score")
		return 0
	}
	return int8(v)
}

// writeTimed writes whether t is present and, if so, its value and instant.
func writeTimed[T any](w *binWriter, t *domain.Timed[T], value func(T)) {
	w.bool(t != nil)
	if t != nil {
		value(t.Value)
		w.time(t.At)
	}
}

// readTimed reads what writeTimed wrote.
func readTimed[T any](r *binReader, value func() T) *domain.Timed[T] {
	if !r.bool() {
		return nil
	}
	return &domain.Timed[T]{Value: value(), At: r.time()}
}

// decodeBinaryProjection reads a document appendBinaryProjection wrote.
func decodeBinaryProjection(b []byte) (storedProjection, error) {
	var sp storedProjection
	if len(b) == 0 || (b[0] < docBinaryV1 || b[0] > docBinaryV5) {
		return sp, fmt.Errorf("%w: unknown format", errBadDocument)
	}
	withSuppression := b[0] >= docBinaryV2
	lifecycle := b[0] >= docBinaryV3
	value := b[0] >= docBinaryV4
	withDims := b[0] >= docBinaryV5
	r := binReader{b: b[1:]}
	r.state(&sp.State, value)
	sp.ValueTier = r.str()
	sp.Activity = r.str()
	sp.Need = r.str()
	sp.Lifecycle = r.str()
	sp.Tags = r.strings()
	f := &sp.Facts
	f.NetAmount = domain.Money(r.varint())
	f.OrderCount = r.varint()
	f.Orders3m = r.varint()
	f.Orders6m = r.varint()
	f.Inquiries3m = r.varint()
	f.InquiryCount = r.varint()
	f.LatestSatisfaction = r.varint()
	f.HasSatisfaction = r.bool()
	f.ProfileMissing = r.byte()
	if value {
		r.valueFacts(f)
	}
	sp.RuleVersion = r.int()
	sp.EvaluatedAt = r.time()
	sp.Next = r.time()
	if n := r.count(2); n > 0 {
		sp.Since = make(map[string]time.Time, n)
		for range n {
			k := r.str()
			sp.Since[k] = r.time()
		}
	}
	if n := r.count(16 + 9); n > 0 {
		sp.Alerts = make([]storedAlert, n)
		for i := range sp.Alerts {
			a := &sp.Alerts[i]
			a.ID = r.uuid()
			a.Kind = r.str()
			a.From = r.str()
			a.To = r.str()
			a.CreatedAt = r.time()
			a.DueAt = r.time()
			a.Owner = r.str()
			a.Status = r.str()
			a.ResolvedAt = r.time()
			a.ResolvedBy = r.uuid()
			a.RuleVersion = r.int()
			a.Escalates = r.uuid()
			if withSuppression {
				a.Suppressed = r.str()
			}
			if lifecycle {
				a.AcknowledgedAt = r.time()
				a.SnoozedUntil = r.time()
				a.EscalatedAt = r.time()
			}
		}
	}
	if withDims {
		sp.Dims = r.strings()
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return storedProjection{}, r.err
	}
	return sp, nil
}

// binReader reads a binary document; the first error sticks and every later
// read returns a zero value.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errBadDocument, what)
	}
	r.b = nil
}

func (r *binReader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }
func (r *binReader) varint() int64   { return readVarint(r, binary.Varint) }

// readVarint reads one value with decode (binary.Uvarint or binary.Varint).
func readVarint[T int64 | uint64](r *binReader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int is a varint that must fit an int.
func (r *binReader) int() int {
	v := r.varint()
	if v < math.MinInt || v > math.MaxInt {
		r.fail("integer out of range")
		return 0
	}
	return int(v)
}

func (r *binReader) byte() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *binReader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail("bad boolean")
		return false
	}
}

// count reads a length of items at least minSize bytes each, refused when
// the rest of the document cannot hold them (no huge allocation on bad input).
func (r *binReader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minSize) { //nolint:gosec // G115: a length is never negative
		r.fail("length beyond the document")
		return 0
	}
	return int(n) //nolint:gosec // G115: bounded by len(r.b) above
}

func (r *binReader) str() string {
	n := r.count(1)
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *binReader) strings() []string {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.str()
	}
	return v
}

func (r *binReader) uuid() uuid.UUID {
	var u uuid.UUID
	if len(r.b) < len(u) {
		r.fail("truncated")
		return u
	}
	copy(u[:], r.b)
	r.b = r.b[len(u):]
	return u
}

func (r *binReader) time() time.Time {
	var loc *time.Location
	switch r.byte() {
	case timeZero:
		return time.Time{}
	case timeUTC:
		loc = time.UTC
	case timeOffset:
		off := r.varint()
		if off == 0 || off <= -24*3600 || off >= 24*3600 {
			r.fail("bad time offset")
			return time.Time{}
		}
		loc = fixedZone(int(off))
	default:
		r.fail("bad time kind")
		return time.Time{}
	}
	sec, nsec := r.varint(), r.uvarint()
	if nsec >= 1e9 {
		r.fail("bad nanoseconds")
		return time.Time{}
	}
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).In(loc)
}

// fixedZones holds one *time.Location per offset met (a document has a few
// times in each of very few offsets; time.FixedZone allocates).
var fixedZones sync.Map // int → *time.Location

func fixedZone(off int) *time.Location {
	if l, ok := fixedZones.Load(off); ok {
		if loc, ok := l.(*time.Location); ok {
			return loc
		}
	}
	loc := time.FixedZone("", off)
	fixedZones.Store(off, loc)
	return loc
}

func (r *binReader) state(s *domain.CustomerState, value bool) {
	s.Customer = domain.CustomerCode(r.str())
	s.Version = r.varint()
	p := &s.Profile
	p.Registered = r.bool()
	p.Name = r.str()
	p.Kind = domain.CustomerKind(r.str())
	p.Industry = r.str()
	p.Region = r.str()
	if r.bool() {
		v := r.varint()
		p.Employees = &v
	}
	if r.bool() {
		v := domain.Money(r.varint())
		p.AnnualRevenue = &v
	}
	p.SourceChannel = r.str()
	p.Owner = r.str()
	p.Contact.Name = r.str()
	p.Contact.Title = r.str()
	p.Contact.Phone = r.str()
	p.Contact.Email = r.str()
	p.Erased = r.bool()
	if n := r.count(4); n > 0 {
		s.Orders = make([]domain.OrderRecord, n)
		for i := range s.Orders {
			o := &s.Orders[i]
			o.ID = r.str()
			o.Amount = domain.Money(r.varint())
			o.Refunded = domain.Money(r.varint())
			o.At = r.time()
		}
	}
	s.NetAmount = domain.Money(r.varint())
	s.LastOrderAt = r.time()
	if n := r.count(1); n > 0 {
		s.Inquiries = make([]time.Time, n)
		for i := range s.Inquiries {
			s.Inquiries[i] = r.time()
		}
	}
	s.Satisfaction = readTimed(r, r.int)
	s.CoreNeeds = readTimed(r, r.strings)
	s.Preference = readTimed(r, r.str)
	s.Sensitivity = readTimed(r, r.str)
	s.LastFollowUp = readTimed(r, r.uuid)
	if value {
		s.Recommendation = readTimed(r, r.int)
	}
}
