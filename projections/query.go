package projections

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// PersonalDataOpener opens customers' sealed personal fields (the event
// store does).
type PersonalDataOpener interface {
	OpenPersonalData(ctx context.Context, streams []uuid.UUID) (*eventstore.PersonalData, error)
	// PossibleDuplicates compares the customers' blind indexes (SPEC §10).
	PossibleDuplicates(ctx context.Context, streams []uuid.UUID, asOf time.Time) (map[uuid.UUID][]eventstore.Duplicate, error)
}

// Queries answers the read side of SPEC §6 from the read models; only as_of
// recomputes from the log, through the same Advance as the projector.
type Queries struct {
	projector *Projector
	pii       PersonalDataOpener
}

// NewQueries returns the query side.
func NewQueries(p *Projector, pii PersonalDataOpener) *Queries {
	return &Queries{projector: p, pii: pii}
}

// Document is the customer document of SPEC §6.1.
type Document struct {
	Customer string                   `json:"customer"`
	Version  int64                    `json:"version"`
	AsOf     string                   `json:"as_of"`
	Profile  Profile                  `json:"profile"`
	Metrics  CustomerMetrics          `json:"metrics"`
	Labels   map[string]LabelDocument `json:"labels"`
	Tags     []TagDocument            `json:"tags"`
	NextAt   *string                  `json:"next_change_at"`
	Value    *ValueDocument           `json:"value"`
	// PossibleDuplicateOf lists the customers that stated this one's
	// normalised phone, email or legal name first (now, also with as_of:
	// erasure removes a match).
	PossibleDuplicateOf []eventstore.Duplicate `json:"possible_duplicate_of"`
}

// Profile is the profile part of the document; personal fields are masked
// unless plaintext was asked for by an admin.
type Profile struct {
	Name          *string        `json:"name"`
	Kind          *string        `json:"kind"`
	Industry      *string        `json:"industry"`
	Region        *string        `json:"region"`
	Owner         *string        `json:"owner"`
	Employees     *int64         `json:"employees,omitempty"`
	AnnualRevenue *domain.Money  `json:"annual_revenue,omitempty"`
	SourceChannel *string        `json:"source_channel,omitempty"`
	Contact       ContactProfile `json:"contact"`
	Registered    bool           `json:"registered"`
	Erased        bool           `json:"erased"`
}

// ContactProfile is the contact person.
type ContactProfile struct {
	Name  *string `json:"name"`
	Title *string `json:"title"`
	Phone *string `json:"phone"`
	Email *string `json:"email"`
}

// CustomerMetrics are the customer's facts at the document's instant.
type CustomerMetrics struct {
	NetAmount          domain.Money `json:"net_amount"`
	OrderCount         int64        `json:"order_count"`
	Orders3m           int64        `json:"orders_3m"`
	Orders6m           int64        `json:"orders_6m"`
	Inquiries3m        int64        `json:"inquiries_3m"`
	InquiryCount       int64        `json:"inquiry_count"`
	LastOrderAt        *string      `json:"last_order_at"`
	LatestSatisfaction *int64       `json:"latest_satisfaction"`
}

// LabelDocument is one label's value with why and since when.
type LabelDocument struct {
	Value       string `json:"value"`
	Display     string `json:"display"`
	Reason      string `json:"reason"`
	ReasonEN    string `json:"reason_en"`
	Since       string `json:"since"`
	RuleVersion int    `json:"rule_version"`
}

// TagDocument is one present tag.
type TagDocument struct {
	Tag         string `json:"tag"`
	Display     string `json:"display"`
	Reason      string `json:"reason"`
	ReasonEN    string `json:"reason_en"`
	Since       string `json:"since"`
	RuleVersion int    `json:"rule_version"`
}

// Customer returns the document of a customer now, or as the system knew it
// at asOf (events recorded up to then, evaluated then) when asOf is set.
func (q *Queries) Customer(ctx context.Context, code domain.CustomerCode, asOf time.Time, now time.Time, how eventstore.Disclosure) (*Document, error) {
	book := q.projector.book
	// The RFM days recorded since this process last read them; the day due
	// now is recorded first if no scheduler has yet (a document shows what
	// replay gives, and replay knows the day).
	if err := q.projector.loadRFM(ctx, q.projector.pool); err != nil {
		return nil, err
	}
	if err := q.projector.ensureRFM(ctx, maxTime(now, asOf)); err != nil {
		return nil, err
	}
	var proj *domain.Projection
	at := now
	if asOf.IsZero() {
		var raw []byte
		err := q.projector.pool.QueryRow(ctx, "SELECT projection FROM customer_projections WHERE stream_id = $1", code.StreamID()).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("load customer %s: %w", code, eventstore.MapError(err))
		}
		if proj, err = decodeProjection(book, raw); err != nil {
			return nil, err
		}
		// Pass any boundary that is already behind us, so the document is
		// correct at this instant even before the scheduler has written it.
		if !now.Before(proj.EvaluatedAt) {
			book.Advance(proj, now, nil)
		} else {
			at = proj.EvaluatedAt
		}
	} else {
		var err error
		if proj, err = q.replay(ctx, code, asOf); err != nil {
			return nil, err
		}
		at = asOf
	}
	doc, err := q.document(ctx, code, proj, at, asOf, how)
	if err != nil {
		return nil, err
	}
	dups, err := q.pii.PossibleDuplicates(ctx, []uuid.UUID{code.StreamID()}, asOf)
	if err != nil {
		return nil, err
	}
	doc.PossibleDuplicateOf = orEmpty(dups[code.StreamID()])
	return doc, nil
}

// orEmpty shows no duplicates as [] rather than null.
func orEmpty(d []eventstore.Duplicate) []eventstore.Duplicate {
	if d == nil {
		return []eventstore.Duplicate{}
	}
	return d
}

// replay folds the customer's events recorded up to asOf and evaluates at
// asOf: what the live projector showed at that instant.
func (q *Queries) replay(ctx context.Context, code domain.CustomerCode, asOf time.Time) (*domain.Projection, error) {
	book := q.projector.book
	rows, err := q.projector.pool.Query(ctx, `SELECT version, event_id, type, occurred_at, recorded_at, data, `+sourceColumn+` FROM events e
		WHERE stream_id = $1 AND recorded_at <= $2 ORDER BY version`, code.StreamID(), asOf)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", code, eventstore.MapError(err))
	}
	defer rows.Close()
	proj := &domain.Projection{}
	for rows.Next() {
		rec := domain.Recorded{Customer: code}
		var data []byte
		if err := rows.Scan(&rec.Version, &rec.EventID, &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data, &rec.Source); err != nil {
			return nil, fmt.Errorf("replay %s: %w", code, eventstore.MapError(err))
		}
		if rec.Data, err = domain.DecodeData(rec.Type, data); err != nil {
			return nil, err
		}
		book.Advance(proj, rec.RecordedAt, &rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replay %s: %w", code, eventstore.MapError(err))
	}
	if proj.RuleVersion == 0 {
		return nil, ErrNotFound
	}
	book.Advance(proj, asOf, nil)
	return proj, nil
}

// asOf is zero for the live document; an as-of document leaves out the RFM
// days recorded after asOf from its next change (they were not known then).
func (q *Queries) document(ctx context.Context, code domain.CustomerCode, proj *domain.Projection, at, asOf time.Time, how eventstore.Disclosure) (*Document, error) {
	book := q.projector.book
	rs := book.RuleSet(proj)
	loc := rs.Location
	ts := func(t time.Time) string { return t.In(loc).Format(time.RFC3339Nano) }
	s := &proj.State
	doc := &Document{Customer: string(code), Version: s.Version, AsOf: ts(at), Labels: map[string]LabelDocument{}, Tags: []TagDocument{}}
	p := s.Profile
	doc.Profile = Profile{
		Name: optional(p.Name), Kind: optional(string(p.Kind)), Industry: optional(p.Industry), Region: optional(p.Region), Owner: optional(p.Owner),
		Employees: p.Employees, AnnualRevenue: p.AnnualRevenue, SourceChannel: optional(p.SourceChannel),
		Registered: p.Registered, Erased: p.Erased, Contact: ContactProfile{Title: optional(p.Contact.Title)},
	}
	if personal := p.Personal(); len(personal) > 0 {
		pd, err := q.pii.OpenPersonalData(ctx, []uuid.UUID{code.StreamID()})
		if err != nil {
			return nil, err
		}
		doc.Profile.Erased = doc.Profile.Erased || pd.Erased(code.StreamID())
		shown := map[domain.PersonalField]**string{
			domain.PersonalContactName: &doc.Profile.Contact.Name, domain.PersonalContactPhone: &doc.Profile.Contact.Phone,
			domain.PersonalContactEmail: &doc.Profile.Contact.Email, domain.PersonalName: &doc.Profile.Name, domain.PersonalRegion: &doc.Profile.Region,
		}
		for field, value := range personal {
			v, err := pd.Field(code.StreamID(), field, *value, how)
			if err != nil {
				return nil, err
			}
			*shown[field] = v
		}
	}
	f := proj.Facts
	doc.Metrics = CustomerMetrics{
		NetAmount: f.NetAmount, OrderCount: f.OrderCount, Orders3m: f.Orders3m, Orders6m: f.Orders6m,
		Inquiries3m: f.Inquiries3m, InquiryCount: f.InquiryCount,
	}
	if !s.LastOrderAt.IsZero() {
		v := ts(s.LastOrderAt)
		doc.Metrics.LastOrderAt = &v
	}
	if f.HasSatisfaction {
		v := f.LatestSatisfaction
		doc.Metrics.LatestSatisfaction = &v
	}
	for _, name := range domain.Labels {
		value := proj.Labels.Value(name)
		zh, en := rs.Reason(s, name, &proj.Labels, &f)
		doc.Labels[name] = LabelDocument{
			Value: value, Display: rs.Display(name, value), Reason: zh, ReasonEN: en,
			Since: ts(proj.Since[name]), RuleVersion: rs.Version,
		}
	}
	for i := range rs.Dimensions {
		name, value := rs.Dimensions[i].Name, rs.DimensionValue(&proj.Labels, i)
		if value == "" {
			continue
		}
		zh, en := rs.DimensionReason(&proj.Labels, i, &f)
		doc.Labels[name] = LabelDocument{
			Value: value, Display: rs.Display(name, value), Reason: zh, ReasonEN: en,
			Since: ts(proj.Since[name]), RuleVersion: rs.Version,
		}
	}
	for i := range rs.Tags {
		if !proj.Labels.HasTag(i) {
			continue
		}
		zh, en := rs.TagReason(i, true, &f)
		doc.Tags = append(doc.Tags, TagDocument{
			Tag: rs.Tags[i].Name, Display: rs.Tags[i].Display, Reason: zh, ReasonEN: en,
			Since: ts(proj.Since[domain.TagLabel(rs.Tags[i].Name)]), RuleVersion: rs.Version,
		})
	}
	if n := book.NextInstantKnownAt(proj, asOf); !n.IsZero() {
		v := ts(n)
		doc.NextAt = &v
	}
	doc.Value = valueDocument(book, proj, ts)
	return doc, nil
}

// History returns every label change of a customer, oldest first.
func (q *Queries) History(ctx context.Context, code domain.CustomerCode) ([]HistoryEntry, error) {
	book := q.projector.book
	rows, err := q.projector.pool.Query(ctx, `SELECT id, label, from_value, to_value, at, cause_kind, cause_event_id, rule_version, reason, reason_en, seq
		FROM label_changes WHERE stream_id = $1 ORDER BY seq`, code.StreamID())
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", code, eventstore.MapError(err))
	}
	defer rows.Close()
	out := []HistoryEntry{}
	for rows.Next() {
		var c HistoryEntry
		var at time.Time
		var kind string
		if err := rows.Scan(&c.ID, &c.Label, &c.From, &c.To, &at, &kind, &c.Cause.EventID, &c.RuleVersion, &c.Reason, &c.ReasonEN, &c.Seq); err != nil {
			return nil, fmt.Errorf("history of %s: %w", code, eventstore.MapError(err))
		}
		c.Customer, c.Cause.Kind = string(code), kind
		c.At = at.In(book.At(at).Location).Format(time.RFC3339Nano)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history of %s: %w", code, eventstore.MapError(err))
	}
	if len(out) == 0 {
		var exists bool
		if err := q.projector.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM customer_projections WHERE stream_id = $1)", code.StreamID()).Scan(&exists); err != nil {
			return nil, fmt.Errorf("history of %s: %w", code, eventstore.MapError(err))
		}
		if !exists {
			return nil, ErrNotFound
		}
	}
	return out, nil
}

// SummaryValue is one label value's share of customers and net amount.
type SummaryValue struct {
	Value          string       `json:"value"`
	Display        string       `json:"display"`
	Customers      int64        `json:"customers"`
	Share          float64      `json:"share"`
	NetAmount      domain.Total `json:"net_amount"`
	NetAmountShare float64      `json:"net_amount_share"`
}

// MatrixCell is one cell of the value × activity heat map.
type MatrixCell struct {
	ValueTier string       `json:"value_tier"`
	Activity  string       `json:"activity"`
	Segment   string       `json:"segment"`
	Display   string       `json:"display"`
	Customers int64        `json:"customers"`
	NetAmount domain.Total `json:"net_amount"`
}

// Summary is the segment overview (GET /v1/segments/summary).
type Summary struct {
	Customers int64                     `json:"customers"`
	NetAmount domain.Total              `json:"net_amount"`
	Labels    map[string][]SummaryValue `json:"labels"`
	Tags      []SummaryValue            `json:"tags"`
	Matrix    []MatrixCell              `json:"matrix"`
	// Population are the value figures of SPEC §11.
	Population Population `json:"population"`
}

// Population is the summary's repurchase rate, NPS and RFM distribution.
type Population struct {
	// Buyers have at least one order, Repurchasers at least two;
	// RepurchaseRate is Repurchasers ÷ Buyers (0 without buyers).
	Buyers         int64   `json:"buyers"`
	Repurchasers   int64   `json:"repurchasers"`
	RepurchaseRate float64 `json:"repurchase_rate"`
	NPS            NPS     `json:"nps"`
	// RFM is each RFM segment's customers; Share is of the scored ones.
	RFM       []SummaryValue `json:"rfm_segments"`
	RFMScored int64          `json:"rfm_scored"`
}

// NPS counts the customers with a recommendation score by category; Score
// is % promoters − % detractors (−100 to 100; null when nobody rated).
type NPS struct {
	Rated      int64    `json:"rated"`
	Promoters  int64    `json:"promoters"`
	Passives   int64    `json:"passives"`
	Detractors int64    `json:"detractors"`
	Score      *float64 `json:"score"`
}

// Summary counts customers and net amounts per label value, every value of
// the rule set listed (zero when empty), and the value × activity matrix.
// It reads the counters the projector's transactions keep (migration 0017,
// segment_counters): a few hundred rows whatever the number of customers.
func (q *Queries) Summary(ctx context.Context) (*Summary, error) {
	rows, err := q.projector.pool.Query(ctx, `
		SELECT dimension, value, sum(customers)::bigint, sum(net_amount)
		FROM segment_counters GROUP BY dimension, value`)
	if err != nil {
		return nil, fmt.Errorf("segment summary: %w", eventstore.MapError(err))
	}
	counts, err := scanSummaryCounts(rows)
	if err != nil {
		return nil, err
	}
	return q.summaryOf(counts), nil
}

// summaryKey is one (dimension, value) pair of the summary's counts:
// dimension is a label, "segment", "tag" or "total" (value "").
type summaryKey struct{ dimension, value string }

// summaryCount is one key's customers and their exact net amount.
type summaryCount struct {
	customers int64
	net       domain.Total
}

// scanSummaryCounts reads rows of (dimension, value, customers, net amount
// as numeric: a population's sum can exceed int64).
func scanSummaryCounts(rows pgx.Rows) (map[summaryKey]summaryCount, error) {
	defer rows.Close()
	counts := map[summaryKey]summaryCount{}
	for rows.Next() {
		var k summaryKey
		var c summaryCount
		var net pgtype.Numeric
		if err := rows.Scan(&k.dimension, &k.value, &c.customers, &net); err != nil {
			return nil, fmt.Errorf("segment summary: %w", eventstore.MapError(err))
		}
		c.net = totalOf(net)
		counts[k] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment summary: %w", eventstore.MapError(err))
	}
	return counts, nil
}

// totalOf converts a sum of integer fen (numeric, NULL for no rows).
func totalOf(n pgtype.Numeric) domain.Total {
	if !n.Valid || n.Int == nil {
		return domain.Total{}
	}
	fen := new(big.Int).Set(n.Int)
	if n.Exp > 0 {
		fen.Mul(fen, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.Exp)), nil))
	}
	return domain.TotalOfFen(fen)
}

// summaryOf lays the counts out as the summary document.
func (q *Queries) summaryOf(counts map[summaryKey]summaryCount) *Summary {
	rs := q.projector.book.Latest()
	type key = summaryKey
	total := counts[key{"total", ""}]
	share := func(part, whole int64) float64 {
		if whole == 0 {
			return 0
		}
		return float64(part) / float64(whole)
	}
	value := func(label, v, display string) SummaryValue {
		c := counts[key{label, v}]
		return SummaryValue{Value: v, Display: display, Customers: c.customers, Share: share(c.customers, total.customers),
			NetAmount: c.net, NetAmountShare: c.net.Share(total.net)}
	}
	out := &Summary{Customers: total.customers, NetAmount: total.net, Labels: map[string][]SummaryValue{}}
	activities := []string{domain.ActivityHigh, domain.ActivityMedium, domain.ActivityLow}
	for _, t := range rs.ValueTiers {
		out.Labels[domain.LabelValueTier] = append(out.Labels[domain.LabelValueTier], value(domain.LabelValueTier, t.Value, t.Display))
		for _, a := range activities {
			seg := t.Value + "/" + a
			c := counts[key{domain.LabelSegment, seg}]
			out.Matrix = append(out.Matrix, MatrixCell{ValueTier: t.Value, Activity: a, Segment: seg,
				Display: rs.Display(domain.LabelSegment, seg), Customers: c.customers, NetAmount: c.net})
			out.Labels[domain.LabelSegment] = append(out.Labels[domain.LabelSegment], value(domain.LabelSegment, seg, rs.Display(domain.LabelSegment, seg)))
		}
	}
	for _, a := range activities {
		out.Labels[domain.LabelActivity] = append(out.Labels[domain.LabelActivity], value(domain.LabelActivity, a, rs.ActivityNames[a]))
	}
	for _, n := range []string{domain.NeedProduct, domain.NeedService, domain.NeedPartnership, domain.NeedUnknown} {
		out.Labels[domain.LabelNeedOrientation] = append(out.Labels[domain.LabelNeedOrientation], value(domain.LabelNeedOrientation, n, rs.NeedNames[n]))
	}
	for _, l := range []string{domain.LifecycleProspect, domain.LifecycleIntent, domain.LifecycleCustomer, domain.LifecycleLost} {
		out.Labels[domain.LabelLifecycle] = append(out.Labels[domain.LabelLifecycle], value(domain.LabelLifecycle, l, rs.LifecycleName[l]))
	}
	for _, t := range rs.Tags {
		out.Tags = append(out.Tags, value("tag", t.Name, t.Display))
	}
	out.Population = populationOf(counts, value)
	for _, d := range rs.Dimensions {
		for _, c := range d.Cases {
			v := value("dim", d.Name+"="+c.Value, c.Display)
			v.Value = c.Value
			out.Labels[d.Name] = append(out.Labels[d.Name], v)
		}
	}
	return out
}

// populationOf lays out the population figures from the counters' 'buyers',
// 'repurchase', 'nps' and 'rfm_segment' keys (migration 0022).
func populationOf(counts map[summaryKey]summaryCount, value func(label, v, display string) SummaryValue) Population {
	type key = summaryKey
	p := Population{Buyers: counts[key{"buyers", ""}].customers, Repurchasers: counts[key{"repurchase", ""}].customers}
	if p.Buyers > 0 {
		p.RepurchaseRate = float64(p.Repurchasers) / float64(p.Buyers)
	}
	n := &p.NPS
	n.Promoters, n.Passives, n.Detractors = counts[key{"nps", domain.NPSPromoter}].customers,
		counts[key{"nps", domain.NPSPassive}].customers, counts[key{"nps", domain.NPSDetractor}].customers
	n.Rated = n.Promoters + n.Passives + n.Detractors
	if n.Rated > 0 {
		score := 100 * float64(n.Promoters-n.Detractors) / float64(n.Rated)
		n.Score = &score
	}
	for _, seg := range domain.RFMSegments {
		p.RFMScored += counts[key{"rfm_segment", seg.Value}].customers
	}
	for _, seg := range domain.RFMSegments {
		v := value("rfm_segment", seg.Value, seg.ZH)
		v.Share = 0
		if p.RFMScored > 0 {
			v.Share = float64(v.Customers) / float64(p.RFMScored)
		}
		p.RFM = append(p.RFM, v)
	}
	return p
}
