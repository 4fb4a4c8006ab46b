package projections_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// TestSegmentCountersEqualAFullRecount runs a random workload — new
// customers, orders, refunds, owner and profile changes, window boundaries
// passed by the scheduler, two projector transactions at once — and checks
// after every few steps, and after a rebuild, that the summary the counters
// give (migration 0017) equals one aggregated from every customer row.
func TestSegmentCountersEqualAFullRecount(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	sc := newScript(20261203, "KHC", 500, start)
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(20261203, 5))
	var last projections.Population
	same := func(when string) {
		t.Helper()
		got, err := e.q.Summary(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.q.SummaryByRecount(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Fatalf("%s: the counters say\n%s\na recount says\n%s", when, g, w)
		}
		last = got.Population
	}
	for i := range 60 {
		s := sc.next(1 + rng.IntN(40))
		e.record(s.at, s.events...)
		applyConcurrently(t, e, chunks(rng, s.customers(), 8))
		if i%6 == 5 {
			e.catchUp(e.proj)
			same(fmt.Sprintf("after step %d", i))
		}
	}
	e.clock.Set(e.clock.Now().Add(100 * day)) // windows close for many customers
	e.catchUp(e.proj)
	same("after the scheduler")
	if n, err := e.q.CounterShards(ctxT(t)); err != nil || n < 2 {
		t.Errorf("counters in %d shards (%v): the concurrent transactions should have used several", n, err)
	}
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	same("after the rebuild")
	// The population figures (SPEC §11) were counted, not left at zero.
	if last.Buyers == 0 || last.Repurchasers == 0 || last.RepurchaseRate <= 0 || last.NPS.Rated == 0 || last.NPS.Score == nil || last.RFMScored == 0 {
		t.Errorf("population figures %+v: the workload has buyers, repeat buyers, ratings and RFM days", last)
	}
}

// applyConcurrently applies the chunks of customers in two goroutines, each
// chunk in its own projector transaction.
func applyConcurrently(t *testing.T, e *env, parts [][]domain.CustomerCode) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	work := make(chan []domain.CustomerCode)
	for range 2 {
		wg.Go(func() {
			for codes := range work {
				if _, err := e.proj.Apply(ctxT(t), streamIDs(codes...)); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, p := range parts {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("apply: %v", err)
	}
}

// TestTheSummaryIsExactWhenAPopulationsNetAmountExceedsInt64: ten thousand
// customers at the per-customer bound sum past int64 fen. Writing them must
// not fail the projector's transaction (the counters sum in numeric), and the
// summary gives the exact amount and shares, equal to a full recount.
func TestTheSummaryIsExactWhenAPopulationsNetAmountExceedsInt64(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	e.record(start, domain.Envelope{Type: domain.TypeOrderPlaced, Customer: "KH-BIG-0", Data: order("SO-1", "1.00")})
	e.apply("KH-BIG-0")
	// Copies of that customer's row with the bound as net amount, written by
	// one statement as a projector transaction writes them.
	const copies = 10_000
	_, err := e.db.Pool.Exec(ctxT(t), `
		INSERT INTO customer_projections
		SELECT (jsonb_populate_record(p, jsonb_build_object('stream_id', gen_random_uuid(), 'customer', 'KH-BIG-' || g,
			'net_amount', $1::bigint))).*
		FROM customer_projections p, generate_series(1, $2::int) g WHERE p.customer = 'KH-BIG-0'`, int64(domain.MaxCustomerOrdered), copies)
	if err != nil {
		t.Fatalf("writing customers whose sum exceeds int64: %v", err)
	}
	got, err := e.q.Summary(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.q.SummaryByRecount(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Fatalf("the counters say\n%s\na recount says\n%s", g, w)
	}
	// 10,000 × 10^13 yuan + 1 yuan.
	if got.Customers != copies+1 || got.NetAmount.String() != "100000000000000001.00" {
		t.Fatalf("summary: %d customers, net %s; want %d and 100000000000000001.00", got.Customers, got.NetAmount, copies+1)
	}
	for _, v := range got.Labels[domain.LabelValueTier] {
		if v.NetAmountShare < 0 || v.NetAmountShare > 1 {
			t.Errorf("value tier %s: net amount share %v outside [0, 1]", v.Value, v.NetAmountShare)
		}
	}
}
