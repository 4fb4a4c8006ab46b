package projections

import (
	"fmt"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/segments-dev/segments/domain"
)

// storedProjection is the JSON form of a domain.Projection in
// customer_projections.projection. Tags are stored by name, not as bits, so
// a stored projection stays readable whatever the rule set's tag order.
type storedProjection struct {
	State       domain.CustomerState `json:"state"`
	ValueTier   string               `json:"value_tier"`
	Activity    string               `json:"activity"`
	Need        string               `json:"need_orientation"`
	Lifecycle   string               `json:"lifecycle"`
	Tags        []string             `json:"tags,omitzero"`
	Facts       domain.Facts         `json:"facts"`
	RuleVersion int                  `json:"rule_version"`
	EvaluatedAt time.Time            `json:"evaluated_at"`
	Next        time.Time            `json:"next,omitzero"`
	Since       map[string]time.Time `json:"since,omitzero"`
	Alerts      []domain.Alert       `json:"alerts,omitzero"`
}

func encodeProjection(book *domain.RuleBook, p *domain.Projection) ([]byte, error) {
	sp := storedProjection{
		State: p.State, ValueTier: p.Labels.ValueTier, Activity: p.Labels.Activity,
		Need: p.Labels.NeedOrientation, Lifecycle: p.Labels.Lifecycle, Tags: tagNames(book, p),
		Facts: p.Facts, RuleVersion: p.RuleVersion, EvaluatedAt: p.EvaluatedAt, Next: p.Next, Since: p.Since,
		Alerts: p.Alerts,
	}
	b, err := json.Marshal(&sp, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("encode projection of %s: %w", p.State.Customer, err)
	}
	return b, nil
}

func decodeProjection(book *domain.RuleBook, b []byte) (*domain.Projection, error) {
	var sp storedProjection
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, fmt.Errorf("decode projection: %w", err)
	}
	p := &domain.Projection{
		State: sp.State, Facts: sp.Facts, RuleVersion: sp.RuleVersion, EvaluatedAt: sp.EvaluatedAt,
		Next: sp.Next, Since: sp.Since, Alerts: sp.Alerts,
		Labels: domain.LabelSet{ValueTier: sp.ValueTier, Activity: sp.Activity, NeedOrientation: sp.Need, Lifecycle: sp.Lifecycle},
	}
	if p.RuleVersion != 0 {
		rs := book.RuleSet(p)
		for _, name := range sp.Tags {
			if i := rs.TagIndex(name); i >= 0 {
				p.Labels.Tags |= 1 << uint(i)
			}
		}
	}
	return p, nil
}

// tagNames lists the present tags of a projection in rule-set order.
func tagNames(book *domain.RuleBook, p *domain.Projection) []string {
	if p.RuleVersion == 0 {
		return nil
	}
	rs := book.RuleSet(p)
	names := []string{}
	for i := range rs.Tags {
		if p.Labels.HasTag(i) {
			names = append(names, rs.Tags[i].Name)
		}
	}
	return names
}
