package loadkit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/privacy"
)

// NewKeyring is a keyring of one random master key: the instances of one
// run share it, as the instances of a deployment share theirs.
func NewKeyring() (*privacy.Keyring, error) {
	raw := make([]byte, privacy.KeySize)
	_, _ = rand.Read(raw)
	key, err := privacy.NewMasterKey(raw)
	if err != nil {
		return nil, err
	}
	return privacy.NewKeyring(key), nil
}

// ServiceConfig is serve's configuration for a scratch database and the
// run's bus: the default rules, no tokens (the API is open, on 127.0.0.1
// only), keys, and a pool timed by timer (nil: untimed). Callers set
// Roles and what they tune.
func (d *Databases) ServiceConfig(name string, bus *Bus, keys *privacy.Keyring, timer *StatementTimer) service.Config {
	return service.Config{
		DatabaseURL: d.URLFor(name),
		AdjustPool: func(cfg *pgxpool.Config) {
			if timer != nil {
				cfg.ConnConfig.Tracer = timer
			}
		},
		HTTPAddr:      "127.0.0.1:0",
		DataDir:       bus.dir,
		Rules:         domain.DefaultRuleBook(),
		Keyring:       keys,
		InProcessNATS: bus.Srv,
		Location:      time.UTC,
	}
}

// Instance is a started service whose roles run in the background until
// Stop.
type Instance struct {
	*service.Service
	stop context.CancelFunc
	done chan error
}

// StartInstance starts the service as serve does (service.Start, then Run)
// and returns once its API listens (with the api role).
func StartInstance(ctx context.Context, cfg *service.Config) (*Instance, error) {
	svc, err := service.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	in := &Instance{Service: svc, stop: stop, done: make(chan error, 1)}
	listening := make(chan struct{})
	go func() {
		in.done <- svc.Run(runCtx, service.Hooks{Listening: func(context.Context, string) error {
			close(listening)
			return nil
		}})
	}()
	select {
	case <-listening:
	case err := <-in.done:
		stop()
		return nil, fmt.Errorf("service stopped at start: %w", err)
	case <-ctx.Done():
		_ = in.Stop()
		return nil, ctx.Err()
	}
	return in, nil
}

// URL is the API's base URL ("" without the api role).
func (in *Instance) URL() string {
	if a := in.Listening(); a != "" {
		return "http://" + a
	}
	return ""
}

// Stop shuts the service down as serve does on SIGTERM and waits for it.
func (in *Instance) Stop() error {
	in.stop()
	select {
	case err := <-in.done:
		return err
	case <-time.After(time.Minute):
		return errors.New("service did not stop within a minute")
	}
}
