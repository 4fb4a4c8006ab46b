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
	"delivery_suppressed", "suppression_reason"}

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
	opened := map[uuid.UUID]int{} // each alert's first update with status open
	var order []uuid.UUID
	for i := range updates {
		id := updates[i].ID
		if _, ok := last[id]; !ok {
			order = append(order, id)
		}
		last[id] = i
		if updates[i].Status == domain.AlertOpen {
			if _, ok := opened[id]; !ok {
				opened[id] = i
			}
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
		if known == nil || !known(a.ID) {
			// Publish an alert once, when it is raised (the only update with
			// status open: alerts never return to open).
			if i, ok := opened[id]; ok {
				body, err := json.Marshal(p.alertDocument(&updates[i]), json.Deterministic(true))
				if err != nil {
					return nil, fmt.Errorf("encode alert: %w", err)
				}
				outbox = append(outbox, outboxMessage{stream: StreamAlerts, subject: AlertSubject(a.Kind, a.Owner), msgID: a.ID.String(), payload: body})
			}
		}
	}
	// One upsert from arrays (each alert id once: the last update wins).
	b.Queue(`INSERT INTO alerts (`+strings.Join(alertColumns, ", ")+`)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::timestamptz[], $14::uuid[], $15::text[], $16::int[], $17::uuid[], $18::boolean[], $19::text[])
		ON CONFLICT (alert_id) DO UPDATE SET status = EXCLUDED.status, resolved_at = EXCLUDED.resolved_at,
			resolved_by = EXCLUDED.resolved_by, owner = alerts.owner`,
		ids, streamIDs, customers, kinds, froms, tos, reasons, reasonsEN,
		created, dues, owners, statuses, resolvedAts, resolvedBy, playbooks, ruleVersions, escalates, suppressed, suppressionReasons)
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
	rows, err := q.projector.pool.Query(ctx, `SELECT alert_id, customer, kind, from_value, to_value, reason, reason_en, created_at, due_at,
		owner, status, resolved_at, resolved_by, playbook, rule_version, escalates, delivery_suppressed, coalesce(suppression_reason, '') FROM alerts `+where+`
		ORDER BY created_at DESC, alert_id DESC LIMIT `+limit, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", eventstore.MapError(err))
	}
	defer rows.Close()
	out := []AlertDocument{}
	var lastAt time.Time
	var lastID uuid.UUID
	for rows.Next() {
		var a domain.Alert
		var due, resolved *time.Time
		var by, esc *uuid.UUID
		if err := rows.Scan(&a.ID, &a.Customer, &a.Kind, &a.From, &a.To, &a.ReasonZH, &a.ReasonEN, &a.CreatedAt, &due,
			&a.Owner, &a.Status, &resolved, &by, &a.Playbook, &a.RuleVersion, &esc, &a.DeliverySuppressed, &a.SuppressionReason); err != nil {
			return nil, "", fmt.Errorf("list alerts: %w", eventstore.MapError(err))
		}
		if due != nil {
			a.DueAt = *due
		}
		if resolved != nil {
			a.ResolvedAt = *resolved
		}
		if by != nil {
			a.ResolvedBy = *by
		}
		if esc != nil {
			a.Escalates = *esc
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
