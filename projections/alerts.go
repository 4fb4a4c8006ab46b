package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// StreamAlerts is the JetStream stream of alerts (alerts.<kind>.<owner token>).
const StreamAlerts = "SEGMENTS_ALERTS"

// AlertDocument is an alert as the API and SEGMENTS_ALERTS show it (§6.1).
type AlertDocument struct {
	AlertID     uuid.UUID  `json:"alert_id"`
	Customer    string     `json:"customer"`
	Kind        string     `json:"kind"`
	Display     string     `json:"display"`
	From        string     `json:"from"`
	To          string     `json:"to"`
	Reason      string     `json:"reason"`
	ReasonEN    string     `json:"reason_en"`
	CreatedAt   string     `json:"created_at"`
	DueAt       *string    `json:"due_at"`
	Owner       string     `json:"owner"`
	Status      string     `json:"status"`
	Playbook    string     `json:"playbook"`
	ResolvedAt  *string    `json:"resolved_at"`
	ResolvedBy  *uuid.UUID `json:"resolved_by,omitempty"`
	Escalates   *uuid.UUID `json:"escalates,omitempty"`
	RuleVersion int        `json:"rule_version"`
	// DeliverySuppressed: recorded, not to be delivered (SPEC §10, imported
	// history); SuppressionReason says why (domain.Suppressed…).
	DeliverySuppressed bool   `json:"delivery_suppressed,omitempty"`
	SuppressionReason  string `json:"delivery_suppressed_reason,omitempty"`
	// The lifecycle of SPEC §8.
	Resolution     *string    `json:"resolution"`
	SupersededBy   *uuid.UUID `json:"superseded_by"`
	AcknowledgedAt *string    `json:"acknowledged_at"`
	SnoozedUntil   *string    `json:"snoozed_until"`
	EscalatedAt    *string    `json:"escalated_at"`
}

// sourceColumn selects an event's envelope source (empty when none): the
// domain tells imported history by it (domain.ImportSourcePrefix).
const sourceColumn = `coalesce(e.metadata->>'source', '')`

func (p *Projector) alertDocument(a *domain.Alert) AlertDocument {
	rs := p.book.At(a.CreatedAt)
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.In(rs.Location).Format(time.RFC3339Nano)
		return &v
	}
	d := AlertDocument{
		AlertID: a.ID, Customer: string(a.Customer), Kind: a.Kind, Display: rs.Alerts[a.Kind].Display, From: a.From, To: a.To,
		Reason: a.ReasonZH, ReasonEN: a.ReasonEN, CreatedAt: *ts(a.CreatedAt), DueAt: ts(a.DueAt), Owner: a.Owner,
		Status: a.Status, Playbook: a.Playbook, ResolvedAt: ts(a.ResolvedAt), RuleVersion: a.RuleVersion,
		DeliverySuppressed: a.DeliverySuppressed, SuppressionReason: a.SuppressionReason,
		AcknowledgedAt: ts(a.AcknowledgedAt), SnoozedUntil: ts(a.SnoozedUntil), EscalatedAt: ts(a.EscalatedAt),
	}
	if a.Resolution != "" {
		v := a.Resolution
		d.Resolution = &v
	}
	if a.SupersededBy != uuid.Nil {
		v := a.SupersededBy
		d.SupersededBy = &v
	}
	if a.ResolvedBy != uuid.Nil {
		v := a.ResolvedBy
		d.ResolvedBy = &v
	}
	if a.Escalates != uuid.Nil {
		v := a.Escalates
		d.Escalates = &v
	}
	return d
}

var alertColumns = []string{"alert_id", "stream_id", "customer", "kind", "from_value", "to_value", "reason", "reason_en",
	"created_at", "due_at", "owner", "status", "resolved_at", "resolved_by", "playbook", "rule_version", "escalates",
	"delivery_suppressed", "suppression_reason",
	"resolution", "superseded_by", "acknowledged_at", "snoozed_until", "escalated_at"}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// queueAlerts queues on b the upsert of alert updates (the last state of
// each alert wins) and returns the outbox messages of newly raised alerts
// for SEGMENTS_ALERTS. known says which alert ids
// existed before (a rebuild re-raises old alerts without publishing them).
func (p *Projector) queueAlerts(b *pgx.Batch, stream map[domain.CustomerCode]uuid.UUID, updates []domain.Alert, known func(uuid.UUID) bool) ([]outboxMessage, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	last := make(map[uuid.UUID]int, len(updates))
	raised := map[uuid.UUID]int{} // each alert's raising update (domain.Alert.Raised)
	var order []uuid.UUID
	for i := range updates {
		id := updates[i].ID
		if _, ok := last[id]; !ok {
			order = append(order, id)
		}
		last[id] = i
		if updates[i].Raised {
			raised[id] = i
		}
	}
	// Columns of the upsert, in alertColumns order.
	var (
		ids, streamIDs, resolvedBy, escalates            []pgtype.UUID
		customers, kinds, froms, tos, reasons, reasonsEN []string
		owners, statuses, playbooks                      []string
		created                                          []time.Time
		dues, resolvedAts                                []*time.Time
		ruleVersions                                     []int
		suppressed                                       []bool
		suppressionReasons                               []*string
		resolutions                                      []*string
		supersededBy                                     []pgtype.UUID
		acknowledgedAts, snoozedUntils, escalatedAts     []*time.Time
	)
	var outbox []outboxMessage
	for _, id := range order {
		a := updates[last[id]]
		ids, streamIDs = append(ids, pgUUID(a.ID)), append(streamIDs, pgUUID(stream[a.Customer]))
		customers, kinds, froms, tos = append(customers, string(a.Customer)), append(kinds, a.Kind), append(froms, a.From), append(tos, a.To)
		reasons, reasonsEN = append(reasons, a.ReasonZH), append(reasonsEN, a.ReasonEN)
		created, dues = append(created, a.CreatedAt), append(dues, nullTime(a.DueAt))
		owners, statuses, resolvedAts = append(owners, a.Owner), append(statuses, a.Status), append(resolvedAts, nullTime(a.ResolvedAt))
		resolvedBy, playbooks, ruleVersions = append(resolvedBy, pgNullUUID(a.ResolvedBy)), append(playbooks, a.Playbook), append(ruleVersions, a.RuleVersion)
		escalates = append(escalates, pgNullUUID(a.Escalates))
		suppressed = append(suppressed, a.DeliverySuppressed)
		var reason *string
		if a.SuppressionReason != "" {
			reason = &a.SuppressionReason
		}
		suppressionReasons = append(suppressionReasons, reason)
		var resolution *string
		if a.Resolution != "" {
			resolution = &a.Resolution
		}
		resolutions, supersededBy = append(resolutions, resolution), append(supersededBy, pgNullUUID(a.SupersededBy))
		acknowledgedAts, snoozedUntils = append(acknowledgedAts, nullTime(a.AcknowledgedAt)), append(snoozedUntils, nullTime(a.SnoozedUntil))
		escalatedAts = append(escalatedAts, nullTime(a.EscalatedAt))
		if known == nil || !known(a.ID) {
			// Publish an alert once, as it was raised: body and subject
			// (owner) of the raising update, whatever later updates of the
			// same batch changed, so batching does not change the message.
			if i, ok := raised[id]; ok {
				r := &updates[i]
				body, err := json.Marshal(p.alertDocument(r), json.Deterministic(true))
				if err != nil {
					return nil, fmt.Errorf("encode alert: %w", err)
				}
				outbox = append(outbox, outboxMessage{stream: StreamAlerts, subject: AlertSubject(r.Kind, r.Owner), msgID: r.ID.String(), payload: body})
			}
		}
	}
	// One upsert from arrays (each alert id once: the last update wins).
	b.Queue(`INSERT INTO alerts (`+strings.Join(alertColumns, ", ")+`)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::timestamptz[], $14::uuid[], $15::text[], $16::int[], $17::uuid[],
			$18::boolean[], $19::text[], $20::text[], $21::uuid[], $22::timestamptz[], $23::timestamptz[], $24::timestamptz[])
		ON CONFLICT (alert_id) DO UPDATE SET status = EXCLUDED.status, resolved_at = EXCLUDED.resolved_at,
			resolved_by = EXCLUDED.resolved_by, owner = EXCLUDED.owner, resolution = EXCLUDED.resolution,
			superseded_by = EXCLUDED.superseded_by, acknowledged_at = EXCLUDED.acknowledged_at,
			snoozed_until = EXCLUDED.snoozed_until, escalated_at = EXCLUDED.escalated_at`,
		ids, streamIDs, customers, kinds, froms, tos, reasons, reasonsEN,
		created, dues, owners, statuses, resolvedAts, resolvedBy, playbooks, ruleVersions, escalates, suppressed, suppressionReasons,
		resolutions, supersededBy, acknowledgedAts, snoozedUntils, escalatedAts)
	return outbox, nil
}

// AlertFilter selects alerts for GET /v1/alerts.
type AlertFilter struct {
	Status   string
	Owner    string
	Kind     string
	Customer domain.CustomerCode
	Limit    int
	Cursor   string
}

// DefaultAlertLimit is the page size of Alerts when the filter gives none.
const DefaultAlertLimit = 50

// ErrBadCursor: the pagination cursor is not one this API issued.
var ErrBadCursor = errors.New("invalid cursor")

// Alerts lists alerts newest first with keyset pagination; next is the
// cursor of the following page ("" at the end).
func (q *Queries) Alerts(ctx context.Context, f AlertFilter) ([]AlertDocument, string, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultAlertLimit
	}
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Status != "" {
		conds = append(conds, "status = "+arg(f.Status))
	}
	if f.Owner != "" {
		conds = append(conds, "owner = "+arg(f.Owner))
	}
	if f.Kind != "" {
		conds = append(conds, "kind = "+arg(f.Kind))
	}
	if f.Customer != "" {
		conds = append(conds, "stream_id = "+arg(f.Customer.StreamID()))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		conds = append(conds, "(created_at, alert_id) < ("+arg(at)+", "+arg(id)+")")
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	limit := arg(f.Limit + 1)
	rows, err := q.projector.pool.Query(ctx, alertSelect+where+`
		ORDER BY created_at DESC, alert_id DESC LIMIT `+limit, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", eventstore.MapError(err))
	}
	defer rows.Close()
	out := []AlertDocument{}
	var lastAt time.Time
	var lastID uuid.UUID
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list alerts: %w", eventstore.MapError(err))
		}
		if len(out) == f.Limit {
			return out, encodeCursor(lastAt, lastID), nil
		}
		out = append(out, q.projector.alertDocument(&a))
		lastAt, lastID = a.CreatedAt, a.ID
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", eventstore.MapError(err))
	}
	return out, "", nil
}

// alertSelect reads the columns scanAlert scans.
const alertSelect = `SELECT alert_id, customer, kind, from_value, to_value, reason, reason_en, created_at, due_at,
	owner, status, resolved_at, resolved_by, playbook, rule_version, escalates, delivery_suppressed, coalesce(suppression_reason, ''),
	resolution, superseded_by, acknowledged_at, snoozed_until, escalated_at FROM alerts `

// scanAlert reads one row of alertSelect.
func scanAlert(row pgx.Row) (domain.Alert, error) {
	var a domain.Alert
	var due, resolved, acked, snoozed, escalated *time.Time
	var by, esc, superseded *uuid.UUID
	var resolution *string
	if err := row.Scan(&a.ID, &a.Customer, &a.Kind, &a.From, &a.To, &a.ReasonZH, &a.ReasonEN, &a.CreatedAt, &due,
		&a.Owner, &a.Status, &resolved, &by, &a.Playbook, &a.RuleVersion, &esc, &a.DeliverySuppressed, &a.SuppressionReason,
		&resolution, &superseded, &acked, &snoozed, &escalated); err != nil {
		return a, err
	}
	for _, t := range []struct{ dst, src *time.Time }{
		{&a.DueAt, due}, {&a.ResolvedAt, resolved}, {&a.AcknowledgedAt, acked}, {&a.SnoozedUntil, snoozed}, {&a.EscalatedAt, escalated},
	} {
		if t.src != nil {
			*t.dst = *t.src
		}
	}
	for _, u := range []struct{ dst, src *uuid.UUID }{{&a.ResolvedBy, by}, {&a.Escalates, esc}, {&a.SupersededBy, superseded}} {
		if u.src != nil {
			*u.dst = *u.src
		}
	}
	if resolution != nil {
		a.Resolution = *resolution
	}
	return a, nil
}

// ErrAlertNotFound: no alert has the id.
var ErrAlertNotFound = errors.New("alert not found")

// Alert is one alert by id, as stored (ErrAlertNotFound when none).
func (q *Queries) Alert(ctx context.Context, id uuid.UUID) (domain.Alert, error) {
	a, err := scanAlert(q.projector.pool.QueryRow(ctx, alertSelect+"WHERE alert_id = $1", id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return a, ErrAlertNotFound
	case err != nil:
		return a, fmt.Errorf("read alert: %w", eventstore.MapError(err))
	}
	return a, nil
}

// ActionableAlerts lists the alerts that still need action (open,
// acknowledged or overdue) as the API shows them, oldest first.
func (q *Queries) ActionableAlerts(ctx context.Context) ([]AlertDocument, error) {
	rows, err := q.projector.pool.Query(ctx, alertSelect+`WHERE status IN ('open', 'acknowledged', 'overdue')
		ORDER BY created_at, alert_id`)
	if err != nil {
		return nil, fmt.Errorf("actionable alerts: %w", eventstore.MapError(err))
	}
	defer rows.Close()
	var out []AlertDocument
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("actionable alerts: %w", eventstore.MapError(err))
		}
		out = append(out, q.projector.alertDocument(&a))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("actionable alerts: %w", eventstore.MapError(err))
	}
	return out, nil
}

// AlertDocument is alert a as the API shows it.
func (q *Queries) AlertDocument(a *domain.Alert) AlertDocument { return q.projector.alertDocument(a) }

func encodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

func decodeCursor(s string) (time.Time, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	ts, idText, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	return at, id, nil
}

// CustomerOwner is the customer's current owner as projected
// (ErrNotFound when the customer has no projection).
func (q *Queries) CustomerOwner(ctx context.Context, code domain.CustomerCode) (string, error) {
	var owner string
	err := q.projector.pool.QueryRow(ctx, "SELECT owner FROM customer_projections WHERE stream_id = $1", code.StreamID()).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", ErrNotFound
	case err != nil:
		return "", fmt.Errorf("owner of %s: %w", code, eventstore.MapError(err))
	}
	return owner, nil
}
