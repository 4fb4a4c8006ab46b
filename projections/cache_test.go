package projections_test

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// TestProjectionCacheChangesNothing projects the same random script twice,
// with the in-memory projection cache and without it (every transaction
// decoding the stored documents), with the scheduler passing boundaries and
// rows rewritten behind the cache's back now and then: projections, label
// changes, alerts and outbox payloads must be identical.
func TestProjectionCacheChangesNothing(t *testing.T) {
	t.Parallel()
	const (
		customers = 400
		steps     = 120
		perStep   = 40
		seed      = 20261127
	)
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	run := func(cacheSize int) (snapshot, []string) {
		e := newEnv(t, start)
		p := projections.New(projections.Config{Pool: e.db.Pool, Logger: testenv.Logger(t), Now: e.clock.Now, ProjectionCache: cacheSize})
		e.proj = p
		sc := newScript(seed, "KC", customers, start)
		rng := rand.New(rand.NewPCG(seed, 7))
		for i := range steps {
			s := sc.next(1 + rng.IntN(2*perStep))
			e.record(s.at, s.events...)
			for _, c := range chunks(rng, s.customers(), 30) {
				e.apply(c...)
			}
			if i%10 == 9 {
				e.catchUp(p)
			}
			if i%17 == 16 {
				// Rewrite some rows (new xmin): the cache must notice.
				if _, err := e.db.Pool.Exec(ctxT(t), "UPDATE customer_projections SET next_at = next_at WHERE stream_id::text < '4'"); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.clock.Set(sc.at.Add(400 * 24 * time.Hour))
		e.catchUp(p)
		rows, err := e.db.Pool.Query(ctxT(t), "SELECT stream || ' ' || subject || ' ' || msg_id || ' ' || encode(payload, 'escape') FROM outbox ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		outbox, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		// Customers due at the same instant are advanced in no fixed order:
		// compare the messages, not their order across customers.
		slices.Sort(outbox)
		return e.snapshot(), outbox
	}
	// Each database seals personal fields with its own keys: compare
	// everything but the ciphertexts.
	cipher := regexp.MustCompile(`enc:v1:[A-Za-z0-9+/=_-]+`)
	norm := func(rows []string) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = cipher.ReplaceAllString(r, "enc:v1:…")
		}
		return out
	}
	normSnap := func(s snapshot) snapshot {
		return snapshot{projections: norm(s.projections), changes: norm(s.changes), alerts: norm(s.alerts)}
	}
	cached, cachedOutbox := run(projections.DefaultProjectionCache)
	small, smallOutbox := run(50) // most customers evicted between transactions
	plain, plainOutbox := run(-1)
	if len(plain.changes) == 0 || len(plainOutbox) == 0 {
		t.Fatal("the script made no label changes")
	}
	sameSnapshot(t, normSnap(cached), normSnap(plain))
	sameRows(t, "outbox", norm(cachedOutbox), norm(plainOutbox))
	sameSnapshot(t, normSnap(small), normSnap(plain))
	sameRows(t, "outbox", norm(smallOutbox), norm(plainOutbox))
}
