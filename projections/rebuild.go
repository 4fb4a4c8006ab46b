package projections

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Events    int64
	Customers int
	Changes   int64
	// NewChanges are transitions (customer, label, from, to, instant) that
	// the label history lacked before the rebuild, and Retracted those it
	// held and the rebuild does not reproduce: the true corrections, the only
	// changes a rebuild publishes (marked, see queueCorrections).
	NewChanges int64
	Retracted  int64
	Took       time.Duration
}

// Rebuild drops every projection and replays the whole log through the
// same Advance as the live projector, in one transaction: readers see the
// old read models until it commits. Like the live scheduler, it then passes
// every boundary up to now. Label changes keep their deterministic ids; a
// rebuild publishes only true corrections (queueCorrections), so it never
// publishes a change twice, nor one that merely changed its wording.
//
// Three goroutines overlap its work: one reads and decodes the log on a
// connection of its own, one folds it (Advance) and encodes the rows, and
// one writes them in the rebuild's transaction. Each has one producer and
// one consumer, so the order of the writes is the order of the fold.
func (p *Projector) Rebuild(ctx context.Context) (RebuildStats, error) {
	start := time.Now()
	var st RebuildStats
	// The live scheduler has passed every boundary up to now, recording
	// time changes and alerts after each customer's last event; the rebuild
	// must too, or it would lack them and the scheduler would record (and
	// publish) them a second time. The barrier is the scheduler's: appends
	// in flight commit first, so no event recorded before now is missed.
	now := p.now()
	if n := p.pool.Config().MaxConns; n < 2 {
		// The log is read on a second connection beside the transaction's.
		return st, fmt.Errorf("rebuild: needs a pool of at least 2 connections, has %d", n)
	}
	// The RFM days are recorded up to now first (a day that falls due
	// during the rebuild waits for it: the rebuild holds rfmLock shared).
	if err := p.ensureRFM(ctx, now); err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	upTo, err := eventstore.AwaitSettled(ctx, p.pool)
	if err != nil {
		return st, fmt.Errorf("rebuild: barrier: %w", err)
	}
	err = p.retryRFM(ctx, func() error {
		st = RebuildStats{}
		return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return p.rebuildTx(ctx, tx, now, upTo, &st) })
	})
	// Every stored row was rewritten (the cache would not match them anyway).
	p.cache.reset()
	st.Took = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	return st, nil
}

// Sizes of the rebuild's pipeline stages.
const (
	rebuildPage        = 20_000 // events per read of the log
	rebuildChangeChunk = 20_000 // label changes per COPY
	rebuildAlertChunk  = 10_000 // alert updates per upsert
	rebuildProjChunk   = 5_000  // projections per COPY
)

// logEvent is an event of the log as the rebuild folds it.
type logEvent struct {
	stream uuid.UUID
	rec    domain.Recorded
}

// rebuildWrite is one unit of the writer's work, written in this order.
type rebuildWrite struct {
	alerts      []domain.Alert
	streams     map[domain.CustomerCode]uuid.UUID // of the alerts' customers
	changes     [][]any                           // label_changes rows
	projections []*customerWork                   // final: no more changes
	trend       *trendDays                        // every day of the trend, with the last write
	notify      *time.Time                        // earliest next boundary, announced last
}

func (p *Projector) rebuildTx(ctx context.Context, tx pgx.Tx, now time.Time, upTo int64, st *RebuildStats) error {
	// An operator's one-off transaction: it may sit between statements
	// while the log is folded in Go, longer than the sessions' default
	// idle_in_transaction_session_timeout allows.
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE customer_projections, label_changes, alerts, segment_trend_days IN ACCESS EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock read models: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", rfmLock); err != nil {
		return fmt.Errorf("lock the RFM days: %w", err)
	}
	if err := p.loadRFM(ctx, tx); err != nil {
		return err
	}
	// The history as published so far, compared with the rebuilt one at the end.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE rebuild_previous ON COMMIT DROP AS
		SELECT `+strings.Join(changeColumns, ", ")+` FROM label_changes`); err != nil {
		return fmt.Errorf("keep the label history: %w", err)
	}
	oldAlerts, err := collectIDs(ctx, tx, "SELECT alert_id FROM alerts")
	if err != nil {
		return fmt.Errorf("read alert ids: %w", err)
	}
	if _, err := tx.Exec(ctx, "TRUNCATE customer_projections, label_changes, alerts, segment_trend_days"); err != nil {
		return fmt.Errorf("drop read models: %w", err)
	}
	indexes, err := dropReadModelIndexes(ctx, tx)
	if err != nil {
		return err
	}
	if err := p.rebuildRows(ctx, tx, now, upTo, oldAlerts, st); err != nil {
		return err
	}
	if err := recreateIndexes(ctx, tx, indexes); err != nil {
		return err
	}
	return p.queueCorrections(ctx, tx, st)
}

// rebuildRows refills the emptied read models.
func (p *Projector) rebuildRows(ctx context.Context, tx pgx.Tx, now time.Time, upTo int64, oldAlerts map[uuid.UUID]struct{}, st *RebuildStats) error {
	g, gctx := errgroup.WithContext(ctx)
	pages := make(chan []logEvent, 2)
	writes := make(chan rebuildWrite, 2)
	g.Go(func() error {
		defer close(pages)
		return p.readLog(gctx, pages, upTo)
	})
	g.Go(func() error {
		known := func(id uuid.UUID) bool { _, ok := oldAlerts[id]; return ok }
		for w := range writes {
			// On an error the group's context ends the folder and reader.
			if err := p.writeRebuild(gctx, tx, w, known); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(writes)
		return p.foldLog(gctx, pages, writes, now, st)
	})
	return g.Wait()
}

// readModelIndex is an index of a read model table, dropped for the
// rebuild and created again after it.
type readModelIndex struct {
	drop, create string
}

// dropReadModelIndexes drops the indexes and unique constraints of the
// emptied read model tables, except the alerts' primary key (the alert
// upsert's conflict target), and returns how to create them again. Loading
// a million label changes and then building each index by one sort costs
// well under half of maintaining the indexes row by row (measured with
// 1,000,000 label_changes rows: 6.2 s against 2.4 s). The definitions come
// from the catalog, so the migrations stay their only source.
func dropReadModelIndexes(ctx context.Context, tx pgx.Tx) ([]readModelIndex, error) {
	rows, err := tx.Query(ctx, `SELECT n.nspname, t.relname, i.relname, con.conname, pg_get_constraintdef(con.oid), pg_get_indexdef(i.oid)
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
		WHERE x.indrelid IN ('customer_projections'::regclass, 'label_changes'::regclass, 'alerts'::regclass)
			AND NOT (x.indrelid = 'alerts'::regclass AND x.indisprimary)
		ORDER BY t.relname, i.relname`)
	if err != nil {
		return nil, fmt.Errorf("list read model indexes: %w", err)
	}
	var out []readModelIndex
	for rows.Next() {
		var schema, table, index string
		var constraint, constraintDef *string
		var indexDef string
		if err := rows.Scan(&schema, &table, &index, &constraint, &constraintDef, &indexDef); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list read model indexes: %w", err)
		}
		t := pgx.Identifier{schema, table}.Sanitize()
		if constraint != nil {
			c := pgx.Identifier{*constraint}.Sanitize()
			out = append(out, readModelIndex{drop: "ALTER TABLE " + t + " DROP CONSTRAINT " + c, create: "ALTER TABLE " + t + " ADD CONSTRAINT " + c + " " + *constraintDef})
		} else {
			out = append(out, readModelIndex{drop: "DROP INDEX " + pgx.Identifier{schema, index}.Sanitize(), create: indexDef})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list read model indexes: %w", err)
	}
	for _, ix := range out {
		if _, err := tx.Exec(ctx, ix.drop); err != nil {
			return nil, fmt.Errorf("drop index for the rebuild: %s: %w", ix.drop, err)
		}
	}
	return out, nil
}

// recreateIndexes builds the indexes dropped by dropReadModelIndexes.
func recreateIndexes(ctx context.Context, tx pgx.Tx, indexes []readModelIndex) error {
	// Each build sorts its table once; give the sort room (this
	// transaction only).
	if _, err := tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '256MB'"); err != nil {
		return fmt.Errorf("rebuild indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := tx.Exec(ctx, ix.create); err != nil {
			return fmt.Errorf("rebuild index: %s: %w", ix.create, err)
		}
	}
	return nil
}

// collectIDs reads a query's single uuid column into a set.
func collectIDs(ctx context.Context, tx pgx.Tx, query string) (map[uuid.UUID]struct{}, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uuid.UUID]struct{}{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan((*uuidDst)(&id)); err != nil {
			return nil, err
		}
		out[id] = struct{}{}
	}
	return out, rows.Err()
}

// readLog sends the log up to the settled position upTo, decoded, in pages
// in position order. It reads outside the rebuild's transaction, on a
// connection of its own: the log is append-only and nothing up to upTo can
// still appear, so page by page it sees what the transaction would. Up to a
// settled position each stream is a prefix of itself (positions increase
// along a stream); the live projector, which advances by stream version,
// goes on from there.
func (p *Projector) readLog(ctx context.Context, pages chan<- []logEvent, upTo int64) error {
	var after int64
	for {
		rows, err := p.pool.Query(ctx, `SELECT position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data, `+sourceColumn+`
			FROM events e WHERE position > $1 AND position <= $3 ORDER BY position LIMIT $2`, after, rebuildPage, upTo)
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		page := make([]logEvent, 0, rebuildPage)
		for rows.Next() {
			var e logEvent
			var data []byte
			if err := rows.Scan(&after, (*uuidDst)(&e.stream), &e.rec.Customer, &e.rec.Version, (*uuidDst)(&e.rec.EventID), &e.rec.Type, &e.rec.OccurredAt, &e.rec.RecordedAt, &data, &e.rec.Source); err != nil {
				rows.Close()
				return fmt.Errorf("read log: %w", err)
			}
			if e.rec.Data, err = domain.DecodeData(e.rec.Type, data); err != nil {
				rows.Close()
				return err
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		select {
		case pages <- page:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// foldLog advances every customer through its events in log order, then to
// now, and hands the rows to write to the writer.
func (p *Projector) foldLog(ctx context.Context, pages <-chan []logEvent, writes chan<- rebuildWrite, now time.Time, st *RebuildStats) error {
	projs := map[uuid.UUID]*customerWork{}
	var order []*customerWork
	var cur rebuildWrite
	days := p.newTrendDays()
	send := func() error {
		select {
		case writes <- cur:
			cur = rebuildWrite{}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	record := func(w *customerWork, net domain.Money, changes []domain.LabelChange) error {
		days.advance(p.book, w.proj, net, changes)
		for _, c := range changes {
			w.seq++
			cur.changes = append(cur.changes, changeRow(w.streamID, c, w.seq))
			st.Changes++
		}
		if ups := w.proj.TakeAlertUpdates(); len(ups) > 0 {
			if cur.streams == nil {
				cur.streams = map[domain.CustomerCode]uuid.UUID{}
			}
			cur.streams[w.proj.State.Customer] = w.streamID
			cur.alerts = append(cur.alerts, ups...)
		}
		return nil
	}
	for {
		var page []logEvent
		var ok bool
		select {
		case page, ok = <-pages:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			break
		}
		for i := range page {
			e := &page[i]
			w := projs[e.stream]
			if w == nil {
				w = &customerWork{streamID: e.stream, proj: &domain.Projection{}}
				projs[e.stream] = w
				order = append(order, w)
			}
			if err := p.checkRFM(e.rec.RecordedAt); err != nil {
				return err
			}
			net := w.proj.State.NetAmount
			if err := record(w, net, p.book.Advance(w.proj, e.rec.RecordedAt, &e.rec)); err != nil {
				return err
			}
			w.applied++
		}
		st.Events += int64(len(page))
		if len(cur.changes) >= rebuildChangeChunk || len(cur.alerts) >= rebuildAlertChunk {
			if err := send(); err != nil {
				return err
			}
		}
	}
	st.Customers = len(order)
	if err := p.checkRFM(now); err != nil {
		return err
	}
	var earliest *time.Time
	for i := 0; i < len(order); i += rebuildProjChunk {
		chunk := order[i:min(i+rebuildProjChunk, len(order))]
		for _, w := range chunk {
			// Time alone moves no net amount.
			net := w.proj.State.NetAmount
			if err := record(w, net, p.book.Advance(w.proj, now, nil)); err != nil {
				return err
			}
			w.changes = nil
			if n := p.book.NextInstant(w.proj); !n.IsZero() && (earliest == nil || n.Before(*earliest)) {
				earliest = &n
			}
		}
		cur.projections = chunk
		if err := send(); err != nil {
			return err
		}
	}
	cur.notify, cur.trend = earliest, days
	return send()
}

// writeRebuild writes one unit of the rebuild's rows in its transaction.
func (p *Projector) writeRebuild(ctx context.Context, tx pgx.Tx, w rebuildWrite, known func(uuid.UUID) bool) error {
	var b pgx.Batch
	alertMsgs, err := p.queueAlerts(&b, w.streams, w.alerts, known)
	if err != nil {
		return err
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
	}
	if len(alertMsgs) > 0 {
		// An alert the read model did not hold before: a correction.
		rows := make([][]any, len(alertMsgs))
		for i, m := range alertMsgs {
			m.correction = true
			rows[i] = m.values()
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("queue alerts: %w", err)
		}
	}
	if len(w.changes) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"label_changes"}, changeColumns, pgx.CopyFromRows(w.changes)); err != nil {
			return fmt.Errorf("write label changes: %w", err)
		}
	}
	if len(w.projections) > 0 {
		// The table was truncated in this transaction: plain COPY. Documents
		// are encoded as pgx sends them, while PostgreSQL stores the last.
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"customer_projections"}, projectionColumns, &projectionSource{p: p, work: w.projections}); err != nil {
			return fmt.Errorf("write projections: %w", err)
		}
	}
	if w.trend != nil {
		var b pgx.Batch
		if w.trend.queue(&b); b.Len() > 0 {
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return fmt.Errorf("write the trend's days: %w", err)
			}
		}
	}
	if w.notify != nil {
		// Wake sleeping schedulers (delivered at commit).
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyNextAt, w.notify.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("notify schedulers: %w", err)
		}
	}
	return nil
}

// projectionSource is a pgx.CopyFromSource of customer_projections rows,
// encoded one at a time.
type projectionSource struct {
	p    *Projector
	work []*customerWork
	row  []any
	err  error
}

func (s *projectionSource) Next() bool {
	for len(s.work) > 0 {
		w := s.work[0]
		s.work = s.work[1:]
		if r, ok := s.p.projectionRow(w); ok {
			s.row = r.values(w.streamID)
			return true
		}
	}
	return false
}

func (s *projectionSource) Values() ([]any, error) { return s.row, s.err }
func (s *projectionSource) Err() error             { return s.err }

var outboxColumns = []string{"stream", "subject", "msg_id", "payload", "correction"}

var changeColumns = []string{"id", "stream_id", "customer", "seq", "label", "from_value", "to_value", "at", "cause_kind",
	"cause_event_id", "rule_version", "reason", "reason_en"}

// changeRow is a label change as a row of label_changes.
func changeRow(stream uuid.UUID, c domain.LabelChange, seq int64) []any {
	return []any{pgUUID(c.ID), pgUUID(stream), string(c.Customer), seq, c.Label, optional(c.From), c.To, c.At, string(c.Cause), causeEventArg(c), c.RuleVersion, c.ReasonZH, c.ReasonEN}
}

// causeEventArg is a change's cause_event_id: its event, or NULL for a
// change caused by time or rules.
func causeEventArg(c domain.LabelChange) pgtype.UUID {
	if c.Cause != domain.CauseEvent {
		return pgtype.UUID{}
	}
	return pgUUID(c.EventID)
}

// changeMessage is a label change as its SEGMENTS_CHANGES message.
func (p *Projector) changeMessage(c domain.LabelChange, seq int64) ([]byte, error) {
	return p.historyMessage(c, seq, "")
}

// historyMessage is the SEGMENTS_CHANGES body of a change; correction is ""
// for a live change.
func (p *Projector) historyMessage(c domain.LabelChange, seq int64, correction string) ([]byte, error) {
	var ev *uuid.UUID
	if c.Cause == domain.CauseEvent {
		e := c.EventID
		ev = &e
	}
	msg := HistoryEntry{
		ID: c.ID, Customer: string(c.Customer), Label: c.Label, From: optional(c.From), To: c.To,
		At: c.At.In(p.book.At(c.At).Location).Format(time.RFC3339Nano), Cause: causeJSON{Kind: string(c.Cause), EventID: ev},
		RuleVersion: c.RuleVersion, Reason: c.ReasonZH, ReasonEN: c.ReasonEN, Seq: seq, Correction: correction,
	}
	body, err := marshalHistoryEntry(&msg)
	if err != nil {
		return nil, fmt.Errorf("encode label change: %w", err)
	}
	return body, nil
}

// queueCorrections publishes what the rebuild corrected, and nothing else.
// Changes are compared by transition — customer, label, from, to, instant —
// not by id: a change whose id or wording differs (another rule version or
// reason for the same transition) was published already and is not news.
// A transition the history lacked is queued as "added", one it held that the
// log no longer supports as "retracted" (first, so a consumer applying them
// in order removes before it adds); both carry HeaderCorrection and message
// ids of their own. The rebuilt history is the baseline of the next rebuild,
// so no correction is published twice.
func (p *Projector) queueCorrections(ctx context.Context, tx pgx.Tx, st *RebuildStats) error {
	// One hash full join finds both kinds (two anti-joins cost twice as
	// much); from_value is never '' (NULL stands for none), so coalesce
	// makes the NULLs comparable.
	rows, err := tx.Query(ctx, `SELECT c.id IS NULL,
			coalesce(c.id, o.id), coalesce(c.customer, o.customer), coalesce(c.seq, o.seq), coalesce(c.label, o.label),
			CASE WHEN c.id IS NULL THEN o.from_value ELSE c.from_value END, coalesce(c.to_value, o.to_value), coalesce(c.at, o.at),
			coalesce(c.cause_kind, o.cause_kind), CASE WHEN c.id IS NULL THEN o.cause_event_id ELSE c.cause_event_id END,
			coalesce(c.rule_version, o.rule_version), coalesce(c.reason, o.reason), coalesce(c.reason_en, o.reason_en)
		FROM label_changes c FULL JOIN rebuild_previous o ON o.stream_id = c.stream_id AND o.label = c.label
			AND o.to_value = c.to_value AND o.at = c.at AND coalesce(o.from_value, '') = coalesce(c.from_value, '')
		WHERE c.id IS NULL OR o.id IS NULL
		ORDER BY c.id IS NOT NULL, coalesce(c.stream_id, o.stream_id), coalesce(c.seq, o.seq)`)
	if err != nil {
		return fmt.Errorf("compare label histories: %w", err)
	}
	var out [][]any
	var retracted bool
	var c domain.LabelChange
	var seq int64
	var fromValue *string
	var event pgtype.UUID
	_, err = pgx.ForEachRow(rows, []any{&retracted, (*uuidDst)(&c.ID), &c.Customer, &seq, &c.Label, &fromValue, &c.To, &c.At, &c.Cause, &event, &c.RuleVersion, &c.ReasonZH, &c.ReasonEN}, func() error {
		c.From, c.EventID = "", uuid.UUID{}
		if fromValue != nil {
			c.From = *fromValue
		}
		if event.Valid {
			c.EventID = event.Bytes
		}
		kind := "added"
		if retracted {
			kind = "retracted"
			st.Retracted++
		} else {
			st.NewChanges++
		}
		msg, err := p.correctionMessage(c, seq, kind)
		if err != nil {
			return err
		}
		out = append(out, msg.values())
		return nil
	})
	if err != nil {
		return fmt.Errorf("compare label histories: %w", err)
	}
	if len(out) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(out)); err != nil {
		return fmt.Errorf("queue corrections: %w", err)
	}
	return nil
}

// correctionMessage is a corrected label change as its SEGMENTS_CHANGES
// message; its id is derived from the change's, so it never collides with
// the change's own message.
func (p *Projector) correctionMessage(c domain.LabelChange, seq int64, kind string) (outboxMessage, error) {
	body, err := p.historyMessage(c, seq, kind)
	if err != nil {
		return outboxMessage{}, err
	}
	m := changeOutbox(c, body)
	m.msgID, m.correction = uuid.NewSHA1(c.ID, []byte("correction "+kind)).String(), true
	return m, nil
}
