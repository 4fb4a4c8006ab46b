package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

// labelsVersion adds two operator-defined labels (one reading the other
// and a built-in label), a tag reading a label, and the alert of a label.
const labelsVersion = `  - version: 2
    effective_at: "2026-07-01T00:00:00+08:00"
    labels:
      - name: spend_band
        display: 消费档位
        display_en: Spend band
        cases:
          - value: high
            display: 高消费
            when: net_amount >= yuan(100000)
            reason: 累计净额 {net_amount} ≥ 100,000.00
            reason_en: net amount {net_amount} ≥ 100,000.00
          - value: low
            display: 低消费
            reason: 累计净额 {net_amount} < 100,000.00
        alerts:
          - {kind: spend_dropped, from: [high], to: [low]}
      - name: focus
        display: 关注度
        cases:
          - value: watch
            display: 重点关注
            when: spend_band == "high" && activity == "low"
          - value: normal
            display: 一般
    tags:
      - name: big_quiet
        display: 大额沉默
        when: focus == "watch"
        alert: big_quiet_seen
    alerts:
      spend_dropped:
        display: 消费档位下降
        due: 48h
        playbook: 联系客户了解原因。
      big_quiet_seen:
        display: 大额沉默客户
        playbook: 记录即可。
`

func labelsBook() string { return strings.TrimRight(defaultYAML(), "\n") + "\n" + labelsVersion }

// TestOperatorDefinedLabelsAreDecidedByTheirFirstMatchingCase: labels are
// evaluated in dependency order, tags read them, changes carry reasons, and
// their alerts are raised by configuration.
func TestOperatorDefinedLabelsAreDecidedByTheirFirstMatchingCase(t *testing.T) {
	t.Parallel()
	book := mustParse(t, labelsBook())
	rs := book.Latest()
	if got := rs.LabelNames(); len(got) != len(domain.Labels)+2 || got[len(got)-1] != "focus" {
		t.Fatalf("label names %v", got)
	}
	start := sh(2026, 8, 1, 10, 0)
	later := start.AddDate(0, 4, 0)
	recs := recorded(testCode, []ev{order(start, "o1", "150,000.00"), refund(later.Add(time.Hour), "o1", "100,000.00")})
	var p domain.Projection
	changes := book.Advance(&p, start, recs[0])
	values := map[string]string{}
	for _, c := range changes {
		values[c.Label] = c.To
		if c.Label == "spend_band" && !strings.Contains(c.ReasonZH, "150,000.00") {
			t.Errorf("spend_band reason %q does not render the net amount", c.ReasonZH)
		}
	}
	if values["spend_band"] != "high" || values["focus"] != "normal" {
		t.Fatalf("after an order: %v", values)
	}
	// Four months later activity is low: focus becomes watch, the tag is
	// gained, and its alert (no deadline) is informational.
	changes = book.Advance(&p, later, nil)
	values = map[string]string{}
	for _, c := range changes {
		values[c.Label] = c.To
	}
	if values["focus"] != "watch" || values[domain.TagLabel("big_quiet")] != domain.TagPresent {
		t.Fatalf("after 4 months: %v", values)
	}
	alerts := p.TakeAlertUpdates()
	var seen bool
	for _, a := range alerts {
		if a.Kind == "big_quiet_seen" {
			seen = a.Status == domain.AlertInfo && a.Playbook == "记录即可。"
		}
	}
	if !seen {
		t.Fatalf("no informational big_quiet_seen alert in %+v", alerts)
	}
	// A refund drops spend_band to low: spend_dropped is raised with its
	// deadline.
	book.Advance(&p, later.Add(time.Hour), recs[1])
	var due time.Time
	for _, a := range p.TakeAlertUpdates() {
		if a.Kind == "spend_dropped" && a.Raised {
			due = a.DueAt
		}
	}
	if want := later.Add(time.Hour + 48*time.Hour); !due.Equal(want) {
		t.Fatalf("spend_dropped due %v, want %v", due, want)
	}
	if got := rs.Display("spend_band", "low"); got != "低消费" {
		t.Errorf("display %q", got)
	}
}

// TestBadLabelsAreRefusedWithLineAndField: every refusal names the line
// and the field of the offending text.
func TestBadLabelsAreRefusedWithLineAndField(t *testing.T) {
	t.Parallel()
	base := labelsBook()
	highWhen := "            when: net_amount >= yuan(100000)\n"
	cases := []struct {
		name, old, repl, marker, field, message string
	}{
		{"CEL syntax error", highWhen, "            when: net_amount >= &&\n", "when: net_amount >= &&", ".labels[0].cases[0].when", "Syntax error"},
		{"a fact that does not exist", highWhen, "            when: revenue >= yuan(100000)\n", "when: revenue", ".labels[0].cases[0].when", `unknown fact or label "revenue"`},
		{"a tag is not a fact", highWhen, "            when: big_quiet\n", "when: big_quiet", ".labels[0].cases[0].when", "unknown fact or label"},
		{"not a boolean", highWhen, "            when: net_amount + 1\n", "when: net_amount + 1", ".labels[0].cases[0].when", "boolean"},
		{"non-exhaustive: the last case has a condition", "            display: 低消费\n", "            display: 低消费\n            when: net_amount < yuan(100000)\n", "when: net_amount < yuan(100000)", ".labels[0].cases[1].when", "default"},
		{"overlapping: a default before the last case", highWhen, "", "- value: high", ".labels[0].cases[0]", "only the last case"},
		{"overlapping: a condition that always holds", highWhen, "            when: \"true\"\n", `when: "true"`, ".labels[0].cases[0].when", "always holds"},
		{"a condition that never holds", highWhen, "            when: \"false\"\n", `when: "false"`, ".labels[0].cases[0].when", "never holds"},
		{"a repeated condition", "            display: 重点关注\n            when: spend_band == \"high\" && activity == \"low\"\n",
			"            display: 重点关注\n            when: spend_band == \"high\"\n          - value: other\n            display: 其他\n            when: spend_band  ==  \"high\"\n",
			`when: spend_band  ==`, ".labels[1].cases[1].when", "same condition as case 0"},
		{"a value given twice", "          - value: low\n", "          - value: high  # again\n", "# again", ".labels[0].cases[1].value", "earlier case"},
		{"a cycle between labels", highWhen, "            when: focus == \"watch\"\n", `when: focus == "watch"`, ".labels[0].cases[0].when", "spend_band → focus → spend_band"},
		{"a label reading itself", highWhen, "            when: spend_band == \"high\"\n", `when: spend_band == "high"`, ".labels[0].cases[0].when", "spend_band → spend_band"},
		{"a label named like a fact", "      - name: spend_band\n", "      - name: net_amount\n", "- name: net_amount", ".labels[0].name", "built-in label or a fact"},
		{"an alert on a value the label lacks", "{kind: spend_dropped, from: [high], to: [low]}", "{kind: spend_dropped, from: [high], to: [lowest]}", "kind: spend_dropped, from", ".labels[0].alerts[0].to[0]", "no value"},
		{"an alert kind not configured", "      spend_dropped:\n", "      spend_fell:\n", "kind: spend_dropped, from", ".labels[0].alerts[0].kind", "not configured"},
		{"an alert with a built-in kind", "{kind: spend_dropped,", "{kind: churn_risk,", "kind: churn_risk", ".labels[0].alerts[0].kind", "of its own"},
		{"an unknown fact in a reason", "reason: 累计净额 {net_amount} ≥ 100,000.00", "reason: 累计净额 {net_amt} ≥ 100,000.00", "{net_amt}", ".labels[0].cases[0].reason", "net_amt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			text := replaceOnce(t, base, c.old, c.repl)
			_, err := domain.ParseRulesFile("rules.yaml", []byte(text))
			var re *domain.RulesError
			if !errors.As(err, &re) || !errors.Is(err, domain.ErrRules) {
				t.Fatalf("err = %v; want a *RulesError", err)
			}
			if want := lineOf(t, text, c.marker, 1); re.Line != want {
				t.Errorf("line %d, want %d: %v", re.Line, want, err)
			}
			if want := "$.versions[1]" + c.field; re.Path != want {
				t.Errorf("field %s, want %s", re.Path, want)
			}
			if re.File != "rules.yaml" || !strings.Contains(err.Error(), "rules.yaml line ") {
				t.Errorf("error %q does not name the file and line", err)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q does not say %q", err, c.message)
			}
		})
	}
}

// TestAVersionMayNotRemoveWhatARouteUses: removing a tag or a label whose
// alert kind a notify route matches is refused at the remove entry.
func TestAVersionMayNotRemoveWhatARouteUses(t *testing.T) {
	t.Parallel()
	text := labelsBook() + `  - version: 3
    effective_at: "2026-09-01T00:00:00+08:00"
    remove:
      tags: [to_convert]
      labels: [spend_band, focus]
    tags:
      - name: big_quiet
        when: net_amount > 0
`
	book, err := domain.ParseRulesFile("rules.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ref    domain.Reference
		marker string
		path   string
	}{
		{domain.Reference{Kind: domain.RefTag, Name: "to_convert", By: "routes.yaml line 3"}, "tags: [to_convert]", "$.versions[2].remove.tags[0]"},
		{domain.Reference{Kind: domain.RefLabel, Name: "focus", By: "x"}, "labels: [spend_band, focus]", "$.versions[2].remove.labels[1]"},
		{domain.Reference{Kind: domain.RefAlertKind, Name: "spend_dropped", By: "x"}, "  - version: 3", "$.versions[2]"},
	} {
		err := book.CheckReferences([]domain.Reference{c.ref})
		var re *domain.RulesError
		if !errors.As(err, &re) {
			t.Fatalf("%s: err = %v", c.ref.Name, err)
		}
		if want := lineOf(t, text, c.marker, 1); re.Line != want || re.Path != c.path {
			t.Errorf("%s: %s line %d, want %s line %d", c.ref.Name, re.Path, re.Line, c.path, want)
		}
		if !strings.Contains(err.Error(), c.ref.By) {
			t.Errorf("%s: %q does not say who refers", c.ref.Name, err)
		}
	}
	ok := []domain.Reference{{Kind: domain.RefTag, Name: "churn_warning"}, {Kind: domain.RefAlertKind, Name: "big_quiet_seen"}, {Kind: domain.RefValueTier, Name: "key"}}
	if err := book.CheckReferences(ok); err != nil {
		t.Fatalf("references kept by every version refused: %v", err)
	}
}
