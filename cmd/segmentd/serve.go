package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/projections"
)

// app is serve's service (internal/service assembles it) with the demo's
// parts.
type app struct {
	*service.Service
	cfg *config
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

// start checks the configuration and reads the files it names (rules,
// tokens, master key, notify routes), then starts the service
// (service.Start); run then starts the roles.
func start(ctx context.Context, cfg *config, log *slog.Logger) (*app, error) {
	sc, err := serviceConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	svc, err := service.Start(ctx, &sc)
	if err != nil {
		return nil, err
	}
	return &app{Service: svc, cfg: cfg}, nil
}

// serviceConfig resolves cfg and the files it names into what
// service.Start needs, refusing what cannot work before anything connects.
func serviceConfig(cfg *config, log *slog.Logger) (service.Config, error) {
	rules, err := loadRules(cfg.RulesFile)
	if err != nil {
		return service.Config{}, err
	}
	if err := checkRoutesAgainstRules(rules, cfg.NotifyFile); err != nil {
		return service.Config{}, err
	}
	tokens, err := loadTokens(cfg.TokensFile)
	if err != nil {
		return service.Config{}, err
	}
	if cfg.has("api") {
		if err := checkListen(cfg.HTTPAddr, tokens); err != nil {
			return service.Config{}, err
		}
	}
	if err := checkEmbeddedNATS(cfg, tokens); err != nil {
		return service.Config{}, err
	}
	keys, err := keyring(cfg, log)
	if err != nil {
		return service.Config{}, err
	}
	routes, err := loadNotify(cfg, rules, cfg.Location, log)
	if err != nil {
		return service.Config{}, err
	}
	var natsOpts []nats.Option
	if user := os.Getenv("SEGMENTS_NATS_USER"); user != "" {
		// A user of the operator's SEGMENTS_EMBEDDED_NATS_CONFIG (or of
		// NATS_URL's server when the URL carries no credentials); the
		// embedded server's generated credentials take precedence.
		natsOpts = append(natsOpts, nats.UserInfo(user, os.Getenv("SEGMENTS_NATS_PASSWORD")))
	}
	return service.Config{
		DatabaseURL: cfg.DatabaseURL, Roles: cfg.Roles, HTTPAddr: cfg.HTTPAddr, AllowedHosts: cfg.AllowedHosts,
		DataDir: cfg.DataDir, Location: cfg.Location, Rules: rules, Tokens: tokens, Keyring: keys, Notify: routes,
		RulesPreview: func(p *projections.Projector) httpapi.RulesPreviewer { return routedPreviewer{p, cfg.NotifyFile} },
		NATSURL:      cfg.NATSURL, NATSOptions: natsOpts, EmbeddedNATSAddr: cfg.EmbeddedNATSAddr,
		EmbeddedNATSConfig: cfg.EmbeddedNATSConfig, StreamReplicas: cfg.StreamReplicas, Logger: log,
	}, nil
}

// run runs the service until ctx is done; with --demo it loads the demo data
// and, without SEGMENTS_NOTIFY, delivers the alerts to the demo mailbox.
func (a *app) run(ctx context.Context) error {
	defer func() {
		if box := a.mailbox.Load(); box != nil {
			box.close()
		}
	}()
	var hooks service.Hooks
	if a.cfg.Demo {
		if a.Notify == nil && a.cfg.has("notifier") && a.cfg.NotifyFile == "" {
			hooks.Listening = a.demoDelivery
		}
		hooks.Started = func(ctx context.Context) {
			if err := a.demo(ctx); err != nil && ctx.Err() == nil {
				a.Log.Error("demo failed", "err", err)
			}
		}
	}
	return a.Run(ctx, hooks)
}
