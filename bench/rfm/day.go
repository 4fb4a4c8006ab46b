package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// measureDay records the second day, advances the real customers it
// changed, counts the synthetic ones it changed and prints the figures.
func (e *env) measureDay(ctx context.Context, n int, d2 time.Time, perEvent time.Duration) error {
	e.clock = d2.Add(time.Second)
	c0, t0 := cpu(ctx, e.pool), time.Now()
	if err := e.proj.EnsureRFMDay(ctx, e.clock); err != nil {
		return err
	}
	recordCPU, recordWall := cpu(ctx, e.pool)-c0, time.Since(t0)
	h := e.proj.Rules().RFM()
	if h == nil || len(h.Days) < 2 {
		return fmt.Errorf("%d days recorded, want 2", len(h.Days))
	}
	prev, day := &h.Days[len(h.Days)-2], &h.Days[len(h.Days)-1]
	fmt.Printf("day %s recorded over %d customers: R %v F %v M %v\n", day.Day, day.Customers, day.Recency, day.Frequency, day.Monetary)
	fmt.Printf("record + select: %s wall, CPU %s\n", recordWall.Round(time.Millisecond), recordCPU.Round(time.Millisecond))
	s := projections.NewScheduler(e.proj, func() time.Time { return e.clock }, nil, nil)
	c1, t1 := cpu(ctx, e.pool), time.Now()
	advanced := 0
	for {
		k, err := s.RunDue(ctx, e.clock)
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		advanced += k
	}
	advCPU, advWall := cpu(ctx, e.pool)-c1, time.Since(t1)
	if advanced == 0 {
		return errors.New("the day advanced no real customer")
	}
	perCPU, perWall := advCPU/time.Duration(advanced), advWall/time.Duration(advanced)
	fmt.Printf("scheduler: %d real customers advanced in %s, CPU %s: %s CPU, %s wall per customer\n",
		advanced, advWall.Round(time.Millisecond), advCPU.Round(time.Millisecond), perCPU, perWall)
	where, args := changedWhere(prev, day)
	var synth int64
	t2 := time.Now()
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE orders > 0 AND customer LIKE 'KH0%' AND ("+where+")", args...).Scan(&synth); err != nil {
		return err
	}
	fmt.Printf("synthetic customers whose scores the day changes: %d of %d (counted in %s)\n", synth, n, time.Since(t2).Round(time.Millisecond))
	totalCPU := recordCPU + time.Duration(synth)*perCPU + advCPU
	totalWall := recordWall + time.Duration(synth)*perWall + advWall
	dayCPU := time.Duration(100*86_400) * perEvent
	fmt.Printf("\ndaily recomputation at %d customers: wall %s (target ≤ 30 s), CPU %s\n", n, totalWall.Round(time.Millisecond), totalCPU.Round(time.Millisecond))
	fmt.Printf("  = record + select %s + %d synthetic × %s + the real customers' %s\n", recordCPU.Round(time.Millisecond), synth, perCPU, advCPU.Round(time.Millisecond))
	fmt.Printf("a day's projector CPU at 100 events/s: 8,640,000 events × %s = %s\n", perEvent, dayCPU.Round(time.Second))
	fmt.Printf("ratio: %.2f %% (target ≤ 5 %%)\n", 100*totalCPU.Seconds()/dayCPU.Seconds())
	return e.summary(ctx)
}

// changedWhere is the condition the recorder's selection uses (columns
// last_order_at, orders, net_amount between the two days' boundaries).
func changedWhere(prev, day *domain.RFMCuts) (string, []any) {
	var terms []string
	var args []any
	cols := map[domain.RFMDimension]string{domain.RFMRecencyDim: "last_order_at", domain.RFMFrequencyDim: "orders", domain.RFMMonetaryDim: "net_amount"}
	for _, d := range []domain.RFMDimension{domain.RFMRecencyDim, domain.RFMFrequencyDim, domain.RFMMonetaryDim} {
		ch := domain.RFMChanged(prev, day, d)
		if ch.All {
			return "true", nil
		}
		for _, r := range ch.Ranges {
			lo, hi := any(r[0]), any(r[1])
			if d == domain.RFMRecencyDim {
				lo, hi = time.UnixMicro(r[0]), time.UnixMicro(r[1])
			}
			terms = append(terms, fmt.Sprintf("(%s > $%d AND %s <= $%d)", cols[d], len(args)+1, cols[d], len(args)+2))
			args = append(args, lo, hi)
		}
	}
	if len(terms) == 0 {
		return "false", nil
	}
	return strings.Join(terms, " OR "), args
}

// summary times the segment summary (with the population figures).
func (e *env) summary(ctx context.Context) error {
	q := projections.NewQueries(e.proj, e.store)
	var took []time.Duration
	var pop projections.Population
	for range 30 {
		t := time.Now()
		s, err := q.Summary(ctx)
		if err != nil {
			return err
		}
		took = append(took, time.Since(t))
		pop = s.Population
	}
	slices.Sort(took)
	fmt.Printf("\nsummary with the population figures: p50 %s, max %s of 30; buyers %d, repurchase %.3f, NPS %.1f over %d rated, %d RFM-scored\n",
		took[15], took[29], pop.Buyers, pop.RepurchaseRate, deref(pop.NPS.Score), pop.NPS.Rated, pop.RFMScored)
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
