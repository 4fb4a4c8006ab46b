package domain

import (
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Facts are the named quantities labels are computed from, at one instant.
type Facts struct {
	NetAmount          Money
	OrderCount         int64
	Orders3m           int64 // within the short window
	Orders6m           int64 // within the long window
	Inquiries3m        int64
	InquiryCount       int64
	LatestSatisfaction int64 // 0 when none
	HasSatisfaction    bool
	ProfileMissing     uint8
	// SPEC §11 (analytics.go). Sales are net of refunds, by order time:
	// Sales6m within the long window, SalesPrev6m in the one before it.
	AvgOrderValue       Money
	FirstOrderAt        int64 // Unix nanoseconds; 0 without orders
	Sales6m             Money
	SalesPrev6m         Money
	OrdersPrev6m        int64 // orders in the long window before the last
	Growth6m            int64 // percent, truncated; 0 without a base
	HasGrowth6m         bool
	RFMRecency          int8 // 1–5; 0 not scored
	RFMFrequency        int8
	RFMMonetary         int8
	LTVPredicted        Money
	RecommendationScore int64 // 0–10
	HasRecommendation   bool
}

// ResolveName makes Facts a CEL activation without building a map.
func (f *Facts) ResolveName(name string) (any, bool) {
	switch name {
	case FactNetAmount:
		return types.Int(f.NetAmount), true
	case FactOrderCount:
		return types.Int(f.OrderCount), true
	case FactOrders3m:
		return types.Int(f.Orders3m), true
	case FactOrders6m:
		return types.Int(f.Orders6m), true
	case FactInquiries3m:
		return types.Int(f.Inquiries3m), true
	case FactInquiryCount:
		return types.Int(f.InquiryCount), true
	case FactLatestSatisfaction:
		return types.Int(f.LatestSatisfaction), true
	case FactHasSatisfaction:
		return types.Bool(f.HasSatisfaction), true
	case FactProfileMissingCount:
		n := 0
		for m := f.ProfileMissing; m != 0; m &= m - 1 {
			n++
		}
		return types.Int(n), true
	}
	return f.resolveAnalytics(name)
}

// Parent is part of the CEL activation interface.
func (f *Facts) Parent() interpreter.Activation { return nil }

// LabelSet is the value of every label at one instant. It is comparable, so
// detecting a change is one comparison; the segment is value × activity.
type LabelSet struct {
	ValueTier       string
	Activity        string
	NeedOrientation string
	Lifecycle       string
	// Tags is a bit set over the rule set's tags (bit i: Tags[i]).
	Tags uint64
	// Dims are the operator-defined labels: Dims[i] is 1 + the index of
	// the case that decided Dimensions[i] (0: none).
	Dims [MaxDimensions]uint8
}

// Value returns the value of a single-valued label ("" for an unknown name).
func (l *LabelSet) Value(label string) string {
	switch label {
	case LabelValueTier:
		return l.ValueTier
	case LabelActivity:
		return l.Activity
	case LabelNeedOrientation:
		return l.NeedOrientation
	case LabelLifecycle:
		return l.Lifecycle
	case LabelSegment:
		if l.ValueTier == "" {
			return ""
		}
		return l.ValueTier + "/" + l.Activity
	}
	return ""
}

// HasTag reports whether tag i is present.
func (l *LabelSet) HasTag(i int) bool { return l.Tags&(1<<uint(i)) != 0 }

// Evaluate computes facts and labels of s at instant at, and the next
// instant after at at which a time-dependent fact — and so possibly a label —
// changes (zero when none: nothing changes with time alone). No label can
// change strictly between at and next without a new event. RFM scores are
// 0: EvaluateWith takes the day's cuts.
func (rs *RuleSet) Evaluate(s *CustomerState, at time.Time) (LabelSet, Facts, time.Time) {
	return rs.EvaluateWith(s, at, nil)
}

// EvaluateWith is Evaluate with the RFM cuts in force at at (nil: none).
func (rs *RuleSet) EvaluateWith(s *CustomerState, at time.Time, cuts *RFMCuts) (LabelSet, Facts, time.Time) {
	c := s.windows(rs)
	t := at.UnixNano()
	var f Facts
	var next int64
	earliest := func(n int64) {
		if n != 0 && (next == 0 || n < next) {
			next = n
		}
	}
	var n int64
	f.Orders3m, n = countAfter(c.ordersShort, t)
	earliest(n)
	f.Orders6m, n = countAfter(c.ordersLong, t)
	earliest(n)
	f.Inquiries3m, n = countAfter(c.inquiriesShort, t)
	earliest(n)
	f.NetAmount = s.NetAmount
	f.OrderCount = int64(len(s.Orders))
	f.InquiryCount = int64(len(s.Inquiries))
	if s.Satisfaction != nil {
		f.HasSatisfaction, f.LatestSatisfaction = true, int64(s.Satisfaction.Value)
	}
	f.ProfileMissing = s.Profile.Missing()
	earliest(analytics(s, c, t, cuts, &f))

	var l LabelSet
	l.ValueTier = rs.ValueTiers[rs.tierIndex(f.NetAmount)].Value
	switch {
	case f.Orders3m >= rs.HighMin:
		l.Activity = ActivityHigh
	case f.Orders3m >= rs.MediumMin:
		l.Activity = ActivityMedium
	default:
		l.Activity = ActivityLow
	}
	l.NeedOrientation = rs.needOf(s, c)
	switch {
	case f.OrderCount == 0 && f.InquiryCount == 0:
		l.Lifecycle = LifecycleProspect
	case f.OrderCount == 0:
		l.Lifecycle = LifecycleIntent
	case f.Orders6m > 0:
		l.Lifecycle = LifecycleCustomer
	default:
		l.Lifecycle = LifecycleLost
	}
	var act interpreter.Activation = &f
	if rs.labelsInCEL {
		act = &labelActivation{f: &f, l: &l, rs: rs}
	}
	rs.evaluateDimensions(act, &l)
	for i := range rs.Tags {
		v, _, err := rs.Tags[i].program.Eval(act)
		if err == nil && v == types.True {
			l.Tags |= 1 << uint(i)
		}
	}
	var nextAt time.Time
	if next != 0 {
		nextAt = time.Unix(0, next).In(rs.Location)
	}
	return l, f, nextAt
}

func (rs *RuleSet) tierIndex(net Money) int {
	for i, t := range rs.ValueTiers {
		if net >= t.MinNet {
			return i
		}
	}
	return len(rs.ValueTiers) - 1
}

// needOf is the orientation of the first latest core need containing a
// known keyword; cached per rule set until the needs change.
func (rs *RuleSet) needOf(s *CustomerState, c *windowCache) string {
	if c.needValid && c.needVersion == rs.Version {
		return c.needOrientation
	}
	c.needValid, c.needVersion = true, rs.Version
	c.needOrientation, c.needMatchedNeed, c.needMatchedWord = NeedUnknown, "", ""
	if s.CoreNeeds == nil {
		return NeedUnknown
	}
	for _, need := range s.CoreNeeds.Value {
		for _, kw := range rs.NeedKeywords {
			if strings.Contains(need, kw.Keyword) {
				c.needOrientation, c.needMatchedNeed, c.needMatchedWord = kw.Orientation, need, kw.Keyword
				return kw.Orientation
			}
		}
	}
	return NeedUnknown
}

// Display returns the display name of a label value.
func (rs *RuleSet) Display(label, value string) string {
	switch label {
	case LabelValueTier:
		for _, t := range rs.ValueTiers {
			if t.Value == value {
				return t.Display
			}
		}
	case LabelActivity:
		return rs.ActivityNames[value]
	case LabelNeedOrientation:
		return rs.NeedNames[value]
	case LabelLifecycle:
		return rs.LifecycleName[value]
	case LabelSegment:
		tier, act, ok := strings.Cut(value, "/")
		if !ok {
			return ""
		}
		short := ""
		for _, t := range rs.ValueTiers {
			if t.Value == tier {
				short = t.Short
			}
		}
		return short + rs.ActivityNames[act] + "客户"
	}
	return rs.dimensionDisplay(label, value)
}

// Reason explains a label's value with the facts and thresholds that decided
// it, in Chinese and English.
func (rs *RuleSet) Reason(s *CustomerState, label string, l *LabelSet, f *Facts) (zh, en string) {
	// Window names: "3个月" / "3 months", or the duration of a short test window.
	shortZH, shortEN := strconv.Itoa(rs.ShortMonths)+"个月", strconv.Itoa(rs.ShortMonths)+" months"
	longZH, longEN := strconv.Itoa(rs.LongMonths)+"个月", strconv.Itoa(rs.LongMonths)+" months"
	if rs.ShortWindow > 0 {
		shortZH, shortEN = rs.ShortWindow.String(), rs.ShortWindow.String()
	}
	if rs.LongWindow > 0 {
		longZH, longEN = rs.LongWindow.String(), rs.LongWindow.String()
	}
	switch label {
	case LabelValueTier:
		net := f.NetAmount.Grouped()
		i := rs.tierIndex(f.NetAmount)
		t := rs.ValueTiers[i]
		switch {
		case i == len(rs.ValueTiers)-1 && i > 0:
			up := rs.ValueTiers[i-1].MinNet.Grouped()
			return "累计净额 " + net + " < " + up, "net amount " + net + " < " + up
		case i == 0:
			return "累计净额 " + net + " ≥ " + t.MinNet.Grouped(), "net amount " + net + " ≥ " + t.MinNet.Grouped()
		default:
			lo, up := t.MinNet.Grouped(), rs.ValueTiers[i-1].MinNet.Grouped()
			return "累计净额 " + net + " ≥ " + lo + " 且 < " + up, "net amount " + net + " ≥ " + lo + " and < " + up
		}
	case LabelActivity:
		n := strconv.FormatInt(f.Orders3m, 10)
		switch l.Activity {
		case ActivityHigh:
			th := strconv.FormatInt(rs.HighMin, 10)
			return "近" + shortZH + "订单 " + n + " ≥ " + th, "orders in " + shortEN + " " + n + " ≥ " + th
		case ActivityMedium:
			lo, up := strconv.FormatInt(rs.MediumMin, 10), strconv.FormatInt(rs.HighMin, 10)
			return "近" + shortZH + "订单 " + n + " ≥ " + lo + " 且 < " + up, "orders in " + shortEN + " " + n + " ≥ " + lo + " and < " + up
		default:
			th := strconv.FormatInt(rs.MediumMin, 10)
			return "近" + shortZH + "订单 " + n + " < " + th, "orders in " + shortEN + " " + n + " < " + th
		}
	case LabelNeedOrientation:
		c := s.windows(rs)
		rs.needOf(s, c)
		if c.needOrientation == NeedUnknown {
			if s.CoreNeeds == nil {
				return "未声明核心诉求", "no core needs declared"
			}
			return "最新核心诉求「" + strings.Join(s.CoreNeeds.Value, "、") + "」无已知关键词", "latest core needs [" + strings.Join(s.CoreNeeds.Value, ", ") + "] contain no known keyword"
		}
		return "最新核心诉求「" + c.needMatchedNeed + "」含关键词「" + c.needMatchedWord + "」", "latest core need \"" + c.needMatchedNeed + "\" contains keyword \"" + c.needMatchedWord + "\""
	case LabelLifecycle:
		oc, ic := strconv.FormatInt(f.OrderCount, 10), strconv.FormatInt(f.InquiryCount, 10)
		switch l.Lifecycle {
		case LifecycleProspect:
			return "无订单、无咨询", "no orders and no inquiries"
		case LifecycleIntent:
			return "咨询 " + ic + " 次，无订单", ic + " inquiries, no orders"
		case LifecycleCustomer:
			n := strconv.FormatInt(f.Orders6m, 10)
			return "近" + longZH + "订单 " + n, "orders in " + longEN + ": " + n
		default:
			return "累计订单 " + oc + " 笔，近" + longZH + "无订单", oc + " orders, none in " + longEN
		}
	case LabelSegment:
		return rs.Display(LabelValueTier, l.ValueTier) + " × " + rs.ActivityNames[l.Activity],
			l.ValueTier + " × " + l.Activity + " activity"
	}
	return "", ""
}

// TagReason explains a tag's presence (or absence) from its template.
func (rs *RuleSet) TagReason(i int, present bool, f *Facts) (zh, en string) {
	t := &rs.Tags[i]
	zh, en = renderTemplate(t.ReasonZH, f, true), renderTemplate(t.ReasonEN, f, false)
	if zh == "" {
		zh = t.When
	}
	if en == "" {
		en = t.When
	}
	if !present {
		return "不再满足：" + zh, "no longer holds: " + en
	}
	return zh, en
}

func renderTemplate(t string, f *Facts, chinese bool) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(t)
			return b.String()
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			b.WriteString(t)
			return b.String()
		}
		b.WriteString(t[:i])
		b.WriteString(factText(t[i+1:i+j], f, chinese))
		t = t[i+j+1:]
	}
}

func factText(name string, f *Facts, chinese bool) string {
	switch name {
	case FactNetAmount:
		return f.NetAmount.Grouped()
	case FactHasSatisfaction:
		return strconv.FormatBool(f.HasSatisfaction)
	case FactProfileMissing:
		var parts []string
		for _, m := range missingNames {
			if f.ProfileMissing&m.bit != 0 {
				if chinese {
					parts = append(parts, m.zh)
				} else {
					parts = append(parts, m.en)
				}
			}
		}
		if chinese {
			return strings.Join(parts, "、")
		}
		return strings.Join(parts, ", ")
	}
	if text, ok := analyticsText(name, f, chinese); ok {
		return text
	}
	if v, ok := f.ResolveName(name); ok {
		if n, ok := v.(types.Int); ok {
			return strconv.FormatInt(int64(n), 10)
		}
	}
	return "{" + name + "}"
}
