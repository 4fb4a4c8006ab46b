package domain

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Evaluation of the operator-defined labels (rules_labels.go).

// labelActivation lets conditions read labels as well as facts: the
// built-in labels as decided so far and the operator-defined ones
// evaluated before (dimOrder puts a label after those it reads).
type labelActivation struct {
	f  *Facts
	l  *LabelSet
	rs *RuleSet
}

// ResolveName resolves facts first: they are what conditions read most.
func (a *labelActivation) ResolveName(name string) (any, bool) {
	if v, ok := a.f.ResolveName(name); ok {
		return v, true
	}
	switch name {
	case LabelValueTier, LabelActivity, LabelNeedOrientation, LabelLifecycle, LabelSegment:
		return types.String(a.l.Value(name)), true
	}
	if i := a.rs.DimensionIndex(name); i >= 0 {
		return types.String(a.rs.DimensionValue(a.l, i)), true
	}
	return nil, false
}

// Parent is part of the CEL activation interface.
func (a *labelActivation) Parent() interpreter.Activation { return nil }

// evaluateDimensions decides every operator-defined label of l, in
// dependency order.
func (rs *RuleSet) evaluateDimensions(act interpreter.Activation, l *LabelSet) {
	for _, i := range rs.dimOrder {
		cases := rs.Dimensions[i].Cases
		k := len(cases) - 1 // the default
		for j := range cases[:k] {
			v, _, err := cases[j].program.Eval(act)
			if err == nil && v == types.True {
				k = j
				break
			}
		}
		l.Dims[i] = uint8(k + 1)
	}
}

// DimensionIndex returns the index of an operator-defined label, -1 when
// the rule set has none of that name.
func (rs *RuleSet) DimensionIndex(name string) int {
	for i := range rs.Dimensions {
		if rs.Dimensions[i].Name == name {
			return i
		}
	}
	return -1
}

// dimensionCase is the case that decided label i in l (nil: not evaluated).
func (rs *RuleSet) dimensionCase(l *LabelSet, i int) *DimensionCase {
	k := int(l.Dims[i]) - 1
	if i < 0 || i >= len(rs.Dimensions) || k < 0 || k >= len(rs.Dimensions[i].Cases) {
		return nil
	}
	return &rs.Dimensions[i].Cases[k]
}

// DimensionValue is the value of operator-defined label i in l.
func (rs *RuleSet) DimensionValue(l *LabelSet, i int) string {
	if c := rs.dimensionCase(l, i); c != nil {
		return c.Value
	}
	return ""
}

// LabelValue is the value of any label of the rule set, built-in or
// operator-defined ("" when it has none).
func (rs *RuleSet) LabelValue(l *LabelSet, name string) string {
	if v := l.Value(name); v != "" {
		return v
	}
	return rs.DimensionValue(l, rs.DimensionIndex(name))
}

// SetDimension sets operator-defined label name to value in l (false when
// the rule set has no such label or value): for reading stored labels.
func (rs *RuleSet) SetDimension(l *LabelSet, name, value string) bool {
	i := rs.DimensionIndex(name)
	if i < 0 {
		return false
	}
	for k := range rs.Dimensions[i].Cases {
		if rs.Dimensions[i].Cases[k].Value == value {
			l.Dims[i] = uint8(k + 1)
			return true
		}
	}
	return false
}

// LabelNames lists the labels of the rule set: the built-in ones, then the
// operator-defined ones in the file's order.
func (rs *RuleSet) LabelNames() []string {
	names := append(make([]string, 0, len(Labels)+len(rs.Dimensions)), Labels...)
	for i := range rs.Dimensions {
		names = append(names, rs.Dimensions[i].Name)
	}
	return names
}

// dimensionDisplay is the display name of a value of an operator-defined
// label ("" when unknown).
func (rs *RuleSet) dimensionDisplay(label, value string) string {
	i := rs.DimensionIndex(label)
	if i < 0 {
		return ""
	}
	for _, c := range rs.Dimensions[i].Cases {
		if c.Value == value {
			return c.Display
		}
	}
	return ""
}

// DimensionReason explains the value of operator-defined label i from its
// case's reason templates; without one, from its condition.
func (rs *RuleSet) DimensionReason(l *LabelSet, i int, f *Facts) (zh, en string) {
	c := rs.dimensionCase(l, i)
	if c == nil {
		return "", ""
	}
	zh, en = renderTemplate(c.ReasonZH, f, true), renderTemplate(c.ReasonEN, f, false)
	when, whenEN := c.When, c.When
	if when == "" {
		when, whenEN = "前述条件均不满足（默认）", "none of the earlier conditions holds (default)"
	}
	if zh == "" {
		zh = when
	}
	if en == "" {
		en = whenEN
	}
	return zh, en
}

// dimensionChanges records the changes of the operator-defined labels from
// old (judged by oldRS, nil before the first evaluation) to l (by rs).
// Labels are matched by name across versions; a label a version drops
// stops being shown (its history stays).
func (b *RuleBook) dimensionChanges(old *LabelSet, oldRS *RuleSet, l *LabelSet, rs *RuleSet, f *Facts, add func(LabelChange)) {
	for i := range rs.Dimensions {
		name := rs.Dimensions[i].Name
		from := ""
		if oldRS != nil {
			from = oldRS.DimensionValue(old, oldRS.DimensionIndex(name))
		}
		if to := rs.DimensionValue(l, i); to != from {
			zh, en := rs.DimensionReason(l, i, f)
			add(LabelChange{Label: name, From: from, To: to, ReasonZH: zh, ReasonEN: en})
		}
	}
}

// isCustomInfo: an operator-defined alert kind without a deadline is
// informational, like value_tier_changed.
func (rs *RuleSet) isCustomInfo(kind string) bool {
	if slices.Contains(alertKinds, kind) {
		return false
	}
	r := rs.Alerts[kind]
	return r.Due == 0 && r.DueBusinessDays == 0
}

// customAlerts raises and clears the operator-defined alerts of a label
// or tag change.
func (p *Projection) customAlerts(rs *RuleSet, c *LabelChange, at time.Time) {
	if name, ok := strings.CutPrefix(c.Label, "tag:"); ok {
		i := rs.TagIndex(name)
		if i < 0 || rs.Tags[i].AlertKind == "" {
			return
		}
		t := &rs.Tags[i]
		if c.To == TagPresent {
			p.raise(rs, t.AlertKind, c.From, c.To, "获得标签「"+t.Display+"」："+c.ReasonZH, "tag "+t.Name+" gained: "+c.ReasonEN, at, nil)
		} else {
			p.clearCondition(t.AlertKind, at)
		}
		return
	}
	i := rs.DimensionIndex(c.Label)
	if i < 0 {
		return
	}
	d := &rs.Dimensions[i]
	for _, a := range d.Alerts {
		switch {
		case slices.Contains(a.To, c.To) && (len(a.From) == 0 || slices.Contains(a.From, c.From)):
			p.raise(rs, a.Kind, c.From, c.To,
				d.Display+"由"+cmp.Or(rs.Display(d.Name, c.From), "无")+"变为"+rs.Display(d.Name, c.To)+"："+c.ReasonZH,
				d.Name+" changed from "+cmp.Or(c.From, "none")+" to "+c.To+": "+c.ReasonEN, at, nil)
		case !slices.Contains(a.To, c.To):
			p.clearCondition(a.Kind, at)
		}
	}
}
