package domain

import (
	"time"

	"github.com/google/uuid"
)

// MaxSnooze is the longest an alert may be snoozed (SPEC §8).
const MaxSnooze = 7 * 24 * time.Hour

// The actions on an alert (SPEC §8) are events of the customer's stream, so
// the auditor's replay shows who did what. By is the acting token's identity
// (httpapi sets it; it is never taken from a request body). They are
// accepted only from the alert endpoints, which check the actor may act
// (IsAlertAction).

// AlertAcknowledged records that the alert's owner has seen the alert.
type AlertAcknowledged struct {
	AlertID uuid.UUID `json:"alert_id"`
	By      string    `json:"by"`
}

// AlertAssigned gives the alert to another person.
type AlertAssigned struct {
	AlertID uuid.UUID `json:"alert_id"`
	To      string    `json:"to"`
	By      string    `json:"by"`
}

// AlertSnoozed puts the alert aside until an instant at most MaxSnooze after
// the action.
type AlertSnoozed struct {
	AlertID uuid.UUID `json:"alert_id"`
	Until   time.Time `json:"until"`
	By      string    `json:"by"`
}

func (*AlertAcknowledged) EventType() EventType { return TypeAlertAcknowledged }
func (*AlertAssigned) EventType() EventType     { return TypeAlertAssigned }
func (*AlertSnoozed) EventType() EventType      { return TypeAlertSnoozed }

// IsAlertAction reports whether t is an alert action, which only the alert
// endpoints may append (they check who may act; POST /v1/events and NATS
// ingest cannot).
func IsAlertAction(t EventType) bool {
	return t == TypeAlertAcknowledged || t == TypeAlertAssigned || t == TypeAlertSnoozed
}

// ActionAlertID is the alert an event acts on: the action's alert, or a
// follow-up's alert_id; false for other events and a follow-up naming none.
func ActionAlertID(e Event) (uuid.UUID, bool) {
	switch d := e.(type) {
	case *AlertAcknowledged:
		return d.AlertID, true
	case *AlertAssigned:
		return d.AlertID, true
	case *AlertSnoozed:
		return d.AlertID, true
	case *FollowUpLogged:
		if d.AlertID != nil {
			return *d.AlertID, true
		}
	}
	return uuid.Nil, false
}

func validAlertID(c *collector, id uuid.UUID) {
	if id == uuid.Nil {
		c.add("data.alert_id", CodeRequired, "is required and must not be the nil UUID")
	}
}

func (e *AlertAcknowledged) validate(c *collector) {
	validAlertID(c, e.AlertID)
	requiredText(c, "data.by", e.By, maxShortText)
}

func (e *AlertAssigned) validate(c *collector) {
	validAlertID(c, e.AlertID)
	requiredText(c, "data.to", e.To, maxShortText)
	requiredText(c, "data.by", e.By, maxShortText)
}

func (e *AlertSnoozed) validate(c *collector) {
	validAlertID(c, e.AlertID)
	if e.Until.IsZero() {
		c.add("data.until", CodeRequired, "is required (an RFC 3339 time)")
	}
	requiredText(c, "data.by", e.By, maxShortText)
}

// validateUntil checks until against the instant of the action: after it,
// and at most MaxSnooze later.
func (e *AlertSnoozed) validateUntil(c *collector, at time.Time) {
	switch {
	case e.Until.IsZero():
	case !e.Until.After(at):
		c.add("data.until", CodeOutOfRange, "must be in the future")
	case e.Until.Sub(at) > MaxSnooze:
		c.add("data.until", CodeOutOfRange, "must be at most 7 days ahead")
	}
}
