package projectorload

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/natsbus"
)

// lagSample is one appended event whose projection is awaited.
type lagSample struct {
	stream   uuid.UUID
	version  int64
	recorded time.Time
}

// lagPoller polls customer_projections.version for the awaited events and
// records, for each, the time from its recorded_at to the first poll that
// saw it applied. The figure is an upper bound: the label became queryable
// at most one poll interval (plus the poll query's own time) earlier.
type lagPoller struct {
	pool     *pgxpool.Pool
	every    time.Duration
	in       chan lagSample
	from, to time.Time // only samples recorded in [from, to) are kept

	mu      sync.Mutex
	lags    []float64 // seconds
	at      []float64 // when each lag's event was recorded, seconds after from
	polls   []float64 // seconds between consecutive polls
	pending int
}

func (p *lagPoller) run(ctx context.Context) {
	waiting := map[uuid.UUID][]lagSample{}
	var ids []uuid.UUID
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.pending = 0
			for _, s := range waiting {
				p.pending += len(s)
			}
			p.mu.Unlock()
			return
		case <-time.After(time.Until(last.Add(p.every))):
		}
	drain:
		for {
			select {
			case s := <-p.in:
				waiting[s.stream] = append(waiting[s.stream], s)
			default:
				break drain
			}
		}
		if len(waiting) == 0 {
			last = time.Now()
			continue
		}
		ids = ids[:0]
		for id := range waiting {
			ids = append(ids, id)
		}
		t0 := time.Now()
		p.mu.Lock()
		p.polls = append(p.polls, t0.Sub(last).Seconds())
		p.mu.Unlock()
		last = t0
		rows, err := p.pool.Query(ctx, "SELECT stream_id, version FROM customer_projections WHERE stream_id = ANY($1)", ids)
		if err != nil {
			continue
		}
		var done, doneAt []float64
		for rows.Next() {
			var id uuid.UUID
			var v int64
			if rows.Scan(&id, &v) != nil {
				continue
			}
			kept := waiting[id][:0]
			for _, s := range waiting[id] {
				if s.version <= v {
					if !s.recorded.Before(p.from) && s.recorded.Before(p.to) {
						done = append(done, t0.Sub(s.recorded).Seconds())
						doneAt = append(doneAt, s.recorded.Sub(p.from).Seconds())
					}
				} else {
					kept = append(kept, s)
				}
			}
			if len(kept) == 0 {
				delete(waiting, id)
			} else {
				waiting[id] = kept
			}
		}
		rows.Close()
		p.mu.Lock()
		p.lags = append(p.lags, done...)
		p.at = append(p.at, doneAt...)
		p.mu.Unlock()
	}
}

func (r *runner) runLag(ctx context.Context) error {
	o := r.o
	freeMemory()
	now := time.Now()
	gen := newGenerator("LG", o.consumeCustomers, uint64(now.UnixNano()), now)
	events := gen.backlog(o.consumeEvents)
	if err := validate(events, now); err != nil {
		return err
	}
	app, err := r.newService(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer app.close(ctx)
	took, err := app.appendAll(ctx, events, o.appendClients, o.appendBatch)
	if err != nil {
		return err
	}
	fmt.Printf("  appended %d events over %d customers in %.1f s\n", len(events), o.consumeCustomers, took.Seconds())
	b, stages, pm := app.bus, app.stages, app.pm

	// A publisher instance (serve with the publisher role) drains the log
	// onto SEGMENTS_EVENTS.
	ph := r.begin(ctx, "lag-publish", app.name)
	pubStart := time.Now()
	if _, err := app.start(ctx, nil, nil, service.RolePublisher); err != nil {
		return err
	}
	err = waitFor(ctx, 5*time.Minute, 20*time.Millisecond, func() (bool, error) {
		n, err := b.Msgs(ctx, natsbus.StreamEvents)
		return err == nil && n >= uint64(o.consumeEvents), nil //nolint:gosec // G115: a positive flag value
	})
	pubTook := time.Since(pubStart)
	ph.end(ctx)
	if err != nil {
		return fmt.Errorf("publish the backlog: %w", err)
	}
	r.add("lag", fmt.Sprintf("setup: publisher drains %s events onto SEGMENTS_EVENTS", grouped(float64(o.consumeEvents))), grouped(float64(o.consumeEvents)/pubTook.Seconds()), "events/s", "", "")

	// An instance with the projector and scheduler roles (Consume, the
	// commit follower, the outbox relays, the scheduler, as serve runs them)
	// drains the published backlog; the steady load then appends through it,
	// as serve's api role beside its projector.
	freeMemory()
	r.waitQuiet(ctx, app.name)
	ph = r.begin(ctx, "lag-consume-backlog", app.name)
	conStart := time.Now()
	svc, err := app.start(ctx, nil, nil, service.RoleProjector, service.RoleScheduler)
	if err != nil {
		return err
	}
	err = waitFor(ctx, 5*time.Minute, 10*time.Millisecond, func() (bool, error) { return pm.events.Load() >= int64(o.consumeEvents), nil })
	conTook := time.Since(conStart)
	st := ph.end(ctx)
	if err != nil {
		return fmt.Errorf("consume the backlog (%d of %d applied): %w", pm.events.Load(), o.consumeEvents, err)
	}
	crate := float64(o.consumeEvents) / conTook.Seconds()
	r.add("lag", fmt.Sprintf("Projector.Consume from a published backlog of %s events / %s customers", grouped(float64(o.consumeEvents)), grouped(float64(o.consumeCustomers))),
		grouped(crate), "events/s", "≥ 30,000", metIf(crate >= 30_000, fmt.Sprintf("(%.0f%% of target)", 100*crate/30_000)))
	r.cpuCost("lag", st, int64(o.consumeEvents))
	r.note("lag: Consume applied the published backlog in %d committing transactions (%.0f events each); %s", pm.commits.Load(), float64(pm.events.Load())/float64(max(pm.commits.Load(), 1)), st.cpu)

	relStart := time.Now()
	err = waitFor(ctx, 4*time.Minute, 100*time.Millisecond, func() (bool, error) {
		var n int64
		err := app.pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n)
		return err == nil && n == 0, nil
	})
	if err != nil {
		r.note("lag: the outbox relays did not drain the backlog's outbox in 4 minutes more; the steady load starts anyway")
	} else {
		r.note("lag: the outbox relays (running since the projector started) emptied the outbox %.1f s after Consume drained the backlog", time.Since(relStart).Seconds())
	}

	// Steady open-loop load with the lag measured.
	mpool, err := r.dbs.Pool(ctx, app.name, func(cfg *pgxpool.Config) { cfg.MaxConns = 2 })
	if err != nil {
		return err
	}
	defer mpool.Close()
	// Collected before the load starts: a forced collection inside the
	// window would stall the generator (it runs in this loop) and then
	// release a burst.
	freeMemory()
	r.waitQuiet(ctx, app.name)
	start := time.Now().Add(100 * time.Millisecond)
	from, to := start.Add(o.lagWarmup), start.Add(o.lagWarmup+o.lagDuration)
	// For lining the window up with the server's logs (checkpoints).
	fmt.Printf("  measured window: %s – %s UTC\n", from.UTC().Format("15:04:05.000"), to.UTC().Format("15:04:05.000"))
	poller := &lagPoller{pool: mpool, every: o.lagPoll, in: make(chan lagSample, 1<<16), from: from, to: to}
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() { defer close(pollDone); poller.run(pollCtx) }()

	var (
		inflight             atomic.Int64
		maxInflight          atomic.Int64
		appendErrs, dropped  atomic.Int64
		appended             atomic.Int64
		firstErr             atomic.Value
		latMu                sync.Mutex
		appendLat            []float64
		windowAppended       atomic.Int64
		sent, sampled        int64
		loadWG               sync.WaitGroup
		projected0, commits0 int64
		projectedW, commitsW int64
		already0, alreadyW   int64
		windowPhase          *phase
		windowStats          phaseStats
		windowStarted        bool
	)
	const maxInflightCalls = 4000
	tick := time.NewTicker(2 * time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			tick.Stop()
			stopPoll()
			<-pollDone
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if now.Before(start) {
			continue
		}
		if !windowStarted && !now.Before(from) {
			windowStarted = true
			windowPhase = r.begin(ctx, "lag-steady", app.name)
			app.qc.Start()
			stages.set(true)
			projected0, commits0 = pm.events.Load(), pm.commits.Load()
			already0 = pm.alreadyApplied.Load()
		}
		if !now.Before(to) {
			stages.set(false)
			projectedW, commitsW = pm.events.Load()-projected0, pm.commits.Load()-commits0
			alreadyW = pm.alreadyApplied.Load() - already0
			windowStats = windowPhase.end(ctx)
			r.stmtReport("lag-steady", stmtLines(app.qc, to.Sub(from), 16))
			break
		}
		due := int64(o.lagRate*now.Sub(start).Seconds()) - sent
		for due > 0 {
			n := min(due, int64(domain.MaxBatchEvents))
			due -= n
			req := domain.AppendRequest{Events: make([]domain.Envelope, n), Batch: n > 1}
			var samples []int
			for i := range req.Events {
				req.Events[i] = gen.live()
				if (sent+int64(i))%int64(o.lagSample) == 0 {
					samples = append(samples, i)
				}
			}
			sent += n
			sampled += int64(len(samples))
			if inflight.Load() >= maxInflightCalls {
				dropped.Add(n)
				continue
			}
			v := inflight.Add(1)
			for m := maxInflight.Load(); v > m; m = maxInflight.Load() {
				if maxInflight.CompareAndSwap(m, v) {
					break
				}
			}
			inWindow := !now.Before(from)
			loadWG.Go(func() {
				defer inflight.Add(-1)
				c0 := time.Now()
				res, err := svc.Store.Append(ctx, req)
				if err != nil {
					appendErrs.Add(int64(len(req.Events)))
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				appended.Add(int64(len(res)))
				if inWindow {
					windowAppended.Add(int64(len(res)))
					latMu.Lock()
					appendLat = append(appendLat, time.Since(c0).Seconds())
					latMu.Unlock()
				}
				for _, i := range samples {
					poller.in <- lagSample{stream: res[i].Customer.StreamID(), version: res[i].Version, recorded: res[i].RecordedAt}
				}
			})
		}
	}
	tick.Stop()
	loadWG.Wait()
	// Let the last samples resolve, then stop polling.
	_ = waitFor(ctx, 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		return pm.events.Load() >= appended.Load()+int64(o.consumeEvents), nil
	})
	time.Sleep(3 * o.lagPoll)
	stopPoll()
	<-pollDone

	poller.mu.Lock()
	lags := slices.Clone(poller.lags)
	// The tail over time: p99 per 10 s of the window (checkpoints, vacuums
	// and the like show up as one bad bucket rather than a uniform tail).
	buckets := map[int][]float64{}
	for i, at := range poller.at {
		buckets[int(at/10)] = append(buckets[int(at/10)], poller.lags[i])
	}
	var overTime []string
	for b := range int(o.lagDuration.Seconds()/10) + 1 {
		if v := buckets[b]; len(v) > 0 {
			slices.Sort(v)
			overTime = append(overTime, fmt.Sprintf("%d–%d s: %.0f", 10*b, 10*b+10, 1000*percentile(v, 0.99)))
		}
	}
	polls := slices.Clone(poller.polls)
	pending := poller.pending
	poller.mu.Unlock()
	slices.Sort(lags)
	slices.Sort(polls)
	latMu.Lock()
	slices.Sort(appendLat)
	latMu.Unlock()
	win := o.lagDuration.Seconds()
	achieved := float64(windowAppended.Load()) / win
	r.add("lag", fmt.Sprintf("steady load offered (open loop, %s s measured)", f0(win)), grouped(o.lagRate), "events/s", "5,000", "")
	r.add("lag", "  appended in the window", grouped(achieved), "events/s", "", metIf(achieved >= 0.98*o.lagRate, "(kept up)"))
	if len(lags) > 0 {
		p99 := 1000 * percentile(lags, 0.99)
		r.add("lag", fmt.Sprintf("lag recorded_at → label queryable, p50 (%d samples)", len(lags)), f1(1000*percentile(lags, 0.5)), "ms", "", "")
		r.add("lag", "  p90", f1(1000*percentile(lags, 0.9)), "ms", "", "")
		r.add("lag", "  p99", f1(p99), "ms", "≤ 100", metIf(p99 <= 100 && pending == 0, fmt.Sprintf("(%.0f%% of budget)", p99)))
		r.add("lag", "  max", f1(1000*lags[len(lags)-1]), "ms", "", "")
	}
	if len(appendLat) > 0 {
		r.add("lag", "  Store.Append call (submit → committed), p50 / p99", f1(1000*percentile(appendLat, 0.5))+" / "+f1(1000*percentile(appendLat, 0.99)), "ms", "", "")
	}
	stages.mu.Lock()
	for _, st := range []struct {
		name string
		v    []float64
	}{
		{"  stage: recorded_at → published on SEGMENTS_EVENTS (newest event of each batch), p50 / p99", stages.publish},
		{"  stage: on SEGMENTS_EVENTS → projector committed (newest message of each batch), p50 / p99", stages.project},
	} {
		if len(st.v) > 0 {
			slices.Sort(st.v)
			r.add("lag", st.name, f1(1000*percentile(st.v, 0.5))+" / "+f1(1000*percentile(st.v, 0.99)), "ms", "", fmt.Sprintf("(%d batches)", len(st.v)))
		}
	}
	stages.mu.Unlock()
	r.cpuCost("lag", windowStats, windowAppended.Load())
	r.add("lag", "  projector transactions in the window", grouped(float64(commitsW)/win), "tx/s", "", fmt.Sprintf("(%.0f events each)", float64(projectedW)/float64(max(commitsW, 1))))
	r.add("lag", "  SEGMENTS_EVENTS messages acknowledged as already applied", grouped(float64(alreadyW)/win), "msg/s", "", "(no transaction: FollowCommits or an earlier batch stored them)")
	r.note("lag: steady window: %d events appended (%d errors, %d not offered: more than %d calls in flight; max in flight %d), %d samples measured, %d never seen applied; poll interval p50 %.1f ms, p99 %.1f ms (the lag figures are upper bounds within one interval); %s",
		windowAppended.Load(), appendErrs.Load(), dropped.Load(), maxInflightCalls, maxInflight.Load(), len(lags), pending,
		1000*percentile(polls, 0.5), 1000*percentile(polls, 0.99), windowStats.cpu)
	r.note("lag: p99 (ms) per 10 s of the window: %s", strings.Join(overTime, ", "))
	if e := firstErr.Load(); e != nil {
		r.note("lag: first append error: %v", e)
	}
	return nil
}
