package projections

import (
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// listColumns fills the columns the customer list sorts, shows and searches
// by (migration 0010): the instant of the latest label or tag change (the
// evaluation instant before any), the last order, and the name searchable
// only when it is not personal data.
func listColumns(r *projectionRow, proj *domain.Projection) {
	first := true
	for _, at := range proj.Since {
		if first || at.After(r.changedAt) {
			r.changedAt, first = at, false
		}
	}
	if t := proj.State.LastOrderAt; !t.IsZero() {
		r.lastOrderAt = &t
	}
	p := &proj.State.Profile
	if p.Name != "" && p.Kind != domain.KindIndividual && !privacy.IsSealed(p.Name) {
		name := p.Name
		r.searchName = &name
	}
}
