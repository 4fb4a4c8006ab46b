package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
)

// databases creates the run's fresh databases (segments_load_<random>) and
// drops them at the end.
type databases struct{ *loadkit.Databases }

func openDatabases(ctx context.Context, adminURL string, keep bool) (*databases, error) {
	d, err := loadkit.OpenDatabases(ctx, adminURL, "segments_load_", keep, logf)
	if err != nil {
		return nil, err
	}
	return &databases{d}, nil
}

// create makes a fresh database; migrate applies the event store's
// migrations. eventstore.Connect creates the database when it is missing.
func (d *databases) create(ctx context.Context, migrate bool) (string, *pgxpool.Pool, error) {
	name := d.NewName()
	pool, err := eventstore.Connect(ctx, d.URLFor(name))
	if err != nil {
		return "", nil, err
	}
	if migrate {
		if _, err := eventstore.Migrate(ctx, pool); err != nil {
			pool.Close()
			return "", nil, err
		}
	}
	return name, pool, nil
}

// walSnap is PostgreSQL's cluster-wide WAL activity (pg_stat_wal, 14+).
// Backends report their counters about once a second, so a window's delta is
// accurate to about a second's worth at each end.
type walSnap struct {
	records, bytes, writes, syncs int64
	ok                            bool
}

func (d *databases) wal(ctx context.Context) walSnap {
	var s walSnap
	err := d.Admin.QueryRow(ctx, "SELECT wal_records, wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal").
		Scan(&s.records, &s.bytes, &s.writes, &s.syncs)
	s.ok = err == nil
	return s
}

type walUse struct {
	records, bytes, syncs int64
	ok                    bool
}

func walBetween(a, b walSnap) walUse {
	return walUse{records: b.records - a.records, bytes: b.bytes - a.bytes, syncs: b.syncs - a.syncs, ok: a.ok && b.ok}
}
