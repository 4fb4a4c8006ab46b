package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// lastStates is the last update of each alert, by id.
func lastStates(updates []domain.Alert) map[uuid.UUID]domain.Alert {
	out := map[uuid.UUID]domain.Alert{}
	for _, a := range updates {
		out[a.ID] = a
	}
	return out
}

func TestNewerChangeOfAKindSupersedesTheKeptAlert(t *testing.T) {
	// The example: potential → key, then key → strategic; the
	// worklist must show the latest change, not the first.
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	evs := withProfile(
		order(t1, "SO-1", "150,000.00"),                  // potential → regular
		order(t1.AddDate(0, 0, 1), "SO-2", "400,000.00"), // regular → key
		order(t1.AddDate(0, 0, 2), "SO-3", "500,000.00"), // key → strategic
	)
	var p domain.Projection
	_, got := playAlerts(b, &p, recorded(testCode, evs), t1.AddDate(0, 0, 3))
	ids := []uuid.UUID{
		domain.AlertID(testCode, domain.AlertValueTierChanged, t1),
		domain.AlertID(testCode, domain.AlertValueTierChanged, t1.AddDate(0, 0, 1)),
		domain.AlertID(testCode, domain.AlertValueTierChanged, t1.AddDate(0, 0, 2)),
	}
	last := lastStates(got)
	for i, id := range ids[:2] {
		a := last[id]
		if a.Status != domain.AlertSuperseded || a.SupersededBy != ids[i+1] || !a.ResolvedAt.Equal(last[ids[i+1]].CreatedAt) {
			t.Errorf("alert %d: %s superseded_by %v at %v, want superseded by %v", i, alertString(a), a.SupersededBy, a.ResolvedAt, ids[i+1])
		}
	}
	if a := last[ids[2]]; a.Status != domain.AlertInfo || a.From != "key" || a.To != "strategic" {
		t.Errorf("latest %s", alertString(a))
	}
	if len(p.Alerts) != 1 || p.Alerts[0].ID != ids[2] {
		t.Errorf("kept %v, want only the latest change", alertStrings(p.Alerts))
	}
	if !b.NextInstant(&p).IsZero() && b.NextInstant(&p).Before(t1.AddDate(0, 3, 0)) {
		t.Errorf("an info alert announced an instant: %v", b.NextInstant(&p))
	}
}

func TestAlertLifecycle(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	b3 := t1.AddDate(0, 3, 0) // the order leaves the 3-month window: activity_dropped
	due := b3.Add(24 * time.Hour)
	drop := domain.AlertID(testCode, domain.AlertActivityDropped, b3)
	ack := func(at time.Time) ev { return ev{at: at, data: &domain.AlertAcknowledged{AlertID: drop, By: "王磊"}} }
	snooze := func(at, until time.Time) ev {
		return ev{at: at, data: &domain.AlertSnoozed{AlertID: drop, Until: until, By: "王磊"}}
	}
	follow := func(at time.Time) ev { return ev{at: at, data: &domain.FollowUpLogged{By: "王磊", AlertID: &drop}} }
	type want struct {
		status, resolution, owner string
		escalatedAt               time.Time // zero: never escalated
		resolvedAt                time.Time
		acknowledgedAt            time.Time
	}
	cases := []struct {
		name    string
		actions []ev
		until   time.Time
		want    want
	}{
		{name: "nothing done: overdue and escalated at due_at", until: due.Add(time.Hour),
			want: want{status: domain.AlertOverdue, escalatedAt: due}},
		{name: "acknowledged: still escalated at due_at", actions: []ev{ack(b3.Add(time.Hour))}, until: due.Add(time.Hour),
			want: want{status: domain.AlertOverdue, escalatedAt: due, acknowledgedAt: b3.Add(time.Hour)}},
		{name: "acknowledged before due: acknowledged", actions: []ev{ack(b3.Add(time.Hour))}, until: due.Add(-time.Hour),
			want: want{status: domain.AlertStatusAcknowledged, acknowledgedAt: b3.Add(time.Hour)}},
		{name: "snoozed past due_at: escalated when the snooze ends", actions: []ev{snooze(b3.Add(time.Hour), b3.Add(48*time.Hour))},
			until: b3.Add(49 * time.Hour), want: want{status: domain.AlertOverdue, escalatedAt: b3.Add(48 * time.Hour)}},
		{name: "still snoozed after due_at: not overdue", actions: []ev{snooze(b3.Add(time.Hour), b3.Add(48*time.Hour))},
			until: b3.Add(47 * time.Hour), want: want{status: domain.AlertStatusSnoozed}},
		{name: "a snooze ending before due_at wakes it open; escalated at due_at", actions: []ev{snooze(b3.Add(time.Hour), b3.Add(5*time.Hour))},
			until: due.Add(time.Hour), want: want{status: domain.AlertOverdue, escalatedAt: due}},
		{name: "acknowledged then snoozed: wakes acknowledged",
			actions: []ev{ack(b3.Add(time.Hour)), snooze(b3.Add(2*time.Hour), b3.Add(5*time.Hour))},
			until:   b3.Add(6 * time.Hour), want: want{status: domain.AlertStatusAcknowledged, acknowledgedAt: b3.Add(time.Hour)}},
		{name: "a snoozed overdue alert wakes overdue and is not escalated again",
			actions: []ev{snooze(due.Add(time.Hour), due.Add(10*time.Hour))},
			until:   due.Add(11 * time.Hour), want: want{status: domain.AlertOverdue, escalatedAt: due}},
		{name: "followed up while snoozed: resolved, never escalated",
			actions: []ev{snooze(b3.Add(time.Hour), b3.Add(48*time.Hour)), follow(b3.Add(3 * time.Hour))},
			until:   b3.Add(72 * time.Hour), want: want{status: domain.AlertResolved, resolution: domain.ResolutionFollowedUp, resolvedAt: b3.Add(3 * time.Hour)}},
		{name: "assigned: the assignee owns it and its escalation",
			actions: []ev{{at: b3.Add(time.Hour), data: &domain.AlertAssigned{AlertID: drop, To: "赵六", By: "组长"}}},
			until:   due.Add(time.Hour), want: want{status: domain.AlertOverdue, escalatedAt: due, owner: "赵六"}},
		{name: "condition cleared: a new order brings activity back to medium",
			actions: []ev{order(b3.Add(2*time.Hour), "SO-2", "10.00")},
			until:   due.Add(time.Hour), want: want{status: domain.AlertResolved, resolution: domain.ResolutionConditionCleared, resolvedAt: b3.Add(2 * time.Hour)}},
		{name: "condition cleared after the deadline closes the escalation too",
			actions: []ev{order(due.Add(2*time.Hour), "SO-2", "10.00")},
			until:   due.Add(3 * time.Hour), want: want{status: domain.AlertResolved, resolution: domain.ResolutionConditionCleared, resolvedAt: due.Add(2 * time.Hour), escalatedAt: due}},
		{name: "an action on a resolved alert changes nothing",
			actions: []ev{follow(b3.Add(time.Hour)), ack(b3.Add(2 * time.Hour)), snooze(b3.Add(3*time.Hour), b3.Add(48*time.Hour))},
			until:   b3.Add(72 * time.Hour), want: want{status: domain.AlertResolved, resolution: domain.ResolutionFollowedUp, resolvedAt: b3.Add(time.Hour)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := append(withProfile(order(t1, "SO-1", "10.00")), c.actions...)
			var p domain.Projection
			_, got := playAlerts(b, &p, recorded(testCode, evs), c.until)
			last := lastStates(got)
			a, ok := last[drop]
			if !ok {
				t.Fatalf("no activity_dropped alert: %v", alertStrings(got))
			}
			w := c.want
			if w.owner == "" {
				w.owner = "王磊"
			}
			if a.Status != w.status || a.Resolution != w.resolution || a.Owner != w.owner || !a.EscalatedAt.Equal(w.escalatedAt) ||
				!a.ResolvedAt.Equal(w.resolvedAt) || !a.AcknowledgedAt.Equal(w.acknowledgedAt) {
				t.Errorf("alert %s resolution %q escalated %v resolved %v acknowledged %v, want %+v",
					alertString(a), a.Resolution, a.EscalatedAt, a.ResolvedAt, a.AcknowledgedAt, w)
			}
			// The escalation exists exactly when the alert was escalated, at
			// that instant, owned by the alert's owner, and closes with it.
			esc, escalated := last[domain.EscalationID(drop)]
			switch {
			case escalated != !w.escalatedAt.IsZero():
				t.Errorf("escalation %v, want one: %v", alertString(esc), !w.escalatedAt.IsZero())
			case escalated && (!esc.CreatedAt.Equal(w.escalatedAt) || esc.Escalates != drop || esc.Owner != w.owner):
				t.Errorf("escalation %s escalates %v", alertString(esc), esc.Escalates)
			case escalated && a.Closed() && (esc.Status != a.Status || esc.Resolution != a.Resolution):
				t.Errorf("escalation %s (%s) not closed with its alert", alertString(esc), esc.Resolution)
			}
			escalations := 0
			for _, u := range got {
				if u.Kind == domain.AlertFollowUpOverdue && u.Raised {
					escalations++
				}
			}
			if escalations > 1 {
				t.Errorf("escalated %d times", escalations)
			}
			// Kept alerts are exactly the unresolved ones.
			for _, k := range p.Alerts {
				if !k.Unresolved() && k.Status != domain.AlertInfo {
					t.Errorf("kept %s", alertString(k))
				}
			}
		})
	}
}

func TestConditionClearedByTagLoss(t *testing.T) {
	// 流失预警 needs a low satisfaction score: a better score removes the tag
	// and resolves churn_risk at that instant.
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	evs := withProfile(
		ev{at: sh(2025, 1, 10, 10, 0), rec: t1, data: &domain.OrderPlaced{OrderID: "SO-1", Amount: yuan("10.00")}},
		score(t1.Add(time.Hour), 2),
		score(t1.Add(2*time.Hour), 5),
	)
	var p domain.Projection
	_, got := playAlerts(b, &p, recorded(testCode, evs), t1.Add(3*time.Hour))
	a := lastStates(got)[domain.AlertID(testCode, domain.AlertChurnRisk, t1.Add(time.Hour))]
	if a.Status != domain.AlertResolved || a.Resolution != domain.ResolutionConditionCleared || !a.ResolvedAt.Equal(t1.Add(2*time.Hour)) || a.ResolvedBy != uuid.Nil {
		t.Fatalf("churn_risk %s resolution %q at %v (updates %v)", alertString(a), a.Resolution, a.ResolvedAt, alertStrings(got))
	}

	// 待补充: completing the profile resolves data_incomplete.
	incomplete := fullProfile()
	incomplete.Industry = nil
	industry := "制造业"
	evs = []ev{
		{at: t1, data: &domain.CustomerRegistered{Profile: incomplete}},
		{at: t1.Add(time.Hour), data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Industry: &industry}}},
	}
	var q domain.Projection
	_, got = playAlerts(b, &q, recorded(testCode, evs), t1.Add(2*time.Hour))
	d := lastStates(got)[domain.AlertID(testCode, domain.AlertDataIncomplete, t1)]
	if d.Status != domain.AlertResolved || d.Resolution != domain.ResolutionConditionCleared || !d.ResolvedAt.Equal(t1.Add(time.Hour)) {
		t.Fatalf("data_incomplete %s resolution %q (updates %v)", alertString(d), d.Resolution, alertStrings(got))
	}
	if len(q.Alerts) != 0 {
		t.Errorf("kept %v", alertStrings(q.Alerts))
	}
}

func TestOwnerChangeMovesTheAlertsThePreviousOwnerHeld(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	b3 := t1.AddDate(0, 3, 0)
	drop := domain.AlertID(testCode, domain.AlertActivityDropped, b3)
	incomplete := fullProfile()
	incomplete.Industry = nil // data_incomplete, overdue and escalated by b3
	evs := []ev{
		{at: t1, data: &domain.CustomerRegistered{Profile: incomplete}},
		order(t1, "SO-1", "10.00"),
		{at: b3.Add(2 * time.Hour), data: &domain.AlertAssigned{AlertID: drop, To: "赵六", By: "组长"}},
		{at: b3.Add(3 * time.Hour), data: &domain.OwnerAssigned{Owner: "李娜"}},
	}
	var p domain.Projection
	_, got := playAlerts(b, &p, recorded(testCode, evs), b3.Add(4*time.Hour))
	owners := map[string]string{}
	for _, a := range p.Alerts {
		owners[a.Kind] = a.Owner
	}
	if owners[domain.AlertActivityDropped] != "赵六" {
		t.Errorf("the assigned alert moved: %v (updates %v)", owners, alertStrings(got))
	}
	if owners[domain.AlertDataIncomplete] != "李娜" || owners[domain.AlertFollowUpOverdue] != "李娜" ||
		slices.ContainsFunc(p.Alerts, func(a domain.Alert) bool { return a.Kind != domain.AlertActivityDropped && a.Owner != "李娜" }) {
		t.Errorf("the previous owner's alerts stayed: %v", alertStrings(p.Alerts))
	}
}
