package domain

import (
	"fmt"
	"slices"
	"strings"
)

// What other configuration (the notify routes of SPEC §8) refers to in the
// rules: a rule version may not remove it while it is referred to, or the
// route would silently match nothing from that version on.

// Reference kinds.
const (
	RefTag       = "tag"
	RefAlertKind = "alert kind"
	RefValueTier = "value tier"
	RefLabel     = "label"
)

// Reference is a name the rules must keep defining, and who refers to it
// (e.g. `routes.yaml line 12 (routes[1].match.tags[0])`).
type Reference struct {
	Kind string // RefTag, RefAlertKind, RefValueTier or RefLabel
	Name string
	By   string
}

// removal is where a version's remove list names something.
type removal struct {
	path string
	line int
}

// removals records the lines of a version's remove entries.
func (p *rulesParser) removals(r *removeConfig, at string) map[string]removal {
	out := map[string]removal{}
	if r == nil {
		return out
	}
	for i, name := range r.Tags {
		path := fmt.Sprintf("%s.remove.tags[%d]", at, i)
		out[TagLabel(name)] = removal{path, p.line(path)}
	}
	for i, name := range r.Labels {
		path := fmt.Sprintf("%s.remove.labels[%d]", at, i)
		out[name] = removal{path, p.line(path)}
	}
	out[""] = removal{at, p.line(at)}
	return out
}

// defines reports whether the rule set defines the name of kind.
func (rs *RuleSet) defines(kind, name string) bool {
	switch kind {
	case RefTag:
		return rs.TagIndex(name) >= 0
	case RefAlertKind:
		_, ok := rs.Alerts[name]
		return ok || name == AlertFollowUpOverdue
	case RefValueTier:
		return slices.ContainsFunc(rs.ValueTiers, func(t ValueTier) bool { return t.Value == name })
	case RefLabel:
		return slices.Contains(Labels, name) || rs.DimensionIndex(name) >= 0
	}
	return false
}

// CheckReferences refuses a rule book in which a version removes what refs
// refer to (a version that defines it followed by one that does not), or
// whose latest version does not define it: the error names the rules
// file's line and field (the remove entry, or the version) and who refers.
func (b *RuleBook) CheckReferences(refs []Reference) error {
	for _, ref := range refs {
		for i, rs := range b.Versions {
			if rs.defines(ref.Kind, ref.Name) || (i > 0 && !b.Versions[i-1].defines(ref.Kind, ref.Name)) {
				continue
			}
			if i == 0 && slices.ContainsFunc(b.Versions, func(v *RuleSet) bool { return v.defines(ref.Kind, ref.Name) }) {
				continue // defined from a later version on
			}
			at := rs.removed[""]
			key := ref.Name
			if ref.Kind == RefTag {
				key = TagLabel(ref.Name)
			}
			if r, ok := rs.removed[key]; ok {
				at = r
			}
			what := "does not define"
			if i > 0 {
				what = "removes"
			}
			return &RulesError{File: rs.file, Line: at.line, Path: at.path,
				Message: fmt.Sprintf("version %d %s %s %q, which %s refers to; change that first", rs.Version, what, ref.Kind, ref.Name, ref.By)}
		}
	}
	return nil
}

// AlertKinds lists every alert kind of the rule book (built-in and
// operator-defined), sorted.
func (b *RuleBook) AlertKinds() []string {
	kinds := slices.Clone(alertKinds)
	for _, rs := range b.Versions {
		for k := range rs.Alerts {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.SortFunc(kinds, strings.Compare)
	return kinds
}
