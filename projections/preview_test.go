package projections_test

import (
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// tableDigests is a digest of every table's rows, by table name.
func (e *env) tableDigests() map[string]string {
	e.t.Helper()
	ctx := ctxT(e.t)
	rows, err := e.db.Pool.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		e.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, name := range tables {
		var digest string
		if err := e.db.Pool.QueryRow(ctx, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
			FROM "`+name+`" t`).Scan(&digest); err != nil {
			e.t.Fatal(err)
		}
		out[name] = digest
	}
	return out
}

// TestARulesPreviewCountsChangesGivesExamplesAndWritesNothing: a candidate
// version lowering the strategic threshold is previewed on a snapshot: the
// customers it would move, from → to, with the candidate's reasons, and the
// alerts it would raise; no table changes.
func TestARulesPreviewCountsChangesGivesExamplesAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	if _, err := e.proj.RegisterRules(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	at := tNow.Add(-time.Hour)
	e.record(at,
		ev("PV-A", at, order("SO-PV-A", "600000")),
		ev("PV-B", at, order("SO-PV-B", "850000")),
		ev("PV-C", at, order("SO-PV-C", "50000")))
	e.apply("PV-A", "PV-B", "PV-C")
	before := e.tableDigests()

	switchAt := tNow.Add(24 * time.Hour)
	cand := rulesBook(t, string(domain.DefaultRulesYAML()), `  - version: 2
    effective_at: "`+switchAt.Format(time.RFC3339)+`"
    value_tiers:
      - {value: strategic, display: 战略客户, short: 战略, min_net_amount: "800000.00"}
      - {value: key,       display: 重点客户, short: 重点, min_net_amount: "500000.00"}
      - {value: regular,   display: 普通客户, short: 普通, min_net_amount: "100000.00"}
      - {value: potential, display: 潜力客户, short: 潜力, min_net_amount: "0"}
`)
	var done, total int64
	rep, err := e.proj.Preview(ctxT(t), cand, tNow, func(d, n int64) { done, total = d, n })
	if err != nil {
		t.Fatal(err)
	}
	if done != 3 || total != 3 || rep.Customers != 3 || rep.CustomersChanged != 1 || rep.CandidateVersion != 2 || rep.InForceVersion != 1 {
		t.Fatalf("progress %d/%d, report %+v", done, total, rep)
	}
	labels := map[string]projections.PreviewLabel{}
	for _, l := range rep.Labels {
		labels[l.Label] = l
	}
	vt := labels[domain.LabelValueTier]
	if len(vt.Transitions) != 1 || vt.Transitions[0] != (projections.PreviewTransition{From: "key", To: "strategic", Customers: 1}) {
		t.Fatalf("value_tier transitions %+v", vt.Transitions)
	}
	if len(vt.Examples) != 1 || vt.Examples[0].Customer != "PV-B" || !strings.Contains(vt.Examples[0].Reason, "850,000.00 ≥ 800,000.00") {
		t.Fatalf("value_tier examples %+v", vt.Examples)
	}
	if _, ok := labels[domain.LabelSegment]; !ok || len(rep.Labels) != 2 {
		t.Errorf("labels changed %+v; want value_tier and segment", rep.Labels)
	}
	if len(rep.Alerts) != 1 || rep.Alerts[0].Kind != domain.AlertValueTierChanged || rep.Alerts[0].Count != 1 || rep.Alerts[0].Examples[0].Customer != "PV-B" {
		t.Fatalf("alerts %+v", rep.Alerts)
	}
	if rep.At != switchAt.Format(time.RFC3339) {
		t.Errorf("previewed at %s, want the candidate's effective_at %s", rep.At, switchAt.Format(time.RFC3339))
	}
	after := e.tableDigests()
	for name, d := range before {
		if after[name] != d {
			t.Errorf("table %s changed during the preview", name)
		}
	}
	// A candidate that disagrees with the version in force is refused.
	if _, err := e.proj.Preview(ctxT(t), rulesBook(t, strings.Replace(string(domain.DefaultRulesYAML()), `"500000.00"`, `"400000.00"`, 1)), tNow, nil); err == nil {
		t.Error("a candidate changing the version in force was previewed")
	}
}
