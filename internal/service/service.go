// Package service assembles Segments: from a resolved Config to the running
// roles (store, bus, publisher, projector and relays, scheduler, notifier,
// ingest, API). It is the one place the service is wired: `segmentd serve`,
// its demo and the load tools under bench/ all start it here, so what the
// benchmarks measure is what serve runs.
//
// It reads no environment variable and no file of the operator's:
// cmd/segmentd resolves those (its config.go) into a Config.
package service

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
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
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/metrics"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/privacy"
	"github.com/segments-dev/segments/projections"
)

// Roles a process can take.
const (
	RoleAPI       = "api"
	RoleIngest    = "ingest"
	RoleNotifier  = "notifier"
	RoleProjector = "projector"
	RolePublisher = "publisher"
	RoleScheduler = "scheduler"
)

// AllRoles is every role, the default of serve.
var AllRoles = []string{RoleAPI, RoleIngest, RoleNotifier, RoleProjector, RolePublisher, RoleScheduler}

// Config is what Start needs, resolved.
type Config struct {
	DatabaseURL string
	// AdjustPool changes the pool's configuration before it connects (the
	// load tools time statements with a tracer); nil for serve.
	AdjustPool func(*pgxpool.Config)
	Roles      []string
	HTTPAddr   string
	// AllowedHosts are the names the API answers to in the Host header.
	AllowedHosts []string
	// DataDir holds the embedded NATS store and its generated credentials,
	// and the imports.
	DataDir  string
	Location *time.Location
	Rules    *domain.RuleBook
	Tokens   *auth.Set
	Keyring  *privacy.Keyring
	// Notify is the notifier role's routes (nil: alerts are published but
	// delivered to no one).
	Notify *notify.Config
	// RulesPreview wraps the projector's rules preview for the API (serve
	// checks candidates against the notify routes first); nil: the
	// projector's own.
	RulesPreview func(*projections.Projector) httpapi.RulesPreviewer

	// NATSURL is an external NATS server; empty: an embedded one is started
	// in DataDir (EmbeddedNATSAddr, EmbeddedNATSConfig), unless InProcessNATS
	// is set.
	NATSURL            string
	NATSOptions        []nats.Option
	EmbeddedNATSAddr   string
	EmbeddedNATSConfig string
	// InProcessNATS is a running server of the caller's (the load tools'),
	// connected to in-process and not shut down by Close.
	InProcessNATS  *server.Server
	StreamReplicas int

	// Metrics receives every measurement; nil: a new metrics.Registry.
	Metrics Metrics
	// Writers and ConsumeWorkers tune the store and the projector (zero:
	// their defaults); Now is the store's clock (nil: time.Now). The load
	// tools set them; serve keeps the defaults.
	Writers        int
	ConsumeWorkers int
	Now            func() time.Time
	Logger         *slog.Logger
}

// Has says whether the process takes role.
func (c *Config) Has(role string) bool { return slices.Contains(c.Roles, role) }

// Metrics is what the parts measure; *metrics.Registry implements it, and a
// load tool may wrap it to count more.
type Metrics interface {
	eventstore.Metrics
	eventstore.PublisherMetrics
	projections.Metrics
	projections.SchedulerMetrics
	httpapi.Metrics
	ingest.Metrics
	BusConnected(connected func() bool)
	Deliveries() *metrics.Deliveries
	Handler() http.Handler
}

// Service is a started service: its parts, for the roles, the demo, the
// load tools and tests.
type Service struct {
	Config    Config
	Log       *slog.Logger
	Pool      *pgxpool.Pool
	Store     *eventstore.Store
	Projector *projections.Projector
	// NATSServer is the embedded server this service started (nil with
	// NATSURL or InProcessNATS).
	NATSServer *server.Server
	NC         *nats.Conn
	JS         jetstream.JetStream
	Metrics    Metrics
	// Notify may be replaced before Run (the demo routes alerts to its
	// mailbox).
	Notify *notify.Config
	// Restart is the supervisor's delay policy (zero: backoff.Restart).
	Restart backoff.Policy

	// httpAddr is set once the API listens.
	httpAddr atomic.Pointer[string]
	// running says, per role, whether its worker is running (for /readyz).
	runningMu sync.Mutex
	running   map[string]*atomic.Bool
}

// Start connects and migrates the database, opens the store (checking the
// keyring against the log) and the projector (recording the rules), connects
// NATS and creates the streams; Run then starts the roles. On error what was
// opened is closed.
func Start(ctx context.Context, given *Config) (_ *Service, err error) {
	cfg := *given
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Tokens == nil {
		cfg.Tokens = &auth.Set{}
	}
	s := &Service{Config: cfg, Log: cfg.Logger, Metrics: cfg.Metrics, Notify: cfg.Notify}
	if s.Metrics == nil {
		s.Metrics = metrics.New()
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	if err := s.openProjector(ctx); err != nil {
		return nil, err
	}
	if err := s.connectBus(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) openStore(ctx context.Context) error {
	var err error
	s.Pool, err = eventstore.Connect(ctx, s.Config.DatabaseURL, s.Config.AdjustPool)
	if err != nil {
		return err
	}
	applied, err := eventstore.Migrate(ctx, s.Pool)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		s.Log.Info("database migrated", "applied", applied)
	}
	s.Store, err = eventstore.New(eventstore.Config{
		Pool: s.Pool, Keyring: s.Config.Keyring, Logger: s.Log, Metrics: s.Metrics,
		Writers: s.Config.Writers, Now: s.Config.Now,
	})
	if err != nil {
		return err
	}
	active, err := s.Store.CheckKeyring(ctx)
	if err != nil {
		return err
	}
	s.Log.Info("master key matches the log", "active_key_id", active, "keyring", s.Config.Keyring.IDs())
	return nil
}

func (s *Service) openProjector(ctx context.Context) error {
	s.Projector = projections.New(projections.Config{
		Pool: s.Pool, Rules: s.Config.Rules, Logger: s.Log, Metrics: s.Metrics, ConsumeWorkers: s.Config.ConsumeWorkers,
	})
	// Every role checks the rules against the log (and records new
	// versions): an API answering with other rules would contradict it.
	late, err := s.Projector.RegisterRules(ctx)
	if err != nil {
		return err
	}
	if late > 0 {
		s.Log.Warn("a rule version takes effect before some customers' last evaluation; their past was computed with older rules — run segmentd rebuild to recompute it from the log", "customers", late)
	}
	in := s.Config.Rules.At(time.Now())
	s.Log.Info("rules loaded and recorded", "versions", len(s.Config.Rules.Versions), "in_force", in.Version, "sha256", in.Hash)
	return nil
}

func (s *Service) connectBus(ctx context.Context) error {
	opts := s.Config.NATSOptions
	srv := s.Config.InProcessNATS
	if s.Config.NATSURL == "" && srv == nil {
		var err error
		var embeddedOpts []nats.Option
		if s.NATSServer, embeddedOpts, err = s.startEmbeddedNATS(); err != nil {
			return err
		}
		srv = s.NATSServer
		if len(embeddedOpts) > 0 {
			opts = embeddedOpts
		}
	}
	var err error
	s.NC, s.JS, err = natsbus.Connect(s.Config.NATSURL, srv, "segmentd", s.Log, opts...)
	if err != nil {
		return err
	}
	s.Metrics.BusConnected(s.NC.IsConnected)
	setup := natsbus.StreamSetup{Replicas: s.Config.StreamReplicas, Logger: s.Log}
	return setup.Ensure(ctx, s.JS)
}

// Listening returns the API's address, "" until it listens.
func (s *Service) Listening() string {
	if p := s.httpAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// NATSClientURL is the URL of the NATS server the service uses (without
// credentials).
func (s *Service) NATSClientURL() string {
	if s.NATSServer != nil {
		return s.NATSServer.ClientURL()
	}
	return s.NC.ConnectedUrlRedacted()
}

// Close releases what Start opened; Run calls it when it returns.
func (s *Service) Close() {
	if s.Store != nil {
		s.Store.Close()
	}
	if s.NC != nil {
		_ = s.NC.Drain()
	}
	if s.NATSServer != nil {
		s.NATSServer.Shutdown()
		s.NATSServer.WaitForShutdown()
	}
	if s.Pool != nil {
		s.Pool.Close()
	}
}
