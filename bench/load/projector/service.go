package projectorload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/metrics"
	"github.com/segments-dev/segments/privacy"
	"github.com/segments-dev/segments/projections"
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

// runMetrics is an instance's metrics registry (as serve has one) that also
// reports to the run's counters.
type runMetrics struct {
	*metrics.Registry
	sm     *storeMetrics
	pm     *projMetrics
	stages *stageLags
}

func (m runMetrics) AppendGroup(requests, events int, took time.Duration) {
	m.Registry.AppendGroup(requests, events, took)
	m.sm.AppendGroup(requests, events, took)
}

func (m runMetrics) EventsProjected(n int) {
	m.Registry.EventsProjected(n)
	m.pm.EventsProjected(n)
}

func (m runMetrics) MessagesAlreadyApplied(n int) {
	m.Registry.MessagesAlreadyApplied(n)
	m.pm.MessagesAlreadyApplied(n)
}

func (m runMetrics) ProjectionLag(seconds float64) {
	m.Registry.ProjectionLag(seconds)
	m.pm.ProjectionLag(seconds)
}

func (m runMetrics) PublishLag(events int64, seconds float64) {
	m.Registry.PublishLag(events, seconds)
	pubMetrics{m.stages}.PublishLag(events, seconds)
}

// deployment is segmentd as serve assembles it (internal/service) on a
// fresh database and an embedded JetStream server: instances started with
// the roles a scenario needs share the database, the bus, the master key
// and the counters; pool, store and projector are the first instance's.
type deployment struct {
	r      *runner
	name   string
	bus    *loadkit.Bus
	keys   *privacy.Keyring
	qc     *loadkit.StatementTimer
	sm     *storeMetrics
	pm     *projMetrics
	stages *stageLags
	nodes  []*loadkit.Instance
	pool   *pgxpool.Pool
	store  *eventstore.Store
	proj   *projections.Projector
	closed bool
}

// newService starts a deployment's first instance, without roles: its store
// (clock now, time.Now when nil) and projector (rules, the default rules when
// nil) for the scenario to drive.
func (r *runner) newService(ctx context.Context, now func() time.Time, rules *domain.RuleBook) (_ *deployment, err error) {
	s := &deployment{r: r, name: r.dbs.NewName(), qc: &loadkit.StatementTimer{}, sm: &storeMetrics{}, stages: &stageLags{}}
	s.pm = &projMetrics{stages: s.stages}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	if s.keys, err = loadkit.NewKeyring(); err != nil {
		return nil, err
	}
	if s.bus, err = r.startBus(ctx); err != nil {
		return nil, err
	}
	in, err := s.start(ctx, now, rules)
	if err != nil {
		return nil, err
	}
	s.pool, s.store, s.proj = in.Pool, in.Store, in.Projector
	return s, nil
}

// start starts one more instance with roles.
func (s *deployment) start(ctx context.Context, now func() time.Time, rules *domain.RuleBook, roles ...string) (*loadkit.Instance, error) {
	cfg := s.r.dbs.ServiceConfig(s.name, s.bus, s.keys, s.qc)
	cfg.Roles, cfg.Now, cfg.Logger, cfg.ConsumeWorkers = roles, now, s.r.log, s.r.o.consumeWorkers
	if rules != nil {
		cfg.Rules = rules
	}
	cfg.Metrics = runMetrics{Registry: metrics.New(), sm: s.sm, pm: s.pm, stages: s.stages}
	in, err := loadkit.StartInstance(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	s.nodes = append(s.nodes, in)
	return in, nil
}

func (s *deployment) close(ctx context.Context) {
	if s.closed {
		return
	}
	s.closed = true
	for i := len(s.nodes) - 1; i >= 0; i-- {
		if err := s.nodes[i].Stop(); err != nil {
			s.r.log.Warn("stop an instance", "err", err)
		}
	}
	if s.bus != nil {
		s.bus.Close()
	}
	s.r.dbs.Drop(ctx, s.name)
}

// appendAll appends the events through Store.Append in requests of batch
// events from clients concurrent callers. Each caller owns the customers
// whose stream id falls in its share, so every customer's events keep
// their order (a refund never overtakes its order).
func (s *deployment) appendAll(ctx context.Context, events []domain.Envelope, clients, batch int) (time.Duration, error) {
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
