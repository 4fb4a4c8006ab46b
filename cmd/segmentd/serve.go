package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/metrics"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
	"github.com/segments-dev/segments/workbench"
)

// app is a running service: its parts, for wiring and for tests.
type app struct {
	cfg     *config
	log     *slog.Logger
	loc     *time.Location
	pool    *pgxpool.Pool
	store   *eventstore.Store
	natsSrv *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *metrics.Registry
	rules   *domain.RuleBook
	tokens  *auth.Set
	proj    *projections.Projector
	// notify is the notifier's routes file (nil: no delivery).
	notify *notify.Config
	// httpAddr is set once the API listens.
	httpAddr atomic.Pointer[string]
	// running says, per role, whether its worker is running (for /readyz).
	runningMu sync.Mutex
	running   map[string]*atomic.Bool
	// restart is the supervisor's delay policy (zero: backoff.Restart).
	restart backoff.Policy
	// mailbox is the demo's SMTP catcher (serve --demo without
	// SEGMENTS_NOTIFY); demoPrint is where it prints mails (stderr when
	// nil) and demoAlertAfter when the demo's activity drop happens (1 min
	// when zero; tests shorten it).
	mailbox        atomic.Pointer[demoMailbox]
	demoPrint      io.Writer
	demoAlertAfter time.Duration
}

func serve(ctx context.Context, args []string) error {
	cfg, err := loadServeConfig(serveFlagSet(), args)
	if err != nil {
		return err
	}
	log, err := newLogger(&cfg, os.Stderr)
	if err != nil {
		return err
	}
	a, err := start(ctx, &cfg, log)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// start connects and migrates the database, opens the store and NATS, and
// creates the streams; run then starts the roles.
func start(ctx context.Context, cfg *config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, metrics: metrics.New()}
	a.loc = cfg.Location
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	if a.rules, err = loadRules(cfg.RulesFile); err != nil {
		return nil, err
	}
	if err := checkRoutesAgainstRules(a.rules, cfg.NotifyFile); err != nil {
		return nil, err
	}
	if a.tokens, err = loadTokens(cfg.TokensFile); err != nil {
		return nil, err
	}
	if cfg.has("api") {
		if err := checkListen(cfg.HTTPAddr, a.tokens); err != nil {
			return nil, err
		}
	}
	if err := checkEmbeddedNATS(cfg, a.tokens); err != nil {
		return nil, err
	}
	a.pool, err = eventstore.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	applied, err := eventstore.Migrate(ctx, a.pool)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("database migrated", "applied", applied)
	}

	keys, err := keyring(cfg, log)
	if err != nil {
		return nil, err
	}
	a.store, err = eventstore.New(eventstore.Config{Pool: a.pool, Keyring: keys, Logger: log, Metrics: a.metrics})
	if err != nil {
		return nil, err
	}
	active, err := a.store.CheckKeyring(ctx)
	if err != nil {
		return nil, err
	}
	log.Info("master key matches the log", "active_key_id", active, "keyring", keys.IDs())

	a.proj = projections.New(projections.Config{Pool: a.pool, Rules: a.rules, Logger: log, Metrics: a.metrics})
	// Every role checks the rules against the log (and records new
	// versions): an API answering with other rules would contradict it.
	late, err := a.proj.RegisterRules(ctx)
	if err != nil {
		return nil, err
	}
	if late > 0 {
		log.Warn("a rule version takes effect before some customers' last evaluation; their past was computed with older rules — run segmentd rebuild to recompute it from the log", "customers", late)
	}
	in := a.rules.At(time.Now())
	log.Info("rules loaded and recorded", "versions", len(a.rules.Versions), "in_force", in.Version, "sha256", in.Hash)

	if a.notify, err = loadNotify(cfg, a.rules, a.loc, log); err != nil {
		return nil, err
	}

	var natsOpts []nats.Option
	if cfg.NATSURL == "" {
		if a.natsSrv, natsOpts, err = startEmbeddedNATS(cfg, a.tokens, log); err != nil {
			return nil, err
		}
	}
	if user := os.Getenv("SEGMENTS_NATS_USER"); user != "" && len(natsOpts) == 0 {
		// A user of the operator's SEGMENTS_EMBEDDED_NATS_CONFIG (or of
		// NATS_URL's server when the URL carries no credentials).
		natsOpts = append(natsOpts, nats.UserInfo(user, os.Getenv("SEGMENTS_NATS_PASSWORD")))
	}
	a.nc, a.js, err = natsbus.Connect(cfg.NATSURL, a.natsSrv, "segmentd", log, natsOpts...)
	if err != nil {
		return nil, err
	}
	a.metrics.BusConnected(a.nc.IsConnected)
	setup := natsbus.StreamSetup{Replicas: cfg.StreamReplicas, Logger: log}
	if err := setup.Ensure(ctx, a.js); err != nil {
		return nil, err
	}
	return a, nil
}

// listening returns the API's address, "" until it listens.
func (a *app) listening() string {
	if p := a.httpAddr.Load(); p != nil {
		return *p
	}
	return ""
}

func (a *app) close() {
	if a.store != nil {
		a.store.Close()
	}
	if a.nc != nil {
		_ = a.nc.Drain()
	}
	if a.natsSrv != nil {
		a.natsSrv.Shutdown()
		a.natsSrv.WaitForShutdown()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if box := a.mailbox.Load(); box != nil {
		box.close()
	}
}

// run starts the configured roles and blocks until ctx is done, then shuts
// down gracefully: HTTP stops accepting and finishes its requests, workers
// finish the messages in hand, the store commits what is queued.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup

	// The API listens before the workers start, so the demo's messages can
	// link to its address.
	var ln net.Listener
	if a.cfg.has("api") {
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", a.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
		}
		addr := ln.Addr().String()
		a.httpAddr.Store(&addr)
	}
	if a.cfg.Demo && a.notify == nil && a.cfg.has("notifier") && a.cfg.NotifyFile == "" {
		base := ""
		if addr := a.listening(); addr != "" {
			base = "http://" + addr
		}
		if err := a.demoDelivery(ctx, base); err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return err
		}
	}

	if a.cfg.has("publisher") {
		pub := eventstore.NewPublisher(eventstore.PublisherConfig{
			Store: a.store, Sink: natsbus.NewEventSink(a.nc, a.js), Location: a.loc, Logger: a.log, Metrics: a.metrics,
		})
		a.supervise(workCtx, &wg, "publisher", pub.Run)
	}
	if a.cfg.has("projector") {
		a.supervise(workCtx, &wg, "projector", func(ctx context.Context) error { return a.proj.Consume(ctx, a.js, "segments-projector") })
		// Appends made by this process (api, ingest roles) reach the read
		// models without waiting for SEGMENTS_EVENTS; Consume stays the
		// path that guarantees every event.
		a.supervise(workCtx, &wg, "projector-follow", func(ctx context.Context) error { return a.proj.FollowCommits(ctx, a.store.Committed()) })
		for _, stream := range []string{natsbus.StreamChanges, natsbus.StreamAlerts} {
			relay := projections.NewRelay(a.pool, natsbus.NewStreamSink(a.nc, a.js, stream), stream, a.log)
			a.supervise(workCtx, &wg, "relay-"+stream, relay.Run)
		}
	}
	if a.cfg.has("scheduler") {
		sched := projections.NewScheduler(a.proj, time.Now, a.log, a.metrics)
		a.supervise(workCtx, &wg, "scheduler", sched.Run)
	}
	if a.notify != nil {
		n := a.newNotifier()
		a.supervise(workCtx, &wg, "notifier", func(ctx context.Context) error { return n.Run(ctx, a.js) })
	}
	if a.cfg.has("ingest") {
		w := ingest.New(ingest.Config{JS: a.js, Appender: a.store, Erasures: a.store, Logger: a.log, Metrics: a.metrics})
		a.supervise(workCtx, &wg, "ingest", w.Run)
		// Erasure reaches SEGMENTS_INGEST and SEGMENTS_REJECTED.
		a.supervise(workCtx, &wg, "eraser", ingest.NewEraser(a.js, a.log).Run)
	}
	var srv *http.Server
	httpErr := make(chan error, 1)
	if ln != nil {
		handler, err := workbench.New(workbench.Config{
			API: httpapi.New(httpapi.Config{
				Store: a.store, Location: a.loc, Logger: a.log, Metrics: a.metrics,
				Ready: a.readiness, MetricsHandler: a.metrics.Handler(),
				Queries: projections.NewQueries(a.proj, a.store), Auditor: a.store, Tokens: a.tokens,
				Imports:      &importer.Service{Dir: filepath.Join(a.cfg.DataDir, "imports"), Store: a.store, Location: a.loc, Logger: a.log},
				Deliveries:   notify.NewStore(a.pool),
				AllowedHosts: a.cfg.AllowedHosts,
				Rules:        routedPreviewer{a.proj, a.cfg.NotifyFile},
			}),
			Tokens: a.tokens, Logger: a.log,
		})
		if err != nil {
			_ = ln.Close()
			stopWork()
			wg.Wait()
			return fmt.Errorf("workbench: %w", err)
		}
		srv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		go func() { httpErr <- srv.Serve(ln) }()
		if a.tokens.Empty() {
			a.log.Warn("HTTP API listening WITHOUT authentication (no SEGMENTS_TOKENS): open to anyone on this host, loopback only", "addr", "http://"+ln.Addr().String())
		} else {
			a.log.Info("HTTP API listening", "addr", "http://"+ln.Addr().String(), "auth", "bearer tokens", "tokens", a.tokens.Len())
		}
	}
	a.log.Info("segmentd running", "roles", a.cfg.Roles)
	if a.cfg.Demo {
		wg.Go(func() {
			if err := a.demo(workCtx); err != nil && workCtx.Err() == nil {
				a.log.Error("demo failed", "err", err)
			}
		})
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("HTTP server: %w", err)
	}
	a.log.Info("shutting down")
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			a.log.Warn("HTTP shutdown", "err", serr)
		}
		cancel()
	}
	stopWork()
	wg.Wait()
	a.log.Info("stopped")
	return err
}
