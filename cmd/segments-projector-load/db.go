package main

import (
	"context"
	"fmt"
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
func (d *databases) create(ctx context.Context) (string, *pgxpool.Pool, *loadkit.StatementTimer, error) {
	name := d.NewName()
	pool, err := eventstore.Connect(ctx, d.URLFor(name)) // creates the database
	if err != nil {
		return "", nil, nil, err
	}
	pool.Close()
	qc := &loadkit.StatementTimer{}
	if pool, err = d.Pool(ctx, name, func(cfg *pgxpool.Config) {
		cfg.MaxConns = eventstore.DefaultMaxConns
		cfg.ConnConfig.Tracer = qc
	}); err != nil {
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
	return d.Pool(ctx, name, func(cfg *pgxpool.Config) { cfg.MaxConns = conns })
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

// stmtLines stops timer and returns its top statements by total time, as
// lines, with their share of wall.
func stmtLines(timer *loadkit.StatementTimer, wall time.Duration, top int) []string {
	timer.Stop()
	var out []string
	for i, st := range timer.Stats() {
		if i == top {
			break
		}
		out = append(out, fmt.Sprintf("%5.1f%% %8.1f s %7d× %s", 100*st.Total.Seconds()/wall.Seconds(), st.Total.Seconds(), st.Calls, st.Name))
	}
	return out
}
