package domain_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/segments-dev/segments/domain"
)

// wantAlert is the part of an alert (update) a test states; the id, reason,
// playbook and rule version are checked against what they must be.
type wantAlert struct {
	kind, from, to, owner string
	created, due          time.Time
	status                string
	escalates             int // 1-based index into the same want list; 0: none
	playbookSuffix        string
}

// playAlerts feeds a history through Advance one event at a time, then
// advances to until; it returns the label changes and every alert update in
// the order they were taken.
func playAlerts(b *domain.RuleBook, p *domain.Projection, recs []*domain.Recorded, until time.Time) ([]domain.LabelChange, []domain.Alert) {
	var changes []domain.LabelChange
	var updates []domain.Alert
	for _, r := range recs {
		changes = append(changes, b.Advance(p, r.RecordedAt, r)...)
		updates = append(updates, p.TakeAlertUpdates()...)
	}
	if !until.IsZero() {
		changes = append(changes, b.Advance(p, until, nil)...)
		updates = append(updates, p.TakeAlertUpdates()...)
	}
	return changes, updates
}

func alertString(a domain.Alert) string {
	due := "-"
	if !a.DueAt.IsZero() {
		due = a.DueAt.In(shanghai).Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s %s→%s owner=%q created=%s due=%s %s", a.Kind, a.From, a.To, a.Owner,
		a.CreatedAt.In(shanghai).Format(time.RFC3339Nano), due, a.Status)
}

func alertStrings(as []domain.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = alertString(a)
	}
	return out
}

// checkAlerts compares alert updates with want, field by field, including
// the deterministic id, the kind's playbook and the escalated alert's id.
func checkAlerts(t *testing.T, rs *domain.RuleSet, code domain.CustomerCode, got []domain.Alert, want ...wantAlert) {
	t.Helper()
	ws := make([]string, len(want))
	for i, w := range want {
		ws[i] = alertString(domain.Alert{Kind: w.kind, From: w.from, To: w.to, Owner: w.owner, CreatedAt: w.created, DueAt: w.due, Status: w.status})
	}
	if g := alertStrings(got); !slices.Equal(g, ws) {
		t.Fatalf("alert updates:\n  got  %s\n  want %s", strings.Join(g, "\n       "), strings.Join(ws, "\n       "))
	}
	for i, w := range want {
		a := got[i]
		id := domain.AlertID(code, w.kind, w.created)
		if w.escalates > 0 {
			id = domain.EscalationID(got[w.escalates-1].ID)
		}
		if a.ID != id {
			t.Errorf("update %d (%s): id %v, want %v", i, w.kind, a.ID, id)
		}
		if a.Customer != code || a.RuleVersion != rs.Version {
			t.Errorf("update %d (%s): customer %q rule version %d", i, w.kind, a.Customer, a.RuleVersion)
		}
		if pb := rs.Alerts[w.kind].Playbook + w.playbookSuffix; a.Playbook != pb {
			t.Errorf("update %d (%s): playbook %q, want %q", i, w.kind, a.Playbook, pb)
		}
		if a.ReasonZH == "" || a.ReasonEN == "" {
			t.Errorf("update %d (%s) has no reason: %+v", i, w.kind, a)
		}
		var esc uuid.UUID
		if w.escalates > 0 {
			esc = got[w.escalates-1].ID
		}
		if a.Escalates != esc {
			t.Errorf("update %d (%s): escalates %v, want %v", i, w.kind, a.Escalates, esc)
		}
		if !a.Closed() && (!a.ResolvedAt.IsZero() || a.ResolvedBy != uuid.Nil) {
			t.Errorf("update %d (%s) is %s but has a resolution: %+v", i, w.kind, a.Status, a)
		}
	}
}

func TestAlertKinds(t *testing.T) {
	b := domain.DefaultRuleBook()
	rs := b.Latest()
	t1 := sh(2026, 3, 2, 10, 0)  // a Monday
	b3 := sh(2026, 6, 2, 10, 0)  // t1 + 3 months: the order leaves the short window
	b6 := sh(2026, 9, 2, 10, 0)  // t1 + 6 months: and the long one
	fri := sh(2026, 3, 6, 15, 0) // a Friday afternoon
	const owner = "王磊"
	type tc struct {
		name   string
		events []ev
		until  time.Time
		want   []wantAlert
	}
	cases := []tc{
		{
			name:   "activity medium to low",
			events: withProfile(order(t1, "SO-1", "10.00")),
			until:  b3.Add(time.Hour),
			want:   []wantAlert{{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: owner, created: b3, due: b3.Add(24 * time.Hour), status: domain.AlertOpen}},
		},
		{
			name:   "activity high to low in one step",
			events: withProfile(order(t1, "SO-1", "10.00"), order(t1, "SO-2", "10.00")),
			until:  b3.Add(time.Hour),
			want:   []wantAlert{{kind: domain.AlertActivityDropped, from: "high", to: "low", owner: owner, created: b3, due: b3.Add(24 * time.Hour), status: domain.AlertOpen}},
		},
		{
			name:   "activity high to medium is still active: no alert",
			events: withProfile(order(t1, "SO-1", "10.00"), order(t1.AddDate(0, 0, 1), "SO-2", "10.00")),
			until:  b3.Add(time.Hour),
		},
		{
			name:   "activity low at the first evaluation: no alert",
			events: withProfile(inquiry(t1)),
			until:  b6.Add(time.Hour),
		},
		{
			name: "churn_warning gained by an event",
			events: withProfile(
				ev{at: sh(2025, 1, 10, 10, 0), rec: t1, data: &domain.OrderPlaced{OrderID: "SO-1", Amount: yuan("10.00")}},
				score(t1.Add(time.Hour), 2)),
			until: t1.Add(2 * time.Hour),
			want: []wantAlert{{kind: domain.AlertChurnRisk, from: domain.TagAbsent, to: domain.TagPresent, owner: owner,
				created: t1.Add(time.Hour), due: t1.Add(25 * time.Hour), status: domain.AlertOpen}},
		},
		{
			name:   "churn_warning gained at the 6-month boundary, after an unanswered activity drop",
			events: withProfile(order(t1, "SO-1", "10.00"), score(t1.Add(time.Hour), 2)),
			until:  b6.Add(time.Hour),
			want: []wantAlert{
				{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: owner, created: b3, due: b3.Add(24 * time.Hour), status: domain.AlertOpen},
				{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: owner, created: b3, due: b3.Add(24 * time.Hour), status: domain.AlertOverdue},
				{kind: domain.AlertFollowUpOverdue, from: domain.AlertActivityDropped, to: domain.AlertOverdue, owner: owner, created: b3.Add(24 * time.Hour), status: domain.AlertOpen, escalates: 1},
				{kind: domain.AlertChurnRisk, from: domain.TagAbsent, to: domain.TagPresent, owner: owner, created: b6, due: b6.Add(24 * time.Hour), status: domain.AlertOpen},
			},
		},
		{
			name: "needs_completion gained on a Friday afternoon: due Wednesday afternoon",
			events: []ev{{at: fri, data: &domain.CustomerRegistered{Profile: func() domain.Profile {
				p := fullProfile()
				p.Industry = nil
				return p
			}()}}},
			until: fri.Add(time.Hour),
			want: []wantAlert{{kind: domain.AlertDataIncomplete, from: domain.TagAbsent, to: domain.TagPresent, owner: owner,
				created: fri, due: sh(2026, 3, 11, 15, 0), status: domain.AlertOpen}},
		},
		{
			name:   "value tier up",
			events: withProfile(order(t1, "SO-1", "150,000.00")),
			until:  t1.Add(time.Hour),
			want:   []wantAlert{{kind: domain.AlertValueTierChanged, from: "potential", to: "regular", owner: owner, created: t1, status: domain.AlertInfo}},
		},
		{
			name:   "value tier up to strategic: the one-to-one service playbook",
			events: withProfile(order(t1, "SO-1", "1,000,000.00")),
			until:  t1.Add(time.Hour),
			want: []wantAlert{{kind: domain.AlertValueTierChanged, from: "potential", to: "strategic", owner: owner, created: t1,
				status: domain.AlertInfo, playbookSuffix: "（战略客户：一对一专属服务）"}},
		},
		{
			// An info alert is no task: the follow-up leaves it alone, and
			// the refund's tier change supersedes it.
			name: "a second tier change supersedes the first",
			events: withProfile(order(t1, "SO-1", "150,000.00"),
				ev{at: t1.Add(time.Minute), rec: t1.Add(time.Hour), data: &domain.FollowUpLogged{By: owner}},
				refund(t1.Add(2*time.Hour), "SO-1", "100,000.00")),
			until: t1.Add(3 * time.Hour),
			want: []wantAlert{
				{kind: domain.AlertValueTierChanged, from: "potential", to: "regular", owner: owner, created: t1, status: domain.AlertInfo},
				{kind: domain.AlertValueTierChanged, from: "potential", to: "regular", owner: owner, created: t1, status: domain.AlertSuperseded},
				{kind: domain.AlertValueTierChanged, from: "regular", to: "potential", owner: owner, created: t1.Add(2 * time.Hour), status: domain.AlertInfo},
			},
		},
		{
			name: "value tier first assignment raises nothing, an incomplete first event raises data_incomplete",
			events: []ev{
				order(t1, "SO-1", "1,200,000.00"),
				order(t1.Add(time.Minute), "SO-2", "10.00"),
			},
			until: t1.Add(time.Hour),
			want: []wantAlert{{kind: domain.AlertDataIncomplete, from: domain.TagAbsent, to: domain.TagPresent, owner: "",
				created: t1, due: sh(2026, 3, 5, 10, 0), status: domain.AlertOpen}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p domain.Projection
			_, got := playAlerts(b, &p, recorded(testCode, c.events), c.until)
			checkAlerts(t, rs, testCode, got, c.want...)
			// The projection keeps exactly the unresolved alerts.
			open := map[uuid.UUID]domain.Alert{}
			for _, a := range got {
				if a.Closed() {
					delete(open, a.ID)
				} else {
					open[a.ID] = a
				}
			}
			if len(p.Alerts) != len(open) {
				t.Fatalf("projection holds %d alerts, want %d: %v", len(p.Alerts), len(open), alertStrings(p.Alerts))
			}
			for _, a := range p.Alerts {
				if w, ok := open[a.ID]; !ok || w.Status != a.Status {
					t.Errorf("projection alert %s not the last update (%s)", alertString(a), alertString(w))
				}
			}
			if len(p.TakeAlertUpdates()) != 0 {
				t.Error("TakeAlertUpdates did not forget what it returned")
			}
		})
	}
}

func TestValueTierAlertReasons(t *testing.T) {
	// A refund that moves the value tier down raises value_tier_changed
	// with the tier names; it supersedes the first (a follow-up does not
	// resolve an info alert).
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	evs := withProfile(
		order(t1, "SO-1", "600,000.00"),
		ev{at: t1.Add(time.Minute), rec: t1.Add(time.Hour), data: &domain.FollowUpLogged{By: "王磊"}},
		refund(t1.Add(2*time.Hour), "SO-1", "200,000.00"),
	)
	var p domain.Projection
	_, got := playAlerts(b, &p, recorded(testCode, evs), t1.Add(3*time.Hour))
	if len(got) != 3 || got[0].To != "key" || got[1].Status != domain.AlertSuperseded || got[1].SupersededBy != got[2].ID || got[2].From != "key" || got[2].To != "regular" {
		t.Fatalf("updates %v", alertStrings(got))
	}
	if !strings.Contains(got[2].ReasonZH, "重点客户") || !strings.Contains(got[2].ReasonZH, "普通客户") || !strings.Contains(got[2].ReasonEN, "from key to regular") {
		t.Errorf("reasons %q / %q", got[2].ReasonZH, got[2].ReasonEN)
	}
}

func TestFollowUpOverdueEscalation(t *testing.T) {
	b := domain.DefaultRuleBook()
	rs := b.Latest()
	t1 := sh(2026, 3, 2, 10, 0)
	b3 := t1.AddDate(0, 3, 0)
	due := b3.Add(24 * time.Hour)
	evs := withProfile(order(t1, "SO-1", "10.00"), ev{at: b3.Add(time.Hour), data: &domain.OwnerAssigned{Owner: "李娜"}})
	recs := recorded(testCode, evs)
	var p domain.Projection
	_, got := playAlerts(b, &p, recs, time.Time{})
	// The new owner takes over the alert the previous owner held.
	checkAlerts(t, rs, testCode, got,
		wantAlert{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: "王磊", created: b3, due: due, status: domain.AlertOpen},
		wantAlert{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: "李娜", created: b3, due: due, status: domain.AlertOpen})
	orig := got[1]
	if ni := b.NextInstant(&p); !ni.Equal(due) {
		t.Fatalf("NextInstant = %v, want the deadline %v", ni, due)
	}
	// Just before the deadline: nothing.
	if ch := b.Advance(&p, due.Add(-time.Nanosecond), nil); len(ch) != 0 || len(p.TakeAlertUpdates()) != 0 {
		t.Fatalf("before the deadline: %v", summarize(ch))
	}
	// At the deadline exactly: the original becomes overdue and the
	// escalation is raised at the due instant, owned by the alert's owner.
	b.Advance(&p, due, nil)
	got = append([]domain.Alert{orig}, p.TakeAlertUpdates()...)
	checkAlerts(t, rs, testCode, got,
		wantAlert{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: "李娜", created: b3, due: due, status: domain.AlertOpen},
		wantAlert{kind: domain.AlertActivityDropped, from: "medium", to: "low", owner: "李娜", created: b3, due: due, status: domain.AlertOverdue},
		wantAlert{kind: domain.AlertFollowUpOverdue, from: domain.AlertActivityDropped, to: domain.AlertOverdue, owner: "李娜", created: due, status: domain.AlertOpen, escalates: 1},
	)
	if got[1].ID != orig.ID {
		t.Errorf("the overdue update has id %v, want %v", got[1].ID, orig.ID)
	}
	if len(p.Alerts) != 2 || p.Alerts[0].Status != domain.AlertOverdue || p.Alerts[1].Kind != domain.AlertFollowUpOverdue {
		t.Errorf("unresolved %v", alertStrings(p.Alerts))
	}
	// The deadline is passed: no further boundary from it, no second escalation.
	if ni := b.NextInstant(&p); !ni.IsZero() && !ni.After(due) {
		t.Errorf("NextInstant %v", ni)
	}
	b.Advance(&p, due.AddDate(1, 0, 0), nil)
	if u := p.TakeAlertUpdates(); len(u) != 0 {
		t.Errorf("a year later: %v", alertStrings(u))
	}

	// A follow-up before the deadline prevents the escalation.
	evs2 := withProfile(order(t1, "SO-1", "10.00"), ev{at: b3.Add(time.Hour), data: &domain.FollowUpLogged{By: "王磊"}})
	var q domain.Projection
	_, got = playAlerts(b, &q, recorded(testCode, evs2), due.AddDate(0, 1, 0))
	if len(got) != 2 || got[1].Status != domain.AlertResolved || !got[1].ResolvedAt.Equal(b3.Add(time.Hour)) {
		t.Fatalf("followed up in time: %v", alertStrings(got))
	}

	// Catching up long after the deadline: the escalation still carries the
	// due instant, not the catch-up instant.
	var r domain.Projection
	_, got = playAlerts(b, &r, recorded(testCode, withProfile(order(t1, "SO-1", "10.00"))), t1.AddDate(2, 0, 0))
	if len(got) != 3 || !got[2].CreatedAt.Equal(due) || !got[0].CreatedAt.Equal(b3) || got[2].ID != domain.EscalationID(got[0].ID) {
		t.Fatalf("late catch-up: %v", alertStrings(got))
	}
}

func TestFollowUpResolution(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	b3 := t1.AddDate(0, 3, 0)
	// V: value_tier_changed at t1 (no deadline); D: activity_dropped at b3.
	base := withProfile(order(t1, "SO-1", "150,000.00"))

	t.Run("by alert_id", func(t *testing.T) {
		var p domain.Projection
		_, got := playAlerts(b, &p, recorded(testCode, base), b3.Add(time.Hour))
		if len(got) != 2 {
			t.Fatalf("alerts %v", alertStrings(got))
		}
		v, d := got[0], got[1]
		if v.Kind != domain.AlertValueTierChanged || !v.CreatedAt.Equal(t1) || d.Kind != domain.AlertActivityDropped || !d.CreatedAt.Equal(b3) {
			t.Fatalf("alerts %v", alertStrings(got))
		}
		bogus := domain.AlertID(testCode, domain.AlertChurnRisk, b3)
		follow := b3.Add(2 * time.Hour)
		evs := append(slices.Clone(base),
			ev{at: follow, data: &domain.FollowUpLogged{By: "王磊", AlertID: &bogus}},
			ev{at: follow.Add(time.Minute), data: &domain.FollowUpLogged{By: "王磊", AlertID: &d.ID}},
		)
		recs := recorded(testCode, evs)
		b.Advance(&p, recs[2].RecordedAt, recs[2])
		if u := p.TakeAlertUpdates(); len(u) != 0 || len(p.Alerts) != 2 {
			t.Fatalf("a follow-up naming an unknown alert resolved %v", alertStrings(u))
		}
		b.Advance(&p, recs[3].RecordedAt, recs[3])
		u := p.TakeAlertUpdates()
		if len(u) != 1 || u[0].ID != d.ID || u[0].Status != domain.AlertResolved || !u[0].ResolvedAt.Equal(follow.Add(time.Minute)) || u[0].ResolvedBy != recs[3].EventID {
			t.Fatalf("resolution by id: %v", alertStrings(u))
		}
		// The older (info) alert it did not name stays.
		if len(p.Alerts) != 1 || p.Alerts[0].ID != v.ID || p.Alerts[0].Status != domain.AlertInfo {
			t.Errorf("unresolved %v", alertStrings(p.Alerts))
		}
		// The resolved alert's deadline is no longer a boundary.
		if ni := b.NextInstant(&p); ni.Equal(d.DueAt) {
			t.Errorf("NextInstant is the resolved alert's deadline %v", ni)
		}
	})

	t.Run("by occurred_at", func(t *testing.T) {
		// The follow-up happened between V and D but was recorded after D:
		// it does not resolve D, created after its occurred_at, nor V, an
		// info alert (no task).
		occurred := b3.Add(-time.Hour)
		evs := append(slices.Clone(base), ev{at: occurred, rec: b3.Add(time.Hour), data: &domain.FollowUpLogged{By: "王磊"}})
		recs := recorded(testCode, evs)
		var p domain.Projection
		_, got := playAlerts(b, &p, recs, b3.Add(2*time.Hour))
		if len(got) != 2 {
			t.Fatalf("updates %v", alertStrings(got))
		}
		if len(p.Alerts) != 2 || p.Alerts[1].Kind != domain.AlertActivityDropped || p.Alerts[1].Status != domain.AlertOpen {
			t.Errorf("unresolved %v", alertStrings(p.Alerts))
		}
		// A follow-up that occurred exactly at D's instant does not resolve D
		// (not created before it); one a nanosecond later does.
		more := append(slices.Clone(evs),
			ev{at: b3, rec: b3.Add(3 * time.Hour), data: &domain.FollowUpLogged{By: "王磊"}},
			ev{at: b3.Add(time.Nanosecond), rec: b3.Add(4 * time.Hour), data: &domain.FollowUpLogged{By: "王磊"}},
		)
		recs = recorded(testCode, more)
		b.Advance(&p, recs[3].RecordedAt, recs[3])
		if u := p.TakeAlertUpdates(); len(u) != 0 {
			t.Errorf("follow-up at the creation instant resolved %v", alertStrings(u))
		}
		b.Advance(&p, recs[4].RecordedAt, recs[4])
		if u := p.TakeAlertUpdates(); len(u) != 1 || u[0].Kind != domain.AlertActivityDropped || u[0].Status != domain.AlertResolved ||
			u[0].Resolution != domain.ResolutionFollowedUp || u[0].ResolvedBy != recs[4].EventID {
			t.Errorf("follow-up after the creation instant: %v", alertStrings(u))
		}
		if len(p.Alerts) != 1 || p.Alerts[0].Status != domain.AlertInfo {
			t.Errorf("unresolved %v", alertStrings(p.Alerts))
		}
	})

	t.Run("overdue alerts and escalations are resolved too", func(t *testing.T) {
		late := b3.Add(48 * time.Hour)
		evs := append(slices.Clone(base), ev{at: late, data: &domain.FollowUpLogged{By: "王磊"}})
		var p domain.Projection
		_, got := playAlerts(b, &p, recorded(testCode, evs), late.Add(time.Hour))
		var resolved []string
		for _, a := range got {
			if a.Status == domain.AlertResolved {
				resolved = append(resolved, a.Kind)
			}
		}
		slices.Sort(resolved)
		if want := []string{domain.AlertActivityDropped, domain.AlertFollowUpOverdue}; !slices.Equal(resolved, want) {
			t.Errorf("resolved %v, want %v (updates %v)", resolved, want, alertStrings(got))
		}
		if len(p.Alerts) != 1 || p.Alerts[0].Status != domain.AlertInfo {
			t.Errorf("unresolved %v", alertStrings(p.Alerts))
		}
	})
}

func TestAlertOwnerAtThatInstant(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 3, 2, 10, 0)
	b3 := t1.AddDate(0, 3, 0)
	evs := withProfile(
		order(t1, "SO-1", "150,000.00"), // value_tier_changed, owner 王磊
		ev{at: t1.Add(time.Hour), data: &domain.OwnerAssigned{Owner: "李娜"}},
	)
	var p domain.Projection
	_, got := playAlerts(b, &p, recorded(testCode, evs), b3.Add(25*time.Hour))
	owners := map[string]string{}
	for _, a := range got {
		owners[a.Kind+"/"+a.Status] = a.Owner
	}
	want := map[string]string{
		domain.AlertValueTierChanged + "/info":   "王磊",
		domain.AlertActivityDropped + "/open":    "李娜",
		domain.AlertActivityDropped + "/overdue": "李娜",
		domain.AlertFollowUpOverdue + "/open":    "李娜",
	}
	if fmt.Sprint(owners) != fmt.Sprint(want) {
		t.Errorf("owners %v, want %v", owners, want)
	}
	// The earlier alert keeps its owner in the projection.
	for _, a := range p.Alerts {
		if a.Kind == domain.AlertValueTierChanged && a.Owner != "王磊" {
			t.Errorf("value_tier_changed owner became %q", a.Owner)
		}
	}
}

func TestAlertIDIsDeterministic(t *testing.T) {
	at := sh(2026, 6, 2, 10, 0)
	id := domain.AlertID(testCode, domain.AlertActivityDropped, at)
	if id != domain.AlertID(testCode, domain.AlertActivityDropped, at.UTC()) {
		t.Error("the id depends on the time zone of the instant")
	}
	for _, other := range []uuid.UUID{
		domain.AlertID("KH-OTHER", domain.AlertActivityDropped, at),
		domain.AlertID(testCode, domain.AlertChurnRisk, at),
		domain.AlertID(testCode, domain.AlertActivityDropped, at.Add(time.Nanosecond)),
	} {
		if other == id {
			t.Errorf("ids collide: %v", id)
		}
	}
	if id.Version() != 5 {
		t.Errorf("id version %d, want a name-based (v5) UUID", id.Version())
	}
	// The same history gives the same alerts, twice; another customer's
	// differ only by their ids and customer.
	b := domain.DefaultRuleBook()
	evs := withProfile(order(sh(2026, 3, 2, 10, 0), "SO-1", "150,000.00"), score(sh(2026, 3, 3, 10, 0), 1))
	run := func(code domain.CustomerCode) []domain.Alert {
		var p domain.Projection
		_, u := playAlerts(b, &p, recorded(code, evs), sh(2027, 3, 1, 0, 0))
		return u
	}
	a1, a2, o := run(testCode), run(testCode), run("KH-OTHER")
	if len(a1) < 5 || len(a1) != len(a2) || len(a1) != len(o) {
		t.Fatalf("%d, %d, %d updates: %v", len(a1), len(a2), len(o), alertStrings(a1))
	}
	for i := range a1 {
		if a1[i].ID != a2[i].ID || alertString(a1[i]) != alertString(a2[i]) {
			t.Errorf("update %d: %v %s then %v %s", i, a1[i].ID, alertString(a1[i]), a2[i].ID, alertString(a2[i]))
		}
		if o[i].ID == a1[i].ID || alertString(o[i]) != alertString(a1[i]) {
			t.Errorf("update %d of another customer: %v %s vs %v %s", i, o[i].ID, alertString(o[i]), a1[i].ID, alertString(a1[i]))
		}
		if a1[i].ID != domain.AlertID(testCode, a1[i].Kind, a1[i].CreatedAt) && a1[i].ID != domain.EscalationID(a1[i].Escalates) {
			t.Errorf("update %d: id is not AlertID(customer, kind, created_at)", i)
		}
	}
}

func TestAddBusinessDays(t *testing.T) {
	rs := domain.DefaultRuleBook().Latest()
	if rs.Location.String() != "Asia/Shanghai" {
		t.Fatalf("rules time zone %s", rs.Location)
	}
	cases := []struct {
		name     string
		from     time.Time
		n        int
		want     time.Time
		weekdays string
	}{
		{"Friday afternoon + 3: Wednesday afternoon", sh(2026, 3, 6, 15, 0), 3, sh(2026, 3, 11, 15, 0), "Fri→Wed"},
		{"Saturday + 3: Wednesday", sh(2026, 3, 7, 10, 30), 3, sh(2026, 3, 11, 10, 30), "Sat→Wed"},
		{"Sunday + 3: Wednesday", sh(2026, 3, 8, 23, 59), 3, sh(2026, 3, 11, 23, 59), "Sun→Wed"},
		{"Monday + 3: Thursday", sh(2026, 3, 9, 9, 0), 3, sh(2026, 3, 12, 9, 0), "Mon→Thu"},
		{"Thursday + 3: Tuesday", sh(2026, 3, 12, 18, 0), 3, sh(2026, 3, 17, 18, 0), "Thu→Tue"},
		{"Friday + 1: Monday", sh(2026, 3, 6, 0, 0), 1, sh(2026, 3, 9, 0, 0), "Fri→Mon"},
		{"Friday + 5: next Friday", sh(2026, 3, 6, 15, 0), 5, sh(2026, 3, 13, 15, 0), "Fri→Fri"},
		{"Wednesday + 10 across two weekends", sh(2026, 3, 4, 8, 0), 10, sh(2026, 3, 18, 8, 0), "Wed→Wed"},
		{"over a month and year end", sh(2026, 12, 31, 16, 0), 3, sh(2027, 1, 5, 16, 0), "Thu→Tue"},
		{"+0: the same instant", sh(2026, 3, 7, 10, 0), 0, sh(2026, 3, 7, 10, 0), "Sat→Sat"},
		// Friday 23:30 in Shanghai is Friday 15:30 UTC: the weekday is the
		// rules' time zone's.
		{"late Friday in Shanghai", sh(2026, 3, 6, 23, 30).UTC(), 3, sh(2026, 3, 11, 23, 30), "Fri→Wed"},
		// Monday 01:00 in Shanghai is still Sunday in UTC.
		{"early Monday in Shanghai", sh(2026, 3, 9, 1, 0).UTC(), 3, sh(2026, 3, 12, 1, 0), "Mon→Thu"},
	}
	for _, c := range cases {
		got := rs.AddBusinessDays(c.from, c.n)
		if !got.Equal(c.want) {
			t.Errorf("%s: %s + %d = %s, want %s", c.name, c.from.In(shanghai).Format("Mon 2006-01-02 15:04"), c.n,
				got.In(shanghai).Format("Mon 2006-01-02 15:04"), c.want.Format("Mon 2006-01-02 15:04"))
		}
		if wd := c.from.In(shanghai).Weekday().String()[:3] + "→" + got.In(shanghai).Weekday().String()[:3]; wd != c.weekdays {
			t.Errorf("%s: weekdays %s, want %s", c.name, wd, c.weekdays)
		}
		if got.Location() != rs.Location {
			t.Errorf("%s: result in %s, want the rules' time zone", c.name, got.Location())
		}
	}

	// Another working week (Sunday to Thursday) changes the arithmetic.
	text := strings.Replace(defaultYAML(), "business_days: [mon, tue, wed, thu, fri]", "business_days: [sun, mon, tue, wed, thu]", 1)
	if text == defaultYAML() {
		t.Fatal("business_days not found in the default rules")
	}
	gulf := mustParse(t, text).Latest()
	if got := gulf.AddBusinessDays(sh(2026, 3, 5, 15, 0), 3); !got.Equal(sh(2026, 3, 10, 15, 0)) { // Thu → Sun, Mon, Tue
		t.Errorf("Sunday-to-Thursday week: Thu + 3 = %s", got)
	}

	// The data_incomplete deadline is three business days.
	var p domain.Projection
	b := domain.DefaultRuleBook()
	for _, c := range cases[:5] {
		p = domain.Projection{}
		recs := recorded(testCode, []ev{{at: c.from, data: &domain.OrderPlaced{OrderID: "SO-1", Amount: yuan("1")}}})
		b.Advance(&p, c.from, recs[0])
		u := p.TakeAlertUpdates()
		if len(u) != 1 || u[0].Kind != domain.AlertDataIncomplete || !u[0].DueAt.Equal(c.want) {
			t.Errorf("%s: data_incomplete %v, want due %s", c.name, alertStrings(u), c.want)
		}
	}
}

// sameAlerts compares two lists of alert updates: ids, instants, statuses
// and every other field.
func sameAlerts(t *rapid.T, what string, a, b []domain.Alert) {
	if len(a) != len(b) {
		t.Fatalf("%s: %d alert updates vs %d:\n%s\nvs\n%s", what, len(a), len(b), strings.Join(alertStrings(a), "\n"), strings.Join(alertStrings(b), "\n"))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Customer != y.Customer || x.Kind != y.Kind || x.From != y.From || x.To != y.To ||
			x.ReasonZH != y.ReasonZH || x.ReasonEN != y.ReasonEN || !x.CreatedAt.Equal(y.CreatedAt) || !x.DueAt.Equal(y.DueAt) ||
			x.Owner != y.Owner || x.Status != y.Status || !x.ResolvedAt.Equal(y.ResolvedAt) || x.ResolvedBy != y.ResolvedBy ||
			x.Playbook != y.Playbook || x.RuleVersion != y.RuleVersion || x.Escalates != y.Escalates ||
			x.Resolution != y.Resolution || x.SupersededBy != y.SupersededBy || !x.AcknowledgedAt.Equal(y.AcknowledgedAt) ||
			!x.SnoozedUntil.Equal(y.SnoozedUntil) || !x.EscalatedAt.Equal(y.EscalatedAt) || x.Raised != y.Raised {
			t.Fatalf("%s: alert update %d differs:\n%+v\n%+v", what, i, x, y)
		}
	}
}

// TestPropertyAlertsIndependentOfSteps: advancing a customer to T in one
// step, or in many smaller steps at arbitrary instants (including exactly
// at announced next instants, which may be alert deadlines), gives the same
// labels, label changes and alert updates (ids, instants, statuses) and the
// same unresolved alerts. Follow-ups sometimes name an alert raised
// earlier, or become an action on one (acknowledge, assign, snooze).
func TestPropertyAlertsIndependentOfSteps(t *testing.T) {
	seen := map[string]int{} // kind/status of the updates over every run
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SampledFrom(books).Draw(t, "book")
		recs := drawHistory(t, testCode)
		last := recs[len(recs)-1].RecordedAt
		final := drawBetween(t, last, last.AddDate(1, 0, 0), "final")

		// One step per event, then one step to final. Follow-ups that name
		// an alert name one that is unresolved at their recording.
		var one domain.Projection
		var wantChanges []domain.LabelChange
		var wantAlerts []domain.Alert
		for _, r := range recs {
			if f, ok := r.Data.(*domain.FollowUpLogged); ok && f.AlertID == nil && rapid.Bool().Draw(t, "names an alert") {
				// Peek at the alerts unresolved once the boundaries up to the
				// follow-up are passed, on a copy.
				probe := cloneProjection(&one)
				b.Advance(probe, r.RecordedAt, nil)
				if len(probe.Alerts) > 0 {
					r.Data = drawAction(t, f, rapid.SampledFrom(probe.Alerts).Draw(t, "named alert").ID, r.RecordedAt)
				}
			}
			wantChanges = append(wantChanges, b.Advance(&one, r.RecordedAt, r)...)
			wantAlerts = append(wantAlerts, one.TakeAlertUpdates()...)
		}
		wantChanges = append(wantChanges, b.Advance(&one, final, nil)...)
		wantAlerts = append(wantAlerts, one.TakeAlertUpdates()...)

		// Many steps: extra advances in between, sometimes exactly at the
		// next instant the projection announces.
		var many domain.Projection
		var gotChanges []domain.LabelChange
		var gotAlerts []domain.Alert
		lo := recs[0].RecordedAt.AddDate(0, -1, 0)
		extra := func(hi time.Time) {
			for range rapid.IntRange(0, 6).Draw(t, "extra advances") {
				at := drawBetween(t, lo, hi, "extra at")
				if ni := b.NextInstant(&many); !ni.IsZero() && !ni.After(hi) && rapid.Bool().Draw(t, "at next instant") {
					at = ni
				}
				if at.Before(lo) {
					continue
				}
				gotChanges = append(gotChanges, b.Advance(&many, at, nil)...)
				gotAlerts = append(gotAlerts, many.TakeAlertUpdates()...)
				lo = at
			}
		}
		for _, r := range recs {
			extra(r.RecordedAt)
			gotChanges = append(gotChanges, b.Advance(&many, r.RecordedAt, r)...)
			gotAlerts = append(gotAlerts, many.TakeAlertUpdates()...)
			lo = r.RecordedAt
		}
		extra(final)
		gotChanges = append(gotChanges, b.Advance(&many, final, nil)...)
		gotAlerts = append(gotAlerts, many.TakeAlertUpdates()...)

		sameChanges(t, "stepped", wantChanges, gotChanges)
		sameProjection(t, "stepped", &one, &many)
		sameAlerts(t, "stepped", wantAlerts, gotAlerts)
		sameAlerts(t, "unresolved", one.Alerts, many.Alerts)

		// Invariants: at most one kept alert per kind (escalations: per
		// escalated alert); kept alerts are unresolved or info; ids are
		// AlertID(customer, kind, created_at), or EscalationID; an alert is
		// escalated once, at max(due_at, the end of a snooze covering it).
		kinds := map[string]bool{}
		for _, a := range one.Alerts {
			key := a.Kind + a.Escalates.String()
			if kinds[key] {
				t.Fatalf("two kept %s alerts: %v", a.Kind, alertStrings(one.Alerts))
			}
			kinds[key] = true
			if a.Closed() {
				t.Fatalf("a closed alert is kept: %s", alertString(a))
			}
		}
		escalatedAt := map[uuid.UUID]time.Time{}
		for _, a := range wantAlerts {
			if a.ID != domain.AlertID(a.Customer, a.Kind, a.CreatedAt) && (a.Kind != domain.AlertFollowUpOverdue || a.ID != domain.EscalationID(a.Escalates)) {
				t.Fatalf("alert id is not deterministic: %s", alertString(a))
			}
			if !a.EscalatedAt.IsZero() {
				if a.DueAt.IsZero() || a.EscalatedAt.Before(a.DueAt) || a.EscalatedAt.After(final) {
					t.Fatalf("escalated before its deadline: %s at %v", alertString(a), a.EscalatedAt)
				}
				if e, ok := escalatedAt[a.ID]; ok && !e.Equal(a.EscalatedAt) {
					t.Fatalf("escalated twice: %s at %v and %v", alertString(a), e, a.EscalatedAt)
				}
				escalatedAt[a.ID] = a.EscalatedAt
			}
			if a.Kind == domain.AlertFollowUpOverdue && a.Raised {
				if e, ok := escalatedAt[a.Escalates]; !ok || !e.Equal(a.CreatedAt) {
					t.Fatalf("escalation %s not at the escalated alert's escalation instant %v", alertString(a), e)
				}
			}
			if a.Kind == domain.AlertValueTierChanged && (a.Status == domain.AlertOpen || a.Status == domain.AlertOverdue) {
				t.Fatalf("an info alert became a task: %s", alertString(a))
			}
			key := a.Kind + "/" + a.Status
			if a.Resolution != "" {
				key += "/" + a.Resolution
			}
			seen[key]++
		}
		for _, r := range recs {
			switch d := r.Data.(type) {
			case *domain.FollowUpLogged:
				if d.AlertID != nil {
					seen["named follow-up"]++
				}
			case *domain.AlertAcknowledged, *domain.AlertAssigned, *domain.AlertSnoozed:
				seen[string(d.EventType())]++
			}
		}
	})
	// The property proved something only if the histories raised, escalated
	// and resolved alerts of every kind.
	for _, k := range []string{
		domain.AlertActivityDropped + "/open", domain.AlertActivityDropped + "/overdue",
		domain.AlertActivityDropped + "/resolved/" + domain.ResolutionFollowedUp, domain.AlertActivityDropped + "/resolved/" + domain.ResolutionConditionCleared,
		domain.AlertChurnRisk + "/open", domain.AlertDataIncomplete + "/open", domain.AlertDataIncomplete + "/overdue",
		domain.AlertValueTierChanged + "/info", domain.AlertValueTierChanged + "/superseded",
		domain.AlertFollowUpOverdue + "/open", domain.AlertFollowUpOverdue + "/resolved/" + domain.ResolutionFollowedUp, "named follow-up",
		string(domain.TypeAlertAcknowledged), string(domain.TypeAlertAssigned), string(domain.TypeAlertSnoozed),
	} {
		if seen[k] == 0 {
			t.Errorf("no %s in any generated history: %v", k, seen)
		}
	}
	// An acknowledged and a snoozed alert of some kind: which kind is left
	// to the generator (one kind alone is too rare to require every run).
	for _, status := range []string{domain.AlertStatusAcknowledged, domain.AlertStatusSnoozed} {
		n := 0
		for k, c := range seen {
			if strings.HasSuffix(k, "/"+status) {
				n += c
			}
		}
		if n == 0 {
			t.Errorf("no alert %s in any generated history: %v", status, seen)
		}
	}
	t.Logf("alert updates over all runs: %v", seen)
}

// drawAction turns a follow-up recorded at at into one naming alert id, or
// into an action on it.
func drawAction(t *rapid.T, f *domain.FollowUpLogged, id uuid.UUID, at time.Time) domain.Event {
	switch rapid.IntRange(0, 3).Draw(t, "action") {
	case 1:
		return &domain.AlertAcknowledged{AlertID: id, By: f.By}
	case 2:
		return &domain.AlertAssigned{AlertID: id, To: "组员", By: f.By}
	case 3:
		until := at.Add(time.Duration(rapid.Int64Range(1, int64(domain.MaxSnooze/time.Minute)).Draw(t, "snooze minutes")) * time.Minute)
		return &domain.AlertSnoozed{AlertID: id, Until: until, By: f.By}
	}
	return &domain.FollowUpLogged{By: f.By, AlertID: &id}
}

// cloneProjection copies a projection deeply enough to advance the copy
// without touching the original.
func cloneProjection(p *domain.Projection) *domain.Projection {
	q := *p
	q.State.Orders = slices.Clone(p.State.Orders)
	q.State.Inquiries = slices.Clone(p.State.Inquiries)
	q.Alerts = slices.Clone(p.Alerts)
	q.AlertUpdates = nil
	if p.Since != nil {
		q.Since = make(map[string]time.Time, len(p.Since))
		for k, v := range p.Since {
			q.Since[k] = v
		}
	}
	return &q
}

// importedHistory is a churn-risk history (one old order, a low score)
// recorded at importAt from source; the score is dated scoredAt.
func importedHistory(source string, scoredAt, importAt time.Time) []*domain.Recorded {
	evs := withProfile(order(sh(2024, 6, 1, 9, 0), "SO-1", "100.00"), ev{at: scoredAt, data: &domain.SatisfactionRated{Score: 2}})
	recs := recorded(testCode, evs)
	for _, r := range recs {
		r.RecordedAt, r.Source = importAt, source
	}
	return recs
}

func TestAlertsOfImportedHistoryWhoseDeadlinePassedBeforeTheImportAreRecordedButNotDelivered(t *testing.T) {
	b := domain.DefaultRuleBook()
	importAt := sh(2026, 3, 2, 10, 0)
	var p domain.Projection
	_, got := playAlerts(b, &p, importedHistory("import:sha256-0123456789abcdef", sh(2024, 6, 1, 9, 0), importAt), time.Time{})
	if len(got) != 1 || got[0].Kind != domain.AlertChurnRisk {
		t.Fatalf("alerts: %v", alertStrings(got))
	}
	if a := got[0]; !a.DeliverySuppressed || a.SuppressionReason != domain.SuppressedDueBeforeImport || !a.CreatedAt.Equal(importAt) {
		t.Errorf("an alert of 2024's history imported in 2026: suppressed %v (%q), created %v", a.DeliverySuppressed, a.SuppressionReason, a.CreatedAt)
	}
	// Its escalation at the deadline is not delivered either.
	b.Advance(&p, importAt.Add(48*time.Hour), nil)
	up := p.TakeAlertUpdates()
	if len(up) != 2 || up[1].Kind != domain.AlertFollowUpOverdue || !up[1].DeliverySuppressed || up[1].SuppressionReason != domain.SuppressedEscalation {
		t.Errorf("escalation: %v %+v", alertStrings(up), up)
	}

	// The same history from an upstream system is delivered.
	var q domain.Projection
	_, got = playAlerts(b, &q, importedHistory("crm", sh(2024, 6, 1, 9, 0), importAt), time.Time{})
	if len(got) != 1 || got[0].DeliverySuppressed || got[0].SuppressionReason != "" {
		t.Errorf("not imported: %v suppressed %v", alertStrings(got), got[0].DeliverySuppressed)
	}
	// Imported, but the low score was given an hour before the import: its
	// 24-hour deadline is still ahead, so the owner is told.
	var r domain.Projection
	_, got = playAlerts(b, &r, importedHistory("import:x", importAt.Add(-time.Hour), importAt), time.Time{})
	if len(got) != 1 || got[0].DeliverySuppressed {
		t.Errorf("recent imported history: %v suppressed %v", alertStrings(got), got[0].DeliverySuppressed)
	}
}
