package main

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
)

// databases creates the run's fresh databases (segments_load_<random>) and
// drops them at the end.
type databases struct {
	adminURL string
	admin    *pgxpool.Pool
	mu       sync.Mutex
	created  []string
	keep     bool
}

func openDatabases(ctx context.Context, adminURL string, keep bool) (*databases, error) {
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("-pg: not a PostgreSQL URL: %w", err)
	}
	cfg.MaxConns = 2
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (%s): %w", redact(adminURL), err)
	}
	return &databases{adminURL: adminURL, admin: admin, keep: keep}, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// urlFor is the admin URL pointed at another database.
func (d *databases) urlFor(name string) string {
	u, err := url.Parse(d.adminURL)
	if err != nil {
		return d.adminURL
	}
	u.Path = "/" + name
	return u.String()
}

// create makes a fresh database; migrate applies the event store's
// migrations. eventstore.Connect creates the database when it is missing.
func (d *databases) create(ctx context.Context, migrate bool) (string, *pgxpool.Pool, error) {
	name := "segments_load_" + randomHex(5)
	d.mu.Lock()
	d.created = append(d.created, name)
	d.mu.Unlock()
	pool, err := eventstore.Connect(ctx, d.urlFor(name))
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

// drop removes one database now (the pools on it must be closed).
func (d *databases) drop(ctx context.Context, name string) {
	if d.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := d.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		logf("drop database %s: %v", name, err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, n := range d.created {
		if n == name {
			d.created = append(d.created[:i], d.created[i+1:]...)
			break
		}
	}
}

// close drops what is left and closes the admin pool.
func (d *databases) close(ctx context.Context) {
	d.mu.Lock()
	left := append([]string(nil), d.created...)
	d.mu.Unlock()
	for _, n := range left {
		d.drop(ctx, n)
	}
	if d.keep && len(left) > 0 {
		logf("kept databases: %v", left)
	}
	d.admin.Close()
}

// setting reads a server setting.
func (d *databases) setting(ctx context.Context, name string) string {
	var v string
	if err := d.admin.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "?"
	}
	return v
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
	err := d.admin.QueryRow(ctx, "SELECT wal_records, wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal").
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
