package projections_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// rfmOf is a customer's RFM section as its document shows it ("-" when
// not scored).
func rfmOf(d *projections.Document) string {
	if d.Value == nil || d.Value.RFM == nil {
		return "-"
	}
	r := d.Value.RFM
	return fmt.Sprintf("%d%d%d %s day %d", r.R, r.F, r.M, r.Segment, r.DaySeq)
}

// rfmPopulation records n customers with 1–5 orders of random amounts
// placed long before start (no window boundary of theirs is pending).
func rfmPopulation(e *env, rng *rand.Rand, prefix string, n int, start time.Time) []domain.CustomerCode {
	codes := make([]domain.CustomerCode, n)
	for i := range codes {
		codes[i] = domain.CustomerCode(fmt.Sprintf("%s%03d", prefix, i))
		var evs []domain.Envelope
		for k := range 1 + rng.IntN(5) {
			at := start.AddDate(-2, 0, -rng.IntN(300))
			evs = append(evs, ev(codes[i], at, order(fmt.Sprintf("O%d", k), fmt.Sprintf("%d.%02d", 10+rng.IntN(50_000), rng.IntN(100)))))
		}
		e.record(start, evs...)
	}
	e.apply(codes...)
	return codes
}

// TestRFMDaysAgreeLiveReplayAsOfAndRebuild: over several recorded days,
// with orders between them, every customer's document (scores, segment,
// predictive LTV) is the same live, replayed as of now, and after a
// rebuild; the read models after the rebuild equal the live ones.
func TestRFMDaysAgreeLiveReplayAsOfAndRebuild(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(20261203, 21))
	codes := rfmPopulation(e, rng, "KHR", 60, start)
	for d := 1; d <= 4; d++ {
		at := start.AddDate(0, 0, d).Add(time.Duration(rng.IntN(600)) * time.Minute)
		var touched []domain.CustomerCode
		for range 8 {
			c := codes[rng.IntN(len(codes))]
			e.record(at, ev(c, at, order(fmt.Sprintf("D%d-%d", d, rng.Int()), fmt.Sprintf("%d.00", 100+rng.IntN(90_000)))))
			touched = append(touched, c)
		}
		e.apply(touched...)
		e.catchUp(e.proj)
	}
	if n := e.count("rfm_days"); n < 4 {
		t.Fatalf("%d RFM days recorded, want one a day", n)
	}
	live := map[domain.CustomerCode]string{}
	scored := 0
	for _, c := range codes {
		d := e.doc(c)
		live[c] = mustJSON(t, d)
		if d.Value.RFM != nil {
			scored++
		}
		asOf, err := e.q.Customer(ctxT(t), c, e.clock.Now(), e.clock.Now(), eventstore.Masked)
		if err != nil {
			t.Fatal(err)
		}
		d.AsOf, asOf.AsOf = "", ""
		if g, w := mustJSON(t, asOf), mustJSON(t, d); g != w {
			t.Fatalf("%s as of now:\n%s\nlive:\n%s", c, g, w)
		}
	}
	if scored != len(codes) {
		t.Fatalf("%d of %d customers scored", scored, len(codes))
	}
	before := e.snapshot()
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, e.snapshot(), before)
	for _, c := range codes {
		if g := mustJSON(t, e.doc(c)); g != live[c] {
			t.Fatalf("%s after the rebuild:\n%s\nlive:\n%s", c, g, live[c])
		}
	}
}

// TestTwoSchedulersRecordOneRFMDay: instances that find the same day due at
// once record it once; each reads the winner's boundaries.
func TestTwoSchedulersRecordOneRFMDay(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	rfmPopulation(e, rand.New(rand.NewPCG(7, 7)), "KHT", 30, start)
	next := time.Date(2026, 3, 2, 0, 0, 5, 0, cst)
	e.clock.Set(next)
	var projs []*projections.Projector
	for range 4 {
		p, _ := e.withRules(domain.DefaultRuleBook())
		projs = append(projs, p)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(projs))
	for _, p := range projs {
		wg.Go(func() {
			_, err := projections.NewScheduler(p, e.clock.Now, nil, nil).RunDue(ctxT(t), next)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var days int
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM rfm_days WHERE at = $1", time.Date(2026, 3, 2, 0, 0, 0, 0, cst)).Scan(&days); err != nil {
		t.Fatal(err)
	}
	if days != 1 {
		t.Fatalf("%d rows for the day", days)
	}
	for _, p := range projs {
		if l, w := p.Rules().RFM().Last(), projs[0].Rules().RFM().Last(); l == nil || l.Customers != 30 || l.Seq != w.Seq || l.Recency != w.Recency || l.Frequency != w.Frequency || l.Monetary != w.Monetary {
			t.Fatalf("instances know different days: %+v and %+v", l, w)
		}
	}
}

// TestAnRFMDayWritesOnlyTheCustomersWhoseScoresChange: recording a day
// writes the rows of the customers whose scores it changes (their next_at)
// and no other; the scheduler then advances those.
func TestAnRFMDayWritesOnlyTheCustomersWhoseScoresChange(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(11, 3))
	codes := rfmPopulation(e, rng, "KHW", 80, start)
	// The first day over them (the one of start was taken over nobody).
	e.clock.Set(time.Date(2026, 3, 2, 0, 0, 1, 0, cst))
	e.catchUp(e.proj)
	before := map[domain.CustomerCode]string{}
	for _, c := range codes {
		before[c] = rfmOf(e.doc(c))
	}
	// New customers with big, frequent orders move the boundaries up.
	at := time.Date(2026, 3, 2, 6, 0, 0, 0, cst)
	var big []domain.CustomerCode
	for i := range 6 {
		c := domain.CustomerCode(fmt.Sprintf("KHB%03d", i))
		e.record(at, ev(c, at, order("A", "90000.00")), ev(c, at, order("B", "90000.00")), ev(c, at, order("C", "90000.00")),
			ev(c, at, order("D", "90000.00")), ev(c, at, order("E", "90000.00")), ev(c, at, order("F", "90000.00")))
		big = append(big, c)
	}
	e.apply(big...)
	for _, c := range big {
		before[c] = rfmOf(e.doc(c))
	}
	codes = append(codes, big...)
	xmins := func() map[string]string {
		rows, err := e.db.Pool.Query(ctxT(t), "SELECT customer, xmin::text FROM customer_projections")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var c, x string
		for rows.Next() {
			if err := rows.Scan(&c, &x); err != nil {
				t.Fatal(err)
			}
			out[c] = x
		}
		return out
	}
	x0 := xmins()
	dayAt := time.Date(2026, 3, 3, 0, 0, 0, 0, cst)
	if err := e.proj.EnsureRFMDay(ctxT(t), dayAt); err != nil {
		t.Fatal(err)
	}
	x1 := xmins()
	var written []string
	for c, x := range x1 {
		if x0[c] != x {
			written = append(written, c)
		}
	}
	e.clock.Set(dayAt)
	e.catchUp(e.proj)
	var changed []string
	for _, c := range codes {
		after := rfmOf(e.doc(c))
		if after[:3] != before[c][:3] {
			changed = append(changed, string(c))
		}
	}
	slices.Sort(written)
	slices.Sort(changed)
	if len(changed) == 0 || len(changed) == len(codes) {
		t.Fatalf("%d of %d customers changed scores: the test needs some, not all", len(changed), len(codes))
	}
	t.Logf("%d of %d customers changed scores", len(changed), len(codes))
	if !slices.Equal(written, changed) {
		t.Fatalf("recording the day wrote %v\nthe customers whose scores changed are %v", written, changed)
	}
}
