package projections

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
)

// StreamChanges is the JetStream stream of label changes.
const StreamChanges = "SEGMENTS_CHANGES"

// Metrics receives the projector's measurements.
type Metrics interface {
	EventsProjected(n int)
	ProjectionLag(seconds float64)
	// MessagesAlreadyApplied counts SEGMENTS_EVENTS messages Consume
	// acknowledged without a transaction (see Consume).
	MessagesAlreadyApplied(n int)
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
	// busWaiting counts the messages Consume has received and not yet
	// taken into a transaction: FollowCommits stands aside while it is high.
	busWaiting atomic.Int64
	// durable are versions this process's own transactions stored durably:
	// Consume acknowledges messages they cover without a transaction.
	durable *durableVersions
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
		cache: newProjCache(cfg.ProjectionCache), consumeWorkers: cfg.ConsumeWorkers,
		durable: newDurableVersions(durableVersionsLimit)}
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
// number of events applied, once their transaction is committed and durable.
func (p *Projector) Apply(ctx context.Context, streams []uuid.UUID) (int, error) {
	applied, own, err := p.apply(ctx, streams, false)
	if err == nil {
		// The commit was synchronous: what it wrote is on disk.
		p.durable.raise(own.written)
	}
	return applied, err
}

// apply is Apply. With async, the commit does not wait for PostgreSQL to
// flush it to disk: the returned transaction's commitEnd is where the commit
// ends in the WAL, and the work is durable once the WAL is flushed past it
// (see Consume). Its written lists the customers it advanced.
//
// The transaction costs two round trips: BEGIN rides with the locks and the
// reads, COMMIT with the writes. Every round trip a transaction waits for
// holds its customers' locks and delays the batch behind it, and on a busy
// machine each one also waits to be scheduled.
func (p *Projector) apply(ctx context.Context, streams []uuid.UUID, async bool) (int, *ownTx, error) {
	own := &ownTx{async: async}
	if len(streams) == 0 {
		return 0, own, nil
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("project %d customers: %w", len(streams), err)
	}
	// A connection left inside a transaction (a cancelled round trip) is
	// closed by the pool on release rather than reused.
	defer conn.Release()
	var applied int
	var cached map[uuid.UUID]cacheEntry
	err = p.retryRFM(ctx, func() error {
		applied, cached, err = p.applyTx(ctx, conn.Conn(), streams, time.Time{}, own)
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' && ctx.Err() == nil {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("project %d customers: %w", len(streams), err)
	}
	p.cache.put(cached)
	if p.metrics != nil && applied > 0 {
		p.metrics.EventsProjected(applied)
	}
	return applied, own, nil
}

// batchSender is what a projector transaction needs from its connection: a
// pgx.Tx (the scheduler's transaction) or a *pgx.Conn whose transaction the
// batches open and commit themselves (Apply's).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// ownTx is a transaction applyTx opens and commits itself, in its batches.
type ownTx struct {
	// async: commit without waiting for the WAL flush (synchronous_commit
	// off for this transaction only).
	async bool
	// commitEnd is set, for an async commit, to a WAL position at or after
	// the end of its commit record: once the WAL is flushed that far, the
	// transaction survives a crash.
	commitEnd int64
	// written are the customers to which the transaction applied events,
	// with the version it stored: durable once the commit is.
	written []streamVersion
}

// applyTx does Apply's work on db in two batches. With own, the first batch
// begins the transaction and the second commits it; otherwise (own nil) db
// is a transaction the caller ends. When until is not zero, each customer is then
// advanced to until (the scheduler's boundary instant). The returned cache
// entries are to be put in p.cache once the transaction has committed.
func (p *Projector) applyTx(ctx context.Context, db batchSender, streams []uuid.UUID, until time.Time, own *ownTx) (int, map[uuid.UUID]cacheEntry, error) {
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
	// Lock, load and read in one round trip, executed in this order: the
	// reads come after the locks, so they see every commit of whoever held
	// a customer before us.
	var batch pgx.Batch
	if own != nil {
		batch.Queue("BEGIN")
		if own.async {
			batch.Queue("SET LOCAL synchronous_commit = off")
		}
	}
	p.queueRFM(&batch)
	batch.Queue(`SELECT pg_advisory_xact_lock(k) FROM
		(SELECT DISTINCT hashtextextended(s::text, 5362) AS k FROM unnest($1::uuid[]) AS s ORDER BY 1) AS keys`, ids)
	batch.Queue(`SELECT p.stream_id, p.xmin::text::bigint, p.changes,
			CASE WHEN c.stream_id IS NOT NULL AND p.xmin::text::bigint = c.xmin AND p.version = c.version AND p.changes = c.changes
				THEN NULL ELSE p.projection END
		FROM customer_projections p
		LEFT JOIN unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[]) AS c(stream_id, xmin, version, changes) ON c.stream_id = p.stream_id
		WHERE p.stream_id = ANY($1)`, ids, cIDs, cXmins, cVersions, cSeqs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var raw []byte
			var xmin, seq int64
			if err := rows.Scan((*uuidDst)(&id), &xmin, &seq, &raw); err != nil {
				return fmt.Errorf("load projections: %w", err)
			}
			var proj *domain.Projection
			if raw == nil {
				e, ok := taken[id]
				if !ok {
					return fmt.Errorf("customer stream %s: no projection document", id)
				}
				proj = e.proj
			} else {
				var err error
				if proj, err = decodeProjection(p.book, raw); err != nil {
					return fmt.Errorf("customer stream %s: %w", id, err)
				}
			}
			w := work[id]
			w.proj, w.existed, w.seq, w.xmin = proj, true, seq, xmin
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load projections: %w", err)
		}
		return nil
	})
	// The events after each customer's stored version (the version of the
	// projection just loaded), one index range scan per customer. As a plain
	// join the planner, which cannot know how few events follow each
	// customer's version, prefers a merge join over the whole
	// (stream_id, version) index: a scan of the entire log per transaction.
	// OFFSET 0 keeps the lateral subquery from being flattened into that join.
	total := 0
	days := p.newTrendDays()
	var due *rfmDayDueError
	batch.Queue(`SELECT e.stream_id, e.customer, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at, e.data, `+sourceColumn+`
		FROM unnest($1::uuid[]) AS k(stream_id)
		CROSS JOIN LATERAL (SELECT coalesce((SELECT p.version FROM customer_projections p WHERE p.stream_id = k.stream_id), 0) AS after) a
		CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.stream_id = k.stream_id AND e.version > a.after OFFSET 0) e
		ORDER BY e.stream_id, e.version`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var rec domain.Recorded
			var id uuid.UUID
			var data []byte
			if err := rows.Scan((*uuidDst)(&id), &rec.Customer, &rec.Version, (*uuidDst)(&rec.EventID), &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data, &rec.Source); err != nil {
				return fmt.Errorf("read new events: %w", err)
			}
			var err error
			if rec.Data, err = domain.DecodeData(rec.Type, data); err != nil {
				return err
			}
			// An event past the recorded RFM days: the transaction is given
			// up once the latest such instant is known, so that one recorded
			// day covers the whole batch (retryRFM).
			if due == nil && !p.book.RFM().Covers(rec.RecordedAt) {
				due = &rfmDayDueError{at: rec.RecordedAt}
			}
			if due != nil {
				due.at = maxTime(due.at, rec.RecordedAt)
				continue
			}
			w := work[id]
			if rec.Version != w.proj.State.Version+1 {
				// The stored version and the loaded projection disagree:
				// applying would skip or repeat events.
				return fmt.Errorf("customer stream %s: event version %d follows projection version %d", id, rec.Version, w.proj.State.Version)
			}
			net := w.proj.State.NetAmount
			changes := p.book.Advance(w.proj, rec.RecordedAt, &rec)
			days.advance(p.book, w.proj, net, changes)
			w.changes = append(w.changes, changes...)
			w.alerts = append(w.alerts, w.proj.TakeAlertUpdates()...)
			w.applied++
			total++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read new events: %w", err)
		}
		if due != nil {
			return due
		}
		return nil
	})
	if err := db.SendBatch(ctx, &batch).Close(); err != nil {
		return 0, nil, fmt.Errorf("lock and read: %w", err)
	}
	if !until.IsZero() {
		if err := p.checkRFM(until); err != nil {
			return 0, nil, err
		}
		for _, w := range order {
			if w.proj.RuleVersion != 0 {
				before := w.proj.EvaluatedAt
				changes := p.book.Advance(w.proj, until, nil)
				days.advance(p.book, w.proj, w.proj.State.NetAmount, changes)
				w.changes = append(w.changes, changes...)
				w.alerts = append(w.alerts, w.proj.TakeAlertUpdates()...)
				// A boundary that changes no label still moves next_at on.
				w.advanced = !w.proj.EvaluatedAt.Equal(before)
			}
		}
	}
	if err := p.save(ctx, db, order, work, days, own); err != nil {
		return 0, nil, err
	}
	if own != nil {
		for _, w := range order {
			if w.applied > 0 && w.proj.RuleVersion != 0 {
				own.written = append(own.written, streamVersion{w.streamID, w.proj.State.Version})
			}
		}
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
	ID          uuid.UUID `json:"id"`
	Customer    string    `json:"customer"`
	Label       string    `json:"label"`
	From        *string   `json:"from"`
	To          string    `json:"to"`
	At          string    `json:"at"`
	Cause       causeJSON `json:"cause"`
	RuleVersion int       `json:"rule_version"`
	Reason      string    `json:"reason"`
	ReasonEN    string    `json:"reason_en"`
	Seq         int64     `json:"seq"`
	Display     string    `json:"display,omitempty"`
	// Correction marks a message a rebuild published: "added" (a change the
	// history lacked) or "retracted" (a published change that the log does
	// not support). Live changes have none.
	Correction string     `json:"correction,omitempty"`
	EventID    *uuid.UUID `json:"-"`
}

type causeJSON struct {
	Kind    string     `json:"kind"`
	EventID *uuid.UUID `json:"event_id"`
}

// save writes the batch's projections, label changes, alerts and outbox
// messages in one round trip (with own, COMMIT rides in it too: a statement
// that fails makes the server skip the rest, COMMIT included).
func (p *Projector) save(ctx context.Context, db batchSender, order []*customerWork, work map[uuid.UUID]*customerWork, days *trendDays, own *ownTx) error {
	var changes changeColumnsArrays
	var out outboxArrays
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
			changes.add(w.streamID, c, w.seq)
			out.add(changeOutbox(c, msg))
		}
	}
	var b pgx.Batch
	if len(changes.ids) > 0 {
		changes.queue(&b)
	}
	alertMsgs, err := p.queueAlerts(&b, streams, alerts, nil)
	if err != nil {
		return err
	}
	// Label changes, then the alerts they raised: one INSERT, in that order
	// (outbox ids are the relays' publication order).
	for _, m := range alertMsgs {
		out.add(m)
	}
	if len(out.streams) > 0 {
		out.queue(&b)
	}
	days.queue(&b)
	if err := p.queueProjections(&b, order, work); err != nil {
		return err
	}
	if own != nil {
		b.Queue("COMMIT")
		if own.async {
			// Read after the commit: the insert position is then past
			// the commit record.
			b.Queue("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").QueryRow(func(row pgx.Row) error {
				return row.Scan(&own.commitEnd)
			})
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write projections, label changes and alerts: %w", err)
	}
	return nil
}

// changeColumnsArrays are label_changes rows as column arrays, for one
// INSERT … SELECT FROM unnest (the same values COPY writes in a rebuild).
type changeColumnsArrays struct {
	ids, streamIDs, causeEvents                    []pgtype.UUID
	customers, labels, tos, causes, reasons, rsnEN []string
	froms                                          []*string
	seqs                                           []int64
	ats                                            []time.Time
	ruleVersions                                   []int
}

func (a *changeColumnsArrays) add(stream uuid.UUID, c domain.LabelChange, seq int64) {
	a.ids, a.streamIDs, a.causeEvents = append(a.ids, pgUUID(c.ID)), append(a.streamIDs, pgUUID(stream)), append(a.causeEvents, causeEventArg(c))
	a.customers, a.labels, a.tos = append(a.customers, string(c.Customer)), append(a.labels, c.Label), append(a.tos, c.To)
	a.causes, a.reasons, a.rsnEN = append(a.causes, string(c.Cause)), append(a.reasons, c.ReasonZH), append(a.rsnEN, c.ReasonEN)
	a.froms, a.seqs, a.ats, a.ruleVersions = append(a.froms, optional(c.From)), append(a.seqs, seq), append(a.ats, c.At), append(a.ruleVersions, c.RuleVersion)
}

func (a *changeColumnsArrays) queue(b *pgx.Batch) {
	b.Queue(`INSERT INTO label_changes (`+strings.Join(changeColumns, ", ")+`)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::text[], $10::uuid[], $11::int[], $12::text[], $13::text[])`,
		a.ids, a.streamIDs, a.customers, a.seqs, a.labels, a.froms, a.tos, a.ats, a.causes, a.causeEvents, a.ruleVersions, a.reasons, a.rsnEN)
}

// outboxMessage is one outbox row.
type outboxMessage struct {
	stream, subject, msgID string
	payload                []byte
	correction             bool // published with HeaderCorrection
}

// values is the row in outboxColumns order, for COPY.
func (m outboxMessage) values() []any {
	return []any{m.stream, m.subject, m.msgID, m.payload, m.correction}
}

// changeOutbox is the outbox message of a label change whose
// SEGMENTS_CHANGES body is msg.
func changeOutbox(c domain.LabelChange, msg []byte) outboxMessage {
	return outboxMessage{stream: StreamChanges, subject: "segments.changed." + c.Label, msgID: c.ID.String(), payload: msg}
}

// outboxArrays are outbox rows as column arrays.
type outboxArrays struct {
	streams, subjects, msgIDs []string
	payloads                  [][]byte
}

func (a *outboxArrays) add(m outboxMessage) {
	a.streams, a.subjects, a.msgIDs, a.payloads = append(a.streams, m.stream), append(a.subjects, m.subject), append(a.msgIDs, m.msgID), append(a.payloads, m.payload)
}

// queue inserts the rows in their order: the identity column, which is the
// relays' publication order, is drawn as the rows are inserted.
func (a *outboxArrays) queue(b *pgx.Batch) {
	b.Queue(`INSERT INTO outbox (stream, subject, msg_id, payload)
		SELECT m.stream, m.subject, m.msg_id, m.payload
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS m(stream, subject, msg_id, payload, n)
		ORDER BY m.n`,
		a.streams, a.subjects, a.msgIDs, a.payloads)
}
