package projections_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// changeRow is a row of label_changes.
type changeRow struct {
	text     string // the whole row as text
	id       uuid.UUID
	customer string
	seq      int64
	label    string
	from     *string
	to       string
	at       time.Time
	cause    string
	event    *uuid.UUID
	version  int
}

// content is everything but the id and the reasons.
func (c changeRow) content() string {
	from := "<nil>"
	if c.from != nil {
		from = *c.from
	}
	ev := "<nil>"
	if c.event != nil {
		ev = c.event.String()
	}
	return fmt.Sprintf("%s %d %s %s→%s %s %s %s v%d", c.customer, c.seq, c.label, from, c.to, c.at.UTC().Format(time.RFC3339Nano), c.cause, ev, c.version)
}

func (e *env) changeRows() []changeRow {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), `SELECT (l.*)::text, id, customer, seq, label, from_value, to_value, at, cause_kind, cause_event_id, rule_version
		FROM label_changes l ORDER BY stream_id, seq`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []changeRow
	for rows.Next() {
		var c changeRow
		if err := rows.Scan(&c.text, &c.id, &c.customer, &c.seq, &c.label, &c.from, &c.to, &c.at, &c.cause, &c.event, &c.version); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// queuedChangeIDs lists the msg_ids of label changes in the outbox with an
// outbox id above after.
func (e *env) queuedChangeIDs(after int64) []string {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), "SELECT msg_id FROM outbox WHERE stream = $1 AND id > $2 ORDER BY msg_id", projections.StreamChanges, after)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (e *env) maxOutboxID() int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Pool.QueryRow(ctxT(e.t), "SELECT coalesce(max(id), 0) FROM outbox").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// rulesWithLowerStrategic is the default rule set plus a version 2,
// effective at at, whose strategic tier starts at 800,000.00.
func rulesWithLowerStrategic(t testing.TB, at time.Time) *domain.RuleBook {
	t.Helper()
	v2 := fmt.Sprintf(`
  - version: 2
    effective_at: %q
    value_tiers:
      - {value: strategic, display: 战略客户, short: 战略, min_net_amount: "800000.00"}
      - {value: key,       display: 重点客户, short: 重点, min_net_amount: "500000.00"}
      - {value: regular,   display: 普通客户, short: 普通, min_net_amount: "100000.00"}
      - {value: potential, display: 潜力客户, short: 潜力, min_net_amount: "0"}
`, at.Format(time.RFC3339))
	book, err := domain.ParseRules(append(domain.DefaultRulesYAML(), v2...))
	if err != nil {
		t.Fatal(err)
	}
	if len(book.Versions) != 2 {
		t.Fatalf("rule book has %d versions", len(book.Versions))
	}
	return book
}

// TestRebuildReproducesTheLiveProjection projects a few thousand customers
// live — in many small batches, some customers lagging behind, the boundary
// scheduler passing window ends now and then — from back-dated events
// recorded at advancing instants over two years. A rebuild from the log must
// reproduce every customer projection and every label change byte for byte,
// queue nothing for publication and leave the scheduler nothing to do. A
// rebuild under a rule book with a new version inside the data then queues
// only the changes that are new.
// readModelSchema lists the indexes and constraints of the read model
// tables, with their definitions and validity.
func (e *env) readModelSchema() []string {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), `SELECT format('%s %s valid=%s', i.relname, pg_get_indexdef(i.oid), x.indisvalid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
			WHERE x.indrelid IN ('customer_projections'::regclass, 'label_changes'::regclass, 'alerts'::regclass)
		UNION ALL
		SELECT format('%s %s %s', conname, contype, pg_get_constraintdef(oid)) FROM pg_constraint
			WHERE conrelid IN ('customer_projections'::regclass, 'label_changes'::regclass, 'alerts'::regclass)
		UNION ALL
		SELECT format('%s.%s notnull=%s', attrelid::regclass, attname, attnotnull) FROM pg_attribute
			WHERE attrelid IN ('customer_projections'::regclass, 'label_changes'::regclass, 'alerts'::regclass) AND attnum > 0
		ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	if len(defs) < 10 {
		e.t.Fatalf("read model schema: only %d entries: %v", len(defs), defs)
	}
	return defs
}

func TestRebuildReproducesTheLiveProjection(t *testing.T) {
	t.Parallel()
	const (
		customers = 3000
		steps     = 150
		perStep   = 60 // events per step, on average
		seed      = 20240301
	)
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, cst)
	sc := newScript(seed, "KH", customers, start)
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(seed, 3))

	// The rule change of the second part lands half-way through the data,
	// between two steps (steps are on the hour).
	var switchAt time.Time
	netAtSwitch := map[domain.CustomerCode]domain.Money{}

	var lagging []domain.CustomerCode
	applyCalls, advanced := 0, 0
	applyAll := func(codes []domain.CustomerCode, maxSize int) {
		for _, c := range chunks(rng, codes, maxSize) {
			e.apply(c...)
			applyCalls++
		}
	}
	liveStart := time.Now()
	for i := range steps {
		s := sc.next(1 + rng.IntN(2*perStep))
		e.record(s.at, s.events...)
		var now []domain.CustomerCode
		for _, c := range s.customers() {
			if rng.IntN(4) == 0 {
				lagging = append(lagging, c) // this one's projector is behind
			} else {
				now = append(now, c)
			}
		}
		applyAll(now, 80)
		if i%25 == 24 {
			applyAll(lagging, 150)
			lagging = lagging[:0]
			advanced += e.catchUp(e.proj)
		}
		if i == steps/2 {
			switchAt = s.at.Add(30 * time.Minute)
			for _, c := range sc.customers {
				netAtSwitch[c.code] = c.net
			}
		}
	}
	applyAll(sc.codes(), 500)
	advanced += e.catchUp(e.proj)
	live := e.snapshot()
	liveChanges := e.changeRows()
	events := e.count("events")
	queued := e.changesQueued()
	outbox := e.count("outbox")
	t.Logf("live: %d events of %d customers in %d apply calls, scheduler advanced %d customers; %d label changes, %d alerts; %s",
		events, len(live.projections), applyCalls, advanced, len(live.changes), len(live.alerts), time.Since(liveStart).Round(time.Millisecond))
	if len(live.projections) < customers*9/10 || events < customers*3 || queued != len(live.changes) {
		t.Fatalf("%d projections, %d events, %d changes, %d queued", len(live.projections), events, len(live.changes), queued)
	}
	causes := map[string]int{}
	for _, c := range liveChanges {
		causes[c.cause]++
	}
	if causes["event"] == 0 || causes["time"] == 0 {
		t.Fatalf("causes %v: the data should make both events and window boundaries change labels", causes)
	}

	// Rebuild from the log with the same rules: byte for byte the same.
	schema := e.readModelSchema()
	st, err := e.proj.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild: %d events, %d customers, %d changes in %s (%.0f events/s)",
		st.Events, st.Customers, st.Changes, st.Took.Round(time.Millisecond), float64(st.Events)/st.Took.Seconds())
	if st.Events != int64(events) || st.Customers != len(live.projections) || st.Changes != int64(len(live.changes)) || st.NewChanges != 0 {
		t.Errorf("rebuild stats %+v; want %d events, %d customers, %d changes, none new", st, events, len(live.projections), len(live.changes))
	}
	sameSnapshot(t, e.snapshot(), live)
	// The rebuild drops the read models' indexes and builds them again.
	sameRows(t, "read model indexes and constraints after the rebuild", e.readModelSchema(), schema)
	if e.count("outbox") != outbox {
		t.Fatalf("the rebuild queued %d messages", e.count("outbox")-outbox)
	}
	if n := e.catchUp(e.proj); n != 0 || e.count("outbox") != outbox {
		t.Fatalf("after the rebuild the scheduler advanced %d customers and queued %d messages again", n, e.count("outbox")-outbox)
	}

	// A rule change effective inside the data: the strategic threshold drops
	// to 800,000.00 at switchAt.
	book := rulesWithLowerStrategic(t, switchAt)
	proj2, q2 := e.withRules(book)
	before := e.maxOutboxID()
	st2, err := proj2.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := e.changeRows()
	oldIDs := map[uuid.UUID]changeRow{}
	for _, c := range liveChanges {
		oldIDs[c.id] = c
	}
	var wantQueued []string
	sameIDOtherVersion, sameIDOtherValues := 0, 0
	for _, c := range rebuilt {
		old, seen := oldIDs[c.id]
		switch {
		case !seen:
			wantQueued = append(wantQueued, c.id.String())
		case old.content() == c.content():
		case old.to != c.to || (old.from == nil) != (c.from == nil) || (old.from != nil && *old.from != *c.from):
			sameIDOtherValues++
			if sameIDOtherValues <= 3 {
				t.Logf("same change id, other values:\n  live:    %s\n  rebuilt: %s", old.content(), c.content())
			}
		default:
			sameIDOtherVersion++
		}
	}
	slices.Sort(wantQueued)
	gotQueued := e.queuedChangeIDs(before)
	if !slices.Equal(gotQueued, wantQueued) || st2.NewChanges != int64(len(wantQueued)) {
		t.Fatalf("rebuild under new rules queued %d changes (stats: %d new), want the %d whose ids are new", len(gotQueued), st2.NewChanges, len(wantQueued))
	}
	if sameIDOtherValues+sameIDOtherVersion > 0 {
		t.Logf("%d rebuilt changes keep the id of a live change under another rule version, %d of them with other from/to values: not queued",
			sameIDOtherValues+sameIDOtherVersion, sameIDOtherValues)
	}

	// History before the switch is untouched; from the switch on it is rule
	// version 2's.
	var beforeOld, beforeNew []string
	for _, c := range liveChanges {
		if c.at.Before(switchAt) {
			beforeOld = append(beforeOld, c.text)
		}
	}
	rulesChanges := map[string]int{}
	for _, c := range rebuilt {
		switch {
		case c.at.Before(switchAt):
			beforeNew = append(beforeNew, c.text)
			if c.version != 1 {
				t.Fatalf("change before the switch with rule version %d: %s", c.version, c.text)
			}
		case c.version != 2:
			t.Fatalf("change after the switch with rule version %d: %s", c.version, c.text)
		}
		if c.cause != "rules" {
			continue
		}
		if !c.at.Equal(switchAt) || c.from == nil {
			t.Fatalf("rules change not at the switch instant %s: %s", switchAt, c.text)
		}
		switch {
		case c.label == domain.LabelValueTier && *c.from == "key" && c.to == "strategic":
		case c.label == domain.LabelSegment && strings.HasPrefix(*c.from, "key/") && strings.HasPrefix(c.to, "strategic/"):
		default:
			t.Fatalf("unexpected rules change: %s", c.text)
		}
		rulesChanges[c.label]++
	}
	sameRows(t, "label changes before the switch", beforeNew, beforeOld)
	wantPromoted := 0
	for _, net := range netAtSwitch {
		if net >= money("800000") && net < money("1000000") {
			wantPromoted++
		}
	}
	if wantPromoted == 0 || rulesChanges[domain.LabelValueTier] != wantPromoted || rulesChanges[domain.LabelSegment] != wantPromoted {
		t.Fatalf("rules changes %v; %d customers had a net amount in [800,000, 1,000,000) at the switch", rulesChanges, wantPromoted)
	}
	// Stored labels and documents follow the new rules.
	var strategicColumn int
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM customer_projections WHERE value_tier = 'strategic' AND net_amount >= 80000000 AND net_amount < 100000000").Scan(&strategicColumn); err != nil {
		t.Fatal(err)
	}
	inRange := 0
	for _, c := range sc.customers {
		if c.net < money("800000") || c.net >= money("1000000") {
			continue
		}
		inRange++
		if inRange > 20 {
			continue
		}
		d, err := q2.Customer(ctxT(t), c.code, time.Time{}, sc.at, eventstore.Masked)
		if err != nil {
			t.Fatal(err)
		}
		if l := d.Labels[domain.LabelValueTier]; l.Value != "strategic" || l.RuleVersion != 2 || !strings.Contains(l.Reason, "800,000.00") {
			t.Fatalf("%s with net %s: value tier %+v, want strategic under rule version 2", c.code, c.net, l)
		}
	}
	if strategicColumn != inRange {
		t.Fatalf("%d customers with a net amount in [800,000, 1,000,000) are stored as strategic, want all %d", strategicColumn, inRange)
	}
	t.Logf("rule change at %s: %d customers promoted at the switch, %d changes queued", switchAt.Format(time.RFC3339), wantPromoted, len(gotQueued))

	// Rebuilding again under the same rules changes nothing and queues
	// nothing.
	second := e.snapshot()
	outbox = e.count("outbox")
	st3, err := proj2.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st3.NewChanges != 0 || e.count("outbox") != outbox {
		t.Fatalf("second rebuild queued %d changes", st3.NewChanges)
	}
	sameSnapshot(t, e.snapshot(), second)
}
