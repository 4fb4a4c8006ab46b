// Package testenv gives tests real, isolated infrastructure: a fresh,
// migrated PostgreSQL database per test (cloned from a template) and an
// in-process JetStream server per test. A missing PostgreSQL fails the test
// with the command that starts it; nothing is ever skipped.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/privacy"
)

// AdminURL is the maintenance connection used to create test databases;
// TEST_DATABASE_URL overrides it.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

const startPostgres = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start   (or: make services)"

var (
	templateOnce sync.Once
	templateName string
	errTemplate  error
	createMu     sync.Mutex
)

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// template returns a migrated template database named after the migrations'
// checksums, so every test process of the same code shares one.
func template(ctx context.Context, admin *pgx.Conn) (string, error) {
	templateOnce.Do(func() {
		migrations, err := eventstore.Migrations()
		if err != nil {
			errTemplate = err
			return
		}
		var sums strings.Builder
		for _, m := range migrations {
			sums.WriteString(m.Checksum)
		}
		sum := fmt.Sprintf("%x", sumString(sums.String()))
		templateName = "segments_tmpl_" + sum[:16]
		if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7351001)"); err != nil {
			errTemplate = err
			return
		}
		defer func() { _, _ = admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7351001)") }()
		var exists bool
		if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", templateName).Scan(&exists); err != nil {
			errTemplate = err
			return
		}
		if exists {
			return
		}
		building := templateName + "_b" + randomSuffix()
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
			errTemplate = err
			return
		}
		pool, err := pgxpool.New(ctx, replaceDB(AdminURL(), building))
		if err != nil {
			errTemplate = err
			return
		}
		_, err = eventstore.Migrate(ctx, pool)
		pool.Close()
		if err != nil {
			errTemplate = err
			return
		}
		_, errTemplate = admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+templateName)
	})
	return templateName, errTemplate
}

func sumString(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// replaceDB points a connection URL at another database.
func replaceDB(url, db string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return url
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, db)
}

// DB is an isolated test database.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// Postgres creates a fresh migrated database for the test and drops it when
// the test ends.
func Postgres(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n%s", replaceDB(AdminURL(), "postgres"), err, startPostgres)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	tmpl, err := template(ctx, admin)
	if err != nil {
		t.Fatalf("create template database: %v", err)
	}
	name := "segments_test_" + randomSuffix()
	createMu.Lock()
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl)
	createMu.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	url := replaceDB(AdminURL(), name)
	cfg, err := pgxpool.ParseConfig(url + "&pool_max_conns=32")
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	eventstore.TuneSession(cfg) // the service's session settings and codecs
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer func() { _ = c.Close(ctx) }()
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return &DB{Name: name, URL: url, Pool: pool}
}

// MasterKey returns a fixed master key for tests.
func MasterKey(t testing.TB) privacy.MasterKey {
	t.Helper()
	k, err := privacy.NewMasterKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Store opens an event store on a fresh database.
func Store(t testing.TB, now func() time.Time) (*eventstore.Store, *DB) {
	t.Helper()
	db := Postgres(t)
	s, err := eventstore.New(eventstore.Config{Pool: db.Pool, MasterKey: MasterKey(t), Now: now, Logger: Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, db
}

// Logger returns a logger that writes through t.Log at warn level and above.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// NATS is an in-process JetStream server that a test can stop and restart
// on the same port and store directory (to simulate an outage).
type NATS struct {
	t       testing.TB
	Dir     string
	Addr    string
	Server  *server.Server
	mu      sync.Mutex
	stopped bool
}

// StartNATS starts an in-process JetStream server for the test.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, Dir: t.TempDir(), Addr: "127.0.0.1:0"}
	n.start()
	n.Addr = n.Server.Addr().String()
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedConfig{StoreDir: n.Dir, Addr: n.Addr})
	if err != nil {
		n.t.Fatalf("start in-process JetStream server: %v", err)
	}
	n.Server = srv
	n.stopped = false
}

// URL is the client URL.
func (n *NATS) URL() string { return "nats://" + n.Addr }

// Stop shuts the server down (idempotent).
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.stopped = true
}

// Restart starts the server again on the same address and store.
func (n *NATS) Restart() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.start()
}

// Connect returns a client connection (closed at cleanup) and its JetStream
// context, with the service's streams created.
func (n *NATS) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to in-process NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsbus.EnsureStreams(ctx, js); err != nil {
		t.Fatalf("create streams: %v", err)
	}
	return nc, js
}

// Eventually polls cond until it is true or the deadline passes; it is for
// awaiting a condition, not for sleeping.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Clock is a test clock that only moves when told to (Set), safe for the
// goroutines of the code under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's instant.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
