package domain

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Alert statuses (SPEC §5).
const (
	AlertOpen     = "open"
	AlertOverdue  = "overdue"
	AlertResolved = "resolved"
)

// Alert is a deadline-bearing task for the customer's owner, raised by a
// label change (or by a missed deadline).
type Alert struct {
	ID          uuid.UUID    `json:"alert_id"`
	Customer    CustomerCode `json:"customer"`
	Kind        string       `json:"kind"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	ReasonZH    string       `json:"reason"`
	ReasonEN    string       `json:"reason_en"`
	CreatedAt   time.Time    `json:"created_at"`
	DueAt       time.Time    `json:"due_at,omitzero"`
	Owner       string       `json:"owner"`
	Status      string       `json:"status"`
	ResolvedAt  time.Time    `json:"resolved_at,omitzero"`
	ResolvedBy  uuid.UUID    `json:"resolved_by,omitzero"` // the FollowUpLogged event
	Playbook    string       `json:"playbook"`
	RuleVersion int          `json:"rule_version"`
	// Escalates is the alert a followup_overdue alert escalates.
	Escalates uuid.UUID `json:"escalates,omitzero"`
	// DeliverySuppressed: the alert is recorded but must not be delivered to
	// its owner (notifiers skip it); SuppressionReason says why
	// (SuppressedDueBeforeImport, SuppressedEscalation).
	DeliverySuppressed bool   `json:"delivery_suppressed,omitzero"`
	SuppressionReason  string `json:"delivery_suppressed_reason,omitzero"`
}

// ImportSourcePrefix starts the source of events brought in from
// spreadsheets ("import:<import id>"): history, recorded at the import.
const ImportSourcePrefix = "import:"

// Reasons an alert is recorded but not delivered (SPEC §10).
const (
	// SuppressedDueBeforeImport: raised by an imported event whose follow-up
	// deadline, counted from the event's business time (occurred_at), had
	// passed when it was imported (recorded_at). An alert without a deadline
	// is due at once. Owners would be told of history they can no longer act
	// on in time: the import of 10,000 old rows would flood them.
	SuppressedDueBeforeImport = "due_before_import"
	// SuppressedEscalation: the followup_overdue escalation of a suppressed
	// alert.
	SuppressedEscalation = "escalates_suppressed"
)

// suppression decides, when an alert of kind is raised, whether it is
// delivered: only alerts caused by imported history are suppressed, and
// only when their deadline lay before the import. It depends on the logged
// event alone, so live processing, rebuild and as-of replay agree.
func (rs *RuleSet) suppression(kind string, cause *Recorded) string {
	if cause == nil || !strings.HasPrefix(cause.Source, ImportSourcePrefix) {
		return ""
	}
	due := rs.dueAt(kind, cause.OccurredAt)
	if due.IsZero() {
		due = cause.OccurredAt
	}
	if due.After(cause.RecordedAt) {
		return ""
	}
	return SuppressedDueBeforeImport
}

// alertNamespace makes alert ids deterministic from customer, kind and the
// change instant: live, rebuilt and re-delivered processing agree on them.
var alertNamespace = uuid.MustParse("4e7a1c2b-9d3f-5a6e-8b0c-1f2e3d4c5b6a")

// AlertID is the id of the alert of a kind raised for a customer at an instant.
func AlertID(customer CustomerCode, kind string, at time.Time) uuid.UUID {
	var buf nameBuf
	k := nameKey(&buf, alertNamespace)
	k = append(append(k, customer...), 0)
	k = append(append(k, kind...), 0)
	return nameUUID(strconv.AppendInt(k, at.UnixNano(), 10))
}

// AddBusinessDays returns t plus n business days (the rule set's working
// weekdays) at the same clock time in the rules' time zone: created on a
// Friday afternoon with 3 days, due on Wednesday afternoon.
func (rs *RuleSet) AddBusinessDays(t time.Time, n int) time.Time {
	d := t.In(rs.Location)
	for n > 0 {
		d = d.AddDate(0, 0, 1)
		if rs.BusinessDays[d.Weekday()] {
			n--
		}
	}
	return d
}

// dueAt is when an alert of kind raised at at must be followed up (zero: never).
func (rs *RuleSet) dueAt(kind string, at time.Time) time.Time {
	r := rs.Alerts[kind]
	switch {
	case r.Due > 0:
		return at.Add(r.Due)
	case r.DueBusinessDays > 0:
		return rs.AddBusinessDays(at, r.DueBusinessDays)
	}
	return time.Time{}
}

// hasOpen reports whether the customer has an unresolved alert of kind.
func (p *Projection) hasOpen(kind string) bool {
	for i := range p.Alerts {
		if p.Alerts[i].Kind == kind {
			return true
		}
	}
	return false
}

// raise opens an alert unless one of its kind is already unresolved (then,
// like Gainsight's CTA dedupe, it updates nothing and raises nothing).
func (p *Projection) raise(rs *RuleSet, kind, from, to, zh, en string, at time.Time, escalates uuid.UUID) {
	if p.hasOpen(kind) {
		return
	}
	a := Alert{
		ID: AlertID(p.State.Customer, kind, at), Customer: p.State.Customer, Kind: kind, From: from, To: to,
		ReasonZH: zh, ReasonEN: en, CreatedAt: at, DueAt: rs.dueAt(kind, at), Owner: p.State.Profile.Owner,
		Status: AlertOpen, Playbook: rs.Alerts[kind].Playbook, RuleVersion: rs.Version, Escalates: escalates,
	}
	if escalates == uuid.Nil {
		a.SuppressionReason = rs.suppression(kind, p.cause)
	} else if p.escalatesSuppressed(escalates) {
		a.SuppressionReason = SuppressedEscalation
	}
	a.DeliverySuppressed = a.SuppressionReason != ""
	if kind == AlertValueTierChanged && to == rs.ValueTiers[0].Value {
		a.Playbook += "（战略客户：一对一专属服务）"
	}
	p.Alerts = append(p.Alerts, a)
	p.AlertUpdates = append(p.AlertUpdates, a)
}

// escalatesSuppressed reports whether the open alert id is suppressed.
func (p *Projection) escalatesSuppressed(id uuid.UUID) bool {
	for i := range p.Alerts {
		if p.Alerts[i].ID == id {
			return p.Alerts[i].DeliverySuppressed
		}
	}
	return false
}

// alertsFromChanges derives the alerts of SPEC §5 from one evaluation's
// label changes.
func (p *Projection) alertsFromChanges(rs *RuleSet, changes []LabelChange, at time.Time) {
	for _, c := range changes {
		switch {
		case c.Label == LabelActivity && c.To == ActivityLow && (c.From == ActivityHigh || c.From == ActivityMedium):
			p.raise(rs, AlertActivityDropped, c.From, c.To,
				"活跃度由"+rs.ActivityNames[c.From]+"降为"+rs.ActivityNames[c.To]+"："+c.ReasonZH,
				"activity dropped from "+c.From+" to "+c.To+": "+c.ReasonEN, at, uuid.Nil)
		case c.Label == TagLabel("churn_warning") && c.To == TagPresent:
			p.raise(rs, AlertChurnRisk, c.From, c.To, "获得流失预警标签："+c.ReasonZH, "churn warning tag gained: "+c.ReasonEN, at, uuid.Nil)
		case c.Label == TagLabel("needs_completion") && c.To == TagPresent:
			p.raise(rs, AlertDataIncomplete, c.From, c.To, "客户资料待补充："+c.ReasonZH, "profile incomplete: "+c.ReasonEN, at, uuid.Nil)
		case c.Label == LabelValueTier && c.From != "":
			p.raise(rs, AlertValueTierChanged, c.From, c.To,
				"价值层级由"+rs.Display(LabelValueTier, c.From)+"变为"+rs.Display(LabelValueTier, c.To)+"："+c.ReasonZH,
				"value tier changed from "+c.From+" to "+c.To+": "+c.ReasonEN, at, uuid.Nil)
		}
	}
}

// nextDue is the earliest due instant of an open (not yet overdue) alert.
func (p *Projection) nextDue() time.Time {
	var next time.Time
	for i := range p.Alerts {
		a := &p.Alerts[i]
		if a.Status == AlertOpen && !a.DueAt.IsZero() && (next.IsZero() || a.DueAt.Before(next)) {
			next = a.DueAt
		}
	}
	return next
}

// markOverdue turns every open alert due at or before at into overdue and
// raises its followup_overdue escalation at the due instant.
func (p *Projection) markOverdue(rs *RuleSet, at time.Time) {
	for i := range p.Alerts {
		a := &p.Alerts[i]
		if a.Status != AlertOpen || a.DueAt.IsZero() || a.DueAt.After(at) {
			continue
		}
		a.Status = AlertOverdue
		p.AlertUpdates = append(p.AlertUpdates, *a)
		p.raise(rs, AlertFollowUpOverdue, a.Kind, AlertOverdue,
			rs.Alerts[a.Kind].Display+"告警已于截止时间 "+a.DueAt.In(rs.Location).Format("2006-01-02 15:04")+" 超时未跟进",
			a.Kind+" alert not followed up by its due time "+a.DueAt.In(rs.Location).Format(time.RFC3339), a.DueAt, a.ID)
	}
}

// resolve closes alerts on a follow-up: the one it names, or else every
// unresolved alert created before its occurred_at.
func (p *Projection) resolve(f *FollowUpLogged, r *Recorded) {
	kept := p.Alerts[:0]
	for i := range p.Alerts {
		a := p.Alerts[i]
		match := (f.AlertID != nil && *f.AlertID == a.ID) || (f.AlertID == nil && a.CreatedAt.Before(r.OccurredAt))
		if match {
			a.Status, a.ResolvedAt, a.ResolvedBy = AlertResolved, r.RecordedAt, r.EventID
			p.AlertUpdates = append(p.AlertUpdates, a)
			continue
		}
		kept = append(kept, a)
	}
	p.Alerts = kept
}

// TakeAlertUpdates returns the alerts raised or changed since the last call
// and forgets them; the projector stores and publishes them.
func (p *Projection) TakeAlertUpdates() []Alert {
	out := p.AlertUpdates
	p.AlertUpdates = nil
	return out
}
