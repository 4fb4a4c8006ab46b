package domain

import (
	"time"

	"github.com/google/uuid"
)

// Previewer answers, for one customer at a time, what a candidate rule
// version would change if it took effect at an instant: the label and tag
// changes (cause rules) and the alerts they would raise. It works on the
// projection it is given (the caller's copy) and decides nothing else.
type Previewer struct {
	book *RuleBook
	at   time.Time
	cand *RuleSet
	// switches maps a version of book to a two-version book: that version,
	// then the candidate taking effect at at.
	switches map[int]*RuleBook
}

// Previewer returns a previewer of cand taking effect at at, for
// projections evaluated with the versions of b.
func (b *RuleBook) Previewer(cand *RuleSet, at time.Time) *Previewer {
	c := *cand
	c.EffectiveAt = at
	pv := &Previewer{book: b, at: at, cand: &c, switches: map[int]*RuleBook{}}
	for _, v := range b.Versions {
		pv.switches[v.Version] = &RuleBook{Versions: []*RuleSet{v, &c}}
	}
	return pv
}

// Preview brings p to the previewer's instant under the rules in force
// (window boundaries and deadlines pass as they would anyway), then
// switches it to the candidate and returns the changes and the alerts
// raised by that switch alone. p is changed: pass a copy that is not kept.
func (pv *Previewer) Preview(p *Projection) ([]LabelChange, []Alert) {
	if p.RuleVersion == 0 {
		return nil, nil
	}
	pv.book.Advance(p, pv.at, nil)
	p.AlertUpdates = p.AlertUpdates[:0]
	tb := pv.switches[p.RuleVersion]
	if tb == nil || p.RuleVersion == pv.cand.Version {
		return nil, nil // the candidate is the version in force: nothing changes
	}
	changes := tb.evaluate(p, pv.at, CauseRules, uuid.Nil, nil)
	var raised []Alert
	updates := p.TakeAlertUpdates()
	for i := range updates {
		if updates[i].Raised {
			raised = append(raised, updates[i])
		}
	}
	return changes, raised
}

// Candidate is the candidate rule set (with its effective_at set to the
// previewer's instant).
func (pv *Previewer) Candidate() *RuleSet { return pv.cand }
