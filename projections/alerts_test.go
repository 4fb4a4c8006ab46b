package projections_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// alertsT0 is the start of the alert listing scenarios (a Monday).
var alertsT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, cst)

// alertCustomer is customer i of the listing scenario: its code, owner and
// the kind of alert its events raise.
func alertCustomer(i int) (domain.CustomerCode, string, string) {
	code := domain.CustomerCode(fmt.Sprintf("KH-AL-%04d", i))
	owner := ownerNames[i%len(ownerNames)]
	return code, owner, []string{domain.AlertDataIncomplete, domain.AlertValueTierChanged, domain.AlertChurnRisk}[i%3]
}

// alertEvents are customer i's events, recorded at at: an incomplete
// registration (data_incomplete), a first order of 150,000 (value tier
// potential → regular) or an old order and a low score (churn_risk).
func alertEvents(i int, at time.Time) []domain.Envelope {
	code, owner, kind := alertCustomer(i)
	reg := fullProfile("客户"+string(code), owner, "李明", "13812345678", "li.ming@example.com")
	switch kind {
	case domain.AlertDataIncomplete:
		reg.Industry = nil
		return []domain.Envelope{ev(code, at.Add(-time.Hour), reg)}
	case domain.AlertValueTierChanged:
		return []domain.Envelope{ev(code, at.Add(-time.Hour), reg), ev(code, at, order("SO-1", "150000.00"))}
	default:
		return []domain.Envelope{ev(code, at.Add(-time.Hour), reg), ev(code, at.Add(-200*day), order("SO-1", "10.00")), ev(code, at, rated(2))}
	}
}

// recordAlertCustomers records customers from..to-1, four per request (so
// four alerts share each created_at), 10 minutes apart from start, and
// projects them.
func recordAlertCustomers(e *env, from, to int, start time.Time) {
	e.t.Helper()
	var codes []domain.CustomerCode
	for i := from; i < to; i += 4 {
		at := start.Add(time.Duration(i-from) / 4 * 10 * time.Minute)
		var evs []domain.Envelope
		for j := i; j < min(i+4, to); j++ {
			evs = append(evs, alertEvents(j, at)...)
			code, _, _ := alertCustomer(j)
			codes = append(codes, code)
		}
		e.record(at, evs...)
	}
	e.apply(codes...)
}

// listAll pages through Alerts with the filter and page size and returns
// every document and the number of pages.
func listAll(t testing.TB, q *projections.Queries, f projections.AlertFilter) ([]projections.AlertDocument, int) {
	t.Helper()
	var all []projections.AlertDocument
	pages := 0
	for {
		page, next, err := q.Alerts(ctxT(t), f)
		if err != nil {
			t.Fatalf("Alerts(%+v): %v", f, err)
		}
		pages++
		if len(page) > f.Limit {
			t.Fatalf("page of %d alerts with limit %d", len(page), f.Limit)
		}
		all = append(all, page...)
		if next == "" {
			return all, pages
		}
		if len(page) != f.Limit {
			t.Fatalf("a short page (%d of %d) with a next cursor", len(page), f.Limit)
		}
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		f.Cursor = next
	}
}

func parseRFC(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

// checkNewestFirst: created_at descending, ties by alert_id descending.
func checkNewestFirst(t testing.TB, docs []projections.AlertDocument) {
	t.Helper()
	for i := 1; i < len(docs); i++ {
		a, b := parseRFC(t, docs[i-1].CreatedAt), parseRFC(t, docs[i].CreatedAt)
		if a.Before(b) || (a.Equal(b) && docs[i-1].AlertID.String() <= docs[i].AlertID.String()) {
			t.Fatalf("alerts %d and %d out of order: %s %v, %s %v", i-1, i, docs[i-1].CreatedAt, docs[i-1].AlertID, docs[i].CreatedAt, docs[i].AlertID)
		}
	}
}

func TestAlertsListing(t *testing.T) {
	t.Parallel()
	const customers = 120
	e := newEnv(t, alertsT0)
	recordAlertCustomers(e, 0, customers, alertsT0)
	if n := e.count("alerts"); n != customers {
		t.Fatalf("%d alerts, want one per customer (%d)", n, customers)
	}
	rs := e.proj.Rules().Latest()

	// Everything, newest first, in one page.
	all, pages := listAll(t, e.q, projections.AlertFilter{Limit: 500})
	if len(all) != customers || pages != 1 {
		t.Fatalf("%d alerts in %d pages", len(all), pages)
	}
	checkNewestFirst(t, all)
	if c := all[len(all)-1]; c.CreatedAt != rfc(alertsT0) || all[0].CreatedAt != rfc(alertsT0.Add(29*10*time.Minute)) {
		t.Errorf("oldest %s, newest %s", c.CreatedAt, all[0].CreatedAt)
	}
	byID := map[uuid.UUID]projections.AlertDocument{}
	for _, d := range all {
		byID[d.AlertID] = d
		created := parseRFC(t, d.CreatedAt)
		if d.AlertID != domain.AlertID(domain.CustomerCode(d.Customer), d.Kind, created) {
			t.Errorf("%s: id %v is not AlertID(customer, kind, created_at)", d.Customer, d.AlertID)
		}
		wantStatus := domain.AlertOpen
		if d.Kind == domain.AlertValueTierChanged {
			wantStatus = domain.AlertInfo
		}
		if d.Status != wantStatus || d.ResolvedAt != nil || d.Playbook != rs.Alerts[d.Kind].Playbook || d.Display != rs.Alerts[d.Kind].Display || d.Reason == "" {
			t.Errorf("%s: %+v", d.Customer, d)
		}
		switch d.Kind {
		case domain.AlertValueTierChanged:
			if d.DueAt != nil || d.From != "potential" || d.To != "regular" {
				t.Errorf("value_tier_changed %+v", d)
			}
		case domain.AlertChurnRisk:
			if d.DueAt == nil || *d.DueAt != rfc(created.Add(24*time.Hour)) {
				t.Errorf("churn_risk due %v, created %s", d.DueAt, d.CreatedAt)
			}
		case domain.AlertDataIncomplete:
			if d.DueAt == nil || *d.DueAt != rfc(rs.AddBusinessDays(created, 3)) {
				t.Errorf("data_incomplete due %v, created %s", d.DueAt, d.CreatedAt)
			}
		}
	}

	// Keyset pagination, 50 at a time: 50, 50, 20; each alert exactly once,
	// in the same order as the single page.
	paged, pages := listAll(t, e.q, projections.AlertFilter{Limit: 50})
	if pages != 3 || len(paged) != customers {
		t.Fatalf("%d alerts in %d pages, want %d in 3", len(paged), pages, customers)
	}
	for i := range paged {
		if paged[i].AlertID != all[i].AlertID {
			t.Fatalf("paged alert %d is %v, want %v", i, paged[i].AlertID, all[i].AlertID)
		}
	}
	// Page sizes that split the groups of equal created_at.
	for _, limit := range []int{1, 3, 7, 119, 120, 121} {
		got, pages := listAll(t, e.q, projections.AlertFilter{Limit: limit})
		seen := map[uuid.UUID]int{}
		for _, d := range got {
			seen[d.AlertID]++
		}
		if len(got) != customers || len(seen) != customers || pages != (customers+limit-1)/limit {
			t.Errorf("limit %d: %d alerts (%d distinct) in %d pages", limit, len(got), len(seen), pages)
		}
	}

	// A page, then newer alerts, then the next page: keyset pagination goes
	// on where it was, without repeating or skipping anything.
	first, next, err := e.q.Alerts(ctxT(t), projections.AlertFilter{Limit: 50})
	if err != nil || next == "" {
		t.Fatalf("first page: %d, %q, %v", len(first), next, err)
	}
	recordAlertCustomers(e, customers, customers+8, alertsT0.Add(24*time.Hour))
	rest, _ := listAll(t, e.q, projections.AlertFilter{Limit: 50, Cursor: next})
	if len(first)+len(rest) != customers {
		t.Errorf("after newer alerts: %d + %d alerts, want %d", len(first), len(rest), customers)
	}
	for i, d := range append(first, rest...) {
		if d.AlertID != all[i].AlertID {
			t.Fatalf("alert %d is %v, want %v", i, d.AlertID, all[i].AlertID)
		}
	}

	// Filters, each paged.
	total := customers + 8
	count := func(f func(i int) bool) int {
		n := 0
		for i := range total {
			if f(i) {
				n++
			}
		}
		return n
	}
	for _, kind := range []string{domain.AlertDataIncomplete, domain.AlertValueTierChanged, domain.AlertChurnRisk} {
		got, _ := listAll(t, e.q, projections.AlertFilter{Kind: kind, Limit: 7})
		checkNewestFirst(t, got)
		if want := count(func(i int) bool { _, _, k := alertCustomer(i); return k == kind }); len(got) != want {
			t.Errorf("kind %s: %d alerts, want %d", kind, len(got), want)
		}
		for _, d := range got {
			if d.Kind != kind {
				t.Errorf("kind %s: got a %s alert", kind, d.Kind)
			}
		}
	}
	for _, owner := range ownerNames {
		got, _ := listAll(t, e.q, projections.AlertFilter{Owner: owner, Limit: 10})
		checkNewestFirst(t, got)
		if want := count(func(i int) bool { _, o, _ := alertCustomer(i); return o == owner }); len(got) != want || want == 0 {
			t.Errorf("owner %s: %d alerts, want %d", owner, len(got), want)
		}
		for _, d := range got {
			if d.Owner != owner {
				t.Errorf("owner %s: got %s's alert", owner, d.Owner)
			}
		}
	}
	code, owner, kind := alertCustomer(5)
	if got, _ := listAll(t, e.q, projections.AlertFilter{Customer: code, Limit: 10}); len(got) != 1 || got[0].Customer != string(code) || got[0].Kind != kind {
		t.Errorf("customer %s: %+v", code, got)
	}
	if got, _ := listAll(t, e.q, projections.AlertFilter{Customer: code, Owner: owner, Kind: kind, Status: domain.AlertOpen, Limit: 10}); len(got) != 1 {
		t.Errorf("every filter at once: %+v", got)
	}
	if got, _ := listAll(t, e.q, projections.AlertFilter{Customer: code, Kind: domain.AlertFollowUpOverdue, Limit: 10}); len(got) != 0 {
		t.Errorf("customer and another kind: %+v", got)
	}
	if got, _ := listAll(t, e.q, projections.AlertFilter{Customer: "KH-NOBODY", Limit: 10}); len(got) != 0 {
		t.Errorf("unknown customer: %+v", got)
	}

	// Statuses: follow-ups resolve three data_incomplete alerts (value-tier
	// alerts are info, no task: a follow-up leaves them); past every
	// churn_risk deadline the scheduler marks them overdue and escalates.
	var resolvedCodes []domain.CustomerCode
	var follow []domain.Envelope
	for _, i := range []int{0, 3, 6} {
		c, o, _ := alertCustomer(i)
		resolvedCodes = append(resolvedCodes, c)
		follow = append(follow, ev(c, time.Time{}, &domain.FollowUpLogged{By: o, Channel: "电话", Summary: "回访", Outcome: "已沟通"}))
	}
	// Tuesday 15:00: past every churn_risk deadline of the first 120 (24 h
	// after Monday 09:00–13:50), before any data_incomplete one (3 business
	// days: Thursday) and the later customers' churn_risk ones (Wednesday).
	later := alertsT0.Add(30 * time.Hour)
	e.record(later, follow...)
	// Without a cache the alerts come from the stored documents, which keep
	// no texts: the updates must leave the raised alerts' texts alone.
	nocache := projections.New(projections.Config{Pool: e.db.Pool, Logger: testenv.Logger(t), Now: e.clock.Now, ProjectionCache: -1})
	if _, err := nocache.Apply(ctxT(t), streamIDs(resolvedCodes...)); err != nil {
		t.Fatal(err)
	}
	drainDue(t, projections.NewScheduler(nocache, e.clock.Now, testenv.Logger(t), nil), later)
	churn := count(func(i int) bool { _, _, k := alertCustomer(i); return k == domain.AlertChurnRisk && i < customers })
	if churn != 40 {
		t.Fatalf("%d churn customers", churn)
	}
	info := count(func(i int) bool { _, _, k := alertCustomer(i); return k == domain.AlertValueTierChanged })
	for status, want := range map[string]int{
		domain.AlertResolved: 3,
		domain.AlertOverdue:  churn,
		domain.AlertInfo:     info,
		// The others, plus one escalation per overdue alert.
		domain.AlertOpen: (total - 3 - churn - info) + churn,
	} {
		got, _ := listAll(t, e.q, projections.AlertFilter{Status: status, Limit: 50})
		checkNewestFirst(t, got)
		if len(got) != want {
			t.Errorf("status %s: %d alerts, want %d", status, len(got), want)
		}
		for _, d := range got {
			if d.Status != status || (status == domain.AlertResolved) != (d.ResolvedAt != nil) {
				t.Errorf("status %s: %+v", status, d)
			}
			if status == domain.AlertResolved && (*d.ResolvedAt != rfc(later) || !slices.Contains(resolvedCodes, domain.CustomerCode(d.Customer))) {
				t.Errorf("resolved %+v", d)
			}
			if orig, ok := byID[d.AlertID]; ok && (d.Reason != orig.Reason || d.ReasonEN != orig.ReasonEN || d.Playbook != orig.Playbook || d.Reason == "" || d.Playbook == "") {
				t.Errorf("status %s: texts changed from %q / %q / %q to %q / %q / %q", status, orig.Reason, orig.ReasonEN, orig.Playbook, d.Reason, d.ReasonEN, d.Playbook)
			}
		}
	}
	esc, _ := listAll(t, e.q, projections.AlertFilter{Kind: domain.AlertFollowUpOverdue, Limit: 50})
	if len(esc) != churn {
		t.Errorf("%d escalations, want %d", len(esc), churn)
	}
	for _, d := range esc {
		orig, ok := byID[*d.Escalates]
		if d.Escalates == nil || !ok || orig.DueAt == nil || d.CreatedAt != *orig.DueAt || d.Customer != orig.Customer {
			t.Errorf("escalation %+v of %+v", d, orig)
		}
	}
}

func TestAlertsBadCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, alertsT0)
	recordAlertCustomers(e, 0, 3, alertsT0)
	enc := base64.RawURLEncoding.EncodeToString
	for _, c := range []string{
		"not a cursor!",
		"%%%",
		enc([]byte("garbage")),
		enc([]byte("2026-03-02T01:00:00Z|not-a-uuid")),
		enc([]byte("yesterday|" + uuid.NewString())),
		base64.StdEncoding.EncodeToString([]byte("2026-03-02T01:00:00Z|" + uuid.NewString() + "?")),
	} {
		docs, next, err := e.q.Alerts(ctxT(t), projections.AlertFilter{Limit: 10, Cursor: c})
		if !errors.Is(err, projections.ErrBadCursor) || docs != nil || next != "" {
			t.Errorf("cursor %q: %d alerts, next %q, err %v; want ErrBadCursor", c, len(docs), next, err)
		}
	}
	// A well-formed cursor this API could have issued works.
	docs, _, err := e.q.Alerts(ctxT(t), projections.AlertFilter{Limit: 10, Cursor: enc([]byte(alertsT0.Add(time.Hour).UTC().Format(time.RFC3339Nano) + "|" + uuid.Nil.String()))})
	if err != nil || len(docs) != 3 {
		t.Errorf("a valid cursor: %d alerts, %v", len(docs), err)
	}
	// No limit: a default page, not an empty one.
	docs, next, err := e.q.Alerts(ctxT(t), projections.AlertFilter{})
	if err != nil || len(docs) != 3 || next != "" {
		t.Errorf("no limit: %d alerts, next %q, %v", len(docs), next, err)
	}
}

// TestAlertsRebuild: a rebuild from the log re-creates every alert with the
// same id, status, instants and resolution — those raised by events and
// those the scheduler raised at deadlines after the last events — and
// queues none of them for publication again.
func TestAlertsRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, alertsT0)
	recordAlertCustomers(e, 0, 30, alertsT0)
	// Resolve some by follow-ups naming the alert, some by occurred_at;
	// raise more by events after them (the resolved value-tier alert lets
	// the next tier change raise a new one).
	later := alertsT0.Add(3 * time.Hour)
	var evs []domain.Envelope
	var codes []domain.CustomerCode
	for _, i := range []int{0, 1, 2, 3, 4, 5} {
		c, o, kind := alertCustomer(i)
		codes = append(codes, c)
		at := alertsT0.Add(time.Duration(i/4) * 10 * time.Minute)
		f := &domain.FollowUpLogged{By: o, Channel: "电话", Summary: "回访"}
		if i%2 == 0 {
			id := domain.AlertID(c, kind, at)
			f.AlertID = &id
		}
		evs = append(evs, ev(c, later.Add(-time.Minute), f))
		if kind == domain.AlertValueTierChanged {
			evs = append(evs, ev(c, later, order("SO-2", "400000.00")))
		}
	}
	// Act on four churn_risk alerts (due 24 h after raised): snooze one past
	// its deadline (escalated when the snooze ends), acknowledge one, assign
	// one, and clear one's condition with a good score.
	churnAlert := func(i int) (domain.CustomerCode, uuid.UUID, time.Time) {
		c, _, kind := alertCustomer(i)
		at := alertsT0.Add(time.Duration(i/4) * 10 * time.Minute)
		return c, domain.AlertID(c, kind, at), at
	}
	snoozedCode, snoozedID, snoozedAt := churnAlert(8)
	snoozeEnd := snoozedAt.Add(40 * time.Hour)
	ackCode, ackID, _ := churnAlert(11)
	assignCode, assignID, _ := churnAlert(14)
	clearCode, clearID, _ := churnAlert(17)
	evs = append(evs,
		ev(snoozedCode, later, &domain.AlertSnoozed{AlertID: snoozedID, Until: snoozeEnd, By: "王经理"}),
		ev(ackCode, later, &domain.AlertAcknowledged{AlertID: ackID, By: "王经理"}),
		ev(assignCode, later, &domain.AlertAssigned{AlertID: assignID, To: "组员甲", By: "组长"}),
		ev(clearCode, later, rated(5)))
	codes = append(codes, snoozedCode, ackCode, assignCode, clearCode)
	e.record(later, evs...)
	e.apply(codes...)
	// Wednesday 11:00: the scheduler has passed the open churn_risk
	// deadlines (Tuesday): overdue, with escalations created at the due
	// instants, after the customers' last events.
	e.clock.Set(alertsT0.Add(50 * time.Hour))
	drainDue(t, projections.NewScheduler(e.proj, e.clock.Now, testenv.Logger(t), nil), e.clock.Now())
	if _, err := e.db.Pool.Exec(ctxT(t), "DELETE FROM outbox"); err != nil { // as if relayed
		t.Fatal(err)
	}
	live := e.snapshot()
	statuses := map[string]int{}
	listed, _ := listAll(t, e.q, projections.AlertFilter{Limit: 500})
	for _, d := range listed {
		statuses[d.Kind+"/"+d.Status]++
	}
	// The follow-ups leave the value-tier alerts (info) alone; the later
	// tier changes supersede them.
	if statuses["value_tier_changed/superseded"] != 2 || statuses["data_incomplete/resolved"] != 2 || statuses["churn_risk/resolved"] != 3 ||
		statuses["value_tier_changed/info"] != 10 || statuses["churn_risk/overdue"] != 7 || statuses["followup_overdue/open"] != 7 {
		t.Fatalf("alerts before the rebuild: %v", statuses)
	}
	byID := map[uuid.UUID]projections.AlertDocument{}
	for _, d := range listed {
		byID[d.AlertID] = d
	}
	if d := byID[snoozedID]; d.Status != domain.AlertOverdue || d.EscalatedAt == nil || *d.EscalatedAt != rfc(snoozeEnd) ||
		byID[domain.EscalationID(snoozedID)].CreatedAt != rfc(snoozeEnd) {
		t.Errorf("snoozed past its deadline: %+v, escalation %+v", d, byID[domain.EscalationID(snoozedID)])
	}
	if d := byID[ackID]; d.Status != domain.AlertOverdue || d.AcknowledgedAt == nil || *d.AcknowledgedAt != rfc(later) || d.EscalatedAt == nil || *d.EscalatedAt != *d.DueAt {
		t.Errorf("acknowledged: %+v", d)
	}
	if d, esc := byID[assignID], byID[domain.EscalationID(assignID)]; d.Owner != "组员甲" || esc.Owner != "组员甲" {
		t.Errorf("assigned: %+v, escalation %+v", d, esc)
	}
	if d := byID[clearID]; d.Status != domain.AlertResolved || d.Resolution == nil || *d.Resolution != domain.ResolutionConditionCleared || *d.ResolvedAt != rfc(later) {
		t.Errorf("condition cleared: %+v", d)
	}

	// The rebuild passes every boundary up to now, as the scheduler did: its
	// projector runs on the test's clock.
	rebuilder := projections.New(projections.Config{Pool: e.db.Pool, Logger: testenv.Logger(t), Now: e.clock.Now})
	st, err := rebuilder.Rebuild(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.NewChanges != 0 {
		t.Errorf("the rebuild found %d new label changes", st.NewChanges)
	}
	sameRows(t, "alerts", e.snapshot().alerts, live.alerts)
	sameSnapshot(t, e.snapshot(), live)
	if n := e.count("outbox"); n != 0 {
		t.Errorf("the rebuild queued %d messages: %v", n, e.queued(projections.StreamAlerts))
	}
	// Rebuilding again changes and publishes nothing either.
	if _, err := rebuilder.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.count("outbox"); n != 0 {
		t.Errorf("the second rebuild queued %d messages", n)
	}
	sameSnapshot(t, e.snapshot(), live)
}

func TestActionableAlertsAreTheOpenOnesOldestFirstWithoutInformationalAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, alertsT0)
	recordAlertCustomers(e, 0, 12, alertsT0)
	got, err := e.q.ActionableAlerts(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("%d actionable alerts, want 8 (12 minus the 4 value_tier_changed)", len(got))
	}
	for i, d := range got {
		if d.Status != domain.AlertOpen || d.Kind == domain.AlertValueTierChanged {
			t.Errorf("actionable alert %d: %s %s", i, d.Kind, d.Status)
		}
		if i > 0 && got[i-1].CreatedAt > d.CreatedAt {
			t.Errorf("alert %d created %s before its predecessor %s", i, d.CreatedAt, got[i-1].CreatedAt)
		}
	}
}
