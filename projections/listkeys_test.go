package projections_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// TestListKeysFollowTheProjectionsAndDriveTagPages runs a random workload
// (new customers, orders, refunds, boundaries passed months later, two
// projector transactions at once, a rebuild) and checks that
// customer_list_keys (migration 0023) always holds exactly one row per
// customer and tag with its changed_at, and that a tag's list, read page
// by page through the keys, is the customers with the tag, newest change
// first, each once.
func TestListKeysFollowTheProjectionsAndDriveTagPages(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	sc := newScript(20261205, "KHL", 200, start)
	e := newEnv(t, start)
	q := projections.NewQueries(e.proj, e.store)
	rng := rand.New(rand.NewPCG(20261205, 9))
	check := func(when string) {
		t.Helper()
		var missing, extra int
		err := e.db.Pool.QueryRow(ctxT(t), `WITH want AS (
				SELECT 'tag:' || t AS key, p.changed_at, p.stream_id FROM customer_projections p, unnest(p.tags) t
				UNION ALL SELECT 'dim:' || d, p.changed_at, p.stream_id FROM customer_projections p, unnest(p.dims) d)
			SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM customer_list_keys) x),
				(SELECT count(*) FROM (SELECT * FROM customer_list_keys EXCEPT SELECT * FROM want) y)`).Scan(&missing, &extra)
		if err != nil {
			t.Fatal(err)
		}
		if missing != 0 || extra != 0 {
			t.Fatalf("%s: customer_list_keys lacks %d keys of the projections and holds %d they do not", when, missing, extra)
		}
		for _, tag := range []string{"churn_warning", "needs_completion", "to_convert", "strategic_partner"} {
			rows, err := e.db.Pool.Query(ctxT(t), `SELECT customer FROM customer_projections WHERE tags @> ARRAY[$1]
				ORDER BY changed_at DESC, stream_id DESC`, tag)
			if err != nil {
				t.Fatal(err)
			}
			want, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for cursor := ""; ; {
				cards, next, err := q.Customers(ctxT(t), projections.CustomerFilter{Tag: tag, Limit: 7, Cursor: cursor}, eventstore.Masked)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cards {
					got = append(got, c.Customer)
				}
				if cursor = next; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: tag %s pages give %v, want %v", when, tag, got, want)
			}
		}
	}
	for i := range 30 {
		s := sc.next(1 + rng.IntN(40))
		e.record(s.at, s.events...)
		applyConcurrently(t, e, chunks(rng, s.customers(), 8))
		if i%10 == 9 {
			check("after the projector")
		}
	}
	e.clock.Set(e.clock.Now().Add(100 * day))
	e.catchUp(e.proj)
	check("after the scheduler")
	var keys, tags int
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT count(*), count(DISTINCT key) FROM customer_list_keys").Scan(&keys, &tags); err != nil {
		t.Fatal(err)
	}
	if keys < 50 || tags < 2 {
		t.Fatalf("%d keys of %d tags: the workload proves little", keys, tags)
	}
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
}
