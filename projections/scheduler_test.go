package projections_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// secondsRules is the default rule set with fixed-duration windows (e.g.
// short 2s, long 4s) instead of 3 and 6 months; alert deadlines stay 24 h.
func secondsRules(t testing.TB, short, long string) *domain.RuleBook {
	t.Helper()
	text := string(domain.DefaultRulesYAML())
	months := "    windows:\n      short_months: 3   # orders_3m, inquiries_3m\n      long_months: 6    # orders_6m\n"
	if !strings.Contains(text, months) {
		t.Fatal("the default rules changed: no month windows to replace")
	}
	b, err := domain.ParseRules([]byte(strings.Replace(text, months, "    windows: {short: "+short+", long: "+long+"}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if rs := b.Latest(); rs.ShortWindow == 0 || rs.LongWindow == 0 {
		t.Fatalf("windows %v / %v", rs.ShortWindow, rs.LongWindow)
	}
	return b
}

// schedT0 is the start of the scheduler scenarios (a Monday morning).
var schedT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, cst)

// runDue runs one RunDue pass at now.
func runDue(t testing.TB, s *projections.Scheduler, now time.Time) int {
	t.Helper()
	n, err := s.RunDue(ctxT(t), now)
	if err != nil {
		t.Fatalf("RunDue at %s: %v", now.Format(time.RFC3339Nano), err)
	}
	return n
}

// drainDue runs RunDue at now until no customer is due; a customer that
// stays due after being advanced (its next_at not moved past now) fails the
// test instead of looping for ever.
func drainDue(t testing.TB, s *projections.Scheduler, now time.Time) int {
	t.Helper()
	total := 0
	for range 50 {
		n := runDue(t, s, now)
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatalf("RunDue at %s still finds due customers after 50 passes (%d advanced): next_at does not move", now.Format(time.RFC3339Nano), total)
	return total
}

type storedChange struct {
	seq              int64
	label, from, to  string
	at               time.Time
	cause            string
	causeEvent       *uuid.UUID
	ruleVersion      int
	customer, change string
}

func (c storedChange) String() string {
	return fmt.Sprintf("#%d %s %s→%s at %s (%s)", c.seq, c.label, c.from, c.to, c.at.In(cst).Format(time.RFC3339Nano), c.cause)
}

// storedChanges is the customer's label history as stored, by seq.
func (e *env) storedChanges(code domain.CustomerCode) []storedChange {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), `SELECT seq, label, coalesce(from_value, ''), to_value, at, cause_kind, cause_event_id, rule_version, customer, id::text
		FROM label_changes WHERE stream_id = $1 ORDER BY seq`, code.StreamID())
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []storedChange
	for rows.Next() {
		var c storedChange
		if err := rows.Scan(&c.seq, &c.label, &c.from, &c.to, &c.at, &c.cause, &c.causeEvent, &c.ruleVersion, &c.customer, &c.change); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// timeChanges are the stored changes with cause time.
func timeChanges(cs []storedChange) []storedChange {
	var out []storedChange
	for _, c := range cs {
		if c.cause == string(domain.CauseTime) {
			out = append(out, c)
		}
	}
	return out
}

type storedAlert struct {
	id                    uuid.UUID
	kind, from, to, owner string
	status, playbook      string
	created               time.Time
	due, resolved         *time.Time
	escalates             *uuid.UUID
}

func (a storedAlert) String() string {
	due := "-"
	if a.due != nil {
		due = a.due.In(cst).Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s %s→%s created %s due %s %s", a.kind, a.from, a.to, a.created.In(cst).Format(time.RFC3339Nano), due, a.status)
}

// storedAlerts are the customer's alerts, oldest first.
func (e *env) storedAlerts(code domain.CustomerCode) []storedAlert {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), `SELECT alert_id, kind, from_value, to_value, owner, status, playbook, created_at, due_at, resolved_at, escalates
		FROM alerts WHERE stream_id = $1 ORDER BY created_at, kind`, code.StreamID())
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []storedAlert
	for rows.Next() {
		var a storedAlert
		if err := rows.Scan(&a.id, &a.kind, &a.from, &a.to, &a.owner, &a.status, &a.playbook, &a.created, &a.due, &a.resolved, &a.escalates); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

type queuedMsg struct {
	subject, msgID string
	payload        []byte
}

// queued lists the outbox rows of a stream in queue order.
func (e *env) queued(stream string) []queuedMsg {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), "SELECT subject, msg_id, payload FROM outbox WHERE stream = $1 ORDER BY id", stream)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []queuedMsg
	for rows.Next() {
		var m queuedMsg
		if err := rows.Scan(&m.subject, &m.msgID, &m.payload); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// nextAt is the customer's stored next boundary (nil: none).
func (e *env) nextAt(code domain.CustomerCode) *time.Time {
	e.t.Helper()
	var next *time.Time
	if err := e.db.Pool.QueryRow(ctxT(e.t), "SELECT next_at FROM customer_projections WHERE stream_id = $1", code.StreamID()).Scan(&next); err != nil {
		e.t.Fatal(err)
	}
	return next
}

func sameInstant(t testing.TB, what string, got *time.Time, want time.Time) {
	t.Helper()
	switch {
	case want.IsZero() && got != nil:
		t.Errorf("%s = %s, want none", what, got.In(cst).Format(time.RFC3339Nano))
	case !want.IsZero() && (got == nil || !got.Equal(want)):
		t.Errorf("%s = %v, want %s", what, got, want.In(cst).Format(time.RFC3339Nano))
	}
}

func rfc(t time.Time) string { return t.In(cst).Format(time.RFC3339Nano) }

// TestSchedulerRecordsTheDropAtTheBoundary: with a 2 s short window, an
// order's activity drop is recorded at exactly occurred_at + 2 s (cause
// time) whenever the scheduler runs after it, the activity_dropped alert is
// created then with due_at = boundary + 24 h, and at due_at the alert turns
// overdue and a followup_overdue escalation is created at the due instant.
func TestSchedulerRecordsTheDropAtTheBoundary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, schedT0)
	book := secondsRules(t, "2s", "4s")
	rs := book.Latest()
	proj, q := e.withRules(book)
	const code = domain.CustomerCode("KH-SCHED-1")
	ordered := schedT0.Add(-500 * time.Millisecond)
	e.record(schedT0,
		ev(code, schedT0.Add(-time.Hour), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
		ev(code, ordered, order("SO-1", "120000.00")))
	if _, err := proj.Apply(ctxT(t), streamIDs(code)); err != nil {
		t.Fatal(err)
	}
	boundary := ordered.Add(2 * time.Second)
	due := boundary.Add(24 * time.Hour)
	sameInstant(t, "next_at after the order", e.nextAt(code), boundary)
	if got := e.storedAlerts(code); len(got) != 1 || got[0].kind != domain.AlertValueTierChanged {
		t.Fatalf("alerts after the order: %v", got)
	}
	queuedBefore := len(e.queued(projections.StreamAlerts))

	s := projections.NewScheduler(proj, e.clock.Now, testenv.Logger(t), nil)
	// Before the boundary nothing is due.
	if n := runDue(t, s, boundary.Add(-time.Microsecond)); n != 0 {
		t.Fatalf("%d customers advanced before the boundary", n)
	}
	if tc := timeChanges(e.storedChanges(code)); len(tc) != 0 {
		t.Fatalf("time changes before the boundary: %v", tc)
	}

	// (a) The scheduler runs 700 ms late: the change instant is the boundary.
	e.clock.Set(boundary.Add(700 * time.Millisecond))
	if n := runDue(t, s, e.clock.Now()); n != 1 {
		t.Fatalf("RunDue advanced %d customers, want 1", n)
	}
	tc := timeChanges(e.storedChanges(code))
	want := []string{
		fmt.Sprintf("activity medium→low at %s (time)", rfc(boundary)),
		fmt.Sprintf("segment regular/medium→regular/low at %s (time)", rfc(boundary)),
	}
	if len(tc) != len(want) {
		t.Fatalf("time changes %v, want %v", tc, want)
	}
	for i, c := range tc {
		if got := strings.SplitN(c.String(), " ", 2)[1]; got != want[i] {
			t.Errorf("change %d: %s, want %s", i, got, want[i])
		}
		if !c.at.Equal(boundary) || c.causeEvent != nil || c.ruleVersion != 1 {
			t.Errorf("change %s: at %s (boundary %s), cause event %v", c, rfc(c.at), rfc(boundary), c.causeEvent)
		}
	}
	alerts := e.storedAlerts(code)
	if len(alerts) != 2 {
		t.Fatalf("alerts %v", alerts)
	}
	drop := alerts[1]
	if drop.kind != domain.AlertActivityDropped || drop.from != "medium" || drop.to != "low" || !drop.created.Equal(boundary) ||
		drop.due == nil || !drop.due.Equal(due) || drop.owner != "王经理" || drop.status != domain.AlertOpen ||
		drop.playbook != rs.Alerts[domain.AlertActivityDropped].Playbook || drop.resolved != nil || drop.escalates != nil {
		t.Fatalf("activity_dropped alert %v (owner %q, playbook %q)", drop, drop.owner, drop.playbook)
	}
	if drop.id != domain.AlertID(code, domain.AlertActivityDropped, boundary) {
		t.Errorf("alert id %v is not AlertID(customer, kind, boundary)", drop.id)
	}
	// Queued once for SEGMENTS_ALERTS with Nats-Msg-Id = alert_id, and the
	// message carries the boundary instant.
	msgs := e.queued(projections.StreamAlerts)[queuedBefore:]
	if len(msgs) != 1 || msgs[0].subject != projections.AlertSubject(domain.AlertActivityDropped, drop.owner) || msgs[0].msgID != drop.id.String() {
		t.Fatalf("queued alert messages %+v", msgs)
	}
	var body projections.AlertDocument
	if err := json.Unmarshal(msgs[0].payload, &body); err != nil {
		t.Fatal(err)
	}
	if body.CreatedAt != rfc(boundary) || body.DueAt == nil || *body.DueAt != rfc(due) || body.Status != domain.AlertOpen || body.ResolvedAt != nil {
		t.Errorf("queued message %s", msgs[0].payload)
	}
	// The API's view.
	docs, _, err := q.Alerts(ctxT(t), projections.AlertFilter{Customer: code, Kind: domain.AlertActivityDropped, Limit: 10})
	if err != nil || len(docs) != 1 || docs[0].CreatedAt != rfc(boundary) || docs[0].DueAt == nil || *docs[0].DueAt != rfc(due) {
		t.Fatalf("Alerts: %+v, %v", docs, err)
	}
	// The next boundary is the long window's; running again changes nothing.
	sameInstant(t, "next_at after the drop", e.nextAt(code), ordered.Add(4*time.Second))
	if n := runDue(t, s, e.clock.Now()); n != 0 {
		t.Errorf("a second pass advanced %d customers", n)
	}

	// (b) At the deadline: passed by a scheduler running 1.5 s after it. The
	// long window's boundary (lifecycle lost) comes first, at its instant.
	e.clock.Set(due.Add(1500 * time.Millisecond))
	if n := drainDue(t, s, e.clock.Now()); n != 1 {
		t.Fatalf("RunDue after the deadline advanced %d customers, want 1", n)
	}
	tc = timeChanges(e.storedChanges(code))
	if len(tc) != 3 || tc[2].label != domain.LabelLifecycle || tc[2].to != domain.LifecycleLost || !tc[2].at.Equal(ordered.Add(4*time.Second)) {
		t.Fatalf("time changes %v", tc)
	}
	alerts = e.storedAlerts(code)
	if len(alerts) != 3 {
		t.Fatalf("alerts after the deadline: %v", alerts)
	}
	if a := alerts[1]; a.id != drop.id || a.status != domain.AlertOverdue || !a.created.Equal(boundary) {
		t.Errorf("the dropped alert after its deadline: %v", a)
	}
	esc := alerts[2]
	if esc.kind != domain.AlertFollowUpOverdue || !esc.created.Equal(due) || esc.status != domain.AlertOpen || esc.due != nil ||
		esc.escalates == nil || *esc.escalates != drop.id || esc.from != domain.AlertActivityDropped || esc.to != domain.AlertOverdue ||
		esc.owner != "王经理" || esc.id != domain.EscalationID(drop.id) {
		t.Fatalf("escalation %v (escalates %v, owner %q)", esc, esc.escalates, esc.owner)
	}
	msgs = e.queued(projections.StreamAlerts)[queuedBefore:]
	if len(msgs) != 2 || msgs[1].subject != projections.AlertSubject(domain.AlertFollowUpOverdue, esc.owner) || msgs[1].msgID != esc.id.String() {
		t.Fatalf("queued alert messages after the deadline %+v", msgs)
	}
	if err := json.Unmarshal(msgs[1].payload, &body); err != nil {
		t.Fatal(err)
	}
	if body.CreatedAt != rfc(due) || body.Escalates == nil || *body.Escalates != drop.id || body.DueAt != nil {
		t.Errorf("escalation message %s", msgs[1].payload)
	}
	sameInstant(t, "next_at after the deadline", e.nextAt(code), time.Time{})
	overdue, _, err := q.Alerts(ctxT(t), projections.AlertFilter{Status: domain.AlertOverdue, Limit: 10})
	if err != nil || len(overdue) != 1 || overdue[0].AlertID != drop.id {
		t.Errorf("overdue alerts %+v, %v", overdue, err)
	}
}

// TestSchedulerBoundaryWithoutLabelChange: a boundary at which an order
// leaves the window but no label changes (3 orders → 2, still high) must
// still move the customer's next_at on, or the scheduler would find the
// customer due for ever.
func TestSchedulerBoundaryWithoutLabelChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, schedT0)
	proj, _ := e.withRules(secondsRules(t, "2s", "4s"))
	const code = domain.CustomerCode("KH-SCHED-QUIET")
	e.record(schedT0,
		ev(code, schedT0.Add(-time.Hour), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
		ev(code, schedT0.Add(-1500*time.Millisecond), order("SO-1", "10.00")),
		ev(code, schedT0, order("SO-2", "10.00")),
		ev(code, schedT0, order("SO-3", "10.00")))
	if _, err := proj.Apply(ctxT(t), streamIDs(code)); err != nil {
		t.Fatal(err)
	}
	first := schedT0.Add(500 * time.Millisecond) // SO-1 leaves: 2 orders left, still high
	sameInstant(t, "next_at", e.nextAt(code), first)
	changes := len(e.storedChanges(code))
	s := projections.NewScheduler(proj, e.clock.Now, testenv.Logger(t), nil)
	e.clock.Set(first.Add(100 * time.Millisecond))
	if n := drainDue(t, s, e.clock.Now()); n != 1 {
		t.Fatalf("advanced %d customers, want 1", n)
	}
	if got := len(e.storedChanges(code)); got != changes {
		t.Errorf("%d label changes at a boundary that changes no label", got-changes)
	}
	sameInstant(t, "next_at after the quiet boundary", e.nextAt(code), schedT0.Add(2*time.Second))
	// The document (evaluated at the quiet boundary) agrees.
	var evaluated time.Time
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT evaluated_at FROM customer_projections WHERE stream_id = $1", code.StreamID()).Scan(&evaluated); err != nil {
		t.Fatal(err)
	}
	if !evaluated.Equal(first) {
		t.Errorf("evaluated_at %s, want %s", rfc(evaluated), rfc(first))
	}
	// The next boundary drops activity high → low (both orders leave).
	e.clock.Set(schedT0.Add(3 * time.Second))
	drainDue(t, s, e.clock.Now())
	tc := timeChanges(e.storedChanges(code))
	if len(tc) != 2 || tc[0].from != "high" || tc[0].to != "low" || !tc[0].at.Equal(schedT0.Add(2*time.Second)) {
		t.Errorf("time changes %v", tc)
	}
}

// raceEnvelopes: customer i has a complete profile and one order whose
// occurred_at is spread over 300 ms, with deterministic event ids.
func raceEnvelopes(n int) ([]domain.Envelope, []domain.CustomerCode) {
	var evs []domain.Envelope
	var codes []domain.CustomerCode
	ns := uuid.MustParse("5b2c7d0e-1f3a-4b5c-8d9e-0a1b2c3d4e5f")
	for i := range n {
		code := domain.CustomerCode(fmt.Sprintf("KH-RACE-%04d", i))
		codes = append(codes, code)
		reg := ev(code, schedT0.Add(-time.Hour), fullProfile("客户"+string(code), ownerNames[i%len(ownerNames)], "李明", "13812345678", "li.ming@example.com"))
		reg.EventID = uuid.NewSHA1(ns, []byte(string(code)+"/1"))
		o := ev(code, schedT0.Add(-time.Duration(i)*time.Millisecond), order("SO-1", "10.00"))
		o.EventID = uuid.NewSHA1(ns, []byte(string(code)+"/2"))
		evs = append(evs, reg, o)
	}
	return evs, codes
}

// TestSchedulersRaceWithoutDuplicates: 300 customers are due; three
// schedulers advance them at the same time. Every label change, alert and
// alert message exists exactly once: the read models equal those one
// scheduler builds alone, on another database from the same log, and the
// three together claim exactly as many boundary instants as it does.
func TestSchedulersRaceWithoutDuplicates(t *testing.T) {
	t.Parallel()
	const customers = 300
	book := secondsRules(t, "2s", "4s")
	evs, codes := raceEnvelopes(customers)
	// Past every window boundary and every activity_dropped deadline.
	late := schedT0.Add(25 * time.Hour)
	setup := func() (*env, *projections.Projector) {
		e := newEnv(t, schedT0)
		proj, _ := e.withRules(book)
		e.record(schedT0, evs...)
		if _, err := proj.Apply(ctxT(t), streamIDs(codes...)); err != nil {
			t.Fatal(err)
		}
		e.clock.Set(late)
		return e, proj
	}
	// The clock steps 20 ms at a time across the 300 ms over which the
	// boundaries are spread (a few customers due per pass), then past the
	// long windows and deadlines.
	var passes []time.Time
	for at := schedT0.Add(1600 * time.Millisecond); at.Before(schedT0.Add(4100 * time.Millisecond)); at = at.Add(20 * time.Millisecond) {
		passes = append(passes, at)
	}
	passes = append(passes, late, late)

	single, sp := setup()
	one := projections.NewScheduler(sp, single.clock.Now, testenv.Logger(t), nil)
	alone := 0
	for _, at := range passes {
		alone += runDue(t, one, at)
	}
	if alone < customers {
		t.Fatalf("one scheduler claimed %d boundary instants of %d customers", alone, customers)
	}

	// Three schedulers race at every pass.
	raced, rp := setup()
	ctx := ctxT(t)
	scheds := make([]*projections.Scheduler, 3)
	for i := range scheds {
		scheds[i] = projections.NewScheduler(rp, raced.clock.Now, testenv.Logger(t), nil)
	}
	advanced := make([]int, len(scheds))
	contested := 0 // passes in which several schedulers claimed some
	for _, at := range passes {
		var wg sync.WaitGroup
		start := make(chan struct{})
		got := make([]int, len(scheds))
		for i, s := range scheds {
			wg.Go(func() {
				<-start
				n, err := s.RunDue(ctx, at)
				if err != nil {
					t.Errorf("scheduler %d at %s: %v", i, rfc(at), err)
				}
				got[i] = n
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		busy := 0
		for i := range got {
			advanced[i] += got[i]
			if got[i] > 0 {
				busy++
			}
		}
		if busy > 1 {
			contested++
		}
	}
	total := 0
	for _, n := range advanced {
		total += n
	}
	t.Logf("%d passes; the schedulers claimed %v boundary instants (%d in all, one scheduler alone %d); in %d passes several claimed some",
		len(passes), advanced, total, alone, contested)
	if total != alone {
		t.Errorf("three schedulers claimed %d boundary instants, one alone claims %d: an instant was claimed twice or skipped", total, alone)
	}
	var due int
	if err := raced.db.Pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE next_at <= $1", late).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if due != 0 || slices.Contains(advanced, 0) {
		t.Fatalf("%d customers still due; the schedulers advanced %v", due, advanced)
	}

	// Per customer: activity and segment drop at its boundary, lifecycle
	// lost at the long one; activity_dropped overdue and its escalation.
	if got, want := raced.count("label_changes"), single.count("label_changes"); got != want {
		t.Errorf("%d label changes, one scheduler alone makes %d", got, want)
	}
	var timeChanges, alerts, escalations int
	if err := raced.db.Pool.QueryRow(ctxT(t), `SELECT (SELECT count(*) FROM label_changes WHERE cause_kind = 'time'),
		(SELECT count(*) FROM alerts WHERE kind = 'activity_dropped' AND status = 'overdue'),
		(SELECT count(*) FROM alerts WHERE kind = 'followup_overdue')`).Scan(&timeChanges, &alerts, &escalations); err != nil {
		t.Fatal(err)
	}
	if timeChanges != 3*customers || alerts != customers || escalations != customers {
		t.Errorf("%d time changes, %d overdue activity_dropped, %d escalations; want %d, %d, %d",
			timeChanges, alerts, escalations, 3*customers, customers, customers)
	}
	for _, stream := range []string{projections.StreamAlerts, projections.StreamChanges} {
		r, s := raced.queued(stream), single.queued(stream)
		ids := map[string]int{}
		for _, m := range r {
			ids[m.msgID]++
			if ids[m.msgID] > 1 {
				t.Errorf("%s: message %s queued twice", stream, m.msgID)
			}
		}
		want := map[string]int{}
		for _, m := range s {
			want[m.msgID]++
		}
		if len(r) != len(s) || fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%s: %d messages queued by racing schedulers, %d by one", stream, len(r), len(s))
		}
	}
	// Byte for byte the same read models, but for the personal data, which
	// each database encrypted with its own random nonces.
	sealed := regexp.MustCompile(`enc:v1:[A-Za-z0-9+/=]+`)
	unseal := func(s snapshot) snapshot {
		for i, r := range s.projections {
			s.projections[i] = sealed.ReplaceAllString(r, "enc:v1:…")
		}
		s.documents = nil // the ciphertexts are in the bytes too
		return s
	}
	sameSnapshot(t, unseal(raced.snapshot()), unseal(single.snapshot()))
}

// TestSchedulerCatchesUpAfterDowntime: no scheduler ran for three days,
// across several boundaries and a deadline. On restart every change is
// recorded at its original instant, in instant order, and the alert's
// due_at counts from the change instant, not from the restart.
func TestSchedulerCatchesUpAfterDowntime(t *testing.T) {
	t.Parallel()
	book := secondsRules(t, "2s", "4s")
	const code = domain.CustomerCode("KH-DOWN-1")
	restart := schedT0.Add(72 * time.Hour)
	drop := schedT0.Add(3 * time.Second)
	due := drop.Add(24 * time.Hour)
	// setup records two orders (activity high) and projects them; then the
	// service is down until restart.
	setup := func(t *testing.T) (*env, *projections.Projector) {
		e := newEnv(t, schedT0)
		proj, _ := e.withRules(book)
		e.record(schedT0.Add(time.Second),
			ev(code, schedT0.Add(-time.Hour), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
			ev(code, schedT0, order("SO-1", "10.00")),
			ev(code, schedT0.Add(time.Second), order("SO-2", "10.00")))
		if _, err := proj.Apply(ctxT(t), streamIDs(code)); err != nil {
			t.Fatal(err)
		}
		sameInstant(t, "next_at", e.nextAt(code), schedT0.Add(2*time.Second))
		e.clock.Set(restart)
		return e, proj
	}
	check := func(t *testing.T, e *env) {
		t.Helper()
		tc := timeChanges(e.storedChanges(code))
		want := []string{
			"activity high→medium at " + rfc(schedT0.Add(2*time.Second)),
			"segment potential/high→potential/medium at " + rfc(schedT0.Add(2*time.Second)),
			"activity medium→low at " + rfc(drop),
			"segment potential/medium→potential/low at " + rfc(drop),
			"lifecycle customer→lost at " + rfc(schedT0.Add(5*time.Second)),
		}
		var got []string
		for i, c := range tc {
			got = append(got, fmt.Sprintf("%s %s→%s at %s", c.label, c.from, c.to, rfc(c.at)))
			if i > 0 && (c.at.Before(tc[i-1].at) || c.seq <= tc[i-1].seq) {
				t.Errorf("change %s recorded out of order after %s", c, tc[i-1])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("time changes\n  got  %s\n  want %s", strings.Join(got, "\n       "), strings.Join(want, "\n       "))
		}
		alerts := e.storedAlerts(code)
		if len(alerts) != 2 {
			t.Fatalf("alerts %v", alerts)
		}
		if d := alerts[0]; d.kind != domain.AlertActivityDropped || !d.created.Equal(drop) || d.due == nil || !d.due.Equal(due) || d.status != domain.AlertOverdue {
			t.Errorf("activity_dropped %v; want created %s, due %s (from the change, not the restart at %s), overdue", d, rfc(drop), rfc(due), rfc(restart))
		}
		if f := alerts[1]; f.kind != domain.AlertFollowUpOverdue || !f.created.Equal(due) || f.escalates == nil || *f.escalates != alerts[0].id {
			t.Errorf("escalation %v", f)
		}
		sameInstant(t, "next_at", e.nextAt(code), time.Time{})
		// The drop and its escalation are queued once each, in that order.
		msgs := e.queued(projections.StreamAlerts)
		if len(msgs) != 2 || msgs[0].msgID != alerts[0].id.String() || msgs[1].msgID != alerts[1].id.String() {
			t.Errorf("queued alert messages %+v", msgs)
		}
	}

	t.Run("RunDue at the restart instant", func(t *testing.T) {
		t.Parallel()
		e, proj := setup(t)
		s := projections.NewScheduler(proj, e.clock.Now, testenv.Logger(t), nil)
		if n := runDue(t, s, restart); n != 1 {
			t.Fatalf("RunDue advanced %d customers, want 1", n)
		}
		check(t, e)
		if n := runDue(t, s, restart); n != 0 {
			t.Errorf("a second pass advanced %d customers", n)
		}
	})
	t.Run("a restarted Run", func(t *testing.T) {
		t.Parallel()
		e, proj := setup(t)
		ctx, cancel := context.WithCancel(ctxT(t))
		done := make(chan error, 1)
		go func() { done <- projections.NewScheduler(proj, e.clock.Now, testenv.Logger(t), nil).Run(ctx) }()
		testenv.Eventually(t, time.Minute, "the restarted scheduler catches the customer up", func() bool {
			return len(e.storedAlerts(code)) == 2 && e.nextAt(code) == nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		check(t, e)
	})
}

// latencies records the scheduler's lateness measurements.
type latencies struct {
	mu sync.Mutex
	s  []float64
}

func (l *latencies) BoundaryLateness(s float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s = append(l.s, s)
}

func (l *latencies) all() []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.s)
}

// TestSchedulerRunPublishesAtTheBoundary runs the real pipeline on the real
// clock with a 2 s window: the scheduler (sleeping until the boundary,
// woken by NOTIFY), the SEGMENTS_ALERTS relay and NATS. The activity_dropped
// message arrives, the stored change instant is the boundary, and the delay
// between the boundary and the message's arrival is measured.
func TestSchedulerRunPublishesAtTheBoundary(t *testing.T) {
	t.Parallel()
	store, db := testenv.Store(t, time.Now)
	book := secondsRules(t, "2s", "4s")
	proj := projections.New(projections.Config{Pool: db.Pool, Rules: book, Logger: testenv.Logger(t)})
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	// What the stream stores, as a subscriber of alerts.> sees it.
	type arrival struct {
		msg jetstream.Msg
		at  time.Time
	}
	arrived := make(chan arrival, 64)
	cons, err := js.OrderedConsumer(ctx, projections.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{natsbus.SubjectAlerts}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { arrived <- arrival{m, time.Now()} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)

	var wg sync.WaitGroup
	lateness := &latencies{}
	relay := projections.NewRelay(db.Pool, natsbus.NewStreamSink(nc, js, projections.StreamAlerts), projections.StreamAlerts, testenv.Logger(t))
	sched := projections.NewScheduler(proj, time.Now, testenv.Logger(t), lateness)
	for name, run := range map[string]func(context.Context) error{"relay": relay.Run, "scheduler": sched.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	const code = domain.CustomerCode("KH-LIVE-1")
	ordered := time.Now().Truncate(time.Millisecond)
	_, err = store.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{
		ev(code, ordered.Add(-time.Hour), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
		ev(code, ordered, order("SO-1", "10.00")),
	}, Batch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proj.Apply(ctx, streamIDs(code)); err != nil {
		t.Fatal(err)
	}
	boundary := ordered.Add(2 * time.Second)
	applied := time.Now()
	if !applied.Before(boundary) {
		t.Logf("the order was projected %s after its boundary (slow machine); the scheduler catches up", applied.Sub(boundary))
	}

	var msg jetstream.Msg
	var at time.Time
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for msg == nil {
		select {
		case a := <-arrived:
			if strings.HasPrefix(a.msg.Subject(), "alerts.activity_dropped.") {
				msg, at = a.msg, a.at
			}
		case <-timeout.C:
			t.Fatalf("no activity_dropped alert within 30 s of the boundary %s", rfc(boundary))
		}
	}
	delay := at.Sub(boundary)
	t.Logf("activity_dropped arrived %s after its boundary (scheduler lateness %v s; relay polls every 100 ms)", delay, lateness.all())
	if delay < 0 {
		t.Errorf("the alert arrived %s before its boundary", -delay)
	}
	id := domain.AlertID(code, domain.AlertActivityDropped, boundary)
	if got := msg.Headers().Get("Nats-Msg-Id"); got != id.String() {
		t.Errorf("Nats-Msg-Id %q, want %s", got, id)
	}
	var doc projections.AlertDocument
	if err := json.Unmarshal(msg.Data(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AlertID != id || doc.CreatedAt != rfc(boundary) || doc.DueAt == nil || *doc.DueAt != rfc(boundary.Add(24*time.Hour)) ||
		doc.From != "medium" || doc.To != "low" || doc.Owner != "王经理" || doc.Status != domain.AlertOpen {
		t.Errorf("message %s", msg.Data())
	}
	// The stored change instant is the boundary, not the moment the
	// scheduler ran.
	var changeAt time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT at FROM label_changes WHERE stream_id = $1 AND label = 'activity' AND to_value = 'low' AND cause_kind = 'time'`,
		code.StreamID()).Scan(&changeAt); err != nil {
		t.Fatal(err)
	}
	if !changeAt.Equal(boundary) {
		t.Errorf("stored change instant %s, want the boundary %s", rfc(changeAt), rfc(boundary))
	}
	// The lifecycle boundary (4 s) is passed too, at its instant; it raises
	// no alert. The next boundary is then the alert's deadline.
	testenv.Eventually(t, 30*time.Second, "the long-window boundary passed", func() bool {
		var next *time.Time
		err := db.Pool.QueryRow(ctx, "SELECT next_at FROM customer_projections WHERE stream_id = $1", code.StreamID()).Scan(&next)
		return err == nil && next != nil && next.Equal(boundary.Add(24*time.Hour))
	})
	var lostAt time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT at FROM label_changes WHERE stream_id = $1 AND label = 'lifecycle' AND to_value = 'lost'`,
		code.StreamID()).Scan(&lostAt); err != nil || !lostAt.Equal(ordered.Add(4*time.Second)) {
		t.Errorf("lifecycle lost at %v (%v), want %s", lostAt, err, rfc(ordered.Add(4*time.Second)))
	}
	info, err := js.Stream(ctx, projections.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the outbox is empty", func() bool {
		var n int
		return db.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE stream = $1", projections.StreamAlerts).Scan(&n) == nil && n == 0
	})
	si, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 1 {
		t.Errorf("SEGMENTS_ALERTS holds %d messages, want 1", si.State.Msgs)
	}
	select {
	case a := <-arrived:
		t.Errorf("a second alert message: %s %s", a.msg.Subject(), a.msg.Data())
	default:
	}
}

// A sleeping scheduler ignores announcements of boundaries at or after the
// one it waits for, but wakes for an earlier one: customer A's boundary is
// 30 s away when B, back-dated, brings one 2 s away.
func TestSchedulerWakesForAnEarlierAnnouncedBoundary(t *testing.T) {
	t.Parallel()
	store, db := testenv.Store(t, time.Now)
	book := secondsRules(t, "30s", "60s")
	proj := projections.New(projections.Config{Pool: db.Pool, Rules: book, Logger: testenv.Logger(t)})
	ctx, cancel := context.WithCancel(ctxT(t))
	var wg sync.WaitGroup
	sched := projections.NewScheduler(proj, time.Now, testenv.Logger(t), nil)
	wg.Go(func() {
		if err := sched.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("scheduler: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	record := func(code domain.CustomerCode, ordered time.Time) {
		t.Helper()
		if _, err := store.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{
			ev(code, ordered.Add(-time.Hour), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
			ev(code, ordered, order("SO-1", "10.00")),
		}, Batch: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := proj.Apply(ctx, streamIDs(code)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Millisecond)
	farBoundary := now.Add(30 * time.Second)
	record("KH-FAR", now)
	// Announcements later than the scheduler's target change nothing...
	record("KH-LATER", now.Add(5*time.Second))
	// ...an earlier one re-arms it.
	record("KH-NEAR", now.Add(-28*time.Second))
	nearBoundary := now.Add(2 * time.Second)

	var changeAt time.Time
	testenv.Eventually(t, 25*time.Second, "KH-NEAR's activity drop recorded", func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT at FROM label_changes WHERE stream_id = $1 AND label = 'activity' AND to_value = 'low' AND cause_kind = 'time'`,
			domain.CustomerCode("KH-NEAR").StreamID()).Scan(&changeAt)
		return err == nil
	})
	if seen := time.Now(); !seen.Before(farBoundary) {
		t.Fatalf("KH-NEAR was advanced only at %s, after KH-FAR's boundary %s: the scheduler slept through the earlier announcement", rfc(seen), rfc(farBoundary))
	}
	if !changeAt.Equal(nearBoundary) {
		t.Errorf("stored change instant %s, want the boundary %s", rfc(changeAt), rfc(nearBoundary))
	}
	var farChanges int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM label_changes WHERE stream_id = $1 AND cause_kind = 'time'`,
		domain.CustomerCode("KH-FAR").StreamID()).Scan(&farChanges); err != nil || farChanges != 0 {
		t.Errorf("KH-FAR has %d time-caused changes before its boundary (err %v)", farChanges, err)
	}
}
