package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
)

// databases creates the run's fresh databases (segments_pload_<random>) and
// drops them WITH (FORCE) at the end.
type databases struct{ *loadkit.Databases }

func openDatabases(ctx context.Context, adminURL string, keep bool) (*databases, error) {
	d, err := loadkit.OpenDatabases(ctx, adminURL, "segments_pload_", keep, logf)
	if err != nil {
		return nil, err
	}
	return &databases{d}, nil
}

// create makes and migrates a fresh database. The pool is opened as
// eventstore.Connect opens it (its pool size), with a statement counter.
func (d *databases) create(ctx context.Context) (string, *pgxpool.Pool, *queryCounter, error) {
	name := d.NewName()
	pool, err := eventstore.Connect(ctx, d.URLFor(name)) // creates the database
	if err != nil {
		return "", nil, nil, err
	}
	pool.Close()
	cfg, err := pgxpool.ParseConfig(d.URLFor(name))
	if err != nil {
		return "", nil, nil, err
	}
	cfg.MaxConns = eventstore.DefaultMaxConns
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	eventstore.TuneSession(cfg) // as eventstore.Connect does
	if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return "", nil, nil, err
	}
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		pool.Close()
		return "", nil, nil, err
	}
	return name, pool, qc, nil
}

// extraPool opens a small separate pool on a database (for measurement
// queries that must not take connections from the service's pool).
func (d *databases) extraPool(ctx context.Context, name string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(d.URLFor(name))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	// The service's own session setup (binary uuid codec, jit off), so the
	// measuring queries cost what the product's would.
	eventstore.TuneSession(cfg)
	return pgxpool.NewWithConfig(ctx, cfg)
}

// backends lists the PostgreSQL backend pids connected to a database.
func (d *databases) backends(ctx context.Context, name string) []int {
	rows, err := d.Admin.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", name)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}

// walSnap is the cluster's WAL activity (pg_stat_wal). It is cluster-wide:
// other databases' writes count too.
type walSnap struct {
	bytes, syncs int64
	ok           bool
}

func (d *databases) wal(ctx context.Context) walSnap {
	var s walSnap
	err := d.Admin.QueryRow(ctx, "SELECT wal_bytes::bigint, wal_sync FROM pg_stat_wal").Scan(&s.bytes, &s.syncs)
	s.ok = err == nil
	return s
}

// queryCounter counts the statements a pool sends (a pgx tracer) and, while
// timing is on, adds up the wall time of each kind of statement as the
// client sees it: from the call (before its arguments are encoded) to the
// end of the result (for a query, when its rows are closed, so the caller's
// work on the rows counts too; for COPY, the encoding of the rows).
type queryCounter struct {
	n      atomic.Int64
	timing atomic.Bool
	mu     sync.Mutex
	stats  map[string]*stmtStat
}

type stmtStat struct {
	n     int64
	total time.Duration
}

type traceKey struct{}

func stmtName(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 72 {
		s = s[:72] + "…"
	}
	return s
}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	if !q.timing.Load() {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceStart{name: stmtName(d.SQL), at: time.Now()})
}

type traceStart struct {
	name string
	at   time.Time
}

func (q *queryCounter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	q.end(ctx)
}

func (q *queryCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	if !q.timing.Load() {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceStart{name: "COPY " + d.TableName.Sanitize(), at: time.Now()})
}

func (q *queryCounter) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	q.end(ctx)
}

func (q *queryCounter) end(ctx context.Context) {
	s, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	took := time.Since(s.at)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stats == nil {
		q.stats = map[string]*stmtStat{}
	}
	st := q.stats[s.name]
	if st == nil {
		st = &stmtStat{}
		q.stats[s.name] = st
	}
	st.n++
	st.total += took
}

// startTiming clears the statement times and starts collecting them.
func (q *queryCounter) startTiming() {
	q.mu.Lock()
	q.stats = nil
	q.mu.Unlock()
	q.timing.Store(true)
}

// report stops collecting and returns the statements by total time, as
// lines, with their share of wall.
func (q *queryCounter) report(wall time.Duration, top int) []string {
	q.timing.Store(false)
	q.mu.Lock()
	defer q.mu.Unlock()
	type kv struct {
		name string
		st   *stmtStat
	}
	all := make([]kv, 0, len(q.stats))
	for k, v := range q.stats {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.st.total, a.st.total) })
	var out []string
	for i, x := range all {
		if i == top {
			break
		}
		out = append(out, fmt.Sprintf("%5.1f%% %8.1f s %7d× %s", 100*x.st.total.Seconds()/wall.Seconds(), x.st.total.Seconds(), x.st.n, x.name))
	}
	return out
}
