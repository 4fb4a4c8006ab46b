package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
)

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Events    int64
	Customers int
	Changes   int64
	// NewChanges were not in the label history before the rebuild (for
	// example after a rule file change); only these are published.
	NewChanges int64
	Took       time.Duration
}

// Rebuild drops every projection and replays the whole log through the
// same Advance as the live projector, in one transaction: readers see the
// old read models until it commits. Like the live scheduler, it then passes
// every boundary up to now. Label changes keep their deterministic ids; only
// changes that did not exist before are queued for publication, so a
// rebuild never publishes a change twice.
func (p *Projector) Rebuild(ctx context.Context) (RebuildStats, error) {
	start := time.Now()
	var st RebuildStats
	// The live scheduler has passed every boundary up to now, recording
	// time changes and alerts after each customer's last event; the rebuild
	// must too, or it would lack them and the scheduler would record (and
	// publish) them a second time. The barrier is the scheduler's: appends
	// in flight commit first, so no event recorded before now is missed.
	now := p.now()
	if _, err := p.pool.Exec(ctx, "SELECT 1 FROM log_head FOR SHARE"); err != nil {
		return st, fmt.Errorf("rebuild: barrier: %w", err)
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE customer_projections, label_changes, alerts IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock read models: %w", err)
		}
		old := map[uuid.UUID]struct{}{}
		rows, err := tx.Query(ctx, "SELECT id FROM label_changes")
		if err != nil {
			return fmt.Errorf("read label change ids: %w", err)
		}
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan((*uuidDst)(&id)); err != nil {
				rows.Close()
				return err
			}
			old[id] = struct{}{}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		oldAlerts := map[uuid.UUID]struct{}{}
		arows, err := tx.Query(ctx, "SELECT alert_id FROM alerts")
		if err != nil {
			return fmt.Errorf("read alert ids: %w", err)
		}
		for arows.Next() {
			var id uuid.UUID
			if err := arows.Scan((*uuidDst)(&id)); err != nil {
				arows.Close()
				return err
			}
			oldAlerts[id] = struct{}{}
		}
		arows.Close()
		if err := arows.Err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "TRUNCATE customer_projections, label_changes, alerts"); err != nil {
			return fmt.Errorf("drop read models: %w", err)
		}
		projs := map[uuid.UUID]*customerWork{}
		var order []*customerWork
		var changeRows, outboxRows [][]any
		var alerts []domain.Alert
		streams := map[domain.CustomerCode]uuid.UUID{}
		known := func(id uuid.UUID) bool { _, ok := oldAlerts[id]; return ok }
		flush := func() error {
			alertMsgs, err := p.saveAlerts(ctx, tx, streams, alerts, known)
			if err != nil {
				return err
			}
			if len(alertMsgs) > 0 {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(alertMsgs)); err != nil {
					return fmt.Errorf("queue alerts: %w", err)
				}
			}
			alerts = alerts[:0]
			if len(changeRows) > 0 {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"label_changes"}, changeColumns, pgx.CopyFromRows(changeRows)); err != nil {
					return fmt.Errorf("write label changes: %w", err)
				}
				changeRows = changeRows[:0]
			}
			if len(outboxRows) > 0 {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(outboxRows)); err != nil {
					return fmt.Errorf("queue new label changes: %w", err)
				}
				outboxRows = outboxRows[:0]
			}
			return nil
		}
		record := func(w *customerWork, changes []domain.LabelChange) error {
			for _, c := range changes {
				w.seq++
				row, msg, err := p.changeRow(w.streamID, c, w.seq)
				if err != nil {
					return err
				}
				changeRows = append(changeRows, row)
				st.Changes++
				if _, seen := old[c.ID]; !seen {
					outboxRows = append(outboxRows, []any{StreamChanges, "segments.changed." + c.Label, c.ID.String(), msg})
					st.NewChanges++
				}
			}
			alerts = append(alerts, w.proj.TakeAlertUpdates()...)
			return nil
		}
		var after int64
		for {
			batch, err := tx.Query(ctx, `SELECT position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data
				FROM events WHERE position > $1 ORDER BY position LIMIT 20000`, after)
			if err != nil {
				return fmt.Errorf("read log: %w", err)
			}
			n := 0
			for batch.Next() {
				var rec domain.Recorded
				var id uuid.UUID
				var data []byte
				if err := batch.Scan(&after, (*uuidDst)(&id), &rec.Customer, &rec.Version, (*uuidDst)(&rec.EventID), &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data); err != nil {
					batch.Close()
					return fmt.Errorf("read log: %w", err)
				}
				n++
				if rec.Data, err = domain.DecodeData(rec.Type, data); err != nil {
					batch.Close()
					return err
				}
				w := projs[id]
				if w == nil {
					w = &customerWork{streamID: id, proj: &domain.Projection{}}
					projs[id] = w
					order = append(order, w)
					streams[rec.Customer] = id
				}
				if err := record(w, p.book.Advance(w.proj, rec.RecordedAt, &rec)); err != nil {
					batch.Close()
					return err
				}
				w.applied++
			}
			batch.Close()
			if err := batch.Err(); err != nil {
				return fmt.Errorf("read log: %w", err)
			}
			st.Events += int64(n)
			if len(changeRows) >= 50_000 || len(alerts) >= 20_000 {
				if err := flush(); err != nil {
					return err
				}
			}
			if n == 0 {
				break
			}
		}
		for _, w := range order {
			if err := record(w, p.book.Advance(w.proj, now, nil)); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		st.Customers = len(order)
		for i := 0; i < len(order); i += 5000 {
			chunk := order[i:min(i+5000, len(order))]
			for _, w := range chunk {
				w.changes = nil
			}
			if err := p.saveProjections(ctx, tx, chunk); err != nil {
				return err
			}
		}
		return nil
	})
	// Every stored row was rewritten (the cache would not match them anyway).
	p.cache.reset()
	st.Took = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	return st, nil
}

var outboxColumns = []string{"stream", "subject", "msg_id", "payload"}

var changeColumns = []string{"id", "stream_id", "customer", "seq", "label", "from_value", "to_value", "at", "cause_kind",
	"cause_event_id", "rule_version", "reason", "reason_en"}

// changeRow is a label change as a row of label_changes and as its message.
func (p *Projector) changeRow(stream uuid.UUID, c domain.LabelChange, seq int64) ([]any, []byte, error) {
	var from *string
	if c.From != "" {
		f := c.From
		from = &f
	}
	var ev *uuid.UUID
	evArg := pgtype.UUID{}
	if c.Cause == domain.CauseEvent {
		e := c.EventID
		ev = &e
		evArg = pgUUID(e)
	}
	msg := HistoryEntry{
		ID: c.ID, Customer: string(c.Customer), Label: c.Label, From: from, To: c.To,
		At: c.At.In(p.book.At(c.At).Location).Format(time.RFC3339Nano), Cause: causeJSON{Kind: string(c.Cause), EventID: ev},
		RuleVersion: c.RuleVersion, Reason: c.ReasonZH, ReasonEN: c.ReasonEN, Seq: seq,
	}
	body, err := marshalHistoryEntry(&msg)
	if err != nil {
		return nil, nil, fmt.Errorf("encode label change: %w", err)
	}
	return []any{pgUUID(c.ID), pgUUID(stream), string(c.Customer), seq, c.Label, from, c.To, c.At, string(c.Cause), evArg, c.RuleVersion, c.ReasonZH, c.ReasonEN}, body, nil
}
