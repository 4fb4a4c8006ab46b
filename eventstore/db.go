package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/internal/pguuid"
)

// DefaultDatabaseURL is used when DATABASE_URL is unset: the local
// PostgreSQL, database "segments".
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/segments?sslmode=disable"

// DefaultMaxConns is the pool size unless DATABASE_URL sets pool_max_conns.
const DefaultMaxConns = 32

// Connect opens a pool on databaseURL, creating the database first when it
// does not exist. It does not migrate; call Migrate. adjust, when given and
// not nil, changes the pool's configuration before the session settings are
// chained to it (the load tools add a tracer).
func Connect(ctx context.Context, databaseURL string, adjust ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := poolConfig(databaseURL, adjust...)
	if err != nil {
		return nil, err
	}
	if err := ensureDatabase(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	return openPool(ctx, cfg)
}

// ConnectExisting opens a pool on databaseURL for a command that only reads:
// it never creates the database, and fails with ErrNoLog unless the database
// holds a log migrated to this version's schema.
func ConnectExisting(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := poolConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("%w: database %s does not exist", ErrNoLog, describe(cfg.ConnConfig))
		}
		return nil, err
	}
	migrated, err := Migrated(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("read the schema of %s: %w", describe(cfg.ConnConfig), mapError(err))
	}
	if !migrated {
		pool.Close()
		return nil, fmt.Errorf("%w: database %s is not at this version's schema (run segmentd migrate, or serve, first)", ErrNoLog, describe(cfg.ConnConfig))
	}
	return pool, nil
}

// Describe names the database of databaseURL without its password, for
// messages that tell an operator which database a command uses.
func Describe(databaseURL string) string {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return "an invalid DATABASE_URL"
	}
	return describe(cfg)
}

func poolConfig(databaseURL string, adjust ...func(*pgxpool.Config)) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors can echo the URL, password included: do not wrap.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (max(4, CPUs)) is too small: the publisher, the
		// outbox relays and the scheduler each hold a connection for their
		// session lock or LISTEN, and must not starve the request path.
		cfg.MaxConns = DefaultMaxConns
	}
	for _, f := range adjust {
		if f != nil {
			f(cfg)
		}
	}
	TuneSession(cfg)
	return cfg, nil
}

func openPool(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool on %s: %w", describe(cfg.ConnConfig), mapError(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			return nil, err
		}
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg.ConnConfig), mapError(err))
	}
	return pool, nil
}

// SessionDefaults are the session settings of every connection, unless the
// connection string sets them:
//   - jit off: the statements are short OLTP ones whose cost estimates over
//     unnest()ed id arrays can pass jit_above_cost, and compiling then takes
//     longer (tens of milliseconds) than running them;
//   - no lock is waited for longer than lock_timeout (the wait fails with
//     55P03, ErrUnavailable, and is retried), so a process holding a lock
//     cannot stall the others indefinitely;
//   - a transaction left idle longer than idle_in_transaction_session_timeout
//     has its session ended by the server, releasing its locks (the append
//     transaction, which holds its customers' stream rows and holds back
//     publication past its positions, sets the shorter AppendIdleTimeout: a
//     frozen or partitioned process delays those for at most that long);
//   - TCP keepalives on the server's side, so the server ends the session of
//     a peer that vanished (a partitioned host) within about
//     idle + interval × count seconds; tcp_user_timeout does the same for a
//     peer that stops acknowledging data sent to it.
var SessionDefaults = map[string]string{
	"jit":                                 "off",
	"lock_timeout":                        "10s",
	"idle_in_transaction_session_timeout": "30s",
	"tcp_keepalives_idle":                 "10",
	"tcp_keepalives_interval":             "5",
	"tcp_keepalives_count":                "3",
	"tcp_user_timeout":                    "30000",
}

// AppendIdleTimeout bounds how long an append transaction may sit idle (the
// Go work between its two round trips takes milliseconds).
const AppendIdleTimeout = "5s"

// ClientKeepAlive is the keepalive of the client's side of every
// connection: a server that vanished is noticed within about 25 s.
var ClientKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}

// TuneSession prepares a pool's connections for Segments' statements: the
// SessionDefaults, ClientKeepAlive, and uuid.UUID sent and scanned in binary
// (package pguuid).
//
// Call it after setting any AfterConnect of your own: it chains to it.
func TuneSession(cfg *pgxpool.Config) {
	c := cfg.ConnConfig
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	for k, v := range SessionDefaults {
		if _, ok := c.RuntimeParams[k]; !ok {
			c.RuntimeParams[k] = v
		}
	}
	dialer := &net.Dialer{Timeout: c.ConnectTimeout, KeepAliveConfig: ClientKeepAlive}
	c.DialFunc = dialer.DialContext
	next := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		pguuid.Register(conn.TypeMap())
		if next != nil {
			return next(ctx, conn)
		}
		return nil
	}
}

// describe names a database without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// ensureDatabase creates the configured database when it is missing, by
// connecting to the server's "postgres" maintenance database.
func ensureDatabase(ctx context.Context, target *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, target)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connect to %s: %w", describe(target), mapError(err))
	}
	admin := target.Copy()
	admin.Database = "postgres"
	aconn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to %s to create database %q: %w", describe(admin), target.Database, mapError(err))
	}
	defer func() { _ = aconn.Close(context.WithoutCancel(ctx)) }()
	_, err = aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{target.Database}.Sanitize())
	if err != nil && !isDuplicateDatabase(err) {
		return fmt.Errorf("create database %q: %w", target.Database, mapError(err))
	}
	return nil
}

func isDuplicateDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P04"
}
