package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

// databaseExists asks the server whether a database of that name exists.
func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(ctx) }()
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// databaseURL points the admin URL at another database.
func databaseURL(t *testing.T, name string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// TestReadOnlyCommandsNeverCreateAKeyOrADatabase: verify, replay and export
// read an existing log with an existing key; pointed at the wrong data
// directory or database they fail naming what is missing, and leave no key
// file and no database behind.
func TestReadOnlyCommandsNeverCreateAKeyOrADatabase(t *testing.T) {
	missingDB := fmt.Sprintf("segments_test_absent_%d", time.Now().UnixNano())
	emptyDir := t.TempDir()
	keyDir := t.TempDir()
	if err := privacy.WriteKeyringFile(filepath.Join(keyDir, keyFileName), []privacy.MasterKey{testenv.MasterKey(t)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		dataDir string
		args    []string
		want    string
	}{
		{"verify without a key", emptyDir, []string{"verify"}, "no master key"},
		{"replay without a key", emptyDir, []string{"replay", "KH-1"}, "no master key"},
		{"export without a key", emptyDir, []string{"export", "--format", "csv", "--out", filepath.Join(emptyDir, "x.csv")}, "no master key"},
		{"verify of a missing database", keyDir, []string{"verify"}, "does not exist"},
		{"replay of a missing database", keyDir, []string{"replay", "KH-1"}, "does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SEGMENTS_MASTER_KEY", "")
			t.Setenv("SEGMENTS_DATA_DIR", c.dataDir)
			t.Setenv("DATABASE_URL", databaseURL(t, missingDB))
			code, _, stderr := runCLI(t, c.args...)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q: want exit 1 naming %q", code, stderr, c.want)
			}
			if _, err := os.Stat(filepath.Join(emptyDir, keyFileName)); err == nil {
				t.Errorf("a read-only command created %s", filepath.Join(emptyDir, keyFileName))
			}
			if databaseExists(t, missingDB) {
				t.Errorf("a read-only command created the database %s", missingDB)
			}
		})
	}
}

// TestReadOnlyCommandsSpeakTheOperatorsLanguage: an unknown customer, a bad
// instant and an unmigrated database are named in words, without the
// driver's or the time package's internals.
func TestReadOnlyCommandsSpeakTheOperatorsLanguage(t *testing.T) {
	db := testenv.Postgres(t)
	keyDir := t.TempDir()
	if err := privacy.WriteKeyringFile(filepath.Join(keyDir, keyFileName), []privacy.MasterKey{testenv.MasterKey(t)}); err != nil {
		t.Fatal(err)
	}
	empty := fmt.Sprintf("segments_test_empty_%d", time.Now().UnixNano())
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+empty); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+empty+" WITH (FORCE)") })
	t.Setenv("SEGMENTS_MASTER_KEY", "")
	t.Setenv("SEGMENTS_DATA_DIR", keyDir)
	for _, c := range []struct {
		name string
		db   string
		args []string
		want string
	}{
		{"replay of an unknown customer", db.URL, []string{"replay", "KH-NOBODY"}, "KH-NOBODY"},
		{"verify of an unknown customer", db.URL, []string{"verify", "KH-NOBODY"}, "KH-NOBODY"},
		{"replay with a bad instant", db.URL, []string{"replay", "KH-NOBODY", "--as-of", "yesterday"}, "RFC 3339 instant such as"},
		{"verify of an unmigrated database", databaseURL(t, empty), []string{"verify"}, "not at this version's schema"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", c.db)
			code, stdout, stderr := runCLI(t, c.args...)
			out := stdout + stderr
			if code == 0 || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, output %q: want a failure naming %q", code, out, c.want)
			}
			for _, internal := range []string{"no rows in result set", "2006-01-02", "15:04:05", "pgx", "SQLSTATE"} {
				if strings.Contains(out, internal) {
					t.Errorf("output shows Go internals (%q): %q", internal, out)
				}
			}
		})
	}
	var tables int
	conn, err := pgx.Connect(ctx, databaseURL(t, empty))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("verify migrated the database it was only to read: %d tables", tables)
	}
}
