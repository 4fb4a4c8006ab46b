package eventstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
)

func (s *Store) runWriter() {
	for {
		select {
		case c := <-s.calls:
			s.commitGroup(s.collect(c))
		case <-s.closing:
			for {
				select {
				case c := <-s.calls:
					s.commitGroup(s.collect(c))
				default:
					return
				}
			}
		}
	}
}

// collect takes the calls already waiting, up to MaxGroupEvents events.
func (s *Store) collect(first *appendCall) []*appendCall {
	group := []*appendCall{first}
	n := len(first.req.Events)
	for n < s.cfg.MaxGroupEvents {
		select {
		case c := <-s.calls:
			group = append(group, c)
			n += len(c.req.Events)
		default:
			return group
		}
	}
	return group
}

// newStreams lists, once each, the streams of a committed group's newly
// stored events.
func newStreams(outs []callOutcome) []uuid.UUID {
	var streams []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, o := range outs {
		if o.err != nil {
			continue
		}
		for _, r := range o.results {
			if id := r.Customer.StreamID(); !r.Duplicate && !seen[id] {
				seen[id] = true
				streams = append(streams, id)
			}
		}
	}
	return streams
}

func (s *Store) commitGroup(group []*appendCall) {
	live := group[:0]
	for _, c := range group {
		if err := c.ctx.Err(); err != nil {
			c.done <- callOutcome{err: err}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	outs, err := s.appendGroupTx(live)
	if err != nil && len(live) > 1 && !errors.Is(err, ErrUnavailable) {
		// Something in the group failed at the database level; run each call
		// alone so one bad call cannot fail the others.
		s.cfg.Logger.Warn("group append failed; retrying calls one by one", "calls", len(live), "err", err)
		for _, c := range live {
			s.commitGroup([]*appendCall{c})
		}
		return
	}
	events := 0
	for i, c := range live {
		if err != nil {
			c.done <- callOutcome{err: err}
			continue
		}
		if outs[i].err == nil {
			events += len(outs[i].results)
		}
		c.done <- outs[i]
	}
	if err == nil {
		select {
		case s.appended <- struct{}{}:
		default:
		}
		s.signalCommitted(outs)
		// A full channel means no reader or a lagging one: the hint would be
		// dropped, so the writer does not compute it.
		if len(s.committed) < cap(s.committed) {
			if streams := newStreams(outs); len(streams) > 0 {
				select {
				case s.committed <- streams:
				default: // the reader is behind: it learns of these from the bus
				}
			}
		}
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.EventsAppended(events)
			s.cfg.Metrics.AppendGroup(len(live), events, time.Since(start))
		}
	}
}

func (s *Store) appendGroupTx(group []*appendCall) ([]callOutcome, error) {
	// The group does not belong to any one caller: a caller going away must
	// not abort the others' transaction.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reqs := make([]domain.AppendRequest, len(group))
	for i, c := range group {
		reqs[i] = c.req
	}
	for attempt := 1; ; attempt++ {
		outs, err := s.appendGroupOnce(ctx, reqs)
		if err == nil || attempt == maxRaceAttempts || !lostRace(err) {
			return outs, mapError(err)
		}
		s.cfg.Logger.Debug("append lost a race with another writer; retrying", "attempt", attempt, "err", err)
	}
}

// queueLogFloor reads the recorded_at of the log's latest event: a clock
// that steps back does not take recorded_at back across the log either
// (the guarantee is per stream, SPEC §2; across instances their clocks'
// skew can show, by design: no global lock orders them).
func queueLogFloor(b *pgx.Batch, floor *pgtype.Timestamptz) {
	b.Queue("SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1").Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(floor); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// queueDrawPositions draws the group's positions, after the stream row
// locks (so positions increase along each stream): one per event, less the
// given event_ids already stored (duplicates need none). Those of refused
// requests are gaps. It returns the count before the stored ids are taken
// off.
func queueDrawPositions(b *pgx.Batch, events int, givenIDs []uuid.UUID, out *[]int64) int {
	distinct := make(map[uuid.UUID]struct{}, len(givenIDs))
	for _, id := range givenIDs {
		distinct[id] = struct{}{}
	}
	want := events - (len(givenIDs) - len(distinct)) // an id repeated in the group is stored once
	b.Queue(`SELECT nextval('events_position_seq')
		FROM generate_series(1, $1::int - (SELECT count(*) FROM events WHERE event_id = ANY($2))::int)`,
		want, givenIDs).Query(func(rows pgx.Rows) error {
		var err error
		*out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	return want
}

// lostRace reports an error that a concurrent append caused and that a
// retry, which reads what that append committed, resolves: two writers
// opening the same new stream or storing the same event_id (the loser waits
// on the unique index, then fails), or a deadlock between them.
func lostRace(err error) bool {
	if errors.Is(err, errRaced) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40P01", "40001": // deadlock_detected, serialization_failure
		return true
	case "23505": // unique_violation
		return pgErr.ConstraintName == "events_stream_version_key" || pgErr.ConstraintName == "events_event_id_key" ||
			pgErr.ConstraintName == "customer_keys_pkey"
	}
	return false
}

func (s *Store) appendGroupOnce(ctx context.Context, reqs []domain.AppendRequest) ([]callOutcome, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	// A connection left inside a transaction (a failed COMMIT, a cancelled
	// round trip) is closed by the pool on release rather than reused.
	defer conn.Release()
	// BEGIN rides in the first round trip and COMMIT in the last, so a group
	// costs two round trips (read batch, write batch; a COPY in between for
	// large groups) instead of five: the stream locks are held for round
	// trips, not for work.
	outs, err := s.appendInTx(ctx, conn.Conn(), reqs, true)
	if err == nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// Nothing was written (every request failed on its own or was a
		// duplicate): end the transaction that only read.
		_, err = conn.Exec(ctx, "COMMIT")
	}
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		return nil, err
	}
	return outs, nil
}

// signalCommitted hands the group's highest position to runNotifier.
func (s *Store) signalCommitted(outs []callOutcome) {
	var top int64
	for _, o := range outs {
		for _, r := range o.results {
			if !r.Duplicate {
				top = max(top, r.Position)
			}
		}
	}
	if top == 0 {
		return
	}
	for {
		cur := s.notifyAt.Load()
		if top <= cur || s.notifyAt.CompareAndSwap(cur, top) {
			break
		}
	}
	select {
	case s.notifyWake <- struct{}{}:
	default:
	}
}

// runNotifier tells other processes (a publisher leader elsewhere) that
// events were committed: NOTIFY on NotifyChannel, in a transaction of its
// own after the appends' commits. Not inside the append transaction: a
// transaction that notifies holds a database-wide lock from its pre-commit
// to its end, which would serialise every append's commit again. Signals
// that arrive while one is sent are folded into the next; it is a wake-up,
// so it does not wait for its own commit to be flushed.
func (s *Store) runNotifier() {
	for range s.notifyWake {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue("SELECT pg_notify($1, $2)", NotifyChannel, strconv.FormatInt(s.notifyAt.Load(), 10))
		b.Queue("COMMIT")
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			// Listeners also poll (Publisher's IdleWake): a lost wake-up
			// delays publication, it loses nothing.
			s.cfg.Logger.Debug("append notification", "err", err)
		}
		cancel()
	}
}
