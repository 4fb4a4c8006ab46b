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
	"github.com/jackc/pgx/v5/pgtype"
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
	cache   *projCache
	// consumeWorkers is how many transactions Consume keeps in flight.
	consumeWorkers int
}

// Config configures a Projector.
type Config struct {
	Pool    *pgxpool.Pool
	Rules   *domain.RuleBook
	Logger  *slog.Logger
	Metrics Metrics
	Now     func() time.Time
	// ProjectionCache is how many decoded projections to keep between
	// transactions (0: DefaultProjectionCache; negative: none).
	ProjectionCache int
	// ConsumeWorkers is how many batches Consume applies at once
	// (default 2: one folds while the other waits for PostgreSQL).
	ConsumeWorkers int
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
	if cfg.ProjectionCache == 0 {
		cfg.ProjectionCache = DefaultProjectionCache
	}
	if cfg.ConsumeWorkers <= 0 {
		cfg.ConsumeWorkers = 2
	}
	return &Projector{pool: cfg.Pool, book: cfg.Rules, log: cfg.Logger, metrics: cfg.Metrics, now: cfg.Now,
		cache: newProjCache(cfg.ProjectionCache), consumeWorkers: cfg.ConsumeWorkers}
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
	advanced bool  // evaluated at a later instant without an event (a boundary passed)
	xmin     int64 // xmin of the stored row (0: none)
}

// Apply catches the given customers up with the log: every event recorded
// for them and not yet applied is applied, in version order. It returns the
// number of events applied.
func (p *Projector) Apply(ctx context.Context, streams []uuid.UUID) (int, error) {
	if len(streams) == 0 {
		return 0, nil
	}
	var applied int
	var cached map[uuid.UUID]cacheEntry
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		applied, cached, err = p.applyTx(ctx, tx, streams, time.Time{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("project %d customers: %w", len(streams), err)
	}
	p.cache.put(cached)
	if p.metrics != nil && applied > 0 {
		p.metrics.EventsProjected(applied)
	}
	return applied, nil
}

// applyTx does Apply's work in tx. When until is not zero, each customer is
// then advanced to until (the scheduler's boundary instant). The returned
// cache entries are to be put in p.cache once tx has committed.
func (p *Projector) applyTx(ctx context.Context, tx pgx.Tx, streams []uuid.UUID, until time.Time) (int, map[uuid.UUID]cacheEntry, error) {
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
	// Projections this process wrote last are taken from the cache when the
	// stored row is still that write (same xmin, version and change count):
	// the query then returns no document to decode.
	taken := p.cache.take(streams)
	cIDs := make([]pgtype.UUID, 0, len(taken))
	cXmins, cVersions, cSeqs := make([]int64, 0, len(taken)), make([]int64, 0, len(taken)), make([]int64, 0, len(taken))
	for id, e := range taken {
		cIDs = append(cIDs, pgUUID(id))
		cXmins, cVersions, cSeqs = append(cXmins, e.xmin), append(cVersions, e.proj.State.Version), append(cSeqs, e.seq)
	}
	ids := make([]pgtype.UUID, len(order))
	for i, w := range order {
		ids[i] = pgUUID(w.streamID)
	}
	// Lock and load in one round trip (executed in this order).
	var batch pgx.Batch
	batch.Queue(`SELECT pg_advisory_xact_lock(k) FROM
		(SELECT DISTINCT hashtextextended(s::text, 5362) AS k FROM unnest($1::uuid[]) AS s ORDER BY 1) AS keys`, ids)
	batch.Queue(`SELECT p.stream_id, p.xmin::text::bigint, p.changes,
			CASE WHEN c.stream_id IS NOT NULL AND p.xmin::text::bigint = c.xmin AND p.version = c.version AND p.changes = c.changes
				THEN NULL ELSE p.projection END
		FROM customer_projections p
		LEFT JOIN unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[]) AS c(stream_id, xmin, version, changes) ON c.stream_id = p.stream_id
		WHERE p.stream_id = ANY($1)`, ids, cIDs, cXmins, cVersions, cSeqs)
	br := tx.SendBatch(ctx, &batch)
	defer func() { _ = br.Close() }() // errors reach the caller through Exec and Query
	if _, err := br.Exec(); err != nil {
		return 0, nil, fmt.Errorf("lock customers: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return 0, nil, fmt.Errorf("load projections: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var raw []byte
		var xmin, seq int64
		if err := rows.Scan((*uuidDst)(&id), &xmin, &seq, &raw); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("load projections: %w", err)
		}
		var proj *domain.Projection
		if raw == nil {
			e, ok := taken[id]
			if !ok {
				rows.Close()
				return 0, nil, fmt.Errorf("customer stream %s: no projection document", id)
			}
			proj = e.proj
		} else if proj, err = decodeProjection(p.book, raw); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("customer stream %s: %w", id, err)
		}
		w := work[id]
		w.proj, w.existed, w.seq, w.xmin = proj, true, seq, xmin
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("load projections: %w", err)
	}
	if err := br.Close(); err != nil {
		return 0, nil, fmt.Errorf("load projections: %w", err)
	}
	after := make([]int64, len(order))
	for i, w := range order {
		after[i] = w.proj.State.Version
	}
	// One index range scan per customer. As a plain join the planner, which
	// cannot know how few events follow each customer's version, prefers a
	// merge join over the whole (stream_id, version) index: a scan of the
	// entire log per transaction. OFFSET 0 keeps the lateral subquery from
	// being flattened into that join.
	erows, err := tx.Query(ctx, `SELECT e.stream_id, e.customer, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at, e.data
		FROM unnest($1::uuid[], $2::bigint[]) AS k(stream_id, after)
		CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.stream_id = k.stream_id AND e.version > k.after OFFSET 0) e
		ORDER BY e.stream_id, e.version`, ids, after)
	if err != nil {
		return 0, nil, fmt.Errorf("read new events: %w", err)
	}
	total := 0
	for erows.Next() {
		var rec domain.Recorded
		var id uuid.UUID
		var data []byte
		if err := erows.Scan((*uuidDst)(&id), &rec.Customer, &rec.Version, (*uuidDst)(&rec.EventID), &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data); err != nil {
			erows.Close()
			return 0, nil, fmt.Errorf("read new events: %w", err)
		}
		if rec.Data, err = domain.DecodeData(rec.Type, data); err != nil {
			erows.Close()
			return 0, nil, err
		}
		w := work[id]
		w.changes = append(w.changes, p.book.Advance(w.proj, rec.RecordedAt, &rec)...)
		w.alerts = append(w.alerts, w.proj.TakeAlertUpdates()...)
		w.applied++
		total++
	}
	erows.Close()
	if err := erows.Err(); err != nil {
		return 0, nil, fmt.Errorf("read new events: %w", err)
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
		return 0, nil, err
	}
	var cache map[uuid.UUID]cacheEntry
	if p.cache != nil {
		cache = make(map[uuid.UUID]cacheEntry, len(order))
		for _, w := range order {
			if w.xmin != 0 && w.proj.RuleVersion != 0 {
				cache[w.streamID] = cacheEntry{xmin: w.xmin, seq: w.seq, proj: w.proj}
			}
		}
	}
	return total, cache, nil
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
			msg, err := p.changeMessage(c, w.seq)
			if err != nil {
				return err
			}
			changeRows = append(changeRows, changeRow(w.streamID, c, w.seq))
			outboxRows = append(outboxRows, []any{StreamChanges, "segments.changed." + c.Label, c.ID.String(), msg})
		}
	}
	if len(changeRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"label_changes"}, changeColumns, pgx.CopyFromRows(changeRows)); err != nil {
			return fmt.Errorf("write label changes: %w", err)
		}
	}
	alertMsgs, err := p.saveAlerts(ctx, tx, streams, alerts, nil)
	if err != nil {
		return err
	}
	// Label changes, then the alerts they raised: one COPY, same order (and
	// outbox ids) as queuing them one after the other.
	outboxRows = append(outboxRows, alertMsgs...)
	if len(outboxRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(outboxRows)); err != nil {
			return fmt.Errorf("queue label changes and alerts: %w", err)
		}
	}
	return p.saveProjections(ctx, tx, order)
}

// saveProjections upserts the customers' projections (w.seq already counts
// their label changes).
// projectionRow is a customer_projections row.
type projectionRow struct {
	customer                             string
	version                              int64
	ruleVersion                          int
	evaluatedAt                          time.Time
	nextAt                               *time.Time
	document                             []byte // jsonb
	valueTier, activity, need, lifecycle string
	tags                                 []string
	netAmount                            int64
	owner                                string
	changes                              int64
}

// projectionColumns are customer_projections' columns in the order of
// projectionRow.values.
var projectionColumns = []string{"stream_id", "customer", "version", "rule_version", "evaluated_at", "next_at", "projection",
	"value_tier", "activity", "need_orientation", "lifecycle", "tags", "net_amount", "owner", "changes"}

// projectionRow is w's row; ok is false for a customer never evaluated
// (no row is stored for it).
func (p *Projector) projectionRow(w *customerWork) (projectionRow, bool, error) {
	if w.proj.RuleVersion == 0 {
		return projectionRow{}, false, nil
	}
	tags := tagNames(p.book, w.proj)
	raw, err := encodeProjection(w.proj, tags)
	if err != nil {
		return projectionRow{}, false, err
	}
	l := &w.proj.Labels
	r := projectionRow{
		customer: string(w.proj.State.Customer), version: w.proj.State.Version, ruleVersion: w.proj.RuleVersion,
		evaluatedAt: w.proj.EvaluatedAt, document: raw,
		valueTier: l.ValueTier, activity: l.Activity, need: l.NeedOrientation, lifecycle: l.Lifecycle,
		tags: tags, netAmount: int64(w.proj.State.NetAmount), owner: w.proj.State.Profile.Owner, changes: w.seq,
	}
	if n := p.book.NextInstant(w.proj); !n.IsZero() {
		r.nextAt = &n
	}
	return r, true, nil
}

// values is the row in projectionColumns order, for COPY.
func (r *projectionRow) values(stream uuid.UUID) []any {
	return []any{pgUUID(stream), r.customer, r.version, r.ruleVersion, r.evaluatedAt, r.nextAt, r.document,
		r.valueTier, r.activity, r.need, r.lifecycle, r.tags, r.netAmount, r.owner, r.changes}
}

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
		if w.applied == 0 && !w.advanced && len(w.changes) == 0 && len(w.alerts) == 0 && w.existed {
			continue
		}
		r, ok, err := p.projectionRow(w)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		tags, err := json.Marshal(r.tags)
		if err != nil {
			return fmt.Errorf("encode tags: %w", err)
		}
		ids = append(ids, w.streamID)
		customers = append(customers, r.customer)
		versions = append(versions, r.version)
		ruleVersions = append(ruleVersions, r.ruleVersion)
		evaluated = append(evaluated, r.evaluatedAt)
		nexts = append(nexts, r.nextAt)
		projs = append(projs, string(r.document))
		tiers = append(tiers, r.valueTier)
		acts = append(acts, r.activity)
		needs = append(needs, r.need)
		lifes = append(lifes, r.lifecycle)
		tagLists = append(tagLists, string(tags))
		nets = append(nets, r.netAmount)
		owners = append(owners, r.owner)
		seqs = append(seqs, r.changes)
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
	rows, err := tx.Query(ctx, `INSERT INTO customer_projections (stream_id, customer, version, rule_version, evaluated_at, next_at, projection,
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
			changes = EXCLUDED.changes
		RETURNING stream_id, xmin::text::bigint`,
		pgUUIDs(ids), customers, versions, ruleVersions, evaluated, nexts, projs, tiers, acts, needs, lifes, tagLists, nets, owners, seqs)
	if err != nil {
		return fmt.Errorf("save projections: %w", err)
	}
	// The rows' new xmin (for the projection cache).
	byID := make(map[uuid.UUID]*customerWork, len(order))
	for _, w := range order {
		byID[w.streamID] = w
	}
	for rows.Next() {
		var id uuid.UUID
		var xmin int64
		if err := rows.Scan((*uuidDst)(&id), &xmin); err != nil {
			rows.Close()
			return fmt.Errorf("save projections: %w", err)
		}
		if w := byID[id]; w != nil {
			w.xmin = xmin
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("save projections: %w", err)
	}
	return nil
}

// ErrNotFound: no projection for that customer.
var ErrNotFound = errors.New("customer not found")

var _ = eventstore.ErrNotFound
