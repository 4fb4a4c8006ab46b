package domain

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// Operator-defined labels ("dimensions"): a rules version may add labels
// beside the built-in ones of SPEC §4. A label has ordered cases; the first
// case whose CEL condition holds gives the label its value, so cases are
// read like the IF chains of the seeds' spreadsheets. To make every label
// total and every case meaningful, a version is refused when
//
//   - the last case has a condition (non-exhaustive: some customers would
//     have no value; the last case is the default and has no `when`);
//   - a case other than the last has no condition, or the constant
//     condition true (the cases after it can never match: they overlap it);
//   - a case's condition is the constant false, or repeats an earlier
//     case's condition (it can never match: the earlier case takes every
//     customer it would);
//   - two cases give the same value (join their conditions with ||).
//
// Conditions read facts and labels: the built-in labels and other
// operator-defined labels by name, as strings (`activity == "low"`). A
// label may not read itself, directly or through others (a cycle). Tags
// may read labels too; labels do not read tags. A condition that fails to
// evaluate (an error at run time) counts as not holding.

// MaxDimensions bounds the operator-defined labels of a rule set.
const MaxDimensions = 16

// maxCases bounds the cases of a label (its values are stored as a byte).
const maxCases = 32

// Dimension is an operator-defined label.
type Dimension struct {
	Name      string
	Display   string // zh
	DisplayEN string
	Cases     []DimensionCase
	Alerts    []DimensionAlert
}

// DimensionCase is one value of a label and the condition that gives it;
// the last case has no condition (the default).
type DimensionCase struct {
	Value     string
	Display   string
	DisplayEN string
	When      string // "" for the default
	ReasonZH  string
	ReasonEN  string
	program   cel.Program
}

// DimensionAlert raises an alert of Kind when the label takes one of the
// values To (coming from one of From, when given), and clears it when the
// label takes a value outside To.
type DimensionAlert struct {
	Kind string
	From []string
	To   []string
}

type labelConfig struct {
	Name      string             `yaml:"name"`
	Display   string             `yaml:"display"`
	DisplayEN string             `yaml:"display_en"`
	Cases     []caseConfig       `yaml:"cases"`
	Alerts    []labelAlertConfig `yaml:"alerts"`
}

type caseConfig struct {
	Value     string `yaml:"value"`
	Display   string `yaml:"display"`
	DisplayEN string `yaml:"display_en"`
	When      string `yaml:"when"`
	Reason    string `yaml:"reason"`
	ReasonEN  string `yaml:"reason_en"`
}

type labelAlertConfig struct {
	Kind string   `yaml:"kind"`
	From []string `yaml:"from"`
	To   []string `yaml:"to"`
}

// identifier is a name CEL can read as a variable.
var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// mergeLabels is a version's labels: the previous version's, each replaced
// whole by the label of the same name this version names (cases are an
// ordered list: merging them case by case would be a guess), then this
// version's new labels, less those its remove list names.
func (p *rulesParser) mergeLabels(prev, named []labelConfig, remove *removeConfig, at string) ([]labelConfig, error) {
	drop := map[string]bool{}
	if remove != nil {
		for i, name := range remove.Labels {
			if !slices.ContainsFunc(prev, func(l labelConfig) bool { return l.Name == name }) {
				return nil, p.errf(fmt.Sprintf("%s.remove.labels[%d]", at, i), "the previous version has no label %q", name)
			}
			drop[name] = true
		}
	}
	merged := slices.Clone(prev)
	for i, l := range named {
		if drop[l.Name] {
			return nil, p.errf(fmt.Sprintf("%s.labels[%d]", at, i), "label %q is both named and removed", l.Name)
		}
		if j := slices.IndexFunc(merged, func(m labelConfig) bool { return m.Name == l.Name }); j >= 0 {
			merged[j] = l
		} else {
			merged = append(merged, l)
		}
	}
	return slices.DeleteFunc(merged, func(l labelConfig) bool { return drop[l.Name] }), nil
}

// mergeAlerts is a version's alert settings: the previous version's, each
// kind this version names replaced by its settings (a version adding the
// alert of a new label names that kind only).
func mergeAlerts(prev, named map[string]alertConfig) map[string]alertConfig {
	if named == nil {
		return prev
	}
	out := maps.Clone(prev)
	if out == nil {
		out = map[string]alertConfig{}
	}
	maps.Copy(out, named)
	return out
}

// raisedKinds maps each alert kind the version's labels and tags raise to
// the path of (the first) place that raises it.
func (p *rulesParser) raisedKinds(v versionConfig, at string) map[string]string {
	out := map[string]string{}
	for _, l := range v.Labels {
		for j, a := range l.Alerts {
			if _, ok := out[a.Kind]; !ok && a.Kind != "" {
				out[a.Kind] = fmt.Sprintf("%s.alerts[%d].kind", p.entryPath(at, "labels", l.Name), j)
			}
		}
	}
	for _, t := range v.Tags {
		if _, ok := out[t.Alert]; !ok && t.Alert != "" {
			out[t.Alert] = p.entryPath(at, "tags", t.Name) + ".alert"
		}
	}
	return out
}

// buildLabels checks and compiles the version's labels into rs and
// returns the CEL environment of its conditions (facts and labels).
func (p *rulesParser) buildLabels(rs *RuleSet, v versionConfig, at string) (*cel.Env, error) {
	if len(v.Labels) > MaxDimensions {
		return nil, p.errf(at+".labels", "at most %d labels", MaxDimensions)
	}
	vars := make([]cel.EnvOption, 0, len(Labels)+len(v.Labels))
	for _, name := range Labels {
		vars = append(vars, cel.Variable(name, cel.StringType))
	}
	seen := map[string]bool{}
	for _, l := range v.Labels {
		lp := p.entryPath(at, "labels", l.Name, btoi(seen[l.Name]))
		switch {
		case !identifier.MatchString(l.Name):
			return nil, p.errf(lp+".name", "a label name is lower-case letters, digits and _, starting with a letter")
		case slices.Contains(Labels, l.Name) || slices.Contains(templateFacts, l.Name) || isFunction(l.Name):
			return nil, p.errf(lp+".name", "%q is a built-in label or a fact", l.Name)
		case seen[l.Name]:
			return nil, p.errf(lp+".name", "label %q is defined twice", l.Name)
		case l.Display == "":
			return nil, p.errf(lp+".display", "a display name is required")
		}
		seen[l.Name] = true
		vars = append(vars, cel.Variable(l.Name, cel.StringType))
	}
	env, err := celEnv.Extend(vars...)
	if err != nil {
		return nil, p.errf(at+".labels", "%v", err)
	}
	reads := make([]map[string]string, len(v.Labels)) // the labels each label reads, and where
	for i, l := range v.Labels {
		d, r, err := p.dimension(env, l, seen, p.entryPath(at, "labels", l.Name))
		if err != nil {
			return nil, err
		}
		rs.Dimensions, reads[i] = append(rs.Dimensions, d), r
		rs.labelsInCEL = rs.labelsInCEL || len(r) > 0
	}
	order, err := p.dimensionOrder(v.Labels, reads)
	if err != nil {
		return nil, err
	}
	rs.dimOrder = order
	return env, nil
}

// isFunction: a name CEL already gives a meaning (a label so named would
// be shadowed or confusing).
func isFunction(name string) bool {
	return slices.Contains([]string{"yuan", "true", "false", "null", "in", "size", "has", "int", "string", "double", "bool"}, name)
}

// dimension checks and compiles one label; it also returns the other
// labels of this version its conditions read.
func (p *rulesParser) dimension(env *cel.Env, l labelConfig, defined map[string]bool, lp string) (Dimension, map[string]string, error) {
	d := Dimension{Name: l.Name, Display: l.Display, DisplayEN: l.DisplayEN}
	if len(l.Cases) == 0 || len(l.Cases) > maxCases {
		return d, nil, p.errf(lp+".cases", "a label needs 1 to %d cases, the last without a condition (the default)", maxCases)
	}
	reads := map[string]string{}
	conditions := map[string]int{}
	for k, c := range l.Cases {
		cp := fmt.Sprintf("%s.cases[%d]", lp, k)
		last := k == len(l.Cases)-1
		switch {
		case !ValidCustomerCode(c.Value):
			return d, nil, p.errf(cp+".value", "a value is letters, digits, _ - . (1-64)")
		case slices.ContainsFunc(d.Cases, func(o DimensionCase) bool { return o.Value == c.Value }):
			return d, nil, p.errf(cp+".value", "value %q is given by an earlier case too (join the conditions with ||)", c.Value)
		case c.Display == "":
			return d, nil, p.errf(cp+".display", "a display name is required")
		}
		for _, tp := range []struct{ text, field string }{{c.Reason, ".reason"}, {c.ReasonEN, ".reason_en"}} {
			if err := checkTemplate(tp.text); err != nil {
				return d, nil, p.errf(cp+tp.field, "%v", err)
			}
		}
		dc := DimensionCase{Value: c.Value, Display: c.Display, DisplayEN: c.DisplayEN, When: strings.TrimSpace(c.When), ReasonZH: c.Reason, ReasonEN: c.ReasonEN}
		if dc.When == "" {
			if !last {
				return d, nil, p.errf(cp, "only the last case may go without a condition: the cases after it could never match")
			}
			d.Cases = append(d.Cases, dc)
			continue
		}
		prog, refs, constant, err := compileCase(env, dc.When)
		if err != nil {
			return d, nil, p.errf(cp+".when", "%v", err)
		}
		switch {
		case last:
			return d, nil, p.errf(cp+".when", "the last case is the default and has no condition: with one, some customers would have no value")
		case constant == types.True:
			return d, nil, p.errf(cp+".when", "the condition always holds: the cases after it could never match")
		case constant == types.False:
			return d, nil, p.errf(cp+".when", "the condition never holds: this case could never match")
		}
		key := strings.Join(strings.Fields(dc.When), " ")
		if j, dup := conditions[key]; dup {
			return d, nil, p.errf(cp+".when", "the same condition as case %d: this case could never match", j)
		}
		conditions[key] = k
		for _, r := range refs {
			if _, seen := reads[r]; defined[r] && !seen {
				reads[r] = cp + ".when"
			}
		}
		dc.program = prog
		d.Cases = append(d.Cases, dc)
	}
	for j, a := range l.Alerts {
		ap := fmt.Sprintf("%s.alerts[%d]", lp, j)
		if err := p.dimensionAlert(&d, a, ap); err != nil {
			return d, nil, err
		}
		d.Alerts = append(d.Alerts, DimensionAlert(a))
	}
	return d, reads, nil
}

// dimensionAlert checks one alert of a label: a new kind, and values the
// label has.
func (p *rulesParser) dimensionAlert(d *Dimension, a labelAlertConfig, ap string) error {
	if !identifier.MatchString(a.Kind) || slices.Contains(alertKinds, a.Kind) {
		return p.errf(ap+".kind", "an alert kind of its own is required (lower-case letters, digits, _; not a built-in kind)")
	}
	if len(a.To) == 0 {
		return p.errf(ap+".to", "name the values that raise the alert")
	}
	for field, values := range map[string][]string{"from": a.From, "to": a.To} {
		for k, v := range values {
			if !slices.ContainsFunc(d.Cases, func(c DimensionCase) bool { return c.Value == v }) {
				return p.errf(fmt.Sprintf("%s.%s[%d]", ap, field, k), "label %s has no value %q", d.Name, v)
			}
		}
	}
	return nil
}

// dimensionOrder sorts the labels so that each comes after those it reads,
// refusing a cycle (named in full, at the first label on it).
func (p *rulesParser) dimensionOrder(labels []labelConfig, reads []map[string]string) ([]int, error) {
	index := map[string]int{}
	for i, l := range labels {
		index[l.Name] = i
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(labels))
	order := make([]int, 0, len(labels))
	var visit func(i int, path []string) error
	visit = func(i int, path []string) error {
		switch state[i] {
		case done:
			return nil
		case visiting:
			start := slices.Index(path, labels[i].Name)
			cycle := append(slices.Clone(path[start:]), labels[i].Name)
			return p.errf(reads[index[cycle[0]]][cycle[1]], "labels read each other in a cycle: %s", strings.Join(cycle, " → "))
		}
		state[i] = visiting
		for _, r := range slices.Sorted(maps.Keys(reads[i])) {
			if err := visit(index[r], append(path, labels[i].Name)); err != nil {
				return err
			}
		}
		state[i] = done
		order = append(order, i)
		return nil
	}
	for i := range labels {
		if err := visit(i, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// compileCondition compiles a boolean condition over facts and labels and
// returns the names it reads.
func compileCondition(env *cel.Env, expr string) (cel.Program, []string, error) {
	prog, refs, _, err := compileCase(env, expr)
	return prog, labelRefs(refs), err
}

// labelRefs keeps the label names among names.
func labelRefs(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool { return slices.Contains(templateFacts, n) })
}

// compileCase compiles a condition; constant is its value when the
// condition is a literal (true or false), else nil.
func compileCase(env *cel.Env, expr string) (prog cel.Program, refs []string, constant any, err error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil, nil, errors.New("a condition is required")
	}
	checked, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, nil, nil, explainCEL(iss.Err())
	}
	if checked.OutputType() != cel.BoolType {
		return nil, nil, nil, fmt.Errorf("must be a boolean condition, is %s", checked.OutputType())
	}
	native := checked.NativeRep()
	if e := native.Expr(); e.Kind() == ast.LiteralKind {
		constant = e.AsLiteral()
	}
	for _, r := range native.ReferenceMap() {
		if r.Name != "" && !slices.Contains(refs, r.Name) {
			refs = append(refs, r.Name)
		}
	}
	slices.Sort(refs)
	prog, err = env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, nil, err
	}
	return prog, refs, constant, nil
}

// undeclared finds the name in CEL's "undeclared reference" message.
var undeclared = regexp.MustCompile(`undeclared reference to '([^']+)'`)

// explainCEL turns CEL's message about an unknown name into one that lists
// what a condition may read.
func explainCEL(err error) error {
	m := undeclared.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var known []string
	for _, name := range templateFacts {
		if name != FactProfileMissing {
			known = append(known, name)
		}
	}
	known = append(known, Labels...)
	return fmt.Errorf("unknown fact or label %q (facts: %s; or a label of the version): %w", m[1], strings.Join(known, ", "), err)
}

// btoi is 1 for true: the occurrence of a name seen before.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
