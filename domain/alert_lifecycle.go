package domain

import (
	"time"

	"github.com/google/uuid"
)

// The alert lifecycle of SPEC §8, decided here for live projection,
// rebuild and as_of alike (all go through RuleBook.Advance):
//
//   - A label change raises an alert (alertsFromChanges). A newer alert of
//     the same kind supersedes the kept one (status superseded,
//     superseded_by = the new id), so the worklist shows the latest change.
//     followup_overdue alerts belong to the alert they escalate and
//     supersede nothing.
//   - Informational kinds (value_tier_changed) are raised with status info:
//     no deadline, no action; the latest is kept only to be superseded.
//   - When the condition clears (activity back to medium/high, the 流失预警
//     or 待补充 tag lost) the unresolved alert is resolved at that instant
//     with resolution condition_cleared; a FollowUpLogged resolves with
//     followed_up.
//   - An open or acknowledged alert becomes overdue and is escalated
//     (followup_overdue) at due_at. A snoozed alert does nothing until its
//     snooze ends; if the snooze covered due_at, it is escalated when the
//     snooze ends (max(due_at, snoozed_until)), which is when its owner said
//     they would look at it again. An alert is escalated at most once: a
//     snoozed overdue alert wakes up overdue and is not escalated again.
//   - Closing an alert (resolved or superseded) closes its escalation the
//     same way: the escalation is about that alert only.
//   - When the customer's owner changes, the unresolved alerts held by the
//     previous owner follow the customer; an alert assigned to someone else
//     stays with them.

// isInfoKind reports whether alerts of kind are records, not tasks.
func isInfoKind(kind string) bool { return kind == AlertValueTierChanged }

// alertEnd is how alerts are closed.
type alertEnd struct {
	status       string // AlertResolved or AlertSuperseded
	resolution   string
	at           time.Time
	by           uuid.UUID // the FollowUpLogged event
	supersededBy uuid.UUID
}

// closeAlerts closes every kept alert match selects, and their
// escalations, with end.
func (p *Projection) closeAlerts(match func(*Alert) bool, end alertEnd) {
	closed := map[uuid.UUID]bool{}
	for i := range p.Alerts {
		if match(&p.Alerts[i]) {
			closed[p.Alerts[i].ID] = true
		}
	}
	if len(closed) == 0 {
		return
	}
	kept := p.Alerts[:0]
	for i := range p.Alerts {
		a := p.Alerts[i]
		if !closed[a.ID] && (a.Escalates == uuid.Nil || !closed[a.Escalates]) {
			kept = append(kept, a)
			continue
		}
		a.Status, a.Resolution, a.ResolvedAt, a.ResolvedBy, a.SupersededBy = end.status, end.resolution, end.at, end.by, end.supersededBy
		p.AlertUpdates = append(p.AlertUpdates, a)
	}
	p.Alerts = kept
}

// raise opens an alert of kind, superseding the kept one of the same kind.
func (p *Projection) raise(rs *RuleSet, kind, from, to, zh, en string, at time.Time, escalated *Alert) {
	a := Alert{
		ID: AlertID(p.State.Customer, kind, at), Customer: p.State.Customer, Kind: kind, From: from, To: to,
		ReasonZH: zh, ReasonEN: en, CreatedAt: at, DueAt: rs.dueAt(kind, at), Owner: p.State.Profile.Owner,
		Status: AlertOpen, Playbook: rs.Alerts[kind].Playbook, RuleVersion: rs.Version,
	}
	switch {
	case escalated != nil:
		a.ID, a.Escalates, a.Owner = EscalationID(escalated.ID), escalated.ID, escalated.Owner
	case isInfoKind(kind) || rs.isCustomInfo(kind):
		a.Status, a.DueAt = AlertInfo, time.Time{}
	}
	if escalated == nil {
		a.SuppressionReason = rs.suppression(kind, p.cause)
	} else if escalated.DeliverySuppressed {
		a.SuppressionReason = SuppressedEscalation
	}
	a.DeliverySuppressed = a.SuppressionReason != ""
	if kind == AlertValueTierChanged && to == rs.ValueTiers[0].Value {
		a.Playbook += "（战略客户：一对一专属服务）"
	}
	for i := range p.Alerts {
		if p.Alerts[i].ID == a.ID {
			return // raised already at this instant (a boundary and an event at one instant)
		}
	}
	if escalated == nil {
		p.closeAlerts(func(b *Alert) bool { return b.Kind == kind },
			alertEnd{status: AlertSuperseded, at: at, supersededBy: a.ID})
	}
	p.Alerts = append(p.Alerts, a)
	raised := a
	raised.Raised = true
	p.AlertUpdates = append(p.AlertUpdates, raised)
}

// clearCondition resolves the unresolved alert of kind: what raised it no
// longer holds.
func (p *Projection) clearCondition(kind string, at time.Time) {
	p.closeAlerts(func(a *Alert) bool { return a.Kind == kind && a.Unresolved() },
		alertEnd{status: AlertResolved, resolution: ResolutionConditionCleared, at: at})
}

// alertsFromChanges derives the alerts of SPEC §5/§8 from one evaluation's
// label changes: raised, superseded and cleared.
func (p *Projection) alertsFromChanges(rs *RuleSet, changes []LabelChange, at time.Time) {
	for _, c := range changes {
		switch {
		case c.Label == LabelActivity && c.To == ActivityLow && (c.From == ActivityHigh || c.From == ActivityMedium):
			p.raise(rs, AlertActivityDropped, c.From, c.To,
				"活跃度由"+rs.ActivityNames[c.From]+"降为"+rs.ActivityNames[c.To]+"："+c.ReasonZH,
				"activity dropped from "+c.From+" to "+c.To+": "+c.ReasonEN, at, nil)
		case c.Label == LabelActivity && (c.To == ActivityHigh || c.To == ActivityMedium):
			p.clearCondition(AlertActivityDropped, at)
		case c.Label == TagLabel("churn_warning") && c.To == TagPresent:
			p.raise(rs, AlertChurnRisk, c.From, c.To, "获得流失预警标签："+c.ReasonZH, "churn warning tag gained: "+c.ReasonEN, at, nil)
		case c.Label == TagLabel("churn_warning") && c.To == TagAbsent:
			p.clearCondition(AlertChurnRisk, at)
		case c.Label == TagLabel("needs_completion") && c.To == TagPresent:
			p.raise(rs, AlertDataIncomplete, c.From, c.To, "客户资料待补充："+c.ReasonZH, "profile incomplete: "+c.ReasonEN, at, nil)
		case c.Label == TagLabel("needs_completion") && c.To == TagAbsent:
			p.clearCondition(AlertDataIncomplete, at)
		case c.Label == LabelValueTier && c.From != "":
			p.raise(rs, AlertValueTierChanged, c.From, c.To,
				"价值层级由"+rs.Display(LabelValueTier, c.From)+"变为"+rs.Display(LabelValueTier, c.To)+"："+c.ReasonZH,
				"value tier changed from "+c.From+" to "+c.To+": "+c.ReasonEN, at, nil)
		default:
			p.customAlerts(rs, &c, at)
		}
	}
}

// alertInstant is the next instant at which time alone changes alert a
// (zero: none): the end of its snooze, or its deadline.
func (a *Alert) alertInstant() time.Time {
	switch {
	case a.Status == AlertStatusSnoozed:
		return a.SnoozedUntil
	case (a.Status == AlertOpen || a.Status == AlertStatusAcknowledged) && a.EscalatedAt.IsZero():
		return a.DueAt
	}
	return time.Time{}
}

// nextDue is the earliest instant at which time alone changes an alert.
func (p *Projection) nextDue() time.Time {
	var next time.Time
	for i := range p.Alerts {
		if t := p.Alerts[i].alertInstant(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// markOverdue passes every alert instant up to at: snoozes that ended wake
// their alerts, and alerts past their deadline become overdue and are
// escalated at max(due_at, end of a snooze that covered it).
func (p *Projection) markOverdue(rs *RuleSet, at time.Time) {
	// Escalations raised here are appended to p.Alerts; they have no
	// deadline and are not snoozed, so the loop need not visit them.
	for i := range len(p.Alerts) {
		a := &p.Alerts[i]
		if a.Status == AlertStatusSnoozed && !a.SnoozedUntil.After(at) {
			a.Status = AlertOpen
			switch {
			case !a.EscalatedAt.IsZero():
				a.Status = AlertOverdue
			case !a.AcknowledgedAt.IsZero():
				a.Status = AlertStatusAcknowledged
			}
			p.AlertUpdates = append(p.AlertUpdates, *a)
		}
		if (a.Status != AlertOpen && a.Status != AlertStatusAcknowledged) || !a.EscalatedAt.IsZero() || a.DueAt.IsZero() || a.DueAt.After(at) {
			continue
		}
		when := a.DueAt
		if a.SnoozedUntil.After(when) {
			when = a.SnoozedUntil
		}
		a.Status, a.EscalatedAt = AlertOverdue, when
		p.AlertUpdates = append(p.AlertUpdates, *a)
		escalated := *a
		p.raise(rs, AlertFollowUpOverdue, a.Kind, AlertOverdue,
			rs.Alerts[a.Kind].Display+"告警已于截止时间 "+a.DueAt.In(rs.Location).Format("2006-01-02 15:04")+" 超时未跟进",
			a.Kind+" alert not followed up by its due time "+a.DueAt.In(rs.Location).Format(time.RFC3339), when, &escalated)
	}
}

// resolve closes alerts on a follow-up: the one it names, or else every
// unresolved alert created before its occurred_at.
func (p *Projection) resolve(f *FollowUpLogged, r *Recorded, at time.Time) {
	p.closeAlerts(func(a *Alert) bool {
		if f.AlertID != nil {
			return *f.AlertID == a.ID && a.Unresolved()
		}
		return a.Unresolved() && a.CreatedAt.Before(r.OccurredAt)
	}, alertEnd{status: AlertResolved, resolution: ResolutionFollowedUp, at: at, by: r.EventID})
}

// alertAction applies an alert action or follow-up recorded at at. An action
// on an alert that is not kept (unknown, resolved or superseded meanwhile)
// or not a task (info) changes nothing: the API refuses those, and one that
// raced with the alert's end is a no-op.
func (p *Projection) alertAction(ev *Recorded, at time.Time) {
	if f, ok := ev.Data.(*FollowUpLogged); ok {
		p.resolve(f, ev, at)
		return
	}
	id, ok := ActionAlertID(ev.Data)
	if !ok {
		return
	}
	var a *Alert
	for i := range p.Alerts {
		if p.Alerts[i].ID == id && p.Alerts[i].Unresolved() {
			a = &p.Alerts[i]
		}
	}
	if a == nil {
		return
	}
	switch d := ev.Data.(type) {
	case *AlertAcknowledged:
		if a.AcknowledgedAt.IsZero() {
			a.AcknowledgedAt = at
		}
		if a.Status == AlertOpen {
			a.Status = AlertStatusAcknowledged
		}
	case *AlertAssigned:
		a.Owner = d.To
	case *AlertSnoozed:
		if !d.Until.After(at) {
			return
		}
		a.Status, a.SnoozedUntil = AlertStatusSnoozed, d.Until
	}
	p.AlertUpdates = append(p.AlertUpdates, *a)
}

// ownerChanged hands the unresolved alerts held by the customer's previous
// owner to the new one.
func (p *Projection) ownerChanged(from, to string) {
	for i := range p.Alerts {
		a := &p.Alerts[i]
		if a.Owner == from && a.Status != AlertInfo {
			a.Owner = to
			p.AlertUpdates = append(p.AlertUpdates, *a)
		}
	}
}
