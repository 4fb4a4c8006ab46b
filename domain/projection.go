package domain

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// CauseKind says why a label changed.
type CauseKind string

// Causes of a label change (SPEC §6.1).
const (
	CauseEvent CauseKind = "event" // an event was recorded
	CauseTime  CauseKind = "time"  // a window boundary passed
	CauseRules CauseKind = "rules" // a new rule-set version took effect
)

// Tag values in the label history.
const (
	TagAbsent  = "absent"
	TagPresent = "present"
)

// TagLabel is the history name of a tag: "tag:<name>".
func TagLabel(name string) string { return "tag:" + name }

// LabelChange is one entry of a customer's label history.
type LabelChange struct {
	ID          uuid.UUID
	Customer    CustomerCode
	Label       string // a label name, or TagLabel(name)
	From        string // "" when the label had no value yet
	To          string
	At          time.Time
	Cause       CauseKind
	EventID     uuid.UUID // the causing event, for CauseEvent
	RuleVersion int
	ReasonZH    string
	ReasonEN    string
}

// changeNamespace makes label change ids deterministic: the same change
// (customer, label, cause, instant) always has the same id, in the live
// projector and in a rebuild.
var changeNamespace = uuid.MustParse("b8f2d3a4-5c6e-5f70-8a9b-0c1d2e3f4a5b")

func changeID(c *LabelChange) uuid.UUID {
	// The rule version and the new value are part of the identity: the same
	// event judged by a different rule version (a rebuild under a changed
	// rules file) is a different change and must not reuse the old id.
	var buf nameBuf
	k := nameKey(&buf, changeNamespace)
	k = append(append(k, c.Customer...), 0)
	k = append(append(k, c.Label...), 0)
	k = append(append(k, c.Cause...), 0)
	k = append(appendUUIDText(k, c.EventID), 0)
	k = append(strconv.AppendInt(k, int64(c.RuleVersion), 10), 0)
	k = append(append(k, c.To...), 0)
	k = strconv.AppendInt(k, c.At.UnixNano(), 10)
	return nameUUID(k)
}

// Projection is a customer's projected state: the folded events, the labels
// at the last evaluation, when each label took its value, and the next
// instant at which time alone may change a label.
type Projection struct {
	State       CustomerState
	Labels      LabelSet
	Facts       Facts
	RuleVersion int       // 0: never evaluated
	EvaluatedAt time.Time // the instant of the last evaluation
	// Next is the next window boundary (zero: none). The next instant at
	// which anything can change without an event is NextInstant.
	Next  time.Time
	Since map[string]time.Time // label or "tag:<name>" -> instant it took its value
	// Alerts are the customer's unresolved alerts (open, acknowledged,
	// snoozed, overdue) and its latest info alert (alert_lifecycle.go).
	Alerts []Alert
	// AlertUpdates are alerts raised or changed by Advance and not yet taken
	// (TakeAlertUpdates); they are not part of the stored state.
	AlertUpdates []Alert
	// cause is the event being evaluated inside Advance (nil for time and
	// rule causes): alerts it raises may be suppressed (suppression).
	cause *Recorded
}

// NextInstant is the earliest instant after the last evaluation at which a
// label may change without a new event: a window boundary or a rule switch.
func (b *RuleBook) NextInstant(p *Projection) time.Time {
	return b.NextInstantKnownAt(p, time.Time{})
}

// NextInstantKnownAt is NextInstant as it was known at instant known (zero:
// now): recorded RFM days after known are left out, as they were not
// recorded yet then (an as_of document shows the next change it showed).
func (b *RuleBook) NextInstantKnownAt(p *Projection, known time.Time) time.Time {
	at, _ := b.nextBoundary(p)
	if r := b.nextRFMChange(p, known); !r.IsZero() && (at.IsZero() || r.Before(at)) {
		return r
	}
	return at
}

func (b *RuleBook) nextBoundary(p *Projection) (time.Time, CauseKind) {
	if p.RuleVersion == 0 {
		return time.Time{}, ""
	}
	next := p.Next
	// A follow-up deadline or the end of a snooze is a boundary too: the
	// alert becomes overdue and is escalated, or wakes up.
	if due := p.nextDue(); !due.IsZero() && (next.IsZero() || due.Before(next)) {
		next = due
	}
	sw := b.NextSwitch(p.EvaluatedAt)
	if !sw.IsZero() && (next.IsZero() || !next.Before(sw)) {
		return sw, CauseRules
	}
	return next, CauseTime
}

// Advance moves a customer's projection to instant to. It first passes every
// boundary instant up to and including to, in order, evaluating at each and
// recording what changed with cause time (or rules); then, when ev is given
// (recorded at to), it applies the event and evaluates at its recorded_at
// with cause event. Live projection, rebuild, as-of queries and the
// scheduler all go through here, which is what makes them agree.
//
// An event that is not the next version of the stream is ignored.
func (b *RuleBook) Advance(p *Projection, to time.Time, ev *Recorded) []LabelChange {
	var changes []LabelChange
	for {
		at, cause := b.nextBoundary(p)
		// A recorded RFM day that changes the customer's scores is a time
		// boundary too (a rule switch at the same instant comes first).
		if r := b.nextRFMChange(p, to); !r.IsZero() && (at.IsZero() || r.Before(at)) {
			at, cause = r, CauseTime
		}
		if at.IsZero() || at.After(to) {
			break
		}
		changes = b.evaluate(p, at, cause, uuid.Nil, changes)
	}
	owner := p.State.Profile.Owner
	if ev != nil && p.State.Apply(ev) {
		// recorded_at never decreases along the log and the scheduler waits
		// for in-flight appends, so at is normally the event's recorded_at;
		// never evaluate before the last evaluation, which would rewrite time.
		at := ev.RecordedAt
		if at.Before(p.EvaluatedAt) {
			at = p.EvaluatedAt
		}
		p.cause = ev
		if p.State.Profile.Owner != owner && owner != "" {
			p.ownerChanged(owner, p.State.Profile.Owner)
		}
		p.alertAction(ev, at)
		changes = b.evaluate(p, at, CauseEvent, ev.EventID, changes)
		p.cause = nil
	}
	return changes
}

// version returns the rule set with the given version number.
func (b *RuleBook) version(v int) *RuleSet {
	for _, rs := range b.Versions {
		if rs.Version == v {
			return rs
		}
	}
	return nil
}

func (b *RuleBook) evaluate(p *Projection, at time.Time, cause CauseKind, eventID uuid.UUID, changes []LabelChange) []LabelChange {
	rs := b.At(at)
	p.markOverdue(rs, at)
	first := len(changes)
	l, f, next := rs.EvaluateWith(&p.State, at, b.RFM().At(at))
	old := p.Labels
	oldRS := b.version(p.RuleVersion)
	if p.Since == nil {
		p.Since = map[string]time.Time{}
	}
	add := func(c LabelChange) {
		c.Customer, c.At, c.Cause, c.EventID, c.RuleVersion = p.State.Customer, at, cause, eventID, rs.Version
		c.ID = changeID(&c)
		changes = append(changes, c)
		if c.To == TagAbsent {
			delete(p.Since, c.Label)
		} else {
			p.Since[c.Label] = at
		}
	}
	if l != old || oldRS != rs {
		for _, name := range Labels {
			from, to := old.Value(name), l.Value(name)
			if from != to {
				zh, en := rs.Reason(&p.State, name, &l, &f)
				add(LabelChange{Label: name, From: from, To: to, ReasonZH: zh, ReasonEN: en})
			}
		}
		b.dimensionChanges(&old, oldRS, &l, rs, &f, add)
		// Tags are matched by name: a new rule version may add or drop tags.
		for i := range rs.Tags {
			was := oldRS != nil && oldRS.hasTagNamed(&old, rs.Tags[i].Name)
			if l.HasTag(i) && !was {
				zh, en := rs.TagReason(i, true, &f)
				add(LabelChange{Label: TagLabel(rs.Tags[i].Name), From: TagAbsent, To: TagPresent, ReasonZH: zh, ReasonEN: en})
			}
		}
		if oldRS != nil {
			for i := range oldRS.Tags {
				if old.HasTag(i) && !rs.hasTagNamed(&l, oldRS.Tags[i].Name) {
					zh, en := oldRS.TagReason(i, false, &f)
					add(LabelChange{Label: TagLabel(oldRS.Tags[i].Name), From: TagPresent, To: TagAbsent, ReasonZH: zh, ReasonEN: en})
				}
			}
		}
	}
	p.Labels, p.Facts, p.Next, p.EvaluatedAt, p.RuleVersion = l, f, next, at, rs.Version
	p.alertsFromChanges(rs, changes[first:], at)
	return changes
}

func (rs *RuleSet) hasTagNamed(l *LabelSet, name string) bool {
	i := rs.TagIndex(name)
	return i >= 0 && l.HasTag(i)
}

// RuleSet returns the rule set a projection was last evaluated with.
func (b *RuleBook) RuleSet(p *Projection) *RuleSet {
	if rs := b.version(p.RuleVersion); rs != nil {
		return rs
	}
	return b.Latest()
}
