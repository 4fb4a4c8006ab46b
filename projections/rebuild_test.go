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

// transition is what a change says regardless of its id and wording.
func (c changeRow) transition() string {
	from := "<nil>"
	if c.from != nil {
		from = *c.from
	}
	return fmt.Sprintf("%s %s %s→%s %s", c.customer, c.label, from, c.to, c.at.UTC().Format(time.RFC3339Nano))
}

// queuedCorrections lists the change ids of the corrections in the outbox
// with an outbox id above after, by kind; every one must be marked.
func (e *env) queuedCorrections(after int64) (added, retracted []string) {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), `SELECT convert_from(payload, 'UTF8')::json->>'id', convert_from(payload, 'UTF8')::json->>'correction', correction, msg_id FROM outbox
		WHERE stream = $1 AND id > $2 ORDER BY 1`, projections.StreamChanges, after)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, msgID string
		var kind *string
		var marked bool
		if err := rows.Scan(&id, &kind, &marked, &msgID); err != nil {
			e.t.Fatal(err)
		}
		if !marked || kind == nil || msgID == id {
			e.t.Fatalf("queued change %s is not marked as a correction (kind %v, marked %v, msg id %s)", id, kind, marked, msgID)
		}
		switch *kind {
		case "added":
			added = append(added, id)
		case "retracted":
			retracted = append(retracted, id)
		default:
			e.t.Fatalf("correction kind %q", *kind)
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return added, retracted
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
	// Only true corrections are queued: transitions one history has and the
	// other lacks, whatever the ids (a changed rule version changes them).
	var wantAdded, wantRetracted []string
	liveKeys, rebuiltKeys := map[string]bool{}, map[string]bool{}
	for _, c := range liveChanges {
		liveKeys[c.transition()] = true
	}
	for _, c := range rebuilt {
		rebuiltKeys[c.transition()] = true
		if !liveKeys[c.transition()] {
			wantAdded = append(wantAdded, c.id.String())
		}
	}
	for _, c := range liveChanges {
		if !rebuiltKeys[c.transition()] {
			wantRetracted = append(wantRetracted, c.id.String())
		}
	}
	slices.Sort(wantAdded)
	slices.Sort(wantRetracted)
	gotAdded, gotRetracted := e.queuedCorrections(before)
	if !slices.Equal(gotAdded, wantAdded) || !slices.Equal(gotRetracted, wantRetracted) || st2.NewChanges != int64(len(wantAdded)) || st2.Retracted != int64(len(wantRetracted)) {
		t.Fatalf("rebuild under new rules queued %d added and %d retracted changes (stats %d, %d), want %d and %d",
			len(gotAdded), len(gotRetracted), st2.NewChanges, st2.Retracted, len(wantAdded), len(wantRetracted))
	}
	if len(wantAdded) == 0 {
		t.Fatal("the rule change corrected nothing: the test proves nothing")
	}
	gotQueued := slices.Concat(gotAdded, gotRetracted)

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
