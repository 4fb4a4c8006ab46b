package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// The recorded RFM days (SPEC §11, docs/ANALYTICS.md "Recorded days";
// tables rfm_days and rfm_histograms, migration 0022).
//
// Every transaction that advances projections (projector, scheduler,
// rebuild) holds rfmLock shared and reads the days recorded since the ones
// its rule book knows, before it evaluates anything; it evaluates no instant
// the known days do not cover (rfmDayDueError: the caller records the due day and
// tries again). The recorder holds rfmLock exclusively while it computes and
// records a day, so no projector transaction is in flight then: those that
// committed before it are seen by the day's selection of changed customers,
// those that begin after it read the day.

// rfmLock is the advisory lock key of that exchange.
const rfmLock = 5364

// rfmDayDueError: an instant the book's recorded days do not cover was to be
// evaluated; the day due then must be recorded first.
type rfmDayDueError struct{ at time.Time }

func (e *rfmDayDueError) Error() string {
	return fmt.Sprintf("the RFM day due at %s is not recorded yet", e.at.Format(time.RFC3339Nano))
}

// checkRFM returns rfmDayDueError when t is not covered by the recorded days.
func (p *Projector) checkRFM(t time.Time) error {
	if p.book.RFM().Covers(t) {
		return nil
	}
	return &rfmDayDueError{at: t}
}

// rfmDaysSQL reads the days after a sequence number.
const rfmDaysSQL = `SELECT seq, day::text, at, recency, frequency, monetary, customers FROM rfm_days WHERE seq > $1 ORDER BY seq`

// queueRFM queues, at the start of a transaction that advances projections,
// the shared lock and the read of the days the book does not know yet.
func (p *Projector) queueRFM(b *pgx.Batch) {
	b.Queue("SELECT pg_advisory_xact_lock_shared($1)", rfmLock)
	b.Queue(rfmDaysSQL, p.rfmSeq()).Query(p.addRFMDays)
}

func (p *Projector) rfmSeq() int64 {
	if last := p.book.RFM().Last(); last != nil {
		return last.Seq
	}
	return 0
}

// loadRFM reads the days the book does not know yet.
func (p *Projector) loadRFM(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, rfmDaysSQL, p.rfmSeq())
	if err != nil {
		return fmt.Errorf("read RFM days: %w", eventstore.MapError(err))
	}
	return p.addRFMDays(rows)
}

// addRFMDays extends the book's history with the rows (in seq order) it
// does not hold yet.
func (p *Projector) addRFMDays(rows pgx.Rows) error {
	defer rows.Close()
	var days []domain.RFMCuts
	for rows.Next() {
		var c domain.RFMCuts
		var r, f, m []int64
		if err := rows.Scan(&c.Seq, &c.Day, &c.At, &r, &f, &m, &c.Customers); err != nil {
			return fmt.Errorf("read RFM days: %w", eventstore.MapError(err))
		}
		if len(r) != 4 || len(f) != 4 || len(m) != 4 {
			return fmt.Errorf("RFM day %s: %d, %d, %d boundaries, want 4 each", c.Day, len(r), len(f), len(m))
		}
		c.Recency, c.Frequency, c.Monetary = [4]int64(r), [4]int64(f), [4]int64(m)
		c.Next = p.book.RFMNextDay(c.At)
		days = append(days, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read RFM days: %w", eventstore.MapError(err))
	}
	for {
		old := p.book.RFM()
		h := old
		for _, c := range days {
			last := h.Last()
			if last != nil && c.Seq <= last.Seq {
				continue
			}
			if (last == nil && c.Seq != 1) || (last != nil && c.Seq != last.Seq+1) {
				return fmt.Errorf("RFM day %s has sequence number %d after %d", c.Day, c.Seq, p.rfmSeq())
			}
			h = h.With(c)
		}
		if h == old || p.book.CompareAndSwapRFM(old, h) {
			return nil
		}
	}
}

// EnsureRFMDay records the RFM day due at t (the day whose instant is the
// latest at or before t), unless that day or a later one is recorded, and
// then brings forward the next_at of the customers whose scores a recorded
// day changes (markRFMDays). Any number of instances may call it at once:
// one records the day, the others read it.
func (p *Projector) EnsureRFMDay(ctx context.Context, t time.Time) error {
	if err := p.loadRFM(ctx, p.pool); err != nil {
		return err
	}
	if !p.book.RFM().Covers(t) {
		day := p.book.RFMDayStart(t)
		// Events recorded before the day's instant commit first (the
		// scheduler's barrier), so the distributions include them.
		if _, err := eventstore.AwaitSettled(ctx, p.pool); err != nil {
			return fmt.Errorf("RFM day: barrier: %w", err)
		}
		if err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return p.recordRFMDay(ctx, tx, day) }); err != nil {
			return fmt.Errorf("record the RFM day of %s: %w", day.Format(time.DateOnly), err)
		}
		if err := p.loadRFM(ctx, p.pool); err != nil {
			return err
		}
	}
	return p.markRFMDays(ctx)
}

// recordRFMDay computes and records the day at instant day, in tx, unless a
// day at or after it is recorded.
func (p *Projector) recordRFMDay(ctx context.Context, tx pgx.Tx, day time.Time) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", rfmLock); err != nil {
		return err
	}
	var seq int64
	var latest *time.Time
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0), max(at) FROM rfm_days").Scan(&seq, &latest); err != nil {
		return err
	}
	if latest != nil && !latest.Before(day) {
		return nil // recorded by another instance
	}
	c, err := rfmBoundaries(ctx, tx)
	if err != nil {
		return err
	}
	loc := day.Location()
	_, err = tx.Exec(ctx, `INSERT INTO rfm_days (seq, day, at, time_zone, recency, frequency, monetary, customers, recorded_at)
		VALUES ($1, $2::date, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT DO NOTHING`,
		seq+1, day.Format(time.DateOnly), day, loc.String(), c.Recency[:], c.Frequency[:], c.Monetary[:], c.Customers)
	return err
}

// rfmBoundaries computes the boundaries from the histograms, each refined
// inside its bucket by one index range scan. The caller holds rfmLock
// exclusively: nothing changes the read model between the statements.
func rfmBoundaries(ctx context.Context, tx pgx.Tx) (domain.RFMCuts, error) {
	var c domain.RFMCuts
	rows, err := tx.Query(ctx, `SELECT dimension::text, bucket, sum(customers)::bigint FROM rfm_histograms
		GROUP BY 1, 2 HAVING sum(customers) <> 0 ORDER BY 1, 2`)
	if err != nil {
		return c, err
	}
	hist := map[domain.RFMDimension][]domain.RFMCount{}
	var dim string
	var k domain.RFMCount
	if _, err := pgx.ForEachRow(rows, []any{&dim, &k.Key, &k.Count}, func() error {
		if len(dim) == 1 {
			hist[domain.RFMDimension(dim[0])] = append(hist[domain.RFMDimension(dim[0])], k)
		}
		return nil
	}); err != nil {
		return c, err
	}
	var b pgx.Batch
	for _, d := range []domain.RFMDimension{domain.RFMRecencyDim, domain.RFMFrequencyDim, domain.RFMMonetaryDim} {
		ranks, n := domain.RFMQuintileRanks(hist[d])
		if d == domain.RFMRecencyDim {
			c.Customers = n
		} else if n != c.Customers {
			return c, fmt.Errorf("RFM histograms disagree: %d customers by recency, %d by %c", c.Customers, n, d)
		}
		if n == 0 {
			continue
		}
		out := rfmDimension(&c, d)
		for i, r := range ranks {
			lo, hi := d.Range(hist[d][r.Bucket].Key)
			if hi-lo == 1 {
				out[i] = lo
				continue
			}
			col := map[domain.RFMDimension]string{domain.RFMRecencyDim: "last_order_at", domain.RFMMonetaryDim: "net_amount"}[d]
			sel, lov, hiv := col, any(lo), any(hi)
			if d == domain.RFMRecencyDim {
				sel, lov, hiv = "(extract(epoch FROM last_order_at) * 1000000)::bigint", time.UnixMicro(lo), time.UnixMicro(hi)
			}
			b.Queue(`SELECT `+sel+` FROM customer_projections WHERE orders > 0 AND `+col+` >= $1 AND `+col+` < $2
				ORDER BY `+col+` OFFSET $3 LIMIT 1`, lov, hiv, r.Rank-1).QueryRow(func(row pgx.Row) error {
				return row.Scan(&out[i])
			})
		}
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return c, fmt.Errorf("refine the RFM boundaries: %w", err)
		}
	}
	return c, nil
}

func rfmDimension(c *domain.RFMCuts, d domain.RFMDimension) *[4]int64 {
	switch d {
	case domain.RFMRecencyDim:
		return &c.Recency
	case domain.RFMFrequencyDim:
		return &c.Frequency
	default:
		return &c.Monetary
	}
}

// markRFMDays brings forward to each unmarked day's instant the next_at of
// the customers evaluated before it whose scores it changes: those whose
// values lie between the previous day's and its boundaries (range scans of
// the rfm indexes), so the scheduler advances them and nobody else.
func (p *Projector) markRFMDays(ctx context.Context) error {
	rows, err := p.pool.Query(ctx, "SELECT seq FROM rfm_days WHERE NOT marked ORDER BY seq")
	if err != nil {
		return fmt.Errorf("RFM days to mark: %w", eventstore.MapError(err))
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("RFM days to mark: %w", eventstore.MapError(err))
	}
	h := p.book.RFM()
	for _, seq := range seqs {
		if h == nil || seq > int64(len(h.Days)) || h.Days[seq-1].Seq != seq {
			return fmt.Errorf("RFM day %d is not loaded", seq)
		}
		var prev *domain.RFMCuts
		if seq > 1 {
			prev = &h.Days[seq-2]
		}
		if err := p.markRFMDay(ctx, prev, &h.Days[seq-1]); err != nil {
			return err
		}
	}
	return nil
}

func (p *Projector) markRFMDay(ctx context.Context, prev, day *domain.RFMCuts) error {
	where, args := rfmChangedWhere(prev, day)
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var marked bool
		if err := tx.QueryRow(ctx, "SELECT marked FROM rfm_days WHERE seq = $1 FOR UPDATE", day.Seq).Scan(&marked); err != nil || marked {
			return err
		}
		if where != "" {
			// Rows a transaction is writing now are skipped: it began after
			// the day was recorded (rfmLock), so it knows the day and writes
			// the right next_at itself; waiting for it could deadlock.
			if _, err := tx.Exec(ctx, `UPDATE customer_projections SET next_at = $1 WHERE stream_id IN (
				SELECT stream_id FROM customer_projections
				WHERE orders > 0 AND evaluated_at < $1 AND (next_at IS NULL OR next_at > $1) AND (`+where+`)
				FOR UPDATE SKIP LOCKED)`,
				append([]any{day.At}, args...)...); err != nil {
				return fmt.Errorf("mark the customers the RFM day %s changes: %w", day.Day, err)
			}
			if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyNextAt, day.At.UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "UPDATE rfm_days SET marked = true WHERE seq = $1", day.Seq)
		return err
	})
}

// rfmChangedWhere is the condition selecting the customers whose scores
// differ between prev and day ("" for none), its parameters numbered from $2.
func rfmChangedWhere(prev, day *domain.RFMCuts) (string, []any) {
	var terms []string
	var args []any
	for _, d := range []domain.RFMDimension{domain.RFMRecencyDim, domain.RFMFrequencyDim, domain.RFMMonetaryDim} {
		ch := domain.RFMChanged(prev, day, d)
		if ch.All {
			return "true", nil
		}
		col := map[domain.RFMDimension]string{domain.RFMRecencyDim: "last_order_at", domain.RFMFrequencyDim: "orders", domain.RFMMonetaryDim: "net_amount"}[d]
		for _, r := range ch.Ranges {
			lo, hi := any(r[0]), any(r[1])
			if d == domain.RFMRecencyDim {
				lo, hi = time.UnixMicro(r[0]), time.UnixMicro(r[1])
			}
			// $1 is the day's instant.
			terms = append(terms, fmt.Sprintf("(%s > $%d AND %s <= $%d)", col, len(args)+2, col, len(args)+3))
			args = append(args, lo, hi)
		}
	}
	return strings.Join(terms, " OR "), args
}

// ensureRFM makes the days cover t, recording the due day when needed.
func (p *Projector) ensureRFM(ctx context.Context, t time.Time) error {
	if p.book.RFM().Covers(t) {
		return nil
	}
	return p.EnsureRFMDay(ctx, t)
}

// retryRFM runs fn again after recording the day it found due, until it
// finds none (each round covers every instant the previous one needed).
func (p *Projector) retryRFM(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		var due *rfmDayDueError
		if !errors.As(err, &due) {
			return err
		}
		if err := p.EnsureRFMDay(ctx, due.at); err != nil {
			return err
		}
		if !p.book.RFM().Covers(due.at) {
			return fmt.Errorf("recorded the RFM day and still: %w", err)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
