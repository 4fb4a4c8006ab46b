package ingestload

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
)

// The raw limit: the same rows as the event store writes, written straight
// to PostgreSQL into a bare copy of the events table: LIKE … INCLUDING ALL
// takes its columns, types, CHECK constraints and indexes, and leaves out
// its UPDATE/DELETE triggers.

func rawTableDDL(name string) string {
	return `CREATE TABLE ` + pgx.Identifier{name}.Sanitize() + ` (LIKE events INCLUDING ALL)`
}

var rawColumns = []string{"position", "stream_id", "customer", "version", "event_id", "type", "occurred_at", "recorded_at", "data", "metadata", "hash"}

// customerTable holds each load customer's code and stream id.
type customerTable struct {
	codes   []string
	streams []uuid.UUID
}

func newCustomerTable(n int) *customerTable {
	t := &customerTable{codes: make([]string, n), streams: make([]uuid.UUID, n)}
	for i := range n {
		t.codes[i] = customerCode(i)
		t.streams[i] = domain.CustomerCode(t.codes[i]).StreamID()
	}
	return t
}

// rawRowSource produces n rows for one COPY or INSERT. A writer owns the
// customers whose number is its id modulo the writer count, so versions
// stay unique per stream without coordination.
type rawRowSource struct {
	g        *gen
	cust     *customerTable
	versions map[int]int64
	position *atomic.Int64
	writer   int
	writers  int
	left     int
	row      []any
}

func (s *rawRowSource) Next() bool {
	if s.left == 0 {
		return false
	}
	s.left--
	now := time.Now().Truncate(time.Microsecond)
	o := s.g.next(now)
	c := o.customer - o.customer%s.writers + s.writer
	if c >= len(s.cust.codes) {
		c -= s.writers
	}
	s.versions[c]++
	hash := make([]byte, 32)
	for i := range 4 {
		binary.LittleEndian.PutUint64(hash[8*i:], s.g.rng.Uint64())
	}
	// pgtype.UUID, not uuid.UUID: pgx encodes google's UUID through its
	// driver.Valuer (a string, then parsed back) at ~25x the cost.
	s.row = append(s.row[:0], s.position.Add(1), pgtype.UUID{Bytes: s.cust.streams[c], Valid: true}, s.cust.codes[c], s.versions[c],
		pgtype.UUID{Bytes: o.eventID, Valid: true},
		"OrderPlaced", o.occurred, now, appendStoredData(make([]byte, 0, 160), &o), storedMetadata, hash)
	return true
}

func (s *rawRowSource) Values() ([]any, error) { return s.row, nil }
func (s *rawRowSource) Err() error             { return nil }

// rawDB is the database of the raw baseline.
type rawDB struct {
	name string
	pool *pgxpool.Pool
	cust *customerTable
}

func (r *runner) openRaw(ctx context.Context, conns int32) (*rawDB, error) {
	name, err := r.dbs.CreateMigrated(ctx) // the events table is the model
	if err != nil {
		return nil, err
	}
	// The same client-side encoding as the service.
	pool, err := r.dbs.Pool(ctx, name, func(cfg *pgxpool.Config) { cfg.MaxConns, cfg.MinConns = conns, conns })
	if err != nil {
		return nil, err
	}
	return &rawDB{name: name, pool: pool, cust: newCustomerTable(r.o.customers)}, nil
}

func (r *runner) closeRaw(ctx context.Context, db *rawDB) {
	db.pool.Close()
	r.dbs.Drop(ctx, db.name)
}

// rawCopy measures COPY of chunk-row chunks (each its own transaction) from
// writers connections into a fresh table.
func (r *runner) rawCopy(ctx context.Context, writers, chunk int) (loadResult, error) {
	db, err := r.openRaw(ctx, int32(min(writers, 64))) //nolint:gosec // G115: bounded by min
	if err != nil {
		return loadResult{}, err
	}
	defer r.closeRaw(ctx, db)
	if _, err := db.pool.Exec(ctx, rawTableDDL("copy_events")); err != nil {
		return loadResult{}, err
	}
	var position atomic.Int64
	sources := make([]*rawRowSource, writers)
	res, err := r.drive(ctx, nil, nil, writers, func(ctx context.Context, w *worker) (int, error) {
		src := sources[w.id]
		if src == nil {
			src = &rawRowSource{g: w.gen, cust: db.cust, versions: map[int]int64{}, position: &position, writer: w.id, writers: writers}
			sources[w.id] = src
		}
		src.left = chunk
		n, err := db.pool.CopyFrom(ctx, pgx.Identifier{"copy_events"}, rawColumns, src)
		return int(n), err
	})
	if err == nil {
		err = checkCount(ctx, db.pool, "copy_events", res.acked)
	}
	return res, err
}

// rawInsert measures single-row INSERT transactions (autocommit) from
// clients connections.
func (r *runner) rawInsert(ctx context.Context, clients int) (loadResult, error) {
	db, err := r.openRaw(ctx, int32(min(clients, 64))) //nolint:gosec // G115: bounded by min
	if err != nil {
		return loadResult{}, err
	}
	defer r.closeRaw(ctx, db)
	if _, err := db.pool.Exec(ctx, rawTableDDL("insert_events")); err != nil {
		return loadResult{}, err
	}
	const insert = `INSERT INTO insert_events (position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data, metadata, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	var position atomic.Int64
	sources := make([]*rawRowSource, clients)
	res, err := r.drive(ctx, nil, nil, clients, func(ctx context.Context, w *worker) (int, error) {
		src := sources[w.id]
		if src == nil {
			src = &rawRowSource{g: w.gen, cust: db.cust, versions: map[int]int64{}, position: &position, writer: w.id, writers: clients}
			sources[w.id] = src
		}
		src.left = 1
		src.Next()
		if _, err := db.pool.Exec(ctx, insert, src.row...); err != nil {
			return 0, err
		}
		return 1, nil
	})
	if err == nil {
		err = checkCount(ctx, db.pool, "insert_events", res.acked)
	}
	return res, err
}

func checkCount(ctx context.Context, pool *pgxpool.Pool, table string, want int64) error {
	var n int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s holds %d rows, %d were acknowledged", table, n, want)
	}
	return nil
}
