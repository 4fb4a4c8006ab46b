package projections

import (
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
)

// storedProjection is the JSON form of a domain.Projection in
// customer_projections.projection. Tags are stored by name, not as bits, so
// a stored projection stays readable whatever the rule set's tag order.
type storedProjection struct {
	State       domain.CustomerState `json:"state"`
	ValueTier   string               `json:"value_tier"`
	Activity    string               `json:"activity"`
	Need        string               `json:"need_orientation"`
	Lifecycle   string               `json:"lifecycle"`
	Tags        []string             `json:"tags,omitzero"`
	Facts       domain.Facts         `json:"facts"`
	RuleVersion int                  `json:"rule_version"`
	EvaluatedAt time.Time            `json:"evaluated_at"`
	Next        time.Time            `json:"next,omitzero"`
	Since       map[string]time.Time `json:"since,omitzero"`
	Alerts      []storedAlert        `json:"alerts,omitzero"`
	// Dims are the operator-defined labels' values as name, value pairs
	// (by name: readable whatever the rule set's label order).
	Dims []string `json:"dims,omitzero"`
}

// storedAlert is an unresolved alert in the stored document: what the
// domain decides on later (deadline, escalation, resolution). Its texts
// (reasons, playbook) are not kept here: they go into the alerts table and
// onto SEGMENTS_ALERTS when it is raised, from memory, and every later update
// of an alert changes only its status (the alerts upsert leaves the texts of
// an existing row alone). Together they were about 40 % of a document, and
// the projector rewrites the document at every event of the customer.
type storedAlert struct {
	ID          uuid.UUID `json:"alert_id"`
	Kind        string    `json:"kind"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	CreatedAt   time.Time `json:"created_at"`
	DueAt       time.Time `json:"due_at,omitzero"`
	Owner       string    `json:"owner"`
	Status      string    `json:"status"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	ResolvedBy  uuid.UUID `json:"resolved_by,omitzero"`
	RuleVersion int       `json:"rule_version"`
	Escalates   uuid.UUID `json:"escalates,omitzero"`
	// Suppressed is the reason the alert is not delivered (empty: it is).
	Suppressed string `json:"delivery_suppressed,omitzero"`
	// The lifecycle of SPEC §8 (format docBinaryV3).
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	SnoozedUntil   time.Time `json:"snoozed_until,omitzero"`
	EscalatedAt    time.Time `json:"escalated_at,omitzero"`
}

// storedAlerts is alerts as stored (nil stays nil: the document says "no
// alerts" by leaving the member out, and an empty list as []).
func storedAlerts(alerts []domain.Alert) []storedAlert {
	if alerts == nil {
		return nil
	}
	out := make([]storedAlert, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		out[i] = storedAlert{ID: a.ID, Kind: a.Kind, From: a.From, To: a.To, CreatedAt: a.CreatedAt, DueAt: a.DueAt,
			Owner: a.Owner, Status: a.Status, ResolvedAt: a.ResolvedAt, ResolvedBy: a.ResolvedBy,
			RuleVersion: a.RuleVersion, Escalates: a.Escalates, Suppressed: a.SuppressionReason,
			AcknowledgedAt: a.AcknowledgedAt, SnoozedUntil: a.SnoozedUntil, EscalatedAt: a.EscalatedAt}
	}
	return out
}

// domainAlerts is the reverse of storedAlerts, for customer's alerts.
func domainAlerts(customer domain.CustomerCode, alerts []storedAlert) []domain.Alert {
	if alerts == nil {
		return nil
	}
	out := make([]domain.Alert, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		out[i] = domain.Alert{ID: a.ID, Customer: customer, Kind: a.Kind, From: a.From, To: a.To, CreatedAt: a.CreatedAt,
			DueAt: a.DueAt, Owner: a.Owner, Status: a.Status, ResolvedAt: a.ResolvedAt, ResolvedBy: a.ResolvedBy,
			RuleVersion: a.RuleVersion, Escalates: a.Escalates, DeliverySuppressed: a.Suppressed != "", SuppressionReason: a.Suppressed,
			AcknowledgedAt: a.AcknowledgedAt, SnoozedUntil: a.SnoozedUntil, EscalatedAt: a.EscalatedAt}
	}
	return out
}

// encodeProjection is the stored document of p (codec_binary.go), whose
// present tags are tags (tagNames) and operator-defined labels dims
// (dimPairs).
func encodeProjection(p *domain.Projection, tags, dims []string) []byte {
	sp := storedProjection{
		State: p.State, ValueTier: p.Labels.ValueTier, Activity: p.Labels.Activity,
		Need: p.Labels.NeedOrientation, Lifecycle: p.Labels.Lifecycle, Tags: tags,
		Facts: p.Facts, RuleVersion: p.RuleVersion, EvaluatedAt: p.EvaluatedAt, Next: p.Next, Since: p.Since,
		Alerts: storedAlerts(p.Alerts), Dims: dims,
	}
	return appendBinaryProjection(make([]byte, 0, 1024), &sp)
}

// DocumentJSON is a stored projection document (customer_projections'
// projection column, binary or an earlier version's JSON) as JSON: for
// inspecting a row and for tools.
func DocumentJSON(raw []byte) ([]byte, error) {
	if isJSONDocument(raw) {
		return raw, nil
	}
	sp, err := decodeBinaryProjection(raw)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(&sp, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("projection document as JSON: %w", err)
	}
	return b, nil
}

// DocumentFromJSON is the stored (binary) form of a document given as JSON,
// as DocumentJSON writes it: for tools that make rows without the projector.
func DocumentFromJSON(doc []byte) ([]byte, error) {
	var sp storedProjection
	if err := json.Unmarshal(doc, &sp); err != nil {
		return nil, fmt.Errorf("projection document from JSON: %w", err)
	}
	return appendBinaryProjection(nil, &sp), nil
}

// isJSONDocument reports whether a stored document is JSON, as versions
// before migration 0007 stored it: a binary one begins with its format byte.
func isJSONDocument(b []byte) bool { return len(b) > 0 && b[0] == '{' }

// decodeStored reads a stored document in either form.
func decodeStored(b []byte) (storedProjection, error) {
	if !isJSONDocument(b) {
		return decodeBinaryProjection(b)
	}
	var sp storedProjection
	err := json.Unmarshal(b, &sp)
	return sp, err
}

// decodeProjection reads a stored document: binary, or JSON as earlier
// versions stored it.
func decodeProjection(book *domain.RuleBook, b []byte) (*domain.Projection, error) {
	sp, err := decodeStored(b)
	if err != nil {
		return nil, fmt.Errorf("decode projection: %w", err)
	}
	p := &domain.Projection{
		State: sp.State, Facts: sp.Facts, RuleVersion: sp.RuleVersion, EvaluatedAt: sp.EvaluatedAt,
		Next: sp.Next, Since: sp.Since, Alerts: domainAlerts(sp.State.Customer, sp.Alerts),
		Labels: domain.LabelSet{ValueTier: sp.ValueTier, Activity: sp.Activity, NeedOrientation: sp.Need, Lifecycle: sp.Lifecycle},
	}
	if p.RuleVersion != 0 {
		rs := book.RuleSet(p)
		for _, name := range sp.Tags {
			if i := rs.TagIndex(name); i >= 0 {
				p.Labels.Tags |= 1 << uint(i)
			}
		}
		if len(b) > 0 && (b[0] == '{' || b[0] < docBinaryV4) {
			// Written before the value facts of SPEC §11 existed: compute
			// them as the evaluation then would have (labels stay as stored;
			// a rebuild also refreshes next_at for their boundaries).
			_, f, next := rs.EvaluateWith(&p.State, p.EvaluatedAt, book.RFM().At(p.EvaluatedAt))
			p.Facts, p.Next = f, next
		}
		for i := 0; i+1 < len(sp.Dims); i += 2 {
			rs.SetDimension(&p.Labels, sp.Dims[i], sp.Dims[i+1])
		}
	}
	return p, nil
}

// dimPairs lists the operator-defined labels of a projection as name,
// value pairs in rule-set order (nil when the rule set has none).
func dimPairs(book *domain.RuleBook, p *domain.Projection) []string {
	if p.RuleVersion == 0 {
		return nil
	}
	rs := book.RuleSet(p)
	var pairs []string
	for i := range rs.Dimensions {
		if v := rs.DimensionValue(&p.Labels, i); v != "" {
			pairs = append(pairs, rs.Dimensions[i].Name, v)
		}
	}
	return pairs
}

// tagNames lists the present tags of a projection in rule-set order.
func tagNames(book *domain.RuleBook, p *domain.Projection) []string {
	if p.RuleVersion == 0 {
		return nil
	}
	rs := book.RuleSet(p)
	names := []string{}
	for i := range rs.Tags {
		if p.Labels.HasTag(i) {
			names = append(names, rs.Tags[i].Name)
		}
	}
	return names
}

// optional is s, or nil for the empty string (a JSON null, an SQL NULL).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// pgUUID passes a uuid.UUID to pgx as a pgtype.UUID. uuid.UUID is a
// driver.Valuer whose value is text, which pgx can only turn into binary
// uuid by first failing (building an error message), then parsing the text
// back: several microseconds per value, paid for every id a batch writes.
func pgUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// pgNullUUID is pgUUID with uuid.Nil as NULL.
func pgNullUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: u != uuid.Nil} }

// pgUUIDs converts ids for a uuid[] parameter (see pgUUID).
func pgUUIDs(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgUUID(id)
	}
	return out
}

// uuidDst scans a uuid column straight from its binary form:
// rows.Scan((*uuidDst)(&id)). Scanning into a *uuid.UUID goes through
// database/sql.Scanner, which formats the id as text and parses it again.
// Like uuid.UUID.Scan, NULL leaves the destination unchanged.
type uuidDst uuid.UUID

func (u *uuidDst) ScanUUID(v pgtype.UUID) error {
	if v.Valid {
		*u = uuidDst(v.Bytes)
	}
	return nil
}

// marshalHistoryEntry encodes a label change exactly as
// json.Marshal(e, json.Deterministic(true)) does (field order, omitempty on
// display, null pointers, the library's string escaping), without
// reflection: every label change is encoded once per projector batch. Should
// the fast path meet anything it does not handle (invalid UTF-8), it defers
// to json.Marshal, which then decides.
func marshalHistoryEntry(e *HistoryEntry) ([]byte, error) {
	b, err := appendHistoryEntry(make([]byte, 0, 512), e)
	if err != nil {
		return json.Marshal(e, json.Deterministic(true))
	}
	return b, nil
}

func appendHistoryEntry(b []byte, e *HistoryEntry) ([]byte, error) {
	var err error
	str := func(name, s string) {
		if err != nil {
			return
		}
		b = append(b, name...)
		b, err = jsontext.AppendQuote(b, s)
	}
	id := func(name string, u *uuid.UUID) {
		b = append(b, name...)
		if u == nil {
			b = append(b, "null"...)
			return
		}
		b = append(b, '"')
		var buf [36]byte
		hexUUID(&buf, u)
		b = append(b, buf[:]...)
		b = append(b, '"')
	}
	id(`{"id":`, &e.ID)
	str(`,"customer":`, e.Customer)
	str(`,"label":`, e.Label)
	if e.From == nil {
		b = append(b, `,"from":null`...)
	} else {
		str(`,"from":`, *e.From)
	}
	str(`,"to":`, e.To)
	str(`,"at":`, e.At)
	str(`,"cause":{"kind":`, e.Cause.Kind)
	id(`,"event_id":`, e.Cause.EventID)
	b = append(b, `},"rule_version":`...)
	b = strconv.AppendInt(b, int64(e.RuleVersion), 10)
	str(`,"reason":`, e.Reason)
	str(`,"reason_en":`, e.ReasonEN)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	if e.Display != "" {
		str(`,"display":`, e.Display)
	}
	if e.Correction != "" {
		str(`,"correction":`, e.Correction)
	}
	b = append(b, '}')
	return b, err
}

// hexUUID writes u in its canonical text form (uuid.UUID.String).
func hexUUID(dst *[36]byte, u *uuid.UUID) {
	const hexDigits = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
}
