package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// TestStoredColumnsFollowTheDocument: the tags column (sent as one
// comma-separated list and split in SQL) holds exactly the document's tags,
// in order, whether the row is inserted or updated, and none as an empty
// array; the document column holds the binary document.
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
		var format, size int
		if err := e.db.Pool.QueryRow(ctxT(t), `SELECT tags, get_byte(projection, 0), octet_length(projection)
			FROM customer_projections WHERE customer = $1`, string(code)).Scan(&tags, &format, &size); err != nil {
			t.Fatal(err)
		}
		var docTags []string
		for _, tag := range e.doc(code).Tags {
			docTags = append(docTags, tag.Tag)
		}
		if tags == nil || !slices.Equal(tags, want) || !slices.Equal(tags, docTags) {
			t.Errorf("%s, %s: tags column %#v, document %v, want %v", when, code, tags, docTags, want)
		}
		if format != projections.DocumentFormat || size > 1024 {
			t.Errorf("%s, %s: stored document of format %d and %d bytes, want the binary format %d in under 1 KiB", when, code, format, size, projections.DocumentFormat)
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

// Documents stored as JSON by earlier versions (migration 0007 keeps them as
// their text) are still read, and the next update writes the binary form with
// the same content.
func TestJSONDocumentsOfEarlierVersionsAreReadAndRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	const code domain.CustomerCode = "KT-JSON-1"
	e.record(tNow.Add(-time.Hour),
		ev(code, tNow.Add(-90*day), fullProfile("无锡星河贸易有限公司", "周经理", "吴磊", "13600002222", "wu.lei@example.com")),
		ev(code, tNow.Add(-40*day), order("SO-J-1", "700000")),
		ev(code, tNow.Add(-20*day), order("SO-J-2", "500000")),
	)
	e.apply(code)
	before := mustJSON(t, e.doc(code))
	var raw []byte
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT projection FROM customer_projections WHERE customer = $1", string(code)).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	asJSON, err := projections.DocumentJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(ctxT(t), "UPDATE customer_projections SET projection = $2 WHERE customer = $1", string(code), asJSON); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, e.doc(code)); got != before {
		t.Fatalf("read from its JSON document:\n%s\nwant\n%s", got, before)
	}
	// The projector decodes the JSON document (a fresh projector: no cache)
	// and writes the binary form.
	fresh, _ := e.withRules(domain.DefaultRuleBook())
	e.record(tNow, ev(code, tNow.Add(-time.Minute), rated(5)))
	if n, err := fresh.Apply(ctxT(t), streamIDs(code)); err != nil || n != 1 {
		t.Fatalf("apply after the JSON document: %d, %v", n, err)
	}
	var format int
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT get_byte(projection, 0) FROM customer_projections WHERE customer = $1", string(code)).Scan(&format); err != nil {
		t.Fatal(err)
	}
	if format != projections.DocumentFormat {
		t.Errorf("document format %d after the update, want binary (%d)", format, projections.DocumentFormat)
	}
	d := e.doc(code)
	if d.Version != 4 || d.Labels[domain.LabelValueTier].Value != "strategic" {
		t.Errorf("after the update: %s", mustJSON(t, d))
	}
}
