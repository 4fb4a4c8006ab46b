package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/privacy"
)

// storeMetrics counts the store's group-commit transactions.
type storeMetrics struct {
	groups, requests, events atomic.Int64
}

func (m *storeMetrics) EventsAppended(int) {}
func (m *storeMetrics) AppendGroup(requests, events int, _ time.Duration) {
	m.groups.Add(1)
	m.requests.Add(int64(requests))
	m.events.Add(int64(events))
}

// projMetrics counts what the projector reports after each commit.
type projMetrics struct {
	events, commits atomic.Int64
	alreadyApplied  atomic.Int64
	stages          *stageLags // nil: not recorded
}

func (m *projMetrics) EventsProjected(n int) {
	m.events.Add(int64(n))
	m.commits.Add(1)
}

// MessagesAlreadyApplied counts messages Consume settled without a
// transaction.
func (m *projMetrics) MessagesAlreadyApplied(n int) { m.alreadyApplied.Add(int64(n)) }

// ProjectionLag is the time from the newest message of a committed batch
// reaching SEGMENTS_EVENTS to the commit.
func (m *projMetrics) ProjectionLag(seconds float64) {
	if m.stages != nil {
		m.stages.add(&m.stages.project, seconds)
	}
}

// stageLags splits the lag between the pipeline's stages, per batch, while
// on: each sample is the stage's time for the newest item of a batch (a
// lower bound for the batch's older items).
type stageLags struct {
	mu               sync.Mutex
	on               bool
	publish, project []float64 // seconds
}

func (s *stageLags) add(to *[]float64, seconds float64) {
	s.mu.Lock()
	if s.on {
		*to = append(*to, seconds)
	}
	s.mu.Unlock()
}

func (s *stageLags) set(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
}

// pubMetrics records the publish stage: recorded_at of the newest event of
// each published batch → the batch acknowledged by JetStream.
type pubMetrics struct{ stages *stageLags }

func (pubMetrics) Published(int)  {}
func (pubMetrics) PublishFailed() {}
func (m pubMetrics) PublishLag(events int64, seconds float64) {
	// The publisher reports each batch with events = 0; its periodic
	// backlog report (events behind, age of the oldest) is not a batch.
	if events == 0 && seconds > 0 {
		m.stages.add(&m.stages.publish, seconds)
	}
}

// service is the part of segmentd a scenario needs: a fresh database and
// the event store with group commit on it.
type service struct {
	r      *runner
	name   string
	pool   *pgxpool.Pool
	qc     *loadkit.StatementTimer
	store  *eventstore.Store
	sm     *storeMetrics
	closed bool
}

func (r *runner) newService(ctx context.Context, now func() time.Time) (_ *service, err error) {
	s := &service{r: r, sm: &storeMetrics{}}
	s.name, s.pool, s.qc, err = r.dbs.create(ctx)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, privacy.KeySize)
	_, _ = rand.Read(raw)
	key, err := privacy.NewMasterKey(raw)
	if err != nil {
		s.close(ctx)
		return nil, err
	}
	s.store, err = eventstore.New(eventstore.Config{Pool: s.pool, MasterKey: key, Now: now, Logger: r.log, Metrics: s.sm})
	if err != nil {
		s.close(ctx)
		return nil, err
	}
	return s, nil
}

func (s *service) close(ctx context.Context) {
	if s.closed {
		return
	}
	s.closed = true
	if s.store != nil {
		s.store.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.name != "" {
		s.r.dbs.Drop(ctx, s.name)
	}
}

// appendAll appends the events through Store.Append in requests of batch
// events from clients concurrent callers. Each caller owns the customers
// whose stream id falls in its share, so every customer's events keep
// their order (a refund never overtakes its order).
func (s *service) appendAll(ctx context.Context, events []domain.Envelope, clients, batch int) (time.Duration, error) {
	shares := make([][]domain.Envelope, clients)
	for _, e := range events {
		id := e.Customer.StreamID()
		k := int(id[0]) % clients
		shares[k] = append(shares[k], e)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for k := range shares {
		wg.Go(func() {
			share := shares[k]
			for i := 0; i < len(share); i += batch {
				req := domain.AppendRequest{Events: share[i:min(i+batch, len(share))], Batch: true}
				if _, err := s.store.Append(ctx, req); err != nil {
					errs[k] = fmt.Errorf("append events %d..%d of client %d: %w", i, i+len(req.Events), k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// startBus starts an embedded JetStream server as segmentd does without
// NATS_URL (loadkit.StartBus).
func (r *runner) startBus(ctx context.Context) (*loadkit.Bus, error) {
	return loadkit.StartBus(ctx, r.o.tmpDir, "segments-projector-load", r.o.natsSync, r.log)
}

// waitFor polls cond every interval until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
