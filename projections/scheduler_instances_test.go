package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// Three instances' schedulers run on the real clock against one database:
// each customer's two boundary instants (its short window at 2 s after its
// order, its long window at 6 s) are claimed once in all, not once per
// scheduler that saw them due.
func TestThreeSchedulersClaimEachInstantOnce(t *testing.T) {
	t.Parallel()
	const customers = 180
	store, db := testenv.Store(t, time.Now)
	book := secondsRules(t, "2s", "6s")
	proj := projections.New(projections.Config{Pool: db.Pool, Rules: book, Logger: testenv.Logger(t)})
	ctx, cancel := context.WithCancel(ctxT(t))
	claims := &latencies{}
	var wg sync.WaitGroup
	for i := range 3 {
		s := projections.NewScheduler(proj, time.Now, testenv.Logger(t), claims)
		wg.Go(func() {
			if err := s.Run(ctx); err != nil {
				t.Errorf("scheduler %d: %v", i, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The orders are spread over the last second, so boundaries fall due a
	// few at a time while the three schedulers compete for them.
	now := time.Now().Truncate(time.Millisecond)
	var evs []domain.Envelope
	var codes []domain.CustomerCode
	for i := range customers {
		code := domain.CustomerCode(fmt.Sprintf("KH-3S-%03d", i))
		codes = append(codes, code)
		at := now.Add(-time.Second + time.Duration(i)*time.Second/customers)
		evs = append(evs,
			ev(code, at.Add(-time.Hour), fullProfile("客户"+string(code), ownerNames[i%len(ownerNames)], "李明", "13812345678", "li.ming@example.com")),
			ev(code, at, order("SO-1", "10.00")))
	}
	if _, err := store.Append(ctx, domain.AppendRequest{Events: evs, Batch: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := proj.Apply(ctx, streamIDs(codes...)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "every short and long boundary passed", func() bool {
		var due int
		err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE next_at < $1", now.Add(time.Hour)).Scan(&due)
		return err == nil && due == 0
	})
	got := len(claims.all())
	// Per customer: the short and long windows, and the end of the window
	// before the long one (sales_prev_6m, SPEC §11).
	t.Logf("%d claims for %d boundary instants", got, 3*customers)
	if got > 3*customers {
		t.Errorf("the schedulers made %d claims for %d boundary instants", got, 3*customers)
	}
	var timeChanges int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM label_changes WHERE cause_kind = 'time'").Scan(&timeChanges); err != nil {
		t.Fatal(err)
	}
	if timeChanges != 3*customers {
		t.Errorf("%d label changes at boundaries, want %d", timeChanges, 3*customers)
	}
}
