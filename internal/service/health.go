package service

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/natsbus"
)

// databaseProbe is how often a worker waiting to restart asks whether the
// database is back: a worker stopped by an outage resumes within that much
// of the database's return, whatever its restart delay has grown to.
const databaseProbe = 200 * time.Millisecond

// Supervise runs a role until ctx is done, restarting it when it fails
// (delays of backoff.Restart, back to the first after a healthy run), and
// keeps its running flag for /readyz.
func (s *Service) Supervise(ctx context.Context, wg *sync.WaitGroup, role string, run func(context.Context) error) {
	flag := &atomic.Bool{}
	s.runningMu.Lock()
	if s.running == nil {
		s.running = map[string]*atomic.Bool{}
	}
	s.running[role] = flag
	s.runningMu.Unlock()
	wg.Go(func() {
		policy := s.Restart
		if policy == (backoff.Policy{}) {
			policy = backoff.Restart
		}
		delays := backoff.New(policy)
		for ctx.Err() == nil {
			flag.Store(true)
			started := time.Now()
			err := run(ctx)
			flag.Store(false)
			if ctx.Err() != nil {
				return
			}
			wait := delays.Failed(time.Since(started))
			s.Log.Error("role stopped; restarting", "role", role, "err", err, "retry_in", wait)
			if !s.pause(ctx, wait, err) {
				return
			}
		}
	})
}

// pause waits d, or less: until the database answers again when it was
// unreachable (the cause of the stop says so, or a probe finds it). It
// returns false when ctx ends first.
func (s *Service) pause(ctx context.Context, d time.Duration, cause error) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	probe := time.NewTicker(databaseProbe)
	defer probe.Stop()
	down := errors.Is(eventstore.MapError(cause), eventstore.ErrUnavailable)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-probe.C:
			pctx, cancel := context.WithTimeout(ctx, databaseProbe)
			err := s.Pool.Ping(pctx)
			cancel()
			if err == nil && down {
				return true
			}
			down = err != nil
		}
	}
}

// dependsOnBus says whether a role's work goes through NATS; such a role
// that is restarting while the bus is down does not make the API unready.
func dependsOnBus(role string) bool {
	switch role {
	case "publisher", "projector", "ingest", "eraser", "notifier":
		return true
	}
	return strings.HasPrefix(role, "relay-")
}

// readiness answers /readyz. The API is ready when the database is
// reachable and migrated and every worker runs — except, while NATS is
// down, the workers that need it: appends still succeed (the log is the
// outbox), so a load balancer must keep the API in service. The checks are
// fixed words: connection errors (which name the database's user, name and
// address) go to the log, never to the anonymous caller.
func (s *Service) readiness(ctx context.Context) (bool, map[string]string) {
	checks := map[string]string{}
	ready := true
	migrated, err := eventstore.Migrated(ctx, s.Pool)
	switch {
	case err != nil:
		s.Log.Warn("readiness: database unreachable", "err", err)
		checks["database"], ready = "unreachable", false
	case !migrated:
		checks["database"], ready = "not migrated", false
	default:
		checks["database"] = "ok"
	}
	busUp := s.NC.IsConnected()
	switch {
	case !busUp:
		checks["bus"] = "disconnected"
	default:
		if err := natsbus.StreamsPresent(ctx, s.JS); err != nil {
			s.Log.Warn("readiness: NATS streams", "err", err)
			checks["bus"], ready = "streams missing", false
		} else {
			checks["bus"] = "connected"
		}
	}
	s.runningMu.Lock()
	for role, running := range s.running {
		state := "running"
		if !running.Load() {
			state = "restarting"
			if busUp || !dependsOnBus(role) {
				ready = false
			}
		}
		checks["worker "+role] = state
	}
	s.runningMu.Unlock()
	return ready, checks
}
