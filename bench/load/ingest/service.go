package ingestload

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/metrics"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/privacy"
)

// groupCounters count the group-commit transactions of every instance.
type groupCounters struct{ groups, requests, events, busyNanos atomic.Int64 }

type groupSnap struct{ groups, requests, events, busy int64 }

func (c *groupCounters) snap() groupSnap {
	return groupSnap{c.groups.Load(), c.requests.Load(), c.events.Load(), c.busyNanos.Load()}
}

// storeStats is an instance's metrics registry (as serve has one) that also
// counts group-commit transactions for the report.
type storeStats struct {
	*metrics.Registry
	c *groupCounters
}

// AppendGroup observes one group-commit transaction.
func (s storeStats) AppendGroup(requests, events int, took time.Duration) {
	s.Registry.AppendGroup(requests, events, took)
	s.c.groups.Add(1)
	s.c.requests.Add(int64(requests))
	s.c.events.Add(int64(events))
	s.c.busyNanos.Add(int64(took))
}

// deployment is segmentd as serve assembles it (internal/service), with the
// api role (and the publisher's when asked), on a fresh database and an
// embedded JetStream server. With several instances each has its own pool,
// store and listener, as separate segmentd processes would, sharing the
// database; clients are spread over them. pool and store are the first
// instance's.
type deployment struct {
	r      *runner
	dbName string
	bus    *loadkit.Bus
	keys   *privacy.Keyring
	groups *groupCounters
	trace  *loadkit.StatementTimer
	nodes  []*loadkit.Instance
	urls   []string
	pool   *pgxpool.Pool
	store  *eventstore.Store
}

// url is the ingest URL a client uses: clients are spread over the instances.
func (s *deployment) url(client int) string { return s.urls[client%len(s.urls)] }

func (r *runner) startService(ctx context.Context, publish bool) (*deployment, error) {
	return r.startInstances(ctx, 1, publish)
}

func (r *runner) startInstances(ctx context.Context, instances int, publish bool) (_ *deployment, err error) {
	s := &deployment{r: r, dbName: r.dbs.NewName(), groups: &groupCounters{}, trace: &loadkit.StatementTimer{}}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	if s.keys, err = loadkit.NewKeyring(); err != nil {
		return nil, err
	}
	if s.bus, err = r.startBus(ctx, true); err != nil {
		return nil, err
	}
	roles := []string{service.RoleAPI}
	if publish {
		roles = append(roles, service.RolePublisher)
	}
	for range instances {
		in, err := s.startInstance(ctx, s.bus, roles...)
		if err != nil {
			return nil, err
		}
		s.urls = append(s.urls, in.URL()+"/v1/events")
	}
	s.pool, s.store = s.nodes[0].Pool, s.nodes[0].Store
	return s, nil
}

// startInstance starts one more instance with roles on the service's
// database, its bus b.
func (s *deployment) startInstance(ctx context.Context, b *loadkit.Bus, roles ...string) (*loadkit.Instance, error) {
	cfg := s.r.dbs.ServiceConfig(s.dbName, b, s.keys, s.trace)
	cfg.AdjustPool = s.r.adjustPool(s.trace)
	cfg.Roles, cfg.Writers, cfg.Logger, cfg.Location = roles, s.r.o.writers, s.r.log, s.r.loc
	cfg.Metrics = storeStats{Registry: metrics.New(), c: s.groups}
	in, err := loadkit.StartInstance(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	s.nodes = append(s.nodes, in)
	return in, nil
}

// adjustPool times the service's round trips and, with -pg-explain, has
// PostgreSQL log the plans of its slow statements (auto_explain, this
// pool's sessions only).
func (r *runner) adjustPool(trace *loadkit.StatementTimer) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = trace
		if r.o.explain <= 0 {
			return
		}
		threshold := strconv.FormatInt(r.o.explain.Milliseconds(), 10)
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			for _, q := range []string{"LOAD 'auto_explain'", "SET auto_explain.log_min_duration = " + threshold,
				"SET auto_explain.log_analyze = on", "SET auto_explain.log_buffers = on"} {
				if _, err := c.Exec(ctx, q); err != nil {
					return fmt.Errorf("-pg-explain: %s: %w", q, err)
				}
			}
			return nil
		}
	}
}

func (s *deployment) head(ctx context.Context) int64 {
	pos, _, err := s.store.Head(ctx)
	if err != nil {
		return -1
	}
	return pos
}

// count is the number of events in the log (positions have gaps).
func (s *deployment) count(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}

func (s *deployment) close(ctx context.Context) {
	for _, n := range s.nodes {
		if err := n.Stop(); err != nil {
			s.r.log.Warn("stop an instance", "err", err)
		}
	}
	s.nodes = nil
	if s.bus != nil {
		s.bus.Close()
	}
	s.r.dbs.Drop(ctx, s.dbName)
}

// startBus starts an embedded JetStream server as segmentd does without
// NATS_URL (loadkit.StartBus).
func (r *runner) startBus(ctx context.Context, syncAlways bool) (*loadkit.Bus, error) {
	return loadkit.StartBus(ctx, r.o.tmpDir, "segments-load", syncAlways, r.log)
}

func syncName(on bool) string {
	if on {
		return "SyncAlways on"
	}
	return "SyncAlways off"
}

// startPublisher runs a publisher instance (segmentd with the publisher
// role alone) on the service's database, publishing into b; stop shuts it
// down.
func (s *deployment) startPublisher(ctx context.Context, b *loadkit.Bus) (stop func(), err error) {
	in, err := s.startInstance(ctx, b, service.RolePublisher)
	if err != nil {
		return nil, err
	}
	s.nodes = s.nodes[:len(s.nodes)-1]
	return func() {
		if err := in.Stop(); err != nil {
			s.r.log.Warn("stop the publisher", "err", err)
		}
	}, nil
}

// waitPublished waits until SEGMENTS_EVENTS holds want messages.
func waitPublished(ctx context.Context, b *loadkit.Bus, want uint64, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	for {
		n, err := b.Msgs(ctx, natsbus.StreamEvents)
		if err == nil && n >= want {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("published %d of %d events after %s", n, want, limit)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
