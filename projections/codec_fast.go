package projections

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// A hand-written encoder of storedProjection. json.Marshal spends most of a
// steady-state customer update in reflection over this document; this one
// writes the very same bytes (struct fields in declaration order, omitzero
// as the library applies it, nil slices as [], map keys sorted bytewise,
// times as RFC 3339 with nanoseconds, strings quoted by jsontext). Anything
// it does not handle exactly as the library does (invalid UTF-8, times the
// library refuses) makes it give up: the caller then uses json.Marshal. TestEncodeProjectionMatchesJSON holds it to that.

var errFastEncode = errors.New("fast projection encoding not applicable")

type docWriter struct {
	b   []byte
	err error
}

func (w *docWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *docWriter) str(s string) {
	if w.err != nil {
		return
	}
	w.b, w.err = jsontext.AppendQuote(w.b, s)
}

func (w *docWriter) int(v int64) { w.b = strconv.AppendInt(w.b, v, 10) }

func (w *docWriter) bool(v bool) { w.b = strconv.AppendBool(w.b, v) }

func (w *docWriter) money(m domain.Money) {
	w.b = append(w.b, '"')
	w.b = append(w.b, m.String()...)
	w.b = append(w.b, '"')
}

func (w *docWriter) uuid(u uuid.UUID) {
	var buf [36]byte
	hexUUID(&buf, &u)
	w.b = append(w.b, '"')
	w.b = append(w.b, buf[:]...)
	w.b = append(w.b, '"')
}

func (w *docWriter) time(t time.Time) {
	if w.err != nil {
		return
	}
	w.b = append(w.b, '"')
	n0 := len(w.b)
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	s := w.b[n0:]
	// The library refuses these (see its timeArshaler): leave it to it.
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' {
		w.err = errFastEncode
		return
	}
	if s[len(s)-1] != 'Z' {
		c := s[len(s)-len("Z07:00")]
		if ('0' <= c && c <= '9') || (s[len(s)-5]-'0')*10+(s[len(s)-4]-'0') >= 24 {
			w.err = errFastEncode
			return
		}
	}
	w.b = append(w.b, '"')
}

func (w *docWriter) strings(v []string) {
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.str(s)
	}
	w.b = append(w.b, ']')
}

func (w *docWriter) times(v []time.Time) {
	w.b = append(w.b, '[')
	for i, t := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.time(t)
	}
	w.b = append(w.b, ']')
}

func appendStoredProjection(b []byte, sp *storedProjection) ([]byte, error) {
	w := &docWriter{b: b}
	w.raw(`{"state":`)
	w.state(&sp.State)
	w.raw(`,"value_tier":`)
	w.str(sp.ValueTier)
	w.raw(`,"activity":`)
	w.str(sp.Activity)
	w.raw(`,"need_orientation":`)
	w.str(sp.Need)
	w.raw(`,"lifecycle":`)
	w.str(sp.Lifecycle)
	if sp.Tags != nil {
		w.raw(`,"tags":`)
		w.strings(sp.Tags)
	}
	w.raw(`,"facts":`)
	w.facts(&sp.Facts)
	w.raw(`,"rule_version":`)
	w.int(int64(sp.RuleVersion))
	w.raw(`,"evaluated_at":`)
	w.time(sp.EvaluatedAt)
	if !sp.Next.IsZero() {
		w.raw(`,"next":`)
		w.time(sp.Next)
	}
	if sp.Since != nil {
		w.raw(`,"since":{`)
		keys := make([]string, 0, len(sp.Since))
		for k := range sp.Since {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				w.raw(",")
			}
			w.str(k)
			w.raw(":")
			w.time(sp.Since[k])
		}
		w.raw("}")
	}
	if sp.Alerts != nil {
		w.raw(`,"alerts":[`)
		for i := range sp.Alerts {
			if i > 0 {
				w.raw(",")
			}
			w.alert(&sp.Alerts[i])
		}
		w.raw("]")
	}
	w.raw("}")
	return w.b, w.err
}

func (w *docWriter) state(s *domain.CustomerState) {
	w.raw(`{"customer":`)
	w.str(string(s.Customer))
	w.raw(`,"version":`)
	w.int(s.Version)
	w.raw(`,"profile":`)
	w.profile(&s.Profile)
	if s.Orders != nil {
		w.raw(`,"orders":[`)
		for i := range s.Orders {
			if i > 0 {
				w.raw(",")
			}
			o := &s.Orders[i]
			w.raw(`{"id":`)
			w.str(o.ID)
			w.raw(`,"amount":`)
			w.money(o.Amount)
			if o.Refunded != 0 {
				w.raw(`,"refunded":`)
				w.money(o.Refunded)
			}
			w.raw(`,"at":`)
			w.time(o.At)
			w.raw("}")
		}
		w.raw("]")
	}
	w.raw(`,"net_amount":`)
	w.money(s.NetAmount)
	if !s.LastOrderAt.IsZero() {
		w.raw(`,"last_order_at":`)
		w.time(s.LastOrderAt)
	}
	if s.Inquiries != nil {
		w.raw(`,"inquiries":`)
		w.times(s.Inquiries)
	}
	if t := s.Satisfaction; t != nil {
		w.raw(`,"satisfaction":{"value":`)
		w.int(int64(t.Value))
		w.raw(`,"at":`)
		w.time(t.At)
		w.raw("}")
	}
	if t := s.CoreNeeds; t != nil {
		w.raw(`,"core_needs":{"value":`)
		w.strings(t.Value)
		w.raw(`,"at":`)
		w.time(t.At)
		w.raw("}")
	}
	if t := s.Preference; t != nil {
		w.raw(`,"communication_preference":{"value":`)
		w.str(t.Value)
		w.raw(`,"at":`)
		w.time(t.At)
		w.raw("}")
	}
	if t := s.Sensitivity; t != nil {
		w.raw(`,"price_sensitivity":{"value":`)
		w.str(t.Value)
		w.raw(`,"at":`)
		w.time(t.At)
		w.raw("}")
	}
	if t := s.LastFollowUp; t != nil {
		w.raw(`,"last_follow_up":{"value":`)
		w.uuid(t.Value)
		w.raw(`,"at":`)
		w.time(t.At)
		w.raw("}")
	}
	w.raw("}")
}

func (w *docWriter) profile(p *domain.ProfileState) {
	w.raw("{")
	first := true
	field := func(name string) {
		if !first {
			w.raw(",")
		}
		first = false
		w.raw(name)
	}
	if p.Registered {
		field(`"registered":true`)
	}
	if p.Name != "" {
		field(`"name":`)
		w.str(p.Name)
	}
	if p.Kind != "" {
		field(`"kind":`)
		w.str(string(p.Kind))
	}
	if p.Industry != "" {
		field(`"industry":`)
		w.str(p.Industry)
	}
	if p.Region != "" {
		field(`"region":`)
		w.str(p.Region)
	}
	if p.Employees != nil {
		field(`"employees":`)
		w.int(*p.Employees)
	}
	if p.AnnualRevenue != nil {
		field(`"annual_revenue":`)
		w.money(*p.AnnualRevenue)
	}
	if p.SourceChannel != "" {
		field(`"source_channel":`)
		w.str(p.SourceChannel)
	}
	if p.Owner != "" {
		field(`"owner":`)
		w.str(p.Owner)
	}
	if c := &p.Contact; *c != (domain.ContactState{}) {
		field(`"contact":{`)
		cfirst := true
		cfield := func(name, v string) {
			if v == "" {
				return
			}
			if !cfirst {
				w.raw(",")
			}
			cfirst = false
			w.raw(name)
			w.str(v)
		}
		cfield(`"name":`, c.Name)
		cfield(`"title":`, c.Title)
		cfield(`"phone":`, c.Phone)
		cfield(`"email":`, c.Email)
		w.raw("}")
	}
	if p.Erased {
		field(`"erased":true`)
	}
	w.raw("}")
}

func (w *docWriter) facts(f *domain.Facts) {
	w.raw(`{"NetAmount":`)
	w.money(f.NetAmount)
	w.raw(`,"OrderCount":`)
	w.int(f.OrderCount)
	w.raw(`,"Orders3m":`)
	w.int(f.Orders3m)
	w.raw(`,"Orders6m":`)
	w.int(f.Orders6m)
	w.raw(`,"Inquiries3m":`)
	w.int(f.Inquiries3m)
	w.raw(`,"InquiryCount":`)
	w.int(f.InquiryCount)
	w.raw(`,"LatestSatisfaction":`)
	w.int(f.LatestSatisfaction)
	w.raw(`,"HasSatisfaction":`)
	w.bool(f.HasSatisfaction)
	w.raw(`,"ProfileMissing":`)
	w.int(int64(f.ProfileMissing))
	w.raw("}")
}

func (w *docWriter) alert(a *storedAlert) {
	w.raw(`{"alert_id":`)
	w.uuid(a.ID)
	w.raw(`,"kind":`)
	w.str(a.Kind)
	w.raw(`,"from":`)
	w.str(a.From)
	w.raw(`,"to":`)
	w.str(a.To)
	w.raw(`,"created_at":`)
	w.time(a.CreatedAt)
	if !a.DueAt.IsZero() {
		w.raw(`,"due_at":`)
		w.time(a.DueAt)
	}
	w.raw(`,"owner":`)
	w.str(a.Owner)
	w.raw(`,"status":`)
	w.str(a.Status)
	if !a.ResolvedAt.IsZero() {
		w.raw(`,"resolved_at":`)
		w.time(a.ResolvedAt)
	}
	if a.ResolvedBy != uuid.Nil {
		w.raw(`,"resolved_by":`)
		w.uuid(a.ResolvedBy)
	}
	w.raw(`,"rule_version":`)
	w.int(int64(a.RuleVersion))
	if a.Escalates != uuid.Nil {
		w.raw(`,"escalates":`)
		w.uuid(a.Escalates)
	}
	w.raw("}")
}
