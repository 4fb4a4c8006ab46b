package domain_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// change is the part of a LabelChange a test states.
type change struct {
	label, from, to string
	at              time.Time
	cause           domain.CauseKind
	version         int
}

func (c change) String() string {
	return fmt.Sprintf("%s %s→%s at %s (%s, v%d)", c.label, c.from, c.to, c.at.In(shanghai).Format(time.RFC3339Nano), c.cause, c.version)
}

func summarize(cs []domain.LabelChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = change{c.Label, c.From, c.To, c.At, c.Cause, c.RuleVersion}.String()
	}
	return out
}

func wantChanges(t *testing.T, got []domain.LabelChange, want ...change) {
	t.Helper()
	ws := make([]string, len(want))
	for i, w := range want {
		ws[i] = w.String()
	}
	if g := summarize(got); !slices.Equal(g, ws) {
		t.Errorf("changes:\n  got  %s\n  want %s", strings.Join(g, "\n       "), strings.Join(ws, "\n       "))
	}
}

// advanceAll feeds a history through Advance, one event at a time, and then
// advances to until; it returns every change.
func advanceAll(b *domain.RuleBook, p *domain.Projection, recs []*domain.Recorded, until time.Time) []domain.LabelChange {
	var all []domain.LabelChange
	for _, r := range recs {
		all = append(all, b.Advance(p, r.RecordedAt, r)...)
	}
	if !until.IsZero() {
		all = append(all, b.Advance(p, until, nil)...)
	}
	return all
}

func TestAdvanceFirstEventCreatesEveryLabel(t *testing.T) {
	b := domain.DefaultRuleBook()
	at := sh(2026, 3, 15, 10, 0)
	recs := recorded(testCode, []ev{order(at, "SO-1", "120,000.00")})
	var p domain.Projection
	if !b.NextInstant(&p).IsZero() {
		t.Errorf("NextInstant of an empty projection = %v", b.NextInstant(&p))
	}
	got := b.Advance(&p, at, recs[0])
	e := domain.CauseEvent
	wantChanges(t, got,
		change{"value_tier", "", "regular", at, e, 1},
		change{"activity", "", "medium", at, e, 1},
		change{"need_orientation", "", "unknown", at, e, 1},
		change{"lifecycle", "", "customer", at, e, 1},
		change{"segment", "", "regular/medium", at, e, 1},
		change{"tag:needs_completion", "absent", "present", at, e, 1},
	)
	for _, c := range got {
		if c.EventID != recs[0].EventID || c.Customer != testCode || c.ID == uuid.Nil {
			t.Errorf("change %s: event %v customer %q id %v", c.Label, c.EventID, c.Customer, c.ID)
		}
		if c.ReasonZH == "" || c.ReasonEN == "" {
			t.Errorf("change %s has no reason", c.Label)
		}
		if !p.Since[c.Label].Equal(at) {
			t.Errorf("Since[%s] = %v, want %v", c.Label, p.Since[c.Label], at)
		}
	}
	if got[0].ReasonZH != "累计净额 120,000.00 ≥ 100,000.00 且 < 500,000.00" {
		t.Errorf("value_tier reason %q", got[0].ReasonZH)
	}
	if got[5].ReasonZH != "资料缺少：客户名称、所属行业、负责人、联系人姓名、联系电话或邮箱" {
		t.Errorf("needs_completion reason %q", got[5].ReasonZH)
	}
	if len(p.Since) != 6 {
		t.Errorf("Since = %v", p.Since)
	}
	if p.State.Version != 1 || p.RuleVersion != 1 || !p.EvaluatedAt.Equal(at) || p.Facts.Orders3m != 1 {
		t.Errorf("projection %+v", p)
	}
	// The next window boundary; NextInstant may come earlier when something
	// else is due (an alert deadline), never later.
	if want, ni := sh(2026, 6, 15, 10, 0), b.NextInstant(&p); !p.Next.Equal(want) || ni.After(want) || !ni.After(at) {
		t.Errorf("Next = %v, NextInstant = %v, want %v", p.Next, ni, want)
	}
}

func TestAdvanceTimeBoundaries(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2025, 8, 31, 10, 0) // +3m: 1 Dec 10:00 (31 Nov); +6m: 3 Mar 10:00 (31 Feb)
	t2 := sh(2025, 10, 15, 9, 30)
	recs := recorded(testCode, []ev{
		registered(),
		order(t1, "SO-1", "10.00"),
		order(t2, "SO-2", "10.00"), // +3m: 15 Jan 09:30; +6m: 15 Apr 09:30
		score(t2.Add(time.Hour), 2),
	})
	recs[0].RecordedAt = t1.Add(-time.Hour)
	var p domain.Projection
	for _, r := range recs {
		b.Advance(&p, r.RecordedAt, r)
	}
	if p.Labels.Activity != domain.ActivityHigh {
		t.Fatalf("activity %s", p.Labels.Activity)
	}
	// Advancing to just before the first boundary changes nothing.
	if got := b.Advance(&p, sh(2025, 12, 1, 10, 0).Add(-time.Nanosecond), nil); len(got) != 0 {
		t.Errorf("before the boundary: %v", summarize(got))
	}
	tm := domain.CauseTime
	b1, b2, b3, b4 := sh(2025, 12, 1, 10, 0), sh(2026, 1, 15, 9, 30), sh(2026, 3, 3, 10, 0), sh(2026, 4, 15, 9, 30)
	got := b.Advance(&p, sh(2026, 1, 15, 9, 30), nil) // exactly at the second boundary: included
	wantChanges(t, got,
		change{"activity", "high", "medium", b1, tm, 1},
		change{"segment", "potential/high", "potential/medium", b1, tm, 1},
		change{"activity", "medium", "low", b2, tm, 1},
		change{"segment", "potential/medium", "potential/low", b2, tm, 1},
	)
	if !p.Since["activity"].Equal(b2) || !p.Since["segment"].Equal(b2) || !p.Since["value_tier"].Equal(recs[0].RecordedAt) {
		t.Errorf("Since = %v", p.Since)
	}
	for _, c := range got {
		if c.EventID != uuid.Nil {
			t.Errorf("time change with event %v", c.EventID)
		}
	}
	// 3 Mar: SO-1 leaves the 6-month window; SO-2 still counts, so nothing
	// changes, but the boundary is evaluated.
	if got = b.Advance(&p, b3, nil); len(got) != 0 || !p.EvaluatedAt.Equal(b3) || !p.Next.Equal(b4) {
		t.Errorf("at %v: %v, evaluated at %v, next %v", b3, summarize(got), p.EvaluatedAt, p.Next)
	}
	// 15 Apr: lifecycle becomes lost and, with the latest score 2,
	// churn_warning is gained.
	got = b.Advance(&p, sh(2027, 1, 1, 0, 0), nil)
	wantChanges(t, got,
		change{"lifecycle", "customer", "lost", b4, tm, 1},
		change{"tag:churn_warning", "absent", "present", b4, tm, 1},
	)
	if !p.Next.IsZero() {
		t.Errorf("next window boundary %v, want none", p.Next)
	}
	if !p.Since["tag:churn_warning"].Equal(b4) {
		t.Errorf("Since[tag:churn_warning] = %v", p.Since["tag:churn_warning"])
	}
	if got[1].ReasonZH != "累计订单 2 笔，近6个月订单 0；最近满意度 2 ≤ 3" {
		t.Errorf("churn reason %q", got[1].ReasonZH)
	}
}

func TestAdvanceEventAtABoundary(t *testing.T) {
	b := domain.DefaultRuleBook()
	t1 := sh(2026, 1, 10, 8, 0)
	edge := sh(2026, 4, 10, 8, 0)
	recs := recorded(testCode, []ev{registered(), order(t1, "SO-1", "10.00"), order(edge, "SO-2", "10.00")})
	var p domain.Projection
	b.Advance(&p, recs[0].RecordedAt, recs[0])
	b.Advance(&p, recs[1].RecordedAt, recs[1])
	// The boundary at the event's instant is passed first (cause time), then
	// the event is applied (cause event).
	got := b.Advance(&p, edge, recs[2])
	wantChanges(t, got,
		change{"activity", "medium", "low", edge, domain.CauseTime, 1},
		change{"segment", "potential/medium", "potential/low", edge, domain.CauseTime, 1},
		change{"activity", "low", "medium", edge, domain.CauseEvent, 1},
		change{"segment", "potential/low", "potential/medium", edge, domain.CauseEvent, 1},
	)
	seen := map[uuid.UUID]bool{}
	for _, c := range got {
		if seen[c.ID] {
			t.Errorf("duplicate id %v", c.ID)
		}
		seen[c.ID] = true
	}
}

// twoVersionBook: v2, effective 1 Dec 2026, lowers the strategic threshold to
// 800,000 and adds a tag.
func twoVersionBook(t testing.TB) *domain.RuleBook {
	text := strings.TrimRight(defaultYAML(), "\n") + "\n" + version2 + `    tags:
      - name: strategic_partner
        display: ★★★战略伙伴
        when: net_amount >= yuan(800000) && orders_3m >= 2
        reason: 累计净额 {net_amount} ≥ 800,000.00；近3个月订单 {orders_3m} ≥ 2
      - name: big_spender
        display: 大客户
        when: net_amount >= yuan(800000)
`
	return mustParse(t, text)
}

func TestAdvanceRuleSwitch(t *testing.T) {
	b := twoVersionBook(t)
	sw := sh(2026, 12, 1, 0, 0)
	evs := []ev{
		registered(),
		order(sh(2026, 11, 1, 10, 0), "SO-1", "450,000.00"),
		order(sh(2026, 11, 2, 10, 0), "SO-2", "450,000.00"),
		score(sh(2026, 11, 3, 10, 0), 2),
	}
	recs := recorded(testCode, evs)
	var p domain.Projection
	for _, r := range recs {
		b.Advance(&p, r.RecordedAt, r)
	}
	if p.Labels.ValueTier != "key" || p.RuleVersion != 1 {
		t.Fatalf("before the switch: %+v v%d", p.Labels, p.RuleVersion)
	}
	if got := b.NextInstant(&p); !got.Equal(sw) {
		t.Errorf("NextInstant = %v, want the switch %v", got, sw)
	}
	// Just before the switch nothing happens.
	if got := b.Advance(&p, sw.Add(-time.Nanosecond), nil); len(got) != 0 {
		t.Errorf("before the switch: %v", summarize(got))
	}
	got := b.Advance(&p, sw, nil)
	r := domain.CauseRules
	wantChanges(t, got,
		change{"value_tier", "key", "strategic", sw, r, 2},
		change{"segment", "key/high", "strategic/high", sw, r, 2},
		change{"tag:strategic_partner", "absent", "present", sw, r, 2},
		change{"tag:big_spender", "absent", "present", sw, r, 2},
	)
	if p.RuleVersion != 2 || !p.EvaluatedAt.Equal(sw) || !p.Since["value_tier"].Equal(sw) || !p.Since["tag:big_spender"].Equal(sw) {
		t.Errorf("after the switch: v%d at %v, since %v", p.RuleVersion, p.EvaluatedAt, p.Since)
	}
	if got[0].ReasonZH != "累计净额 900,000.00 ≥ 800,000.00" || got[2].ReasonZH != "累计净额 900,000.00 ≥ 800,000.00；近3个月订单 2 ≥ 2" {
		t.Errorf("reasons %q, %q", got[0].ReasonZH, got[2].ReasonZH)
	}
	// The tag without an English reason falls back to its condition.
	if got[3].ReasonEN != "net_amount >= yuan(800000)" {
		t.Errorf("big_spender English reason %q", got[3].ReasonEN)
	}
	// Later boundaries are evaluated with v2: SO-1 leaves the 3-month window
	// on 1 Feb 2027 10:00; the partner tag is lost with cause time.
	got = b.Advance(&p, sh(2027, 2, 1, 10, 0), nil)
	wantChanges(t, got,
		change{"activity", "high", "medium", sh(2027, 2, 1, 10, 0), domain.CauseTime, 2},
		change{"segment", "strategic/high", "strategic/medium", sh(2027, 2, 1, 10, 0), domain.CauseTime, 2},
		change{"tag:strategic_partner", "present", "absent", sh(2027, 2, 1, 10, 0), domain.CauseTime, 2},
	)
	if _, ok := p.Since["tag:strategic_partner"]; ok {
		t.Errorf("an absent tag keeps a Since: %v", p.Since)
	}
	if !strings.HasPrefix(got[2].ReasonZH, "不再满足：") || !strings.HasPrefix(got[2].ReasonEN, "no longer holds: ") {
		t.Errorf("lost tag reasons %q / %q", got[2].ReasonZH, got[2].ReasonEN)
	}

	// A customer passing the switch inside one Advance, on the way to an
	// event, gets the rule change at the switch instant and the event after.
	var q domain.Projection
	for _, r := range recs {
		b.Advance(&q, r.RecordedAt, r)
	}
	later := sh(2026, 12, 5, 0, 0)
	next := recorded(testCode, append(slices.Clone(evs), order(later, "SO-3", "100,000.00")))[4]
	got = b.Advance(&q, next.RecordedAt, next)
	wantChanges(t, got,
		change{"value_tier", "key", "strategic", sw, r, 2},
		change{"segment", "key/high", "strategic/high", sw, r, 2},
		change{"tag:strategic_partner", "absent", "present", sw, r, 2},
		change{"tag:big_spender", "absent", "present", sw, r, 2},
	)
	if q.State.Version != 5 || !q.EvaluatedAt.Equal(later) || q.Facts.Orders3m != 3 {
		t.Errorf("the event after the switch was not applied: %+v", q)
	}
}

func TestAdvanceRuleSwitchDroppingATag(t *testing.T) {
	// v2 drops to_convert: a customer who had it loses it at the switch,
	// with cause rules, explained by v1's template.
	text := strings.TrimRight(defaultYAML(), "\n") + `
  - version: 2
    effective_at: "2026-07-01T00:00:00+08:00"
    remove:
      tags: [to_convert]
`
	b := mustParse(t, text)
	var evs []ev
	evs = append(evs, registered())
	for i := range 5 {
		evs = append(evs, inquiry(sh(2026, 6, 1+i, 10, 0)))
	}
	var p domain.Projection
	advanceAll(b, &p, recorded(testCode, evs), time.Time{})
	if got := tagNames(b.Versions[0], p.Labels); !slices.Equal(got, []string{"to_convert"}) {
		t.Fatalf("tags before the switch %v", got)
	}
	got := b.Advance(&p, sh(2026, 7, 1, 0, 0), nil)
	wantChanges(t, got, change{"tag:to_convert", "present", "absent", sh(2026, 7, 1, 0, 0), domain.CauseRules, 2})
	if !strings.Contains(got[0].ReasonZH, "近3个月咨询 5 ≥ 5") {
		t.Errorf("reason %q", got[0].ReasonZH)
	}
}

func TestAdvanceIgnoresOutOfOrderVersions(t *testing.T) {
	b := domain.DefaultRuleBook()
	recs := recorded(testCode, []ev{registered(), order(sh(2026, 5, 1, 10, 0), "SO-1", "10.00"), order(sh(2026, 5, 2, 10, 0), "SO-2", "10.00")})
	var p domain.Projection
	b.Advance(&p, recs[0].RecordedAt, recs[0])
	// Version 3 before version 2: ignored.
	if got := b.Advance(&p, recs[2].RecordedAt, recs[2]); len(got) != 0 || p.State.Version != 1 {
		t.Errorf("out-of-order event: %v, version %d", summarize(got), p.State.Version)
	}
	b.Advance(&p, recs[1].RecordedAt, recs[1])
	b.Advance(&p, recs[2].RecordedAt, recs[2])
	snapshot := p.Labels
	// Redelivery of versions 1–3: ignored.
	for _, r := range recs {
		if got := b.Advance(&p, recs[2].RecordedAt, r); len(got) != 0 {
			t.Errorf("redelivered v%d: %v", r.Version, summarize(got))
		}
	}
	if p.State.Version != 3 || p.Labels != snapshot || p.Facts.OrderCount != 2 || p.State.NetAmount != yuan("20") {
		t.Errorf("after redelivery: %+v %+v", p.Labels, p.Facts)
	}
}

func TestChangeIDsAreDeterministic(t *testing.T) {
	b := twoVersionBook(t)
	evs := []ev{
		registered(),
		order(sh(2026, 8, 31, 10, 0), "SO-1", "500,000.00"),
		inquiry(sh(2026, 9, 1, 0, 0)),
		order(sh(2026, 9, 30, 23, 59), "SO-2", "400,000.00"),
		score(sh(2026, 10, 1, 0, 0), 1),
		needs(sh(2026, 10, 2, 0, 0), "长期合作"),
		refund(sh(2027, 1, 2, 0, 0), "SO-2", "100,000.00"),
	}
	until := sh(2028, 1, 1, 0, 0)
	run := func(code domain.CustomerCode) []domain.LabelChange {
		var p domain.Projection
		return advanceAll(b, &p, recorded(code, evs), until)
	}
	a, a2, other := run(testCode), run(testCode), run("KH-OTHER")
	if len(a) < 15 {
		t.Fatalf("only %d changes: %v", len(a), summarize(a))
	}
	causes := map[domain.CauseKind]int{}
	ids := map[uuid.UUID]bool{}
	for i := range a {
		if a[i].ID != a2[i].ID {
			t.Errorf("change %d: id %v then %v", i, a[i].ID, a2[i].ID)
		}
		if ids[a[i].ID] {
			t.Errorf("duplicate id %v (%s)", a[i].ID, summarize(a[i:i+1]))
		}
		ids[a[i].ID] = true
		causes[a[i].Cause]++
	}
	for i := range other {
		if ids[other[i].ID] {
			t.Errorf("another customer shares change id %v", other[i].ID)
		}
	}
	if causes[domain.CauseEvent] == 0 || causes[domain.CauseTime] == 0 || causes[domain.CauseRules] == 0 {
		t.Errorf("causes %v: want all three kinds", causes)
	}
	// Changes come in time order.
	for i := 1; i < len(a); i++ {
		if a[i].At.Before(a[i-1].At) {
			t.Errorf("change %d at %v before %v", i, a[i].At, a[i-1].At)
		}
	}
}

// TestAdvanceSince: Since holds, for every label and present tag, the
// instant of its last change, and agrees with the history.
func TestAdvanceSince(t *testing.T) {
	b := twoVersionBook(t)
	evs := []ev{
		profile(func(p *domain.Profile) { p.Industry = nil }),
		order(sh(2026, 3, 31, 10, 0), "SO-1", "900,000.00"),
		order(sh(2026, 4, 30, 10, 0), "SO-2", "10.00"),
		{at: sh(2026, 5, 1, 0, 0), data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Industry: strp("物流")}}},
		score(sh(2026, 5, 2, 0, 0), 3),
	}
	var p domain.Projection
	all := advanceAll(b, &p, recorded(testCode, evs), sh(2028, 1, 1, 0, 0))
	last := map[string]domain.LabelChange{}
	for _, c := range all {
		last[c.Label] = c
	}
	for label, c := range last {
		since, ok := p.Since[label]
		if c.To == domain.TagAbsent {
			if ok {
				t.Errorf("%s is absent but has Since %v", label, since)
			}
			continue
		}
		if !ok || !since.Equal(c.At) {
			t.Errorf("Since[%s] = %v, want %v", label, since, c.At)
		}
	}
	for label := range p.Since {
		if _, ok := last[label]; !ok {
			t.Errorf("Since has %s without a change", label)
		}
	}
	if got := p.Labels.Value(domain.LabelLifecycle); got != domain.LifecycleLost {
		t.Errorf("lifecycle %s", got)
	}
}
