package domain

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Alert statuses (SPEC §8). Open, acknowledged, snoozed and overdue alerts
// are unresolved: the projection keeps them (Projection.Alerts) and the
// domain decides on them later. Resolved and superseded are final. Info is
// the status of informational kinds (value_tier_changed): a record, never a
// task, that is never open or overdue; only the latest one per customer is
// kept, so that a newer change supersedes it.
const (
	AlertOpen               = "open"
	AlertStatusAcknowledged = "acknowledged"
	AlertStatusSnoozed      = "snoozed"
	AlertOverdue            = "overdue"
	AlertResolved           = "resolved"
	AlertSuperseded         = "superseded"
	AlertInfo               = "info"
)

// AlertStatuses lists the statuses in a stable order.
var AlertStatuses = []string{AlertOpen, AlertStatusAcknowledged, AlertStatusSnoozed, AlertOverdue, AlertResolved, AlertSuperseded, AlertInfo}

// Resolutions of a resolved alert.
const (
	ResolutionFollowedUp       = "followed_up"       // a FollowUpLogged
	ResolutionConditionCleared = "condition_cleared" // the label change that raised it was undone
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
	Owner       string       `json:"owner"` // the assignee: the customer's owner at raise, or AlertAssigned's to
	Status      string       `json:"status"`
	ResolvedAt  time.Time    `json:"resolved_at,omitzero"` // when it was resolved or superseded
	ResolvedBy  uuid.UUID    `json:"resolved_by,omitzero"` // the FollowUpLogged event
	Playbook    string       `json:"playbook"`
	RuleVersion int          `json:"rule_version"`
	// Escalates is the alert a followup_overdue alert escalates.
	Escalates    uuid.UUID `json:"escalates,omitzero"`
	Resolution   string    `json:"resolution,omitzero"`    // ResolutionFollowedUp or ResolutionConditionCleared
	SupersededBy uuid.UUID `json:"superseded_by,omitzero"` // the newer alert of the same kind
	// AcknowledgedAt is when the first AlertStatusAcknowledged was recorded.
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	// SnoozedUntil is the end of the last snooze (status snoozed until then).
	SnoozedUntil time.Time `json:"snoozed_until,omitzero"`
	// EscalatedAt is when the alert became overdue and was escalated
	// (zero: not yet); an alert is escalated at most once.
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	// Raised marks the update that raised the alert in AlertUpdates (the
	// one the projector publishes); it is never stored.
	Raised bool `json:"-"`
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

// Unresolved reports whether the alert is still a task.
func (a *Alert) Unresolved() bool {
	switch a.Status {
	case AlertOpen, AlertStatusAcknowledged, AlertStatusSnoozed, AlertOverdue:
		return true
	}
	return false
}

// Closed reports whether the alert is resolved or superseded: no action
// applies to it any more.
func (a *Alert) Closed() bool { return a.Status == AlertResolved || a.Status == AlertSuperseded }

// alertNamespace makes alert ids deterministic from customer, kind and the
// change instant: live, rebuilt and re-delivered processing agree on them.
var alertNamespace = uuid.MustParse("4e7a1c2b-9d3f-5a6e-8b0c-1f2e3d4c5b6a")

// AlertID is the id of the alert of a kind raised for a customer at an
// instant (EscalationID for followup_overdue).
func AlertID(customer CustomerCode, kind string, at time.Time) uuid.UUID {
	var buf nameBuf
	k := nameKey(&buf, alertNamespace)
	k = append(append(k, customer...), 0)
	k = append(append(k, kind...), 0)
	return nameUUID(strconv.AppendInt(k, at.UnixNano(), 10))
}

// EscalationID is the id of the followup_overdue alert escalating alert
// escalated: an alert is escalated at most once, and two alerts due at the
// same instant have escalations of their own.
func EscalationID(escalated uuid.UUID) uuid.UUID {
	var buf nameBuf
	k := nameKey(&buf, alertNamespace)
	k = append(append(k, AlertFollowUpOverdue...), 0)
	return nameUUID(appendUUIDText(k, escalated))
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

// TakeAlertUpdates returns the alerts raised or changed since the last call
// and forgets them; the projector stores and publishes them.
func (p *Projection) TakeAlertUpdates() []Alert {
	out := p.AlertUpdates
	p.AlertUpdates = nil
	return out
}
