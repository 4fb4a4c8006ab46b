package projectorload

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// backlogDB is the loaded backlog database, kept for the rebuild scenario.
type backlogDB struct {
	svc     *deployment
	proj    *projections.Projector
	events  int
	streams []uuid.UUID
}

func (b *backlogDB) close(ctx context.Context, _ *runner) { b.svc.close(ctx) }

// runBacklog loads the backlog through Store.Append and applies it with
// Projector.Apply over batches of customers, as Consume does with the
// customers named by a batch of messages. report says whether the figures
// belong to the results table (they are set-up when only rebuild runs).
func (r *runner) runBacklog(ctx context.Context, report bool) error {
	o := r.o
	scen := "backlog"
	if !report {
		scen = "rebuild-setup"
	}
	now := time.Now()
	gen := newGenerator("PL", o.customers, uint64(now.UnixNano()), now)
	t0 := time.Now()
	events := gen.backlog(o.events)
	if err := validate(events, now); err != nil {
		return err
	}
	counts := map[domain.EventType]int{}
	for _, e := range events {
		counts[e.Type]++
	}
	fmt.Printf("  generated %d events over %d customers in %.1f s; mix:", len(events), o.customers, time.Since(t0).Seconds())
	for _, t := range domain.EventTypes {
		if counts[t] > 0 {
			fmt.Printf(" %s %.1f%%", t, 100*float64(counts[t])/float64(len(events)))
		}
	}
	fmt.Printf("; occurred_at from %s to %s\n", events[0].OccurredAt.Format(time.DateOnly), events[len(events)-1].OccurredAt.Format(time.DateOnly))

	svc, err := r.newService(ctx, nil, nil)
	if err != nil {
		return err
	}
	b := &backlogDB{svc: svc, events: len(events)}
	keep := false
	defer func() {
		if !keep {
			svc.close(ctx)
		}
	}()
	r.waitQuiet(ctx, svc.name)
	ph := r.begin(ctx, scen+"-append", svc.name)
	took, err := svc.appendAll(ctx, events, o.appendClients, o.appendBatch)
	st := ph.end(ctx)
	if err != nil {
		return err
	}
	rate := float64(len(events)) / took.Seconds()
	r.add(scen, fmt.Sprintf("Store.Append, %d events per call, %d callers", o.appendBatch, o.appendClients), grouped(rate), "events/s", "", "")
	if g := svc.sm.groups.Load(); g > 0 {
		r.note("%s: append made %d group-commit transactions (%.0f events, %.1f calls each); %s",
			scen, g, float64(svc.sm.events.Load())/float64(g), float64(svc.sm.requests.Load())/float64(g), st.cpu)
	}
	for _, c := range gen.customers {
		b.streams = append(b.streams, c.code.StreamID())
	}
	freeMemory()

	b.proj = svc.proj
	order := slices.Clone(b.streams)
	mrand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] }) //nolint:gosec // G404: a benchmark's order, not a secret
	r.waitQuiet(ctx, svc.name)
	svc.qc.Start()
	ph = r.begin(ctx, scen+"-apply", svc.name)
	var calls []float64
	applied := 0
	start := time.Now()
	// -apply-workers callers take the next slice of customers in turn, as
	// Consume's workers take the next batch.
	var (
		mu       sync.Mutex
		next     int
		applyErr error
		workers  sync.WaitGroup
	)
	for range o.applyWorkers {
		workers.Go(func() {
			for {
				mu.Lock()
				i := next
				next += o.applyBatch
				mu.Unlock()
				if i >= len(order) {
					return
				}
				c0 := time.Now()
				n, err := b.proj.Apply(ctx, order[i:min(i+o.applyBatch, len(order))])
				mu.Lock()
				if err != nil {
					applyErr = errors.Join(applyErr, err)
					next = len(order)
				}
				calls = append(calls, time.Since(c0).Seconds())
				applied += n
				mu.Unlock()
			}
		})
	}
	workers.Wait()
	if applyErr != nil {
		ph.end(ctx)
		return applyErr
	}
	took = time.Since(start)
	st = ph.end(ctx)
	r.stmtReport(scen+"-apply", stmtLines(svc.qc, took, 12))
	if applied != b.events {
		return fmt.Errorf("applied %d events, want %d", applied, b.events)
	}
	rate = float64(applied) / took.Seconds()
	slices.Sort(calls)
	if report {
		r.add(scen, fmt.Sprintf("Projector.Apply from the backlog, %d customers per call, %d callers", o.applyBatch, o.applyWorkers), grouped(rate), "events/s", "≥ 30,000", metIf(rate >= 30_000, fmt.Sprintf("(%.0f%% of target)", 100*rate/30_000)))
		r.add(scen, "  same, customers per second", grouped(float64(len(order))/took.Seconds()), "customers/s", "", "")
		r.add(scen, "  Apply call (one transaction) p50 / max", f0(1000*percentile(calls, 0.5))+" / "+f0(1000*calls[len(calls)-1]), "ms", "", "")
		r.cpuCost(scen, st, int64(applied))
	}
	var changes, alerts, outbox int64
	var avgLen, avgStored float64
	if err := svc.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM label_changes), (SELECT count(*) FROM alerts), (SELECT count(*) FROM outbox),
		(SELECT avg(octet_length(projection)) FROM customer_projections), (SELECT avg(pg_column_size(projection)) FROM customer_projections)`).
		Scan(&changes, &alerts, &outbox, &avgLen, &avgStored); err == nil {
		r.note("%s: Apply wrote %d customers, %d label changes, %d alerts, %d outbox rows in %.1f s (%d transactions); projection document: %.0f bytes on average (%.0f stored); %s",
			scen, len(order), changes, alerts, outbox, took.Seconds(), len(calls), avgLen, avgStored, st.cpu)
	}
	keep = true
	r.backlog = b
	return nil
}
