package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// StreamChanges is the JetStream stream of label changes.
const StreamChanges = "SEGMENTS_CHANGES"

// Metrics receives the projector's measurements.
type Metrics interface {
	EventsProjected(n int)
	ProjectionLag(seconds float64)
}

// Projector folds recorded events into customer projections. Every call
// works on a set of customers inside one transaction: it locks them
// (advisory transaction locks, taken in key order so two projectors never
// deadlock and never process the same customer at once), reads each one's
// stream after the version it has applied, advances it event by event with
// domain.RuleBook.Advance, and writes projections, label changes and their
// outbox messages together.
type Projector struct {
	pool    *pgxpool.Pool
	book    *domain.RuleBook
	log     *slog.Logger
	metrics Metrics
	now     func() time.Time
}

// Config configures a Projector.
type Config struct {
	Pool    *pgxpool.Pool
	Rules   *domain.RuleBook
	Logger  *slog.Logger
	Metrics Metrics
	Now     func() time.Time
}

// New returns a projector.
func New(cfg Config) *Projector {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rules == nil {
		cfg.Rules = domain.DefaultRuleBook()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Projector{pool: cfg.Pool, book: cfg.Rules, log: cfg.Logger, metrics: cfg.Metrics, now: cfg.Now}
}

// Rules returns the rule book.
func (p *Projector) Rules() *domain.RuleBook { return p.book }

// customerWork is one customer's projection while a batch is processed.
type customerWork struct {
	streamID uuid.UUID
	proj     *domain.Projection
	existed  bool
	seq      int64 // label changes recorded before this batch
	changes  []domain.LabelChange
	alerts   []domain.Alert
	applied  int
	advanced bool // evaluated at a later instant without an event (a boundary passed)
}

// Apply catches the given customers up with the log: every event recorded
// for them and not yet applied is applied, in version order. It returns the
// number of events applied.
func (p *Projector) Apply(ctx context.Context, streams []uuid.UUID) (int, error) {
	if len(streams) == 0 {
		return 0, nil
	}
	var applied int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		applied, err = p.applyTx(ctx, tx, streams, time.Time{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("project %d customers: %w", len(streams), err)
	}
	if p.metrics != nil && applied > 0 {
		p.metrics.EventsProjected(applied)
	}
	return applied, nil
}

// applyTx does Apply's work in tx. When until is not zero, each customer is
// then advanced to until (the scheduler's boundary instant).
func (p *Projector) applyTx(ctx context.Context, tx pgx.Tx, streams []uuid.UUID, until time.Time) (int, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM
		(SELECT DISTINCT hashtextextended(s::text, 5362) AS k FROM unnest($1::uuid[]) AS s ORDER BY 1) AS keys`, streams); err != nil {
		return 0, fmt.Errorf("lock customers: %w", err)
	}
	work := make(map[uuid.UUID]*customerWork, len(streams))
	order := make([]*customerWork, 0, len(streams))
	for _, id := range streams {
		if _, ok := work[id]; ok {
			continue
		}
		w := &customerWork{streamID: id, proj: &domain.Projection{}}
		work[id] = w
		order = append(order, w)
	}
	rows, err := tx.Query(ctx, "SELECT stream_id, projection, changes FROM customer_projections WHERE stream_id = ANY($1)", streams)
	if err != nil {
		return 0, fmt.Errorf("load projections: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var raw []byte
		var seq int64
		if err := rows.Scan(&id, &raw, &seq); err != nil {
			rows.Close()
			return 0, fmt.Errorf("load projections: %w", err)
		}
		proj, err := decodeProjection(p.book, raw)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("customer stream %s: %w", id, err)
		}
		w := work[id]
		w.proj, w.existed, w.seq = proj, true, seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("load projections: %w", err)
	}

	ids := make([]uuid.UUID, len(order))
	after := make([]int64, len(order))
	for i, w := range order {
		ids[i], after[i] = w.streamID, w.proj.State.Version
	}
	erows, err := tx.Query(ctx, `SELECT e.stream_id, e.customer, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at, e.data
		FROM unnest($1::uuid[], $2::bigint[]) AS k(stream_id, after)
		JOIN events e ON e.stream_id = k.stream_id AND e.version > k.after
		ORDER BY e.stream_id, e.version`, ids, after)
	if err != nil {
		return 0, fmt.Errorf("read new events: %w", err)
	}
	total := 0
	for erows.Next() {
		var rec domain.Recorded
		var id uuid.UUID
		var data []byte
		if err := erows.Scan(&id, &rec.Customer, &rec.Version, &rec.EventID, &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data); err != nil {
			erows.Close()
			return 0, fmt.Errorf("read new events: %w", err)
		}
		if rec.Data, err = domain.DecodeData(rec.Type, data); err != nil {
			erows.Close()
			return 0, err
		}
		w := work[id]
		w.changes = append(w.changes, p.book.Advance(w.proj, rec.RecordedAt, &rec)...)
		w.alerts = append(w.alerts, w.proj.TakeAlertUpdates()...)
		w.applied++
		total++
	}
	erows.Close()
	if err := erows.Err(); err != nil {
		return 0, fmt.Errorf("read new events: %w", err)
	}
	if !until.IsZero() {
		for _, w := range order {
			if w.proj.RuleVersion != 0 {
				before := w.proj.EvaluatedAt
				w.changes = append(w.changes, p.book.Advance(w.proj, until, nil)...)
				w.alerts = append(w.alerts, w.proj.TakeAlertUpdates()...)
				// A boundary that changes no label still moves next_at on.
				w.advanced = !w.proj.EvaluatedAt.Equal(before)
			}
		}
	}
	if err := p.save(ctx, tx, order); err != nil {
		return 0, err
	}
	return total, nil
}

// HistoryEntry is a label change: the JSON body of its message on
// SEGMENTS_CHANGES and an entry of GET …/labels/history (SPEC §6.1).
type HistoryEntry struct {
	ID          uuid.UUID  `json:"id"`
	Customer    string     `json:"customer"`
	Label       string     `json:"label"`
	From        *string    `json:"from"`
	To          string     `json:"to"`
	At          string     `json:"at"`
	Cause       causeJSON  `json:"cause"`
	RuleVersion int        `json:"rule_version"`
	Reason      string     `json:"reason"`
	ReasonEN    string     `json:"reason_en"`
	Seq         int64      `json:"seq"`
	Display     string     `json:"display,omitempty"`
	EventID     *uuid.UUID `json:"-"`
}

type causeJSON struct {
	Kind    string     `json:"kind"`
	EventID *uuid.UUID `json:"event_id"`
}

func (p *Projector) save(ctx context.Context, tx pgx.Tx, order []*customerWork) error {
	var changeRows, outboxRows [][]any
	var alerts []domain.Alert
	streams := map[domain.CustomerCode]uuid.UUID{}
	for _, w := range order {
		alerts = append(alerts, w.alerts...)
		streams[w.proj.State.Customer] = w.streamID
		for _, c := range w.changes {
			w.seq++
			row, msg, err := p.changeRow(w.streamID, c, w.seq)
			if err != nil {
				return err
			}
			changeRows = append(changeRows, row)
			outboxRows = append(outboxRows, []any{StreamChanges, "segments.changed." + c.Label, c.ID.String(), msg})
		}
	}
	if len(changeRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"label_changes"}, changeColumns, pgx.CopyFromRows(changeRows)); err != nil {
			return fmt.Errorf("write label changes: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"stream", "subject", "msg_id", "payload"}, pgx.CopyFromRows(outboxRows)); err != nil {
			return fmt.Errorf("queue label changes: %w", err)
		}
	}
	if err := p.saveAlerts(ctx, tx, streams, alerts, nil); err != nil {
		return err
	}
	return p.saveProjections(ctx, tx, order)
}

// saveProjections upserts the customers' projections (w.seq already counts
// their label changes).
func (p *Projector) saveProjections(ctx context.Context, tx pgx.Tx, order []*customerWork) error {
	var (
		ids                                          []uuid.UUID
		customers, tiers, acts, needs, lifes, owners []string
		versions, nets, seqs                         []int64
		ruleVersions                                 []int
		evaluated                                    []time.Time
		nexts                                        []*time.Time
		projs, tagLists                              []string
	)
	for _, w := range order {
		if w.proj.RuleVersion == 0 || (w.applied == 0 && !w.advanced && len(w.changes) == 0 && len(w.alerts) == 0 && w.existed) {
			continue
		}
		raw, err := encodeProjection(p.book, w.proj)
		if err != nil {
			return err
		}
		tags, err := json.Marshal(tagNames(p.book, w.proj))
		if err != nil {
			return fmt.Errorf("encode tags: %w", err)
		}
		l := &w.proj.Labels
		var next *time.Time
		if n := p.book.NextInstant(w.proj); !n.IsZero() {
			next = &n
		}
		ids = append(ids, w.streamID)
		customers = append(customers, string(w.proj.State.Customer))
		versions = append(versions, w.proj.State.Version)
		ruleVersions = append(ruleVersions, w.proj.RuleVersion)
		evaluated = append(evaluated, w.proj.EvaluatedAt)
		nexts = append(nexts, next)
		projs = append(projs, string(raw))
		tiers = append(tiers, l.ValueTier)
		acts = append(acts, l.Activity)
		needs = append(needs, l.NeedOrientation)
		lifes = append(lifes, l.Lifecycle)
		tagLists = append(tagLists, string(tags))
		nets = append(nets, int64(w.proj.State.NetAmount))
		owners = append(owners, w.proj.State.Profile.Owner)
		seqs = append(seqs, w.seq)
	}
	if len(ids) == 0 {
		return nil
	}
	var earliest *time.Time
	for _, n := range nexts {
		if n != nil && (earliest == nil || n.Before(*earliest)) {
			earliest = n
		}
	}
	if earliest != nil {
		// Wake sleeping schedulers: this boundary may be earlier than the one
		// they wait for. Delivered at commit.
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyNextAt, earliest.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("notify schedulers: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO customer_projections (stream_id, customer, version, rule_version, evaluated_at, next_at, projection,
			value_tier, activity, need_orientation, lifecycle, tags, net_amount, owner, changes)
		SELECT u.stream_id, u.customer, u.version, u.rule_version, u.evaluated_at, u.next_at, u.projection::jsonb,
			u.value_tier, u.activity, u.need_orientation, u.lifecycle, ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)), u.net_amount, u.owner, u.changes
		FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[], $15::bigint[])
			AS u(stream_id, customer, version, rule_version, evaluated_at, next_at, projection, value_tier, activity,
				need_orientation, lifecycle, tags, net_amount, owner, changes)
		ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, rule_version = EXCLUDED.rule_version,
			evaluated_at = EXCLUDED.evaluated_at, next_at = EXCLUDED.next_at, projection = EXCLUDED.projection,
			value_tier = EXCLUDED.value_tier, activity = EXCLUDED.activity, need_orientation = EXCLUDED.need_orientation,
			lifecycle = EXCLUDED.lifecycle, tags = EXCLUDED.tags, net_amount = EXCLUDED.net_amount, owner = EXCLUDED.owner,
			changes = EXCLUDED.changes`,
		ids, customers, versions, ruleVersions, evaluated, nexts, projs, tiers, acts, needs, lifes, tagLists, nets, owners, seqs)
	if err != nil {
		return fmt.Errorf("save projections: %w", err)
	}
	return nil
}

// ErrNotFound: no projection for that customer.
var ErrNotFound = errors.New("customer not found")

var _ = eventstore.ErrNotFound
