package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settled positions.
//
// Positions come from a sequence (events_position_seq), drawn by append
// transactions that commit in any order: position 7 may become visible
// after position 9, or never (its transaction rolled back). A reader that
// tails the log by position (the publisher, a verification) must not pass a
// position that may still commit, or it would skip it for ever.
//
// Every append transaction takes ROW EXCLUSIVE on events before it draws a
// position and holds it to its end. So a marker — the sequence's last value
// P, read first, and then the transactions holding that lock (their virtual
// transaction ids) — names every transaction that may still commit a
// position ≤ P. Once they have all ended, no position ≤ P can appear any
// more: P is settled, and a query that starts after that sees every event up
// to P that will ever exist. Only append transactions are waited for, so a
// long transaction of another kind (a rebuild) does not hold publication.
// This is the transaction-visibility tailing of PostgreSQL event stores
// (Marten's high-water mark, pg_snapshot_xmin tailing), narrowed to the
// transactions that write events.

// settleMarker is a position and the append transactions that may still hold
// positions at or below it.
type settleMarker struct {
	position  int64
	appenders []string // virtual transaction ids
}

// querier is what settling needs: a pool, a connection or a transaction.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// The two statements of a marker run in this order, in one round trip:
// a transaction that drew a position ≤ P held the lock before P was read.
const (
	markerPositionSQL = `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq`
	// pg_locks covers every database of the server: relation ids repeat
	// across databases, so the database is part of the match.
	markerAppendersSQL = `SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks
		WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' AND granted
		  AND relation = 'events'::regclass AND pid IS DISTINCT FROM pg_backend_pid()
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	// A transaction holds the lock on its own virtual id until it ends.
	appendersLeftSQL = `SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY($1::text[])`
)

func takeMarker(ctx context.Context, db querier) (settleMarker, error) {
	var m settleMarker
	b := &pgx.Batch{}
	b.Queue(markerPositionSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&m.position) })
	b.Queue(markerAppendersSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&m.appenders) })
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return m, fmt.Errorf("settle: take marker: %w", mapError(err))
	}
	return m, nil
}

// settled reports whether every appender of the marker has ended.
func (m *settleMarker) settled(ctx context.Context, db querier) (bool, error) {
	if len(m.appenders) == 0 {
		return true, nil
	}
	var left int
	if err := db.QueryRow(ctx, appendersLeftSQL, m.appenders).Scan(&left); err != nil {
		return false, fmt.Errorf("settle: %w", mapError(err))
	}
	if left == 0 {
		m.appenders = nil
	}
	return left == 0, nil
}

// settlePoll bounds the wait between two checks of a marker: the appenders
// it waits for are group transactions of a few milliseconds.
const (
	settlePollFirst = 500 * time.Microsecond
	settlePollMax   = 20 * time.Millisecond
)

// AwaitSettled returns a position P such that every event with a position
// ≤ P that will ever be committed is committed now: it waits for the append
// transactions in flight when it was called (not for later ones). A frozen
// appender is waited for until the server ends it (AppendIdleTimeout), or
// until ctx ends.
//
// It is also the barrier "appends in flight have committed" (the scheduler,
// a rebuild): an append that starts after it returns is not waited for.
func AwaitSettled(ctx context.Context, db querier) (int64, error) {
	m, err := takeMarker(ctx, db)
	if err != nil {
		return 0, err
	}
	wait := settlePollFirst
	for {
		ok, err := m.settled(ctx, db)
		if err != nil || ok {
			return m.position, err
		}
		if !sleep(ctx, wait) {
			return 0, ctx.Err()
		}
		wait = min(2*wait, settlePollMax)
	}
}

// AwaitSettled is AwaitSettled on the store's pool.
func (s *Store) AwaitSettled(ctx context.Context) (int64, error) { return AwaitSettled(ctx, s.pool) }
