package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

// TestStoredColumnsFollowTheDocument: the tags column (sent as one
// comma-separated list and split in SQL) holds exactly the document's tags,
// in order, whether the row is inserted or updated, and none as an empty
// array; the document column is JSON that SQL can still read.
func TestStoredColumnsFollowTheDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	const twoTags, noTags domain.CustomerCode = "KT-TAGS-2", "KT-TAGS-0"
	// twoTags: orders only (no profile: 待补充) worth 1.2M within 3 months
	// (★★★战略伙伴); noTags: a complete profile and one small order.
	e.record(tNow.Add(-time.Hour),
		ev(twoTags, tNow.Add(-40*day), order("SO-T-1", "700000")),
		ev(twoTags, tNow.Add(-20*day), order("SO-T-2", "500000")),
		ev(noTags, tNow.Add(-90*day), fullProfile("无锡星河贸易有限公司", "周经理", "吴磊", "13600002222", "wu.lei@example.com")),
		ev(noTags, tNow.Add(-10*day), order("SO-T-3", "2000")),
	)
	e.apply(twoTags, noTags) // inserts the rows
	check := func(when string, code domain.CustomerCode, want []string) {
		t.Helper()
		var tags []string
		var kind, name string
		if err := e.db.Pool.QueryRow(ctxT(t), `SELECT tags, json_typeof(projection), projection->'state'->>'customer'
			FROM customer_projections WHERE customer = $1`, string(code)).Scan(&tags, &kind, &name); err != nil {
			t.Fatal(err)
		}
		var docTags []string
		for _, tag := range e.doc(code).Tags {
			docTags = append(docTags, tag.Tag)
		}
		if tags == nil || !slices.Equal(tags, want) || !slices.Equal(tags, docTags) {
			t.Errorf("%s, %s: tags column %#v, document %v, want %v", when, code, tags, docTags, want)
		}
		if kind != "object" || name != string(code) {
			t.Errorf("%s, %s: the stored document reads in SQL as %s with customer %q", when, code, kind, name)
		}
	}
	check("inserted", twoTags, []string{"strategic_partner", "needs_completion"})
	check("inserted", noTags, []string{})

	e.record(tNow, ev(twoTags, tNow.Add(-time.Minute), rated(5)), ev(noTags, tNow.Add(-time.Minute), rated(4)))
	if n := e.apply(twoTags, noTags); n != 2 {
		t.Fatalf("applied %d events, want 2", n)
	}
	check("updated", twoTags, []string{"strategic_partner", "needs_completion"})
	check("updated", noTags, []string{})
}
