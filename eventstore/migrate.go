package eventstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// AppliedMigration is a row of the version table.
type AppliedMigration struct {
	Version   int
	Name      string
	Checksum  string
	AppliedAt time.Time
}

// ErrMigrationChanged means a migration that was applied has since been
// edited: migrations are immutable once released.
var ErrMigrationChanged = errors.New("applied migration differs from the embedded one")

// migrateLockKey is the advisory lock that keeps concurrent starters from
// migrating at the same time.
const migrateLockKey = 0x5e6d_0001

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", name)
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..n without gaps; found %d at place %d", m.Version, i+1)
		}
	}
	return out, nil
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every embedded migration that is not yet applied, each in
// its own transaction, under an advisory lock. It returns the versions it
// applied and fails if an applied migration was changed.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", mapError(err))
	}
	defer conn.Release()
	// Migrations wait for each other and for the locks their DDL needs as
	// long as it takes (the session defaults bound lock waits; restored
	// before the connection goes back to the pool).
	if _, err := conn.Exec(ctx, "SET lock_timeout = 0"); err != nil {
		return nil, fmt.Errorf("migrate: %w", mapError(err))
	}
	defer func() {
		resetCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(resetCtx, "RESET lock_timeout")
	}()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", mapError(err))
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx is done.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", migrateLockKey)
	}()
	if _, err := conn.Exec(ctx, createVersionTable); err != nil {
		return nil, fmt.Errorf("migrate: create version table: %w", mapError(err))
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var done []int
	for _, m := range migrations {
		if a, ok := applied[m.Version]; ok {
			if a.Checksum != m.Checksum {
				return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, ErrMigrationChanged)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, mapError(err))
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// MigrationStatus lists the embedded migrations with when each was applied
// (zero time: pending).
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]Migration, map[int]AppliedMigration, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("migration status: %w", mapError(err))
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, nil, fmt.Errorf("migration status: %w", mapError(err))
	}
	if !exists {
		return migrations, map[int]AppliedMigration{}, nil
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	return migrations, applied, err
}

// Migrated reports whether every embedded migration is applied unchanged.
func Migrated(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	migrations, applied, err := MigrationStatus(ctx, pool)
	if err != nil {
		return false, err
	}
	for _, m := range migrations {
		if a, ok := applied[m.Version]; !ok || a.Checksum != m.Checksum {
			return false, nil
		}
	}
	return true, nil
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) (map[int]AppliedMigration, error) {
	rows, err := conn.Query(ctx, "SELECT version, name, checksum, applied_at FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read version table: %w", mapError(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppliedMigration, error) {
		var a AppliedMigration
		err := r.Scan(&a.Version, &a.Name, &a.Checksum, &a.AppliedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read version table: %w", mapError(err))
	}
	out := make(map[int]AppliedMigration, len(list))
	for _, a := range list {
		out[a.Version] = a
	}
	return out, nil
}
