package projections

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/eventstore"
)

// NotifyNextAt is the NOTIFY channel on which projector transactions
// announce newly written boundary instants, so a sleeping scheduler re-arms
// its timer when an earlier one appears.
const NotifyNextAt = "segments_next_at"

// SchedulerMetrics receives the scheduler's measurements.
type SchedulerMetrics interface {
	BoundaryLateness(seconds float64)
}

// Scheduler advances customers at their boundary instants (a window
// boundary, a rule switch or a follow-up deadline). It sleeps until the
// earliest stored next_at — no periodic scan, nothing per customer in
// memory — and advances each due customer through the projector's own
// transaction, so the change instant is the boundary, not the moment the
// job ran, and after downtime it catches up in instant order with the
// original instants.
type Scheduler struct {
	proj    *Projector
	now     func() time.Time
	log     *slog.Logger
	batch   int
	metrics SchedulerMetrics
}

// NewScheduler returns a scheduler over the projector's read models.
func NewScheduler(p *Projector, now func() time.Time, log *slog.Logger, m SchedulerMetrics) *Scheduler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{proj: p, now: now, log: log, batch: 500, metrics: m}
}

// Run schedules until ctx is done. Several schedulers may run at once: each
// customer is claimed with a transaction-scoped advisory try-lock (the same
// key the projector locks), so no customer is processed twice at once, and
// is advanced only if it is still due once the lock is held, so no instant
// is claimed twice (stillDue).
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (s *Scheduler) run(ctx context.Context) error {
	conn, err := s.proj.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	defer func() { _ = conn.Conn().Close(context.WithoutCancel(ctx)); conn.Release() }()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyNextAt); err != nil {
		return fmt.Errorf("scheduler: listen: %w", err)
	}
	// woken carries the earliest instant announced since it was last read
	// (the zero time when a payload does not parse: always re-read).
	woken := make(chan time.Time, 1)
	listenErr := make(chan error, 1)
	listenCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { stop(); <-done }()
	go func() {
		defer close(done)
		for {
			n, err := conn.Conn().WaitForNotification(listenCtx)
			if err != nil {
				listenErr <- err
				return
			}
			at, err := time.Parse(time.RFC3339Nano, n.Payload)
			if err != nil {
				at = time.Time{}
			}
			select {
			case woken <- at:
			default:
				// A wake is pending: keep the earlier of the two.
				select {
				case prev := <-woken:
					if prev.Before(at) {
						at = prev
					}
				default:
				}
				select {
				case woken <- at:
				default:
				}
			}
		}
	}()
	// Days recorded but not marked (an instance stopped in between) are
	// marked now; later days are recorded at their instant below.
	if err := s.proj.EnsureRFMDay(ctx, s.now()); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	for {
		if err := s.proj.ensureRFM(ctx, s.now()); err != nil {
			s.log.Warn("scheduler: recording the RFM day failed; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return ctx.Err()
			}
			continue
		}
		var next *time.Time
		if err := s.proj.pool.QueryRow(ctx, "SELECT min(next_at) FROM customer_projections").Scan(&next); err != nil {
			return fmt.Errorf("scheduler: earliest boundary: %w", err)
		}
		now := s.now()
		if next != nil && !next.After(now) {
			n, err := s.RunDue(ctx, now)
			if err != nil {
				s.log.Warn("scheduler: advancing due customers failed; retrying", "err", err)
				if !sleepCtx(ctx, time.Second) {
					return ctx.Err()
				}
			}
			if n > 0 || err != nil {
				continue
			}
		}
		wait := time.Minute // a safety net only: NOTIFY re-arms the timer
		if next != nil {
			wait = min(wait, next.Sub(now))
		}
		if last := s.proj.book.RFM().Last(); last != nil {
			wait = min(wait, last.Next.Sub(now)) // the next RFM day
		}
		timer := time.NewTimer(max(wait, 0))
	sleep:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case err := <-listenErr:
				timer.Stop()
				return fmt.Errorf("scheduler: notification connection lost: %w", err)
			case at := <-woken:
				// Every projector commit announces its earliest next_at; one
				// at or after the instant this timer waits for changes
				// nothing, so the timer stays armed without a query.
				if next != nil && !at.IsZero() && !at.Before(*next) {
					continue
				}
				break sleep
			case <-timer.C:
				break sleep
			}
		}
		timer.Stop()
	}
}

// RunDue advances up to one batch of customers whose next boundary is at or
// before now; it returns how many it advanced.
func (s *Scheduler) RunDue(ctx context.Context, now time.Time) (int, error) {
	// Barrier: wait for appends in flight to commit. An append that starts
	// later takes a recorded_at at or after now, so no event recorded before
	// the boundary can appear after we advanced past it.
	if _, err := eventstore.AwaitSettled(ctx, s.proj.pool); err != nil {
		return 0, fmt.Errorf("scheduler: barrier: %w", err)
	}
	// The RFM day due at now is recorded before anything is evaluated at now.
	if err := s.proj.ensureRFM(ctx, now); err != nil {
		return 0, fmt.Errorf("scheduler: %w", err)
	}
	rows, err := s.proj.pool.Query(ctx, "SELECT stream_id, next_at FROM customer_projections WHERE next_at <= $1 ORDER BY next_at LIMIT $2", now, s.batch)
	if err != nil {
		return 0, fmt.Errorf("scheduler: due customers: %w", err)
	}
	due := map[uuid.UUID]time.Time{}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := rows.Scan((*uuidDst)(&id), &at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scheduler: due customers: %w", err)
		}
		due[id] = at
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scheduler: due customers: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var claimed []uuid.UUID
	var cached map[uuid.UUID]cacheEntry
	err = s.proj.retryRFM(ctx, func() error {
		return pgx.BeginFunc(ctx, s.proj.pool, func(tx pgx.Tx) error {
			// rfmLock before the customers', as every advancing transaction
			// takes them: a recorder waiting between the two would deadlock.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", rfmLock); err != nil {
				return err
			}
			lrows, err := tx.Query(ctx, `SELECT s FROM unnest($1::uuid[]) AS s WHERE pg_try_advisory_xact_lock(hashtextextended(s::text, 5362))`, pgUUIDs(ids))
			if err != nil {
				return err
			}
			claimed, err = pgx.CollectRows(lrows, func(row pgx.CollectableRow) (uuid.UUID, error) {
				var id uuid.UUID
				err := row.Scan((*uuidDst)(&id))
				return id, err
			})
			if err != nil {
				return err
			}
			if len(claimed) == 0 {
				return nil
			}
			if claimed, err = stillDue(ctx, tx, claimed, now, due); err != nil || len(claimed) == 0 {
				return err
			}
			_, cached, err = s.proj.applyTx(ctx, tx, claimed, now, nil)
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("scheduler: advance %d customers: %w", len(claimed), err)
	}
	s.proj.cache.put(cached)
	if s.metrics != nil {
		done := time.Now()
		for _, id := range claimed {
			s.metrics.BoundaryLateness(done.Sub(due[id]).Seconds())
		}
	}
	return len(claimed), nil
}

// stillDue keeps the claimed customers whose boundary is still at or before
// now, and records it in due. The list of due customers was read before the
// locks were taken: another scheduler may have advanced a customer and
// committed in between, releasing its lock, and advancing it again would
// be a second claim of one instant. This statement runs after the locks
// were granted, so its snapshot sees every commit of their previous holder.
func stillDue(ctx context.Context, tx pgx.Tx, claimed []uuid.UUID, now time.Time, due map[uuid.UUID]time.Time) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, `SELECT stream_id, next_at FROM customer_projections
		WHERE stream_id = ANY($1::uuid[]) AND next_at <= $2`, pgUUIDs(claimed), now)
	if err != nil {
		return nil, err
	}
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := rows.Scan((*uuidDst)(&id), &at); err != nil {
			rows.Close()
			return nil, err
		}
		due[id] = at
		out = append(out, id)
	}
	rows.Close()
	return out, rows.Err()
}
