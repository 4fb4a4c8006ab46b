package service

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
	"github.com/segments-dev/segments/workbench"
)

// Hooks let the demo take part in Run; both may be nil.
type Hooks struct {
	// Listening runs once the API listens (base is its http:// URL, "" without
	// the api role) and before the roles start.
	Listening func(ctx context.Context, base string) error
	// Started runs beside the roles, with their context, once they started.
	Started func(ctx context.Context)
}

// Run starts the configured roles and blocks until ctx is done, then shuts
// down gracefully: HTTP stops accepting and finishes its requests, workers
// finish the messages in hand, the store commits what is queued. It closes
// the service when it returns.
func (s *Service) Run(ctx context.Context, hooks Hooks) error {
	defer s.Close()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup

	// The API listens before the workers start, so the demo's messages can
	// link to its address.
	var ln net.Listener
	if s.Config.Has(RoleAPI) {
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.Config.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", s.Config.HTTPAddr, err)
		}
		addr := ln.Addr().String()
		s.httpAddr.Store(&addr)
	}
	if hooks.Listening != nil {
		base := ""
		if addr := s.Listening(); addr != "" {
			base = "http://" + addr
		}
		if err := hooks.Listening(ctx, base); err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return err
		}
	}
	s.startRoles(workCtx, &wg)
	var srv *http.Server
	httpErr := make(chan error, 1)
	if ln != nil {
		var err error
		if srv, err = s.httpServer(); err != nil {
			_ = ln.Close()
			stopWork()
			wg.Wait()
			return fmt.Errorf("workbench: %w", err)
		}
		go func() { httpErr <- srv.Serve(ln) }()
		if s.Config.Tokens.Empty() {
			s.Log.Warn("HTTP API listening WITHOUT authentication (no SEGMENTS_TOKENS): open to anyone on this host, loopback only", "addr", "http://"+ln.Addr().String())
		} else {
			s.Log.Info("HTTP API listening", "addr", "http://"+ln.Addr().String(), "auth", "bearer tokens", "tokens", s.Config.Tokens.Len())
		}
	}
	s.Log.Info("segmentd running", "roles", s.Config.Roles)
	if hooks.Started != nil {
		wg.Go(func() { hooks.Started(workCtx) })
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("HTTP server: %w", err)
	}
	s.Log.Info("shutting down")
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			s.Log.Warn("HTTP shutdown", "err", serr)
		}
		cancel()
	}
	stopWork()
	wg.Wait()
	s.Log.Info("stopped")
	return err
}

// startRoles starts the workers of the configured roles under supervision.
func (s *Service) startRoles(ctx context.Context, wg *sync.WaitGroup) {
	if s.Config.Has(RolePublisher) {
		pub := eventstore.NewPublisher(eventstore.PublisherConfig{
			Store: s.Store, Sink: natsbus.NewEventSink(s.NC, s.JS), Location: s.Config.Location, Logger: s.Log, Metrics: s.Metrics,
		})
		s.Supervise(ctx, wg, "publisher", pub.Run)
	}
	if s.Config.Has(RoleProjector) {
		s.Supervise(ctx, wg, "projector", func(ctx context.Context) error { return s.Projector.Consume(ctx, s.JS, "segments-projector") })
		// Appends made by this process (api, ingest roles) reach the read
		// models without waiting for SEGMENTS_EVENTS; Consume stays the
		// path that guarantees every event.
		s.Supervise(ctx, wg, "projector-follow", func(ctx context.Context) error { return s.Projector.FollowCommits(ctx, s.Store.Committed()) })
		for _, stream := range []string{natsbus.StreamChanges, natsbus.StreamAlerts} {
			relay := projections.NewRelay(s.Pool, natsbus.NewStreamSink(s.NC, s.JS, stream), stream, s.Log)
			s.Supervise(ctx, wg, "relay-"+stream, relay.Run)
		}
	}
	if s.Config.Has(RoleScheduler) {
		sched := projections.NewScheduler(s.Projector, time.Now, s.Log, s.Metrics)
		s.Supervise(ctx, wg, "scheduler", sched.Run)
	}
	if s.Notify != nil {
		n := s.newNotifier()
		s.Supervise(ctx, wg, "notifier", func(ctx context.Context) error { return n.Run(ctx, s.JS) })
	}
	if s.Config.Has(RoleIngest) {
		w := ingest.New(ingest.Config{JS: s.JS, Appender: s.Store, Erasures: s.Store, Logger: s.Log, Metrics: s.Metrics})
		s.Supervise(ctx, wg, "ingest", w.Run)
		// Erasure reaches SEGMENTS_INGEST and SEGMENTS_REJECTED.
		s.Supervise(ctx, wg, "eraser", ingest.NewEraser(s.JS, s.Log).Run)
	}
}

// httpServer is the API behind the workbench, with serve's limits.
func (s *Service) httpServer() (*http.Server, error) {
	var preview httpapi.RulesPreviewer = s.Projector
	if s.Config.RulesPreview != nil {
		preview = s.Config.RulesPreview(s.Projector)
	}
	handler, err := workbench.New(workbench.Config{
		API: httpapi.New(httpapi.Config{
			Store: s.Store, Location: s.Config.Location, Logger: s.Log, Metrics: s.Metrics,
			Ready: s.readiness, MetricsHandler: s.Metrics.Handler(),
			Queries: projections.NewQueries(s.Projector, s.Store), Auditor: s.Store, Tokens: s.Config.Tokens,
			Imports:      &importer.Service{Dir: filepath.Join(s.Config.DataDir, "imports"), Store: s.Store, Location: s.Config.Location, Logger: s.Log},
			Deliveries:   notify.NewStore(s.Pool),
			AllowedHosts: s.Config.AllowedHosts,
			Rules:        preview,
		}),
		Tokens: s.Config.Tokens, Logger: s.Log,
	})
	if err != nil {
		return nil, err
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}, nil
}
