// Package loadkit is the plumbing of the load program (bench/load: its
// ingest and projector commands) and the other benchmarks: scratch databases
// beside a maintenance connection, dropped at the end, the service started
// on one (internal/service, as serve starts it), CPU and WAL accounting.
package loadkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
)

// Databases hands out fresh database names (<prefix><random>) and drops
// every one of them WITH (FORCE) on Close, unless keep was asked for.
type Databases struct {
	AdminURL string
	Admin    *pgxpool.Pool // two connections on the maintenance database
	prefix   string
	keep     bool
	logf     func(format string, args ...any)

	mu      sync.Mutex
	created []string
}

// OpenDatabases connects to the maintenance database at adminURL, which must
// be on this machine: the load commands only talk to loopback addresses.
func OpenDatabases(ctx context.Context, adminURL, prefix string, keep bool, logf func(format string, args ...any)) (*Databases, error) {
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("-pg: not a PostgreSQL URL: %w", err)
	}
	if h := cfg.ConnConfig.Host; h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return nil, fmt.Errorf("-pg: %s is not a loopback address; the load commands only talk to the local machine", h)
	}
	cfg.MaxConns = 2
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (%s): %w", Redact(adminURL), err)
	}
	return &Databases{AdminURL: adminURL, Admin: admin, prefix: prefix, keep: keep, logf: logf}, nil
}

// NewName returns a fresh database name and remembers it for dropping. The
// database itself is created by whoever connects first (eventstore.Connect
// creates a missing database).
func (d *Databases) NewName() string {
	name := d.prefix + RandomHex(5)
	d.mu.Lock()
	d.created = append(d.created, name)
	d.mu.Unlock()
	return name
}

// Pool opens a pool on database name with the service's session setup
// (eventstore.TuneSession), so the load tools' statements cost what the
// service's would; adjust, when not nil, changes the configuration first
// (pool size, tracer, an AfterConnect that TuneSession then chains to).
func (d *Databases) Pool(ctx context.Context, name string, adjust func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(d.URLFor(name))
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		adjust(cfg)
	}
	eventstore.TuneSession(cfg)
	return pgxpool.NewWithConfig(ctx, cfg)
}

// URLFor is the maintenance URL pointed at another database.
func (d *Databases) URLFor(name string) string {
	u, err := url.Parse(d.AdminURL)
	if err != nil {
		return d.AdminURL
	}
	u.Path = "/" + name
	return u.String()
}

// Drop removes one database now (the pools on it must be closed).
func (d *Databases) Drop(ctx context.Context, name string) {
	if d.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if _, err := d.Admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		d.logf("drop database %s: %v", name, err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.created = slices.DeleteFunc(d.created, func(n string) bool { return n == name })
}

// Close drops what is left and closes the maintenance pool.
func (d *Databases) Close(ctx context.Context) {
	d.mu.Lock()
	left := slices.Clone(d.created)
	d.mu.Unlock()
	for _, n := range left {
		d.Drop(ctx, n)
	}
	if d.keep && len(left) > 0 {
		d.logf("kept databases: %v", left)
	}
	d.Admin.Close()
}

// Setting reads a server setting ("?" when it cannot).
func (d *Databases) Setting(ctx context.Context, name string) string {
	var v string
	if err := d.Admin.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "?"
	}
	return v
}

// Redact hides a URL's password.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Backends lists the PostgreSQL backend pids connected to a database.
func (d *Databases) Backends(ctx context.Context, name string) []int {
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

// WALSnap is PostgreSQL's cluster-wide WAL activity (pg_stat_wal, 14+):
// other databases' writes count too. Backends report their counters about
// once a second, so a window's delta is accurate to about a second's worth
// at each end.
type WALSnap struct {
	Records, Bytes, Syncs int64
	OK                    bool
}

// WAL reads the counters.
func (d *Databases) WAL(ctx context.Context) WALSnap {
	var s WALSnap
	err := d.Admin.QueryRow(ctx, "SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").Scan(&s.Records, &s.Bytes, &s.Syncs)
	s.OK = err == nil
	return s
}

// Since is the WAL written between an earlier reading a and this one.
func (s WALSnap) Since(a WALSnap) WALSnap {
	return WALSnap{Records: s.Records - a.Records, Bytes: s.Bytes - a.Bytes, Syncs: s.Syncs - a.Syncs, OK: a.OK && s.OK}
}

// CreateMigrated creates a fresh database with the service's schema
// (eventstore.Migrate) and returns its name.
func (d *Databases) CreateMigrated(ctx context.Context) (string, error) {
	name := d.NewName()
	pool, err := eventstore.Connect(ctx, d.URLFor(name)) // creates the database
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		return "", err
	}
	return name, nil
}
