package projections_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

// labelHistory is every label change of the database, in a form that does not
// depend on event ids.
func labelHistory(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.db.Pool.Query(ctxT(t), `SELECT customer || ' ' || seq || ' ' || label || ' ' || coalesce(from_value, '-') || '→' || to_value || ' ' || at || ' ' || cause_kind || ' ' || reason
		FROM label_changes ORDER BY customer, seq`)
	if err != nil {
		t.Fatal(err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestFollowCommitsProjectsWithoutTheBusAndChangesNothingApplyWould(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	ctx, cancel := context.WithCancel(ctxT(t))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.proj.FollowCommits(ctx, e.store.Committed()); err != nil {
			t.Errorf("follow commits: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	// No publisher, no bus: only the store's commit hints reach the projector.
	recordSeedsNoApply(e)
	for _, c := range seedCodes {
		want, err := e.store.StreamVersion(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, string(c)+" projected from the commit hint", func() bool {
			d, err := e.q.Customer(ctx, c, time.Time{}, e.clock.Now(), eventstore.Masked)
			return err == nil && d.Version == want
		})
	}
	if d := e.doc(kh1); len(d.Tags) != 1 || d.Tags[0].Tag != "strategic_partner" {
		t.Errorf("KH1 after following the commit: %s", mustJSON(t, d))
	}
	followed := labelHistory(t, e)
	if len(followed) == 0 {
		t.Fatal("no label changes recorded; the comparison below would prove nothing")
	}
	// What the bus would bring next finds nothing left to apply.
	if n := e.apply(seedCodes...); n != 0 {
		t.Errorf("Apply after FollowCommits applied %d events, want 0", n)
	}
	if again := labelHistory(t, e); !slices.Equal(again, followed) {
		t.Errorf("Apply after FollowCommits changed the label history:\n%v\nwant\n%v", again, followed)
	}
	// The same events applied by Apply alone give the same history.
	alone := newEnv(t, tNow)
	recordSeedsNoApply(alone)
	alone.apply(seedCodes...)
	if want := labelHistory(t, alone); !slices.Equal(followed, want) {
		t.Errorf("label history through FollowCommits:\n%v\nthrough Apply:\n%v", followed, want)
	}
}
