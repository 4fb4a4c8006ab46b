package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/metrics"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/privacy"
)

// storeStats is the service's metrics registry (as segmentd wires it) that
// also counts group-commit transactions for the report.
type storeStats struct {
	*metrics.Registry
	groups, requests, events, busyNanos atomic.Int64
}

// AppendGroup observes one group-commit transaction.
func (s *storeStats) AppendGroup(requests, events int, took time.Duration) {
	s.Registry.AppendGroup(requests, events, took)
	s.groups.Add(1)
	s.requests.Add(int64(requests))
	s.events.Add(int64(events))
	s.busyNanos.Add(int64(took))
}

type groupSnap struct{ groups, requests, events, busy int64 }

func (s *storeStats) snap() groupSnap {
	return groupSnap{s.groups.Load(), s.requests.Load(), s.events.Load(), s.busyNanos.Load()}
}

// service is the part of segmentd under test: event store with group commit
// and the HTTP API on a real loopback TCP listener, on a fresh database. With
// several instances each has its own pool, store and listener (as separate
// segmentd processes would), sharing the database; clients are spread over
// them. pool and store are the first instance's.
type service struct {
	r      *runner
	dbName string
	pool   *pgxpool.Pool
	store  *eventstore.Store
	stats  *storeStats
	trace  *loadkit.StatementTimer
	nodes  []*node
	urls   []string
}

// node is one instance of the service.
type node struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
	srv   *http.Server
}

// url is the ingest URL a client uses: clients are spread over the instances.
func (s *service) url(client int) string { return s.urls[client%len(s.urls)] }

func (r *runner) startService(ctx context.Context) (*service, error) {
	return r.startInstances(ctx, 1)
}

func (r *runner) startInstances(ctx context.Context, instances int) (_ *service, err error) {
	s := &service{r: r}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	var pool *pgxpool.Pool
	s.dbName, pool, err = r.dbs.create(ctx, true)
	if err != nil {
		return nil, err
	}
	// Each instance reopens a pool as eventstore.Connect does (its pool
	// size), with a tracer that times the store's round trips.
	pool.Close()
	s.trace = &loadkit.StatementTimer{}
	s.stats = &storeStats{Registry: metrics.New()}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key, err := privacy.NewMasterKey(raw)
	if err != nil {
		return nil, err
	}
	for range instances {
		n, err := r.startNode(ctx, s, key)
		if err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, n)
	}
	s.pool, s.store = s.nodes[0].pool, s.nodes[0].store
	return s, nil
}

func (r *runner) startNode(ctx context.Context, s *service, key privacy.MasterKey) (_ *node, err error) {
	n := &node{}
	adjust := func(cfg *pgxpool.Config) {
		cfg.MaxConns = eventstore.DefaultMaxConns
		cfg.ConnConfig.Tracer = s.trace
		if r.o.explain <= 0 {
			return
		}
		// Diagnosis: PostgreSQL logs the plans of the service's slow
		// statements (auto_explain, this pool's sessions only).
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
	if n.pool, err = r.dbs.Pool(ctx, s.dbName, adjust); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.close(ctx)
		}
	}()
	n.store, err = eventstore.New(eventstore.Config{Pool: n.pool, MasterKey: key, Logger: r.log, Metrics: s.stats, Writers: r.o.writers})
	if err != nil {
		return nil, err
	}
	if _, err := n.store.CheckKeyring(ctx); err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The same server settings as segmentd's serve.
	n.srv = &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Store: n.store, Location: r.loc, Logger: r.log, Metrics: s.stats,
			MetricsHandler: s.stats.Handler(),
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.urls = append(s.urls, "http://"+ln.Addr().String()+"/v1/events")
	go func() {
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("HTTP server", "err", err)
		}
	}()
	return n, nil
}

func (s *service) head(ctx context.Context) int64 {
	pos, _, err := s.store.Head(ctx)
	if err != nil {
		return -1
	}
	return pos
}

// count is the number of events in the log (positions have gaps).
func (s *service) count(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}

func (n *node) close(ctx context.Context) {
	if n.srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = n.srv.Shutdown(sctx)
		cancel()
	}
	if n.store != nil {
		n.store.Close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
}

func (s *service) close(ctx context.Context) {
	for _, n := range s.nodes {
		n.close(ctx)
	}
	if s.dbName != "" {
		s.r.dbs.Drop(ctx, s.dbName)
	}
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

// startPublisher runs the service's publisher (eventstore.Publisher with
// natsbus.EventSink, as segmentd wires it); stop cancels it and waits.
func (r *runner) startPublisher(ctx context.Context, s *service, b *loadkit.Bus) (stop func()) {
	pub := eventstore.NewPublisher(eventstore.PublisherConfig{
		Store: s.store, Sink: natsbus.NewEventSink(b.NC, b.JS), Location: r.loc, Logger: r.log, Metrics: s.stats,
	})
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := pub.Run(pctx); err != nil {
			r.log.Error("publisher stopped", "err", err)
		}
	})
	return func() { cancel(); wg.Wait() }
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
