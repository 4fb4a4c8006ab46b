package projections_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestTrendDaysEqualARecountFromTheHistory runs a random workload — new
// customers, orders, refunds, window boundaries passed by the scheduler
// months later, two projector transactions at once — and checks that the
// per-day deltas the projector keeps (segment_trend_days) equal those that
// migration 0021's segment_trend_recount counts from the label history and
// the recorded orders, then that a rebuild writes the same days again.
func TestTrendDaysEqualARecountFromTheHistory(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	sc := newScript(20261204, "KHT", 300, start)
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(20261204, 7))
	for range 40 {
		s := sc.next(1 + rng.IntN(40))
		e.record(s.at, s.events...)
		applyConcurrently(t, e, chunks(rng, s.customers(), 8))
	}
	e.clock.Set(e.clock.Now().Add(100 * day)) // windows close for many customers
	e.catchUp(e.proj)

	days := func(recount bool) map[string]string {
		t.Helper()
		out := map[string]string{}
		err := pgx.BeginFunc(ctxT(t), e.db.Pool, func(tx pgx.Tx) error {
			if recount {
				if _, err := tx.Exec(ctxT(t), "SELECT segment_trend_recount($1)", cst.String()); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctxT(t), `SELECT label, day::text, value, sum(customers), sum(net_amount)::text
				FROM segment_trend_days GROUP BY 1, 2, 3 HAVING sum(customers) <> 0 OR sum(net_amount) <> 0`)
			if err != nil {
				return err
			}
			var label, d, value, net string
			var customers int64
			_, err = pgx.ForEachRow(rows, []any{&label, &d, &value, &customers, &net}, func() error {
				out[label+" "+d+" "+value] = fmt.Sprintf("%d customers, %s fen", customers, net)
				return nil
			})
			if err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		return out
	}
	live := days(false)
	if len(live) < 50 {
		t.Fatalf("only %d days with deltas: the workload proves little", len(live))
	}
	same := func(when string, got, want map[string]string) {
		t.Helper()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s: %q, the recount %q", when, k, got[k], w)
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: %s: %q, the recount has none", when, k, g)
			}
		}
	}
	same("live", live, days(true))
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	same("after a rebuild", days(false), live)
}

// errRollback ends a pgx.BeginFunc transaction that only looked.
var errRollback = errors.New("rolled back on purpose")
