package domain

import (
	_ "embed" // the default rule set ships inside the binary
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/goccy/go-yaml"
)

//go:embed rules/default.yaml
var defaultRulesYAML []byte

// DefaultRulesYAML returns the built-in rules file (SPEC §4 and §5).
func DefaultRulesYAML() []byte { return slices.Clone(defaultRulesYAML) }

// Label names (SPEC §4).
const (
	LabelValueTier       = "value_tier"
	LabelActivity        = "activity"
	LabelNeedOrientation = "need_orientation"
	LabelLifecycle       = "lifecycle"
	LabelSegment         = "segment"
)

// Labels lists the single-valued labels in display order.
var Labels = []string{LabelValueTier, LabelActivity, LabelNeedOrientation, LabelLifecycle, LabelSegment}

// Values of the built-in labels.
const (
	ActivityHigh   = "high"
	ActivityMedium = "medium"
	ActivityLow    = "low"

	LifecycleProspect = "prospect"
	LifecycleIntent   = "intent"
	LifecycleCustomer = "customer"
	LifecycleLost     = "lost"

	NeedProduct     = "product"
	NeedService     = "service"
	NeedPartnership = "partnership"
	NeedUnknown     = "unknown"
)

// Alert kinds (SPEC §5).
const (
	AlertActivityDropped  = "activity_dropped"
	AlertChurnRisk        = "churn_risk"
	AlertDataIncomplete   = "data_incomplete"
	AlertValueTierChanged = "value_tier_changed"
	AlertFollowUpOverdue  = "followup_overdue"
)

var alertKinds = []string{AlertActivityDropped, AlertChurnRisk, AlertDataIncomplete, AlertValueTierChanged, AlertFollowUpOverdue}

// MaxTags bounds the tags of a rule set (they are a bit set).
const MaxTags = 64

// ValueTier is one step of the value ladder.
type ValueTier struct {
	Value   string
	Display string
	Short   string // used in segment display names: 战略 + 高活跃 + 客户
	MinNet  Money
}

// Tag is an operator-defined tag: a CEL condition over facts.
type Tag struct {
	Name     string
	Display  string
	When     string
	ReasonZH string
	ReasonEN string
	// AlertKind, when set, is raised when the tag is gained and cleared
	// when it is lost (an operator-defined alert kind).
	AlertKind string
	program   cel.Program
}

// AlertRule is the deadline and playbook of an alert kind.
type AlertRule struct {
	Display         string
	Due             time.Duration // 0: none
	DueBusinessDays int           // 0: none
	Playbook        string
}

// RuleSet is one version of the rules: thresholds, windows, keyword map,
// display names, tags, alert deadlines, time zone and business days.
type RuleSet struct {
	Version     int
	EffectiveAt time.Time
	// Source is the version's text as written in the rules file; Definition
	// its canonical form (JSON, keys sorted: comments and layout do not
	// count) and Hash the SHA-256 of Definition in hex. The log records them
	// when a version is first loaded; a version in force must not change.
	Source      string
	Definition  string
	Hash        string
	Location    *time.Location
	ShortMonths int
	LongMonths  int
	// ShortWindow and LongWindow, when set, replace the month windows by
	// fixed durations (for tests and demos whose windows are seconds long).
	ShortWindow   time.Duration
	LongWindow    time.Duration
	ValueTiers    []ValueTier // descending minimums, the last is the floor
	HighMin       int64
	MediumMin     int64
	ActivityNames map[string]string
	LifecycleName map[string]string
	NeedNames     map[string]string
	NeedKeywords  []NeedKeyword
	Tags          []Tag
	// Dimensions are the operator-defined labels, in the file's order
	// (rules_labels.go).
	Dimensions []Dimension
	// dimOrder is the order in which Dimensions are evaluated: a label
	// reading another comes after it.
	dimOrder []int
	// labelsInCEL: some condition reads a label, so conditions are
	// evaluated against labels and facts (labelActivation).
	labelsInCEL bool
	// removed are the lines of this version's remove entries, by
	// "tag:<name>" or label name, for errors about what it removes.
	removed      map[string]removal
	file         string
	Alerts       map[string]AlertRule
	BusinessDays [7]bool
}

// NeedKeyword maps a keyword of core_needs to an orientation.
type NeedKeyword struct {
	Keyword     string
	Orientation string
}

// RuleBook is the history of rule sets, ordered by effective_at.
type RuleBook struct {
	Versions []*RuleSet
	// rfm is the recorded RFM history (analytics.go), shared by every
	// goroutine using the book.
	rfm rfmHolder
}

// At returns the rule set in force at t: the latest whose effective_at is
// not after t (the first version also covers anything before it).
func (b *RuleBook) At(t time.Time) *RuleSet {
	i := sort.Search(len(b.Versions), func(i int) bool { return b.Versions[i].EffectiveAt.After(t) })
	if i == 0 {
		return b.Versions[0]
	}
	return b.Versions[i-1]
}

// NextSwitch returns the effective_at of the first version that takes effect
// strictly after t (zero when none).
func (b *RuleBook) NextSwitch(t time.Time) time.Time {
	for _, v := range b.Versions[1:] {
		if v.EffectiveAt.After(t) {
			return v.EffectiveAt
		}
	}
	return time.Time{}
}

// Latest returns the newest version.
func (b *RuleBook) Latest() *RuleSet { return b.Versions[len(b.Versions)-1] }

// DefaultRuleBook returns the built-in rules (SPEC §4/§5).
func DefaultRuleBook() *RuleBook {
	b, err := ParseRules(defaultRulesYAML)
	if err != nil {
		panic("built-in rules are invalid: " + err.Error())
	}
	return b
}

// ParseRules reads a rules file: a list of versions, each inheriting the
// settings of the one before and overriding what it names. Errors name the
// line. Every tag condition is compiled and type-checked.
func ParseRules(data []byte) (*RuleBook, error) { return ParseRulesFile("", data) }

// ParseRulesFile is ParseRules for a file of that name (used in errors).
func ParseRulesFile(name string, data []byte) (*RuleBook, error) {
	var f rulesFile
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.Strict()); err != nil {
		re := &RulesError{File: name, Path: "$", Message: yaml.FormatError(err, false, true)}
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			re.Line = ye.GetToken().Position.Line
		}
		return nil, re
	}
	p := &rulesParser{data: data, file: name}
	if len(f.Versions) == 0 {
		return nil, p.errf("$.versions", "at least one version is required")
	}
	var written struct {
		Versions []any `yaml:"versions"`
	}
	if err := yaml.Unmarshal(data, &written); err != nil || len(written.Versions) != len(f.Versions) {
		return nil, p.errf("$.versions", "cannot read the versions as written")
	}
	book := &RuleBook{}
	// A file's first version inherits what it leaves out from the built-in
	// rule set (a file may start at version 2, naming only what changes).
	builtIn, err := builtInVersion()
	if err != nil {
		return nil, err
	}
	var prev *versionConfig
	for i := range f.Versions {
		v := f.Versions[i]
		at := fmt.Sprintf("$.versions[%d]", i)
		switch {
		case prev != nil:
			if v, err = p.inherit(v, *prev, at); err != nil {
				return nil, err
			}
		case v.Remove != nil:
			return nil, p.errf(at+".remove", "the first version has nothing to remove")
		default:
			// The tags and labels a file's first version names are its
			// whole set.
			tags, labels := v.Tags, v.Labels
			if v, err = p.inherit(v, *builtIn, at); err != nil {
				return nil, err
			}
			if tags != nil {
				v.Tags = tags
			}
			if labels != nil {
				v.Labels = labels
			}
		}
		p.written = &f.Versions[i]
		rs, err := p.build(v, at)
		if err != nil {
			return nil, err
		}
		rs.removed, rs.file = p.removals(f.Versions[i].Remove, at), name
		if err := p.describe(rs, written.Versions[i], at); err != nil {
			return nil, err
		}
		if n := len(book.Versions); n > 0 {
			last := book.Versions[n-1]
			if rs.Version <= last.Version {
				return nil, p.errf(at+".version", "versions must increase (%d after %d)", rs.Version, last.Version)
			}
			if !rs.EffectiveAt.After(last.EffectiveAt) {
				return nil, p.errf(at+".effective_at", "must be later than version %d's", last.Version)
			}
		}
		book.Versions = append(book.Versions, rs)
		prev = &v
	}
	return book, nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (p *rulesParser) build(v versionConfig, at string) (*RuleSet, error) {
	rs := &RuleSet{Version: v.Version}
	if v.Version < 1 {
		return nil, p.errf(at+".version", "must be a positive integer")
	}
	if v.TimeZone == nil {
		return nil, p.errf(at+".time_zone", "is required")
	}
	loc, err := time.LoadLocation(*v.TimeZone)
	if err != nil {
		return nil, p.errf(at+".time_zone", "unknown time zone %q", *v.TimeZone)
	}
	rs.Location = loc
	rs.EffectiveAt, err = time.Parse(time.RFC3339, v.EffectiveAt)
	if err != nil {
		return nil, p.errf(at+".effective_at", "must be an RFC 3339 time such as 2026-12-01T00:00:00+08:00")
	}
	if v.Windows == nil {
		return nil, p.errf(at+".windows", "is required")
	}
	w := v.Windows
	for _, d := range []struct {
		text string
		dst  *time.Duration
		name string
	}{{w.Short, &rs.ShortWindow, "short"}, {w.Long, &rs.LongWindow, "long"}} {
		if d.text == "" {
			continue
		}
		dur, err := time.ParseDuration(d.text)
		if err != nil || dur <= 0 {
			return nil, p.errf(at+".windows."+d.name, "must be a positive duration such as 90s")
		}
		*d.dst = dur
	}
	if (rs.ShortWindow == 0 && (w.ShortMonths < 1 || w.ShortMonths > 120)) || (rs.LongWindow == 0 && (w.LongMonths < 1 || w.LongMonths > 120)) {
		return nil, p.errf(at+".windows", "short_months and long_months must be from 1 to 120 (or give short/long durations)")
	}
	rs.ShortMonths, rs.LongMonths = w.ShortMonths, w.LongMonths

	if len(v.ValueTiers) == 0 {
		return nil, p.errf(at+".value_tiers", "at least one tier is required")
	}
	for i, t := range v.ValueTiers {
		tp := fmt.Sprintf("%s.value_tiers[%d]", at, i)
		m, err := ParseMoney(t.MinNetAmount)
		if err != nil || m < 0 {
			return nil, p.errf(tp+".min_net_amount", "must be a non-negative amount of yuan with at most 2 decimals")
		}
		if t.Value == "" || t.Display == "" {
			return nil, p.errf(tp, "value and display are required")
		}
		if i > 0 && m >= rs.ValueTiers[i-1].MinNet {
			return nil, p.errf(tp+".min_net_amount", "tiers must be listed from the highest minimum down")
		}
		short := t.Short
		if short == "" {
			short = strings.TrimSuffix(t.Display, "客户")
		}
		rs.ValueTiers = append(rs.ValueTiers, ValueTier{Value: t.Value, Display: t.Display, Short: short, MinNet: m})
	}
	if last := rs.ValueTiers[len(rs.ValueTiers)-1]; last.MinNet != 0 {
		return nil, p.errf(fmt.Sprintf("%s.value_tiers[%d].min_net_amount", at, len(rs.ValueTiers)-1), "the last tier must start at 0")
	}

	a := v.Activity
	if a == nil || a.High.MinOrders == nil || a.Medium.MinOrders == nil || a.High.Display == "" || a.Medium.Display == "" || a.Low.Display == "" {
		return nil, p.errf(at+".activity", "high and medium need display and min_orders, low needs display")
	}
	if *a.Medium.MinOrders < 1 || *a.High.MinOrders <= *a.Medium.MinOrders {
		return nil, p.errf(at+".activity", "need 1 <= medium.min_orders < high.min_orders")
	}
	rs.HighMin, rs.MediumMin = *a.High.MinOrders, *a.Medium.MinOrders
	rs.ActivityNames = map[string]string{ActivityHigh: a.High.Display, ActivityMedium: a.Medium.Display, ActivityLow: a.Low.Display}

	for _, k := range []string{LifecycleProspect, LifecycleIntent, LifecycleCustomer, LifecycleLost} {
		if v.Lifecycle[k] == "" {
			return nil, p.errf(at+".lifecycle", "display name of %s is required", k)
		}
	}
	rs.LifecycleName = v.Lifecycle

	n := v.NeedOrientation
	if n == nil {
		return nil, p.errf(at+".need_orientation", "is required")
	}
	for _, k := range []string{NeedProduct, NeedService, NeedPartnership, NeedUnknown} {
		if n.Display[k] == "" {
			return nil, p.errf(at+".need_orientation.display", "display name of %s is required", k)
		}
	}
	rs.NeedNames = n.Display
	for i, kw := range n.Keywords {
		if kw.Keyword == "" || (kw.Orientation != NeedProduct && kw.Orientation != NeedService && kw.Orientation != NeedPartnership) {
			return nil, p.errf(fmt.Sprintf("%s.need_orientation.keywords[%d]", at, i), "needs a keyword and an orientation of product, service or partnership")
		}
		rs.NeedKeywords = append(rs.NeedKeywords, NeedKeyword{Keyword: kw.Keyword, Orientation: kw.Orientation})
	}

	if len(v.BusinessDays) == 0 {
		return nil, p.errf(at+".business_days", "at least one business day is required")
	}
	for _, d := range v.BusinessDays {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return nil, p.errf(at+".business_days", "unknown day %q (want mon … sun)", d)
		}
		rs.BusinessDays[wd] = true
	}
	env, err := p.buildLabels(rs, v, at)
	if err != nil {
		return nil, err
	}
	if len(v.Tags) > MaxTags {
		return nil, p.errf(at+".tags", "at most %d tags", MaxTags)
	}
	seen := map[string]bool{}
	for _, t := range v.Tags {
		tp := p.entryPath(at, "tags", t.Name, btoi(seen[t.Name]))
		if !ValidCustomerCode(t.Name) || t.Display == "" || seen[t.Name] {
			return nil, p.errf(tp, "needs a unique name (letters, digits, _ - .) and a display name")
		}
		seen[t.Name] = true
		prog, refs, err := compileCondition(env, t.When)
		if err != nil {
			return nil, p.errf(tp+".when", "%v", err)
		}
		rs.labelsInCEL = rs.labelsInCEL || len(refs) > 0
		if t.Alert != "" && (!identifier.MatchString(t.Alert) || slices.Contains(alertKinds, t.Alert)) {
			return nil, p.errf(tp+".alert", "an alert kind of its own is required (lower-case letters, digits, _; not a built-in kind)")
		}
		if err := checkTemplate(t.Reason); err != nil {
			return nil, p.errf(tp+".reason", "%v", err)
		}
		if err := checkTemplate(t.ReasonEN); err != nil {
			return nil, p.errf(tp+".reason_en", "%v", err)
		}
		rs.Tags = append(rs.Tags, Tag{Name: t.Name, Display: t.Display, When: t.When, ReasonZH: t.Reason, ReasonEN: t.ReasonEN, AlertKind: t.Alert, program: prog})
	}
	if err := p.buildAlerts(rs, v, at); err != nil {
		return nil, err
	}
	return rs, nil
}

// buildAlerts reads the alert kinds: the built-in ones, and those a label
// or tag of the version raises. A kind nobody raises any more is dropped
// when inherited, refused when named.
func (p *rulesParser) buildAlerts(rs *RuleSet, v versionConfig, at string) error {
	raised := p.raisedKinds(v, at)
	for _, kind := range slices.Sorted(maps.Keys(raised)) {
		if _, ok := v.Alerts[kind]; !ok {
			return p.errf(raised[kind], "alert kind %s is not configured under alerts", kind)
		}
	}
	rs.Alerts = map[string]AlertRule{}
	for kind, c := range v.Alerts {
		if !slices.Contains(alertKinds, kind) && raised[kind] == "" {
			if p.node(at+".alerts."+kind) == nil {
				continue // inherited, and no label or tag of this version raises it
			}
			return p.errf(at+".alerts."+kind, "unknown alert kind (want one of %s, or a kind a label or tag raises)", strings.Join(alertKinds, ", "))
		}
		r := AlertRule{Display: c.Display, DueBusinessDays: c.DueBusinessDays, Playbook: c.Playbook}
		if c.Due != "" {
			d, err := time.ParseDuration(c.Due)
			if err != nil || d <= 0 {
				return p.errf(at+".alerts."+kind+".due", "must be a positive duration such as 24h")
			}
			r.Due = d
		}
		if c.DueBusinessDays < 0 || (r.Due > 0 && c.DueBusinessDays > 0) {
			return p.errf(at+".alerts."+kind, "give due or due_business_days, not both")
		}
		rs.Alerts[kind] = r
	}
	for _, kind := range alertKinds {
		if _, ok := rs.Alerts[kind]; !ok {
			return p.errf(at+".alerts", "alert kind %s is not configured", kind)
		}
	}
	return nil
}

// Fact names usable in tag conditions and reason templates.
const (
	FactNetAmount           = "net_amount"
	FactOrderCount          = "order_count"
	FactOrders3m            = "orders_3m"
	FactOrders6m            = "orders_6m"
	FactInquiries3m         = "inquiries_3m"
	FactInquiryCount        = "inquiry_count"
	FactLatestSatisfaction  = "latest_satisfaction"
	FactHasSatisfaction     = "has_satisfaction"
	FactProfileMissingCount = "profile_missing_count"
	FactProfileMissing      = "profile_missing" // templates only
)

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(append(analyticsVariables(),
		cel.Variable(FactNetAmount, cel.IntType),
		cel.Variable(FactOrderCount, cel.IntType),
		cel.Variable(FactOrders3m, cel.IntType),
		cel.Variable(FactOrders6m, cel.IntType),
		cel.Variable(FactInquiries3m, cel.IntType),
		cel.Variable(FactInquiryCount, cel.IntType),
		cel.Variable(FactLatestSatisfaction, cel.IntType),
		cel.Variable(FactHasSatisfaction, cel.BoolType),
		cel.Variable(FactProfileMissingCount, cel.IntType),
		// yuan(n) is n yuan in fen, so thresholds read as the spreadsheets do.
		cel.Function("yuan", cel.Overload("yuan_int", []*cel.Type{cel.IntType}, cel.IntType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				n, ok := v.(types.Int)
				if !ok {
					return types.NewErr("yuan: want an integer")
				}
				return n * 100
			}))))...,
	)
	if err != nil {
		panic(err)
	}
	return env
}()

var templateFacts = []string{
	FactNetAmount, FactOrderCount, FactOrders3m, FactOrders6m, FactInquiries3m, FactInquiryCount,
	FactLatestSatisfaction, FactHasSatisfaction, FactProfileMissingCount, FactProfileMissing,
	FactAvgOrderValue, FactRepurchase, FactRFMRecency, FactRFMFrequency, FactRFMMonetary, FactRFMSegment,
	FactLTV, FactLTVPredicted, FactSales6m, FactSalesPrev6m, FactOrdersPrev6m, FactGrowth6m, FactHasGrowth6m,
	FactRecommendationScore, FactHasRecommendation, FactNPSCategory,
}

// checkTemplate makes sure every {name} in a reason template is a fact.
func checkTemplate(t string) error {
	for rest := t; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return errors.New("unclosed { in reason")
		}
		name := rest[i+1 : i+j]
		if !slices.Contains(templateFacts, name) {
			return fmt.Errorf("unknown fact {%s} in reason (known: %s)", name, strings.Join(templateFacts, ", "))
		}
		rest = rest[i+j+1:]
	}
}

// TagIndex returns the index of a tag by name, -1 when unknown.
func (rs *RuleSet) TagIndex(name string) int {
	for i := range rs.Tags {
		if rs.Tags[i].Name == name {
			return i
		}
	}
	return -1
}
