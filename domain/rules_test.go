package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

// lineOf returns the 1-based line of the n-th (1-based) line of text that
// contains marker, failing the test when there is none.
func lineOf(t *testing.T, text, marker string, n int) int {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if strings.Contains(line, marker) {
			n--
			if n == 0 {
				return i + 1
			}
		}
	}
	t.Fatalf("marker %q not found in rules text", marker)
	return 0
}

func defaultYAML() string { return string(domain.DefaultRulesYAML()) }

// replaceOnce replaces old by repl in s, failing when old is not there once.
func replaceOnce(t *testing.T, s, old, repl string) string {
	t.Helper()
	if c := strings.Count(s, old); c != 1 {
		t.Fatalf("%q occurs %d times in the rules text", old, c)
	}
	return strings.Replace(s, old, repl, 1)
}

// version2 is a second version inheriting everything but the strategic
// threshold (value_tiers is a list, so the whole list is restated).
const version2 = `  - version: 2
    effective_at: "2026-12-01T00:00:00+08:00"
    value_tiers:
      - {value: strategic, display: 战略客户, short: 战略, min_net_amount: "800000.00"}
      - {value: key,       display: 重点客户, short: 重点, min_net_amount: "500000.00"}
      - {value: regular,   display: 普通客户, short: 普通, min_net_amount: "100000.00"}
      - {value: potential, display: 潜力客户, short: 潜力, min_net_amount: "0"}
`

func twoVersions() string { return strings.TrimRight(defaultYAML(), "\n") + "\n" + version2 }

func mustParse(t testing.TB, text string) *domain.RuleBook {
	t.Helper()
	b, err := domain.ParseRules([]byte(text))
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	return b
}

func TestDefaultRulesParse(t *testing.T) {
	b := mustParse(t, defaultYAML())
	if len(b.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(b.Versions))
	}
	rs := b.Latest()
	if rs.Version != 1 || rs.Location.String() != "Asia/Shanghai" || rs.ShortMonths != 3 || rs.LongMonths != 6 {
		t.Errorf("version %d, zone %s, windows %d/%d", rs.Version, rs.Location, rs.ShortMonths, rs.LongMonths)
	}
	wantTiers := []struct {
		value string
		min   domain.Money
	}{{"strategic", yuan("1000000")}, {"key", yuan("500000")}, {"regular", yuan("100000")}, {"potential", 0}}
	if len(rs.ValueTiers) != len(wantTiers) {
		t.Fatalf("%d tiers", len(rs.ValueTiers))
	}
	for i, w := range wantTiers {
		if rs.ValueTiers[i].Value != w.value || rs.ValueTiers[i].MinNet != w.min {
			t.Errorf("tier %d = %+v, want %s from %v", i, rs.ValueTiers[i], w.value, w.min)
		}
	}
	if rs.HighMin != 2 || rs.MediumMin != 1 {
		t.Errorf("activity thresholds %d/%d", rs.HighMin, rs.MediumMin)
	}
	var names []string
	for _, tg := range rs.Tags {
		names = append(names, tg.Name)
	}
	if strings.Join(names, ",") != "strategic_partner,churn_warning,to_convert,needs_completion" {
		t.Errorf("tags %v", names)
	}
	if d := rs.Display(domain.LabelSegment, "strategic/high"); d != "战略高活跃客户" {
		t.Errorf("segment display %q", d)
	}
	if rs.Tags[0].Display != "★★★战略伙伴" || rs.Tags[1].Display != "流失预警" || rs.Tags[2].Display != "待转化" || rs.Tags[3].Display != "待补充" {
		t.Errorf("tag display names %+v", rs.Tags)
	}
	for kind, want := range map[string]domain.AlertRule{
		domain.AlertActivityDropped:  {Due: 24 * time.Hour},
		domain.AlertChurnRisk:        {Due: 24 * time.Hour},
		domain.AlertDataIncomplete:   {DueBusinessDays: 3},
		domain.AlertValueTierChanged: {},
		domain.AlertFollowUpOverdue:  {},
	} {
		got, ok := rs.Alerts[kind]
		if !ok || got.Due != want.Due || got.DueBusinessDays != want.DueBusinessDays || got.Display == "" || got.Playbook == "" {
			t.Errorf("alert %s = %+v", kind, got)
		}
	}
	if !strings.Contains(rs.Alerts[domain.AlertChurnRisk].Playbook, "客户成功经理主动联系") {
		t.Errorf("churn playbook %q", rs.Alerts[domain.AlertChurnRisk].Playbook)
	}
	for wd := time.Sunday; wd <= time.Saturday; wd++ {
		if rs.BusinessDays[wd] != (wd != time.Saturday && wd != time.Sunday) {
			t.Errorf("business day %s = %v", wd, rs.BusinessDays[wd])
		}
	}
	if len(rs.NeedKeywords) != 9 {
		t.Errorf("%d need keywords", len(rs.NeedKeywords))
	}
	// DefaultRuleBook is the same file.
	if d := domain.DefaultRuleBook().Latest(); d.Version != 1 || len(d.Tags) != 4 {
		t.Errorf("DefaultRuleBook: %+v", d)
	}
}

func TestSecondVersionInherits(t *testing.T) {
	b := mustParse(t, twoVersions())
	if len(b.Versions) != 2 {
		t.Fatalf("%d versions", len(b.Versions))
	}
	v1, v2 := b.Versions[0], b.Versions[1]
	if v2.Version != 2 || !v2.EffectiveAt.Equal(sh(2026, 12, 1, 0, 0)) {
		t.Errorf("v2 = %d at %v", v2.Version, v2.EffectiveAt)
	}
	if v2.ValueTiers[0].MinNet != yuan("800000") || v1.ValueTiers[0].MinNet != yuan("1000000") {
		t.Errorf("strategic minimum v1 %v v2 %v", v1.ValueTiers[0].MinNet, v2.ValueTiers[0].MinNet)
	}
	// Everything else is inherited.
	if v2.Location.String() != v1.Location.String() || v2.ShortMonths != 3 || v2.LongMonths != 6 ||
		v2.HighMin != v1.HighMin || v2.MediumMin != v1.MediumMin || len(v2.Tags) != len(v1.Tags) ||
		len(v2.NeedKeywords) != len(v1.NeedKeywords) || len(v2.Alerts) != len(v1.Alerts) ||
		v2.BusinessDays != v1.BusinessDays || v2.Alerts[domain.AlertDataIncomplete] != v1.Alerts[domain.AlertDataIncomplete] {
		t.Errorf("v2 does not inherit v1: %+v", v2)
	}
	for i := range v1.Tags {
		if v1.Tags[i].Name != v2.Tags[i].Name || v1.Tags[i].When != v2.Tags[i].When {
			t.Errorf("tag %d: %s vs %s", i, v1.Tags[i].Name, v2.Tags[i].Name)
		}
	}
	// The inherited tags work in v2 (their programs were compiled).
	s := fold(t, registered(), order(sh(2026, 11, 20, 10, 0), "SO-1", "450,000.00"), order(sh(2026, 11, 25, 10, 0), "SO-2", "450,000.00"))
	at := sh(2026, 12, 1, 0, 0)
	l1, _, _ := v1.Evaluate(s, at)
	l2, _, _ := v2.Evaluate(s, at)
	// The strategic_partner tag states its own threshold: lowering the tier
	// does not make the customer a strategic partner.
	if l1.ValueTier != "key" || l2.ValueTier != "strategic" || tagNames(v1, l1) != nil || tagNames(v2, l2) != nil {
		t.Errorf("v1 %+v %v; v2 %+v %v", l1, tagNames(v1, l1), l2, tagNames(v2, l2))
	}
}

func TestRuleBookAt(t *testing.T) {
	text := twoVersions() + `  - version: 5
    effective_at: "2027-06-01T00:00:00Z"
    windows: {short_months: 2, long_months: 4}
`
	b := mustParse(t, text)
	cases := []struct {
		at   time.Time
		want int
	}{
		{sh(1999, 1, 1, 0, 0), 1}, // before the first version: the first covers it
		{sh(2000, 1, 1, 0, 0), 1},
		{sh(2026, 11, 30, 23, 59), 1},
		{sh(2026, 12, 1, 0, 0).Add(-time.Nanosecond), 1},
		{sh(2026, 12, 1, 0, 0), 2},
		{sh(2027, 6, 1, 7, 59), 2},
		{time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), 5},
		{sh(2030, 1, 1, 0, 0), 5},
	}
	for _, c := range cases {
		if got := b.At(c.at).Version; got != c.want {
			t.Errorf("At(%v) = v%d, want v%d", c.at, got, c.want)
		}
	}
	if v5 := b.Latest(); v5.Version != 5 || v5.ShortMonths != 2 || v5.LongMonths != 4 || v5.ValueTiers[0].MinNet != yuan("800000") {
		t.Errorf("v5 = %+v", v5)
	}
	if sw := b.NextSwitch(sh(2026, 1, 1, 0, 0)); !sw.Equal(sh(2026, 12, 1, 0, 0)) {
		t.Errorf("NextSwitch = %v", sw)
	}
	if sw := b.NextSwitch(sh(2026, 12, 1, 0, 0)); !sw.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextSwitch at a switch = %v, want the next one", sw)
	}
	if sw := b.NextSwitch(sh(2030, 1, 1, 0, 0)); !sw.IsZero() {
		t.Errorf("NextSwitch after the last = %v", sw)
	}
}

func TestCustomTagWithoutCode(t *testing.T) {
	text := replaceOnce(t, defaultYAML(), "    tags:\n", `    tags:
      - name: vip
        display: 贵宾
        when: net_amount >= yuan(50000) && latest_satisfaction >= 4
        reason: 累计净额 {net_amount} ≥ 50,000.00；最近满意度 {latest_satisfaction} ≥ 4
        reason_en: "net amount {net_amount} ≥ 50,000.00; latest satisfaction {latest_satisfaction} ≥ 4"
`)
	rs := mustParse(t, text).Latest()
	i := rs.TagIndex("vip")
	if i != 0 || len(rs.Tags) != 5 {
		t.Fatalf("vip at %d of %d tags", i, len(rs.Tags))
	}
	cases := []struct {
		net   string
		score int
		want  bool
	}{
		{"50,000.00", 4, true},
		{"50,000.00", 5, true},
		{"49,999.99", 5, false},
		{"80,000.00", 3, false},
		{"80,000.00", 0, false}, // no score: latest_satisfaction is 0
	}
	for _, c := range cases {
		evs := []ev{registered(), order(sh(2026, 1, 1, 0, 0), "SO-1", c.net)}
		if c.score > 0 {
			evs = append(evs, score(sh(2026, 2, 1, 0, 0), c.score))
		}
		s := fold(t, evs...)
		l, f, _ := rs.Evaluate(s, now)
		if l.HasTag(i) != c.want {
			t.Errorf("net %s score %d: vip = %v, want %v", c.net, c.score, l.HasTag(i), c.want)
		}
		if c.want {
			zh, en := rs.TagReason(i, true, &f)
			wantZH := "累计净额 " + c.net + " ≥ 50,000.00；最近满意度 "
			if !strings.HasPrefix(zh, wantZH) || !strings.HasPrefix(en, "net amount "+c.net+" ≥ 50,000.00; latest satisfaction ") {
				t.Errorf("reasons %q / %q", zh, en)
			}
		}
	}
	// The default tags keep working next to it.
	s := fold(t, registered(), order(sh(2026, 5, 1, 0, 0), "SO-1", "600000"), order(sh(2026, 5, 2, 0, 0), "SO-2", "600000"), score(now, 5))
	l, _, _ := rs.Evaluate(s, now)
	if got := strings.Join(tagNames(rs, l), ","); got != "vip,strategic_partner" {
		t.Errorf("tags %s", got)
	}
}

// TestRulesErrors: every invalid rules file gives a *RulesError wrapping
// ErrRules with the line of the offending text.
func TestRulesErrors(t *testing.T) {
	type errCase struct {
		name    string
		text    string
		line    int    // the expected line
		message string // a substring of the message
	}
	def := defaultYAML()
	var cases []errCase
	add := func(name, text string, line int, message string) {
		cases = append(cases, errCase{name, text, line, message})
	}

	// Structure.
	txt := replaceOnce(t, def, "    time_zone: Asia/Shanghai\n", "    time_zone: Asia/Shanghai\n    colour: blue\n")
	add("unknown field in a version", txt, lineOf(t, txt, "colour: blue", 1), "colour")
	txt = replaceOnce(t, def, "      long_months: 6    # orders_6m\n", "      long_months: 6\n      mid_months: 4\n")
	add("unknown field in windows", txt, lineOf(t, txt, "mid_months", 1), "mid_months")
	txt = replaceOnce(t, def, "versions:\n", "versoins:\n")
	add("misspelled top-level key", txt, lineOf(t, txt, "versoins", 1), "versoins")
	txt = replaceOnce(t, def, "short_months: 3 ", "short_months: three ")
	add("wrong type", txt, lineOf(t, txt, "short_months: three", 1), "")
	add("no versions", "versions: []\n", 1, "at least one version")
	txt = replaceOnce(t, def, "    time_zone: Asia/Shanghai\n", "    time_zone: Asia/Shanghai\n    time_zone: UTC\n")
	add("duplicate key", txt, lineOf(t, txt, "time_zone: UTC", 1), "already defined")
	// A required setting that is missing is reported at its version.
	txt = strings.TrimRight(def, "\n") + "\n  - version: 2\n    windows: {short_months: 1, long_months: 2}\n"
	add("missing effective_at", txt, lineOf(t, txt, "  - version: 2", 1), "effective_at")
	txt = replaceOnce(t, def, "      high:   {display: 高活跃, min_orders: 2}\n", "      high:   {display: 高活跃}\n")
	add("missing min_orders", txt, lineOf(t, txt, "    activity:", 1), "min_orders")

	// Tag conditions (CEL).
	strategicWhen := "        when: net_amount >= yuan(1000000) && orders_3m >= 2\n"
	txt = replaceOnce(t, def, strategicWhen, "        when: net_amount >= && orders_3m\n")
	add("CEL syntax error", txt, lineOf(t, txt, "when: net_amount >= &&", 1), "Syntax error")
	txt = replaceOnce(t, def, strategicWhen, "        when: revenue >= yuan(1000000)\n")
	add("CEL unknown fact", txt, lineOf(t, txt, "when: revenue", 1), "revenue")
	txt = replaceOnce(t, def, strategicWhen, "        when: net_amount + orders_3m\n")
	add("CEL non-bool expression", txt, lineOf(t, txt, "when: net_amount + orders_3m", 1), "boolean")
	txt = replaceOnce(t, def, strategicWhen, "        when: net_amount >= \"1000000\"\n")
	add("CEL type error", txt, lineOf(t, txt, `when: net_amount >= "1000000"`, 1), "")
	txt = replaceOnce(t, def, strategicWhen, "        when: \"\"\n")
	add("empty condition", txt, lineOf(t, txt, `when: ""`, 1), "condition is required")
	txt = replaceOnce(t, def, "reason: 资料缺少：{profile_missing}", "reason: 资料缺少：{profile_gaps}")
	add("unknown fact in a reason", txt, lineOf(t, txt, "{profile_gaps}", 1), "profile_gaps")
	txt = replaceOnce(t, def, "      - name: to_convert\n", "      - name: churn_warning\n")
	add("duplicate tag name", txt, lineOf(t, txt, "- name: churn_warning", 2), "unique name")

	// Time zone, instants, money, tiers.
	txt = replaceOnce(t, def, "time_zone: Asia/Shanghai", "time_zone: Mars/Olympus_Mons")
	add("bad time zone", txt, lineOf(t, txt, "Mars/Olympus_Mons", 1), "Mars/Olympus_Mons")
	txt = replaceOnce(t, def, `effective_at: "2000-01-01T00:00:00+08:00"`, `effective_at: "2000-01-01 00:00"`)
	add("bad effective_at", txt, lineOf(t, txt, "effective_at:", 1), "RFC 3339")
	txt = replaceOnce(t, def, `min_net_amount: "500000.00"`, `min_net_amount: "500,000.00"`)
	add("bad money: grouping", txt, lineOf(t, txt, `"500,000.00"`, 1), "amount")
	txt = replaceOnce(t, def, `min_net_amount: "500000.00"`, `min_net_amount: "500000.001"`)
	add("bad money: 3 decimals", txt, lineOf(t, txt, `"500000.001"`, 1), "amount")
	txt = replaceOnce(t, def, `min_net_amount: "100000.00"`, `min_net_amount: "-1"`)
	add("bad money: negative", txt, lineOf(t, txt, `"-1"`, 1), "non-negative")
	txt = replaceOnce(t, def, `min_net_amount: "500000.00"`, `min_net_amount: "2000000.00"`)
	add("tiers out of order", txt, lineOf(t, txt, `"2000000.00"`, 1), "highest minimum down")
	txt = replaceOnce(t, def, `min_net_amount: "500000.00"`, `min_net_amount: "1000000.00"`)
	add("tiers with equal minimums", txt, lineOf(t, txt, `min_net_amount: "1000000.00"`, 2), "highest minimum down")
	txt = replaceOnce(t, def, `min_net_amount: "0"`, `min_net_amount: "1"`)
	add("last tier above 0", txt, lineOf(t, txt, `min_net_amount: "1"}`, 1), "start at 0")

	// Alerts.
	txt = replaceOnce(t, def, "    alerts:\n", "    alerts:\n      vip_lost:\n        display: 贵宾流失\n        due: 24h\n")
	add("unknown alert kind", txt, lineOf(t, txt, "vip_lost:", 1), "unknown alert kind")
	txt = replaceOnce(t, def, "      - name: to_convert\n", "      - name: to_convert\n        alert: convert_now\n")
	add("a tag raises an alert kind not configured", txt, lineOf(t, txt, "alert: convert_now", 1), "not configured")
	txt = replaceOnce(t, def, "        due: 24h\n        playbook: 客户成功经理", "        due: a day\n        playbook: 客户成功经理")
	add("bad due", txt, lineOf(t, txt, "due: a day", 1), "positive duration")
	txt = replaceOnce(t, def, "        due_business_days: 3\n", "        due_business_days: 3\n        due: 72h\n")
	add("due and business days", txt, lineOf(t, txt, "      data_incomplete:", 1), "not both")
	txt = replaceOnce(t, def, "business_days: [mon, tue, wed, thu, fri]", "business_days: [mon, tue, wed, thu, fry]")
	add("bad business day", txt, lineOf(t, txt, "    business_days:", 1), "fry")

	// Versions.
	v2 := strings.TrimRight(def, "\n") + "\n" + version2
	txt = replaceOnce(t, v2, "  - version: 2\n", "  - version: 1\n")
	add("versions must increase", txt, lineOf(t, txt, "  - version: 1", 2), "versions must increase")
	txt = replaceOnce(t, v2, `effective_at: "2026-12-01T00:00:00+08:00"`, `effective_at: "1999-12-31T23:59:59+08:00"`)
	add("effective_at must increase", txt, lineOf(t, txt, `"1999-12-31T23:59:59+08:00"`, 1), "later than version 1")
	txt = replaceOnce(t, v2, `effective_at: "2026-12-01T00:00:00+08:00"`, `effective_at: "2000-01-01T00:00:00+08:00"`)
	add("effective_at equal to the previous", txt, lineOf(t, txt, `effective_at: "2000-01-01T00:00:00+08:00"`, 2), "later than version 1")
	txt = replaceOnce(t, v2, `min_net_amount: "800000.00"`, `min_net_amount: "80O000.00"`)
	add("error in a later version", txt, lineOf(t, txt, `"80O000.00"`, 1), "amount")
	txt = v2 + "  - version: 3\n    effective_at: \"2027-01-01T00:00:00+08:00\"\n    time_zone: Europe/Atlantis\n"
	add("bad time zone in a later version", txt, lineOf(t, txt, "Europe/Atlantis", 1), "Europe/Atlantis")
	txt = replaceOnce(t, def, "  - version: 1\n", "  - version: 0\n")
	add("version 0", txt, lineOf(t, txt, "version: 0", 1), "positive")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := domain.ParseRules([]byte(c.text))
			if err == nil {
				t.Fatal("ParseRules accepted the file")
			}
			if !errors.Is(err, domain.ErrRules) {
				t.Errorf("error %v does not wrap ErrRules", err)
			}
			var re *domain.RulesError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RulesError: %v", err, err)
			}
			if re.Line != c.line {
				t.Errorf("Line = %d, want %d (%s)", re.Line, c.line, err)
			}
			if c.message != "" && !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q does not mention %q", err, c.message)
			}
			if c.line > 0 && !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name its line", err)
			}
		})
	}
}

func TestAFileStartingAtVersion2InheritsTheBuiltInSettings(t *testing.T) {
	book := mustParse(t, "versions:\n"+version2)
	if len(book.Versions) != 1 {
		t.Fatalf("%d versions", len(book.Versions))
	}
	v, builtIn := book.Versions[0], domain.DefaultRuleBook().Latest()
	if v.Version != 2 || v.Location.String() != "Asia/Shanghai" {
		t.Errorf("version %d in %s, want 2 in Asia/Shanghai (inherited)", v.Version, v.Location)
	}
	if len(v.ValueTiers) != 4 || v.ValueTiers[0].MinNet != 80_000_000 {
		t.Errorf("value tiers %+v, want the file's", v.ValueTiers)
	}
	if len(v.Tags) != len(builtIn.Tags) || len(v.Tags) == 0 {
		t.Errorf("%d tags, want the built-in %d", len(v.Tags), len(builtIn.Tags))
	}
}
