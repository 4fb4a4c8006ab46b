package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/backoff"
)

// DefaultSetupAttemptTimeout bounds one attempt at setting up the streams: a
// clustered stream whose creation is still being agreed on answers late or
// not at all, and the next attempt finds it.
const DefaultSetupAttemptTimeout = 10 * time.Second

// StreamSetup creates the service's streams and brings the settings the
// service owns up to date, without undoing what an operator owns.
//
// The service owns what its promises rest on: subjects, storage, retention,
// maximum age (the privacy promise of rejected messages), the duplicate
// window, atomic batch publish and the description. The operator owns
// everything else, in particular the replica count, placement, limits in
// bytes or messages and compression: Replicas applies only to streams that
// do not exist yet, so `nats stream edit --replicas 3` survives every start.
type StreamSetup struct {
	// Replicas of the streams created here (0 means 1). JetStream allows 1
	// to 5; more than 1 needs a clustered server.
	Replicas int
	// AttemptTimeout bounds each attempt (0 means DefaultSetupAttemptTimeout).
	AttemptTimeout time.Duration
	// Logger receives failed attempts and replica counts that differ from
	// Replicas; nil discards them.
	Logger *slog.Logger
}

// EnsureStreams sets up the streams with one replica each (StreamSetup).
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	return StreamSetup{}.Ensure(ctx, js)
}

// Ensure sets up every stream, retrying with backoff.Retry until it
// succeeds, fails for good (an invalid configuration, a server without
// atomic batch publish) or ctx ends. Instances that start together race to
// create the same streams; losing that race is success.
func (s StreamSetup) Ensure(ctx context.Context, js jetstream.JetStream) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := s.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultSetupAttemptTimeout
	}
	delays := backoff.New(backoff.Retry)
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, timeout)
		err := s.ensureAll(attemptCtx, js, log)
		cancel()
		if err == nil || permanentSetupError(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (gave up after %d attempts: %w)", err, attempt, ctx.Err())
		}
		delay := delays.Next()
		log.Warn("setting up the NATS streams failed; retrying", "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up after %d attempts: %w)", err, attempt, ctx.Err())
		case <-time.After(delay):
		}
	}
}

func (s StreamSetup) ensureAll(ctx context.Context, js jetstream.JetStream, log *slog.Logger) error {
	configs := StreamConfigs()
	for i := range configs {
		cfg := configs[i]
		cfg.Replicas = max(s.Replicas, 1)
		have, err := ensureStream(ctx, js, &cfg)
		if err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		if cfg.AllowAtomicPublish && !have.AllowAtomicPublish {
			return fmt.Errorf("stream %s: %w", cfg.Name, ErrAtomicPublishUnsupported)
		}
		if have.Replicas != cfg.Replicas {
			log.Info("stream keeps the replica count it has (the operator's); SEGMENTS_STREAM_REPLICAS applies to streams created at start",
				"stream", cfg.Name, "replicas", have.Replicas, "configured", cfg.Replicas)
		}
	}
	return nil
}

// ensureStream creates the stream when it is missing, or updates the
// settings the service owns when they differ, and returns its configuration.
func ensureStream(ctx context.Context, js jetstream.JetStream, want *jetstream.StreamConfig) (jetstream.StreamConfig, error) {
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, *want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another instance created it first (perhaps with other
			// operator settings): update what we own below.
			st, err = js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	have := st.CachedInfo().Config
	if ownedSettingsEqual(&have, want) {
		return have, nil
	}
	st, err = js.UpdateStream(ctx, withOwnedSettings(&have, want))
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	return st.CachedInfo().Config, nil
}

// withOwnedSettings is have with the settings the service owns taken from
// want: everything else (replicas, placement, limits) stays the operator's.
func withOwnedSettings(have, want *jetstream.StreamConfig) jetstream.StreamConfig {
	next := *have
	next.Description = want.Description
	next.Subjects = want.Subjects
	next.Storage = want.Storage
	next.Retention = want.Retention
	next.MaxAge = want.MaxAge
	next.Duplicates = want.Duplicates
	next.AllowAtomicPublish = want.AllowAtomicPublish
	return next
}

func ownedSettingsEqual(have, want *jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Storage == want.Storage &&
		have.Retention == want.Retention &&
		have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates &&
		have.AllowAtomicPublish == want.AllowAtomicPublish
}

// JetStream error code of "replicas > 1 not supported in non-clustered mode".
const errCodeReplicasNotSupported = 10074

// permanentSetupError: retrying cannot help (the server refuses the
// configuration, or lacks a feature). Timeouts, a cluster without a meta
// leader yet (503) and lost connections are worth another attempt.
func permanentSetupError(err error) bool {
	if errors.Is(err, ErrAtomicPublishUnsupported) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	if apiErr.ErrorCode == errCodeNoSuitablePeers {
		// A peer not yet seen online while the cluster forms (nodes started
		// together): placement succeeds once it reports in.
		return false
	}
	return apiErr.Code == 400 || apiErr.ErrorCode == errCodeReplicasNotSupported
}

// errCodeNoSuitablePeers is JetStream's "no suitable peers for placement"
// (JSClusterNoPeersErrF), which nats.go does not name.
const errCodeNoSuitablePeers = 10005
