package projections_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// rulesBook is the default rules plus the given later versions (YAML list
// entries).
func rulesBook(t testing.TB, base string, later ...string) *domain.RuleBook {
	t.Helper()
	book, err := domain.ParseRules([]byte(strings.TrimRight(base, "\n") + "\n" + strings.Join(later, "")))
	if err != nil {
		t.Fatal(err)
	}
	return book
}

// bigSpenderV2 is a version 2 that names only a new tag.
func bigSpenderV2(at time.Time) string {
	return fmt.Sprintf(`  - version: 2
    effective_at: %q
    tags:
      - name: big_spender
        display: 大客户
        when: net_amount >= yuan(800000)
`, at.Format(time.RFC3339))
}

type recordedRuleVersion struct {
	version                      int
	effectiveAt                  time.Time
	source, definition, checksum string
}

func (e *env) recordedRules() map[int]recordedRuleVersion {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), "SELECT version, effective_at, source, definition, sha256 FROM rule_versions")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]recordedRuleVersion{}
	for rows.Next() {
		var r recordedRuleVersion
		if err := rows.Scan(&r.version, &r.effectiveAt, &r.source, &r.definition, &r.checksum); err != nil {
			e.t.Fatal(err)
		}
		out[r.version] = r
	}
	return out
}

// TestRuleVersionsAreRecordedAndAFileThatDisagreesIsRefused is issue 15's
// scenario: a version 2 naming tags keeps the built-in ones; each version is
// recorded with its text and hash when first loaded; a file missing a
// version in force, or changing its text, is refused (start, rebuild and
// read-only checks alike); comments do not count; a version not yet in
// force may still change or be withdrawn.
func TestRuleVersionsAreRecordedAndAFileThatDisagreesIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	base := string(domain.DefaultRulesYAML())
	switchAt := tNow.Add(-time.Hour)
	book := rulesBook(t, base, bigSpenderV2(switchAt))
	var tags []string
	for _, tag := range book.Versions[1].Tags {
		tags = append(tags, tag.Name)
	}
	if got := strings.Join(tags, ","); got != "strategic_partner,churn_warning,to_convert,needs_completion,big_spender" {
		t.Fatalf("version 2 naming one tag has tags %s; want the four built-in ones and big_spender", got)
	}
	proj, q := e.withRules(book)
	if _, err := proj.RegisterRules(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rec := e.recordedRules()
	history, err := q.RuleHistory(ctxT(t), tNow)
	if err != nil || len(history) != 2 || history[1].SHA256 != rec[2].checksum || len(history[1].Tags) != 5 {
		t.Fatalf("rule history %+v, %v; want version 2 with its recorded sha256 and five tags", history, err)
	}
	if len(rec) != 2 {
		t.Fatalf("recorded rule versions %v", rec)
	}
	for _, v := range book.Versions {
		r := rec[v.Version]
		if r.checksum != v.Hash || r.definition != v.Definition || !strings.Contains(r.source, "effective_at") || !r.effectiveAt.Equal(v.EffectiveAt) {
			t.Fatalf("version %d recorded as %+v; want its text and hash %s", v.Version, r, v.Hash)
		}
	}
	if _, err := proj.RegisterRules(ctxT(t)); err != nil {
		t.Fatalf("the same rules again: %v", err)
	}

	refused := map[string]*domain.RuleBook{
		"missing version 2 (in force)": rulesBook(t, base),
		"version 1 changed":            rulesBook(t, strings.Replace(base, `min_net_amount: "500000.00"`, `min_net_amount: "400000.00"`, 1), bigSpenderV2(switchAt)),
		"version 2 changed":            rulesBook(t, base, strings.Replace(bigSpenderV2(switchAt), "800000", "700000", 1)),
		"version 2 moved":              rulesBook(t, base, bigSpenderV2(switchAt.Add(time.Minute))),
	}
	for name, other := range refused {
		p, _ := e.withRules(other)
		if _, err := p.RegisterRules(ctxT(t)); !errors.Is(err, projections.ErrRulesMismatch) {
			t.Errorf("%s: RegisterRules = %v; want ErrRulesMismatch", name, err)
		}
		if err := p.CheckRules(ctxT(t)); !errors.Is(err, projections.ErrRulesMismatch) {
			t.Errorf("%s: CheckRules = %v; want ErrRulesMismatch", name, err)
		}
	}
	if got := e.recordedRules(); got[2].checksum != rec[2].checksum || got[1].checksum != rec[1].checksum {
		t.Fatal("a refused rules file changed the record")
	}

	// Comments and layout are not the text that counts.
	commented := rulesBook(t, strings.Replace(base, "versions:\n", "versions:   # reviewed\n", 1), "  # the big spender tag\n"+bigSpenderV2(switchAt))
	if p, _ := e.withRules(commented); p.CheckRules(ctxT(t)) != nil {
		t.Fatal("a comment made the rules file disagree")
	}

	// A version not yet in force may change, and go.
	future := tNow.Add(24 * time.Hour)
	v3 := func(highMin string) string {
		return fmt.Sprintf("  - version: 3\n    effective_at: %q\n    remove:\n      tags: [big_spender]\n    activity:\n      high: {display: 高活跃, min_orders: %s}\n      medium: {display: 中活跃, min_orders: 1}\n      low: {display: 低活跃}\n", future.Format(time.RFC3339), highMin)
	}
	for _, b := range []*domain.RuleBook{rulesBook(t, base, bigSpenderV2(switchAt), v3("3")), rulesBook(t, base, bigSpenderV2(switchAt), v3("4")), book} {
		p, _ := e.withRules(b)
		if _, err := p.RegisterRules(ctxT(t)); err != nil {
			t.Fatalf("a change of a version not yet in force: %v", err)
		}
		if got := e.recordedRules(); len(got) != len(b.Versions) || got[len(b.Versions)].checksum != b.Latest().Hash {
			t.Fatalf("recorded %d versions, latest %s; want %d, %s", len(got), got[len(b.Versions)].checksum, len(b.Versions), b.Latest().Hash)
		}
	}
}

// TestRebuildPublishesOnlyTrueCorrectionsOnceAndMarked: live label changes
// reach SEGMENTS_CHANGES; a rebuild with the same rules publishes nothing; a
// rule version that takes effect in the past makes the rebuild correct the
// history, and exactly those changes are published, once, marked with
// Segments-Correction; a second rebuild publishes nothing more.
func TestRebuildPublishesOnlyTrueCorrectionsOnceAndMarked(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 4, 7, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	codes := []domain.CustomerCode{"KHC-1", "KHC-2", "KHC-3"}
	for i, amount := range []string{"900000", "1200000", "50000"} {
		e.record(start.Add(time.Duration(i)*time.Minute),
			ev(codes[i], start, fullProfile("某某科技有限公司", "王经理", "李明", "13812345678", "li@example.com")),
			ev(codes[i], start, order(fmt.Sprintf("SO-%d", i), amount)))
	}
	e.apply(codes...)
	e.clock.Set(start.Add(2 * time.Hour))
	e.catchUp(e.proj)
	live := e.changesQueued()
	alertsQueued := e.count("outbox") - live // no alerts relay runs here
	runRelay(t, e, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges))
	testenv.Eventually(t, time.Minute, "the live changes published", func() bool { return changesCount(js) == live })

	st, err := e.proj.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.NewChanges != 0 || st.Retracted != 0 || e.changesQueued() != 0 || e.count("outbox") != alertsQueued {
		t.Fatalf("a rebuild with the same rules queued %d messages (%+v)", e.count("outbox")-alertsQueued, st)
	}

	book := rulesWithLowerStrategic(t, start.Add(time.Hour))
	proj2, _ := e.withRules(book)
	if _, err := proj2.RegisterRules(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	beforeCorrections := e.maxOutboxID()
	st, err = proj2.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var newAlerts, markedAlerts int
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT count(*), count(*) FILTER (WHERE correction) FROM outbox WHERE stream = $1 AND id > $2",
		projections.StreamAlerts, beforeCorrections).Scan(&newAlerts, &markedAlerts); err != nil {
		t.Fatal(err)
	}
	if markedAlerts != newAlerts {
		t.Fatalf("the rebuild queued %d alerts, %d of them marked as corrections; want every one marked", newAlerts, markedAlerts)
	}
	if st.NewChanges == 0 {
		t.Fatalf("a rule version in the past corrected nothing: %+v", st)
	}
	corrections := int(st.NewChanges + st.Retracted)
	testenv.Eventually(t, time.Minute, "the corrections published", func() bool { return changesCount(js) == live+corrections })
	stream, err := js.Stream(ctxT(t), natsbus.StreamChanges)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= uint64(live+corrections); seq++ {
		m, err := stream.GetMsg(ctxT(t), seq)
		if err != nil {
			t.Fatal(err)
		}
		var body projections.HistoryEntry
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		marked := m.Header.Get(projections.HeaderCorrection) == "true"
		switch {
		case seq <= uint64(live) && (marked || body.Correction != ""):
			t.Fatalf("live message %d is marked as a correction", seq)
		case seq > uint64(live) && (!marked || body.Correction != "added" || body.RuleVersion != 2 || body.Customer != "KHC-1"):
			t.Fatalf("correction %d: header %q, body %s", seq, m.Header.Get(projections.HeaderCorrection), m.Data)
		case seq > uint64(live) && m.Header.Get(jetstream.MsgIDHeader) == body.ID.String():
			t.Fatalf("correction %d reuses the change's message id", seq)
		}
	}

	st, err = proj2.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.NewChanges != 0 || st.Retracted != 0 || e.changesQueued() != 0 {
		t.Fatalf("a second rebuild queued corrections again: %+v", st)
	}
	if got := changesCount(js); got != live+corrections {
		t.Fatalf("SEGMENTS_CHANGES holds %d messages; want %d", got, live+corrections)
	}
}
