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
// and the HTTP API on a real loopback TCP listener, on a fresh database.
type service struct {
	r      *runner
	dbName string
	pool   *pgxpool.Pool
	store  *eventstore.Store
	stats  *storeStats
	trace  *loadkit.StatementTimer
	srv    *http.Server
	url    string
}

func (r *runner) startService(ctx context.Context) (_ *service, err error) {
	s := &service{r: r}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	s.dbName, s.pool, err = r.dbs.create(ctx, true)
	if err != nil {
		return nil, err
	}
	// Reopen the pool as eventstore.Connect does (its pool size), with a
	// tracer that times the store's round trips.
	s.pool.Close()
	s.trace = &loadkit.StatementTimer{}
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
	if s.pool, err = r.dbs.Pool(ctx, s.dbName, adjust); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key, err := privacy.NewMasterKey(raw)
	if err != nil {
		return nil, err
	}
	s.stats = &storeStats{Registry: metrics.New()}
	s.store, err = eventstore.New(eventstore.Config{Pool: s.pool, MasterKey: key, Logger: r.log, Metrics: s.stats, Writers: r.o.writers})
	if err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The same server settings as segmentd's serve.
	s.srv = &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Store: s.store, Location: r.loc, Logger: r.log, Metrics: s.stats,
			MetricsHandler: s.stats.Handler(),
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.url = "http://" + ln.Addr().String() + "/v1/events"
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("HTTP server", "err", err)
		}
	}()
	return s, nil
}

func (s *service) head(ctx context.Context) int64 {
	pos, _, err := s.store.Head(ctx)
	if err != nil {
		return -1
	}
	return pos
}

func (s *service) close(ctx context.Context) {
	if s.srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = s.srv.Shutdown(sctx)
		cancel()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.pool != nil {
		s.pool.Close()
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
