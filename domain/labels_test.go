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

// shanghai is the time zone of the default rule set.
var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// sh is a wall-clock instant in Asia/Shanghai.
func sh(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, shanghai)
}

// yuan parses a decimal amount of yuan ("1,000,000.00" is accepted for
// readability).
func yuan(s string) domain.Money {
	m, err := domain.ParseMoney(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		panic(fmt.Sprintf("yuan(%q): %v", s, err))
	}
	return m
}

func strp(s string) *string { return &s }

// ev is one event of a test history: its data and occurred_at. recorded_at
// is the occurred_at unless rec is set.
type ev struct {
	at   time.Time
	rec  time.Time
	data domain.Event
}

func order(at time.Time, id, amount string) ev {
	return ev{at: at, data: &domain.OrderPlaced{OrderID: id, Amount: yuan(amount)}}
}

func refund(at time.Time, id, amount string) ev {
	return ev{at: at, data: &domain.OrderRefunded{OrderID: id, Amount: yuan(amount)}}
}

func inquiry(at time.Time) ev { return ev{at: at, data: &domain.InquiryReceived{Topic: "报价"}} }

func score(at time.Time, n int) ev { return ev{at: at, data: &domain.SatisfactionRated{Score: n}} }

func needs(at time.Time, n ...string) ev {
	return ev{at: at, data: &domain.NeedsDeclared{CoreNeeds: n}}
}

// fullProfile is a profile with every field needs_completion looks at.
func fullProfile() domain.Profile {
	return domain.Profile{
		Name:     strp("深圳市华芯电子元件有限公司"),
		Industry: strp("电子制造"),
		Owner:    strp("王磊"),
		Contact:  &domain.Contact{Name: strp("张伟"), Phone: strp("13800138000"), Email: strp("zw@example.com")},
	}
}

// registered registers the customer with a complete profile, long ago.
func registered() ev {
	return ev{at: sh(2020, 1, 1, 9, 0), data: &domain.CustomerRegistered{Profile: fullProfile()}}
}

// profile registers the customer with a profile edited by f.
func profile(f func(p *domain.Profile)) ev {
	p := fullProfile()
	c := *p.Contact
	p.Contact = &c
	f(&p)
	return ev{at: sh(2020, 1, 1, 9, 0), data: &domain.CustomerRegistered{Profile: p}}
}

const testCode = domain.CustomerCode("KH202405010001")

// eventID is a deterministic event id for the i-th event of a test history.
func eventID(code domain.CustomerCode, i int64) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", code, i))
}

// recorded turns a history into log records with versions 1, 2, ….
func recorded(code domain.CustomerCode, evs []ev) []*domain.Recorded {
	out := make([]*domain.Recorded, len(evs))
	for i, e := range evs {
		rec := e.rec
		if rec.IsZero() {
			rec = e.at
		}
		v := int64(i + 1)
		out[i] = &domain.Recorded{
			EventID: eventID(code, v), Customer: code, Version: v,
			Type: e.data.EventType(), OccurredAt: e.at, RecordedAt: rec, Data: e.data,
		}
	}
	return out
}

// fold applies a history to an empty state.
func fold(t testing.TB, evs ...ev) *domain.CustomerState {
	t.Helper()
	s := &domain.CustomerState{}
	for _, r := range recorded(testCode, evs) {
		if !s.Apply(r) {
			t.Fatalf("event %d (%s) was not applied", r.Version, r.Type)
		}
	}
	return s
}

// tagNames lists the tags present in l.
func tagNames(rs *domain.RuleSet, l domain.LabelSet) []string {
	var out []string
	for i, tg := range rs.Tags {
		if l.HasTag(i) {
			out = append(out, tg.Name)
		}
	}
	return out
}

// labelCase is one row of the label table: a history, an instant, and what
// the default rules must say about it then.
type labelCase struct {
	name   string
	events []ev
	at     time.Time
	want   map[string]string // label -> value (only the labels named)
	tags   []string          // exactly these tags; nil: do not check
	has    []string          // these tags are present
	hasNot []string          // these tags are absent
	// reasons: label or "tag:<name>" -> substrings of the Chinese and the
	// English reason ("" skips one).
	reasons map[string][2]string
	display map[string]string // label -> display name of its value
	facts   *domain.Facts     // when set, the facts must be exactly these
	next    time.Time         // when set, the next boundary must be this
}

var now = sh(2026, 6, 1, 10, 0)

func withProfile(evs ...ev) []ev { return append([]ev{registered()}, evs...) }

func labelCases() []labelCase {
	d := func(days int) time.Time { return now.AddDate(0, 0, -days) }
	var cases []labelCase

	// value_tier: at, just below and just above every threshold.
	tiers := []struct {
		net, tier, zh, en string
	}{
		{"1,200,000.00", "strategic", "累计净额 1,200,000.00 ≥ 1,000,000.00", "net amount 1,200,000.00 ≥ 1,000,000.00"},
		{"1,000,000.01", "strategic", "累计净额 1,000,000.01 ≥ 1,000,000.00", "net amount 1,000,000.01 ≥ 1,000,000.00"},
		{"1,000,000.00", "strategic", "累计净额 1,000,000.00 ≥ 1,000,000.00", "net amount 1,000,000.00 ≥ 1,000,000.00"},
		{"999,999.99", "key", "累计净额 999,999.99 ≥ 500,000.00 且 < 1,000,000.00", "net amount 999,999.99 ≥ 500,000.00 and < 1,000,000.00"},
		{"500,000.01", "key", "累计净额 500,000.01 ≥ 500,000.00 且 < 1,000,000.00", "net amount 500,000.01 ≥ 500,000.00 and < 1,000,000.00"},
		{"500,000.00", "key", "累计净额 500,000.00 ≥ 500,000.00 且 < 1,000,000.00", "net amount 500,000.00 ≥ 500,000.00 and < 1,000,000.00"},
		{"499,999.99", "regular", "累计净额 499,999.99 ≥ 100,000.00 且 < 500,000.00", "net amount 499,999.99 ≥ 100,000.00 and < 500,000.00"},
		{"100,000.01", "regular", "累计净额 100,000.01 ≥ 100,000.00 且 < 500,000.00", "net amount 100,000.01 ≥ 100,000.00 and < 500,000.00"},
		{"100,000.00", "regular", "累计净额 100,000.00 ≥ 100,000.00 且 < 500,000.00", "net amount 100,000.00 ≥ 100,000.00 and < 500,000.00"},
		{"99,999.99", "potential", "累计净额 99,999.99 < 100,000.00", "net amount 99,999.99 < 100,000.00"},
		{"0.01", "potential", "累计净额 0.01 < 100,000.00", "net amount 0.01 < 100,000.00"},
	}
	for _, tc := range tiers {
		cases = append(cases, labelCase{
			name:    "value_tier/net " + tc.net,
			events:  withProfile(order(d(400), "SO-1", tc.net)),
			at:      now,
			want:    map[string]string{domain.LabelValueTier: tc.tier},
			reasons: map[string][2]string{domain.LabelValueTier: {tc.zh, tc.en}},
		})
	}
	cases = append(cases,
		labelCase{
			name:    "value_tier/no orders is net 0",
			events:  withProfile(),
			at:      now,
			want:    map[string]string{domain.LabelValueTier: "potential", domain.LabelSegment: "potential/low"},
			reasons: map[string][2]string{domain.LabelValueTier: {"累计净额 0.00 < 100,000.00", "net amount 0.00 < 100,000.00"}},
			display: map[string]string{domain.LabelValueTier: "潜力客户", domain.LabelSegment: "潜力低活跃客户"},
			facts:   &domain.Facts{},
		},
		labelCase{
			name: "value_tier/refunds reduce net below the threshold",
			events: withProfile(
				order(d(300), "SO-1", "600,000.00"),
				order(d(200), "SO-2", "600,000.00"),
				refund(d(100), "SO-2", "200,000.01"),
			),
			at:      now,
			want:    map[string]string{domain.LabelValueTier: "key"},
			reasons: map[string][2]string{domain.LabelValueTier: {"累计净额 999,999.99 ≥ 500,000.00 且 < 1,000,000.00", ""}},
		},
		labelCase{
			name: "value_tier/refunds reduce net to exactly the threshold",
			events: withProfile(
				order(d(300), "SO-1", "1,100,000.00"),
				refund(d(100), "SO-1", "50,000.00"),
				refund(d(90), "SO-1", "50,000.00"),
			),
			at:   now,
			want: map[string]string{domain.LabelValueTier: "strategic"},
		},
		labelCase{
			name:   "value_tier/a refund of an unknown order changes nothing",
			events: withProfile(order(d(300), "SO-1", "100,000.00"), refund(d(100), "SO-9", "1.00")),
			at:     now,
			want:   map[string]string{domain.LabelValueTier: "regular"},
		},
		labelCase{
			name:   "value_tier/a full refund leaves the order counted but net 0",
			events: withProfile(order(d(10), "SO-1", "200,000.00"), refund(d(5), "SO-1", "200,000.00")),
			at:     now,
			want:   map[string]string{domain.LabelValueTier: "potential", domain.LabelActivity: "medium"},
		},
	)

	// activity: 0, 1, 2, 3 orders in the 3-month window.
	for n, want := range []string{"low", "medium", "high", "high"} {
		evs := withProfile(order(d(400), "SO-old", "10.00")) // outside every window
		for i := range n {
			evs = append(evs, order(d(80-i*10), fmt.Sprintf("SO-%d", i), "10.00"))
		}
		var zh, en string
		switch want {
		case "low":
			zh, en = "近3个月订单 0 < 1", "orders in 3 months 0 < 1"
		case "medium":
			zh, en = "近3个月订单 1 ≥ 1 且 < 2", "orders in 3 months 1 ≥ 1 and < 2"
		default:
			zh, en = fmt.Sprintf("近3个月订单 %d ≥ 2", n), fmt.Sprintf("orders in 3 months %d ≥ 2", n)
		}
		cases = append(cases, labelCase{
			name:    fmt.Sprintf("activity/%d orders in 3 months", n),
			events:  evs,
			at:      now,
			want:    map[string]string{domain.LabelActivity: want, domain.LabelSegment: "potential/" + want},
			reasons: map[string][2]string{domain.LabelActivity: {zh, en}},
			display: map[string]string{domain.LabelActivity: map[string]string{"low": "低活跃", "medium": "中活跃", "high": "高活跃"}[want]},
		})
	}

	// The window boundary: an order at t counts at t+3m-1ns, not at t+3m.
	t0 := sh(2026, 3, 15, 10, 0)
	edge := sh(2026, 6, 15, 10, 0)
	cases = append(cases,
		labelCase{
			name: "window/at t the order counts", events: withProfile(order(t0, "SO-1", "10.00")), at: t0,
			want: map[string]string{domain.LabelActivity: "medium"},
			next: edge,
		},
		labelCase{
			name: "window/at t+3m-1ns the order counts", events: withProfile(order(t0, "SO-1", "10.00")), at: edge.Add(-time.Nanosecond),
			want: map[string]string{domain.LabelActivity: "medium", domain.LabelLifecycle: "customer"},
			next: edge,
		},
		labelCase{
			name: "window/at t+3m the order no longer counts", events: withProfile(order(t0, "SO-1", "10.00")), at: edge,
			want: map[string]string{domain.LabelActivity: "low", domain.LabelLifecycle: "customer"},
			next: sh(2026, 9, 15, 10, 0), // the 6-month boundary
		},
		labelCase{
			name: "window/an order recorded in the future counts", events: withProfile(order(now.Add(time.Minute), "SO-1", "10.00")), at: now,
			want: map[string]string{domain.LabelActivity: "medium"},
		},
	)

	// Month-end arithmetic (Go normalises 31 Aug fine, 30 Feb to 2 Mar, 31 Apr to 1 May).
	monthEnd := []struct {
		name        string
		at, expires time.Time
		months      int
	}{
		{"31 May 2026 + 3 months = 31 Aug", sh(2026, 5, 31, 10, 0), sh(2026, 8, 31, 10, 0), 3},
		{"30 Nov 2025 + 3 months = 2 Mar (30 Feb)", sh(2025, 11, 30, 10, 0), sh(2026, 3, 2, 10, 0), 3},
		{"31 Jan 2026 + 3 months = 1 May (31 Apr)", sh(2026, 1, 31, 10, 0), sh(2026, 5, 1, 10, 0), 3},
		{"29 Feb 2024 + 3 months = 29 May", sh(2024, 2, 29, 23, 59), sh(2024, 5, 29, 23, 59), 3},
		{"31 Dec 2025 + 3 months = 31 Mar", sh(2025, 12, 31, 0, 0), sh(2026, 3, 31, 0, 0), 3},
	}
	for _, m := range monthEnd {
		evs := withProfile(order(m.at, "SO-1", "10.00"))
		cases = append(cases,
			labelCase{
				name: "month end/" + m.name + "/just before", events: evs, at: m.expires.Add(-time.Nanosecond),
				want: map[string]string{domain.LabelActivity: "medium"}, next: m.expires,
			},
			labelCase{
				name: "month end/" + m.name + "/at", events: evs, at: m.expires,
				want: map[string]string{domain.LabelActivity: "low"},
			},
		)
	}
	// The day before the normalised expiry the order clearly still counts.
	cases = append(cases, labelCase{
		name: "month end/30 Nov 2025 still counts on 1 Mar 2026", events: withProfile(order(sh(2025, 11, 30, 10, 0), "SO-1", "10.00")),
		at: sh(2026, 3, 1, 23, 59), want: map[string]string{domain.LabelActivity: "medium"},
	})
	// Windows use the rules' zone, not the offset the event came with:
	// 2026-01-31T20:00Z is 1 Feb 04:00 in Shanghai, so it stops counting at
	// 1 May 04:00 +08 (30 Apr 20:00Z), not at 1 May 20:00Z as UTC would say.
	utcOrder := time.Date(2026, 1, 31, 20, 0, 0, 0, time.UTC)
	cases = append(cases,
		labelCase{
			name: "month end/zone/just before", events: withProfile(order(utcOrder, "SO-1", "10.00")),
			at: time.Date(2026, 4, 30, 19, 59, 59, 999999999, time.UTC), want: map[string]string{domain.LabelActivity: "medium"},
			next: sh(2026, 5, 1, 4, 0),
		},
		labelCase{
			name: "month end/zone/at", events: withProfile(order(utcOrder, "SO-1", "10.00")),
			at: time.Date(2026, 4, 30, 20, 0, 0, 0, time.UTC), want: map[string]string{domain.LabelActivity: "low"},
		},
	)

	// lifecycle, with the 6-month window: an order on 31 Aug 2025 leaves it
	// on 3 Mar 2026 (31 Feb normalised).
	lc := sh(2025, 8, 31, 10, 0)
	lcEnd := sh(2026, 3, 3, 10, 0)
	cases = append(cases,
		labelCase{
			name: "lifecycle/prospect", events: withProfile(score(d(3), 5), needs(d(2), "功能")), at: now,
			want:    map[string]string{domain.LabelLifecycle: "prospect"},
			reasons: map[string][2]string{domain.LabelLifecycle: {"无订单、无咨询", "no orders and no inquiries"}},
			display: map[string]string{domain.LabelLifecycle: "潜在客户"},
		},
		labelCase{
			name: "lifecycle/intent", events: withProfile(inquiry(d(800)), inquiry(d(3))), at: now,
			want:    map[string]string{domain.LabelLifecycle: "intent"},
			reasons: map[string][2]string{domain.LabelLifecycle: {"咨询 2 次，无订单", "2 inquiries, no orders"}},
			display: map[string]string{domain.LabelLifecycle: "意向客户"},
		},
		labelCase{
			name: "lifecycle/intent even with old inquiries only", events: withProfile(inquiry(d(800))), at: now,
			want: map[string]string{domain.LabelLifecycle: "intent"},
		},
		labelCase{
			name: "lifecycle/customer just before 6 months", events: withProfile(inquiry(d(900)), order(lc, "SO-1", "10.00")), at: lcEnd.Add(-time.Nanosecond),
			want:    map[string]string{domain.LabelLifecycle: "customer", domain.LabelActivity: "low"},
			reasons: map[string][2]string{domain.LabelLifecycle: {"近6个月订单 1", "orders in 6 months: 1"}},
			display: map[string]string{domain.LabelLifecycle: "成交客户"},
			next:    lcEnd,
		},
		labelCase{
			name: "lifecycle/lost at 6 months", events: withProfile(order(lc, "SO-1", "10.00")), at: lcEnd,
			want:    map[string]string{domain.LabelLifecycle: "lost"},
			reasons: map[string][2]string{domain.LabelLifecycle: {"累计订单 1 笔，近6个月无订单", "1 orders, none in 6 months"}},
			display: map[string]string{domain.LabelLifecycle: "流失客户"},
			next:    time.Time{},
		},
		labelCase{
			name: "lifecycle/a refund does not make a customer a prospect", events: withProfile(order(d(10), "SO-1", "10.00"), refund(d(9), "SO-1", "10.00")), at: now,
			want: map[string]string{domain.LabelLifecycle: "customer"},
		},
	)

	// need_orientation: the first of the latest core_needs with a known keyword.
	needCases := []struct {
		name    string
		evs     []ev
		want    string
		zh, en  string
		display string
	}{
		{"成本控制 → product", []ev{needs(d(5), "成本控制")}, "product", "最新核心诉求「成本控制」含关键词「成本控制」", `latest core need "成本控制" contains keyword "成本控制"`, "产品导向型"},
		{"售后 → service", []ev{needs(d(5), "售后")}, "service", "含关键词「售后」", `contains keyword "售后"`, "服务导向型"},
		{"长期合作 → partnership", []ev{needs(d(5), "长期合作")}, "partnership", "含关键词「长期合作」", "", "合作导向型"},
		{"keyword inside a longer need", []ev{needs(d(5), "希望售后响应更快")}, "service", "最新核心诉求「希望售后响应更快」含关键词「售后」", "", ""},
		{"first known wins, unknown skipped", []ev{needs(d(5), "品牌", "定制化服务", "性价比")}, "partnership", "「定制化服务」", "", ""},
		{"keyword order does not matter, need order does", []ev{needs(d(5), "响应速度", "成本控制")}, "service", "「响应速度」", "", ""},
		{"unknown keyword", []ev{needs(d(5), "品牌形象", "其他")}, "unknown", "最新核心诉求「品牌形象、其他」无已知关键词", "latest core needs [品牌形象, 其他] contain no known keyword", "未知"},
		{"no needs", nil, "unknown", "未声明核心诉求", "no core needs declared", "未知"},
		{"latest replaces earlier", []ev{needs(d(50), "成本控制"), needs(d(5), "技术支持")}, "service", "", "", ""},
		{"latest unknown replaces earlier known", []ev{needs(d(50), "成本控制"), needs(d(5), "其他")}, "unknown", "", "", ""},
		{"latest by occurred_at, not by record order", []ev{needs(d(5), "战略合作"), needs(d(50), "成本控制")}, "partnership", "「战略合作」", "", ""},
		{"same occurred_at: the later recorded wins", []ev{needs(d(5), "成本控制"), needs(d(5), "售后")}, "service", "", "", ""},
		{"preferences alone keep the needs", []ev{needs(d(50), "功能"), {at: d(1), data: &domain.NeedsDeclared{PriceSensitivity: domain.SensitivityHigh}}}, "product", "", "", ""},
	}
	for _, nc := range needCases {
		c := labelCase{
			name: "need_orientation/" + nc.name, events: withProfile(nc.evs...), at: now,
			want:    map[string]string{domain.LabelNeedOrientation: nc.want},
			reasons: map[string][2]string{domain.LabelNeedOrientation: {nc.zh, nc.en}},
		}
		if nc.display != "" {
			c.display = map[string]string{domain.LabelNeedOrientation: nc.display}
		}
		cases = append(cases, c)
	}

	// segment: value × activity.
	segs := []struct {
		net    string
		orders int
		want   string
		disp   string
	}{
		{"1,200,000.00", 2, "strategic/high", "战略高活跃客户"},
		{"1,200,000.00", 1, "strategic/medium", "战略中活跃客户"},
		{"600,000.00", 3, "key/high", "重点高活跃客户"},
		{"600,000.00", 1, "key/medium", "重点中活跃客户"},
		{"200,000.00", 0, "regular/low", "普通低活跃客户"},
		{"50,000.00", 2, "potential/high", "潜力高活跃客户"},
	}
	for _, sg := range segs {
		evs := withProfile(order(d(500), "SO-base", sg.net))
		for i := range sg.orders {
			evs = append(evs, order(d(10+i), fmt.Sprintf("SO-%d", i), "0.01"))
		}
		if sg.orders > 0 { // keep the net amount exact
			evs = append(evs, refund(d(1), "SO-base", fmt.Sprintf("0.%02d", sg.orders)))
		}
		cases = append(cases, labelCase{
			name: "segment/" + sg.want, events: evs, at: now,
			want:    map[string]string{domain.LabelSegment: sg.want},
			display: map[string]string{domain.LabelSegment: sg.disp},
		})
	}

	// strategic_partner: net ≥ 1,000,000 and orders within 3 months ≥ 2.
	cases = append(cases,
		labelCase{
			name:   "strategic_partner/net 1,200,000 and 2 orders in 3 months",
			events: withProfile(order(d(60), "SO-1", "600,000.00"), order(d(30), "SO-2", "600,000.00")), at: now,
			tags: []string{"strategic_partner"},
			want: map[string]string{domain.LabelSegment: "strategic/high"},
			reasons: map[string][2]string{"tag:strategic_partner": {
				"累计净额 1,200,000.00 ≥ 1,000,000.00；近3个月订单 2 ≥ 2",
				"net amount 1,200,000.00 ≥ 1,000,000.00; orders in 3 months 2 ≥ 2",
			}},
			display: map[string]string{domain.LabelSegment: "战略高活跃客户"},
		},
		labelCase{
			name:   "strategic_partner/net exactly 1,000,000 and 2 orders",
			events: withProfile(order(d(60), "SO-1", "500,000.00"), order(d(30), "SO-2", "500,000.00")), at: now,
			has:     []string{"strategic_partner"},
			reasons: map[string][2]string{"tag:strategic_partner": {"累计净额 1,000,000.00 ≥ 1,000,000.00；近3个月订单 2 ≥ 2", ""}},
		},
		labelCase{
			name:   "strategic_partner/net 999,999.99 is not enough",
			events: withProfile(order(d(60), "SO-1", "500,000.00"), order(d(30), "SO-2", "499,999.99")), at: now,
			hasNot: []string{"strategic_partner"},
			reasons: map[string][2]string{"tag:strategic_partner": {
				"不再满足：累计净额 999,999.99 ≥ 1,000,000.00", "no longer holds: net amount 999,999.99",
			}},
		},
		labelCase{
			name:   "strategic_partner/1 order in 3 months is not enough",
			events: withProfile(order(d(200), "SO-1", "1,000,000.00"), order(d(30), "SO-2", "200,000.00")), at: now,
			hasNot: []string{"strategic_partner"},
			want:   map[string]string{domain.LabelSegment: "strategic/medium"},
		},
		labelCase{
			name:   "strategic_partner/the second order leaves the window",
			events: withProfile(order(sh(2026, 3, 1, 10, 0), "SO-1", "600,000.00"), order(sh(2026, 5, 1, 10, 0), "SO-2", "600,000.00")),
			at:     sh(2026, 6, 1, 10, 0), hasNot: []string{"strategic_partner"},
		},
		labelCase{
			name:   "strategic_partner/just before the second order leaves the window",
			events: withProfile(order(sh(2026, 3, 1, 10, 0), "SO-1", "600,000.00"), order(sh(2026, 5, 1, 10, 0), "SO-2", "600,000.00")),
			at:     sh(2026, 6, 1, 10, 0).Add(-time.Nanosecond), has: []string{"strategic_partner"},
			next: sh(2026, 6, 1, 10, 0),
		},
	)

	// churn_warning: ≥ 1 order, none within 6 months, latest score ≤ 3.
	old := d(200)
	cases = append(cases,
		labelCase{
			name:   "churn_warning/old order and score 3",
			events: withProfile(order(old, "SO-1", "10.00"), score(d(20), 3)), at: now,
			tags: []string{"churn_warning"},
			want: map[string]string{domain.LabelLifecycle: "lost"},
			reasons: map[string][2]string{"tag:churn_warning": {
				"累计订单 1 笔，近6个月订单 0；最近满意度 3 ≤ 3", "1 orders, 0 in 6 months; latest satisfaction 3 ≤ 3",
			}},
		},
		labelCase{
			name:   "churn_warning/score 1",
			events: withProfile(order(old, "SO-1", "10.00"), score(d(20), 1)), at: now,
			has: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/score 4 is fine",
			events: withProfile(order(old, "SO-1", "10.00"), score(d(20), 4)), at: now,
			hasNot: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/no score, no warning",
			events: withProfile(order(old, "SO-1", "10.00")), at: now,
			hasNot: []string{"churn_warning"}, want: map[string]string{domain.LabelLifecycle: "lost"},
			facts: &domain.Facts{NetAmount: yuan("10.00"), OrderCount: 1},
		},
		labelCase{
			name:   "churn_warning/latest score by occurred_at",
			events: withProfile(order(old, "SO-1", "10.00"), score(d(5), 2), score(d(50), 5)), at: now,
			has: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/a better latest score clears it",
			events: withProfile(order(old, "SO-1", "10.00"), score(d(50), 2), score(d(5), 4)), at: now,
			hasNot: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/an order within 6 months",
			events: withProfile(order(old, "SO-1", "10.00"), order(d(150), "SO-2", "10.00"), score(d(20), 1)), at: now,
			hasNot: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/no orders at all",
			events: withProfile(inquiry(d(300)), score(d(20), 1)), at: now,
			hasNot: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/just before 6 months",
			events: withProfile(order(lc, "SO-1", "10.00"), score(lc, 2)), at: lcEnd.Add(-time.Nanosecond),
			hasNot: []string{"churn_warning"},
		},
		labelCase{
			name:   "churn_warning/at 6 months",
			events: withProfile(order(lc, "SO-1", "10.00"), score(lc, 2)), at: lcEnd,
			has: []string{"churn_warning"},
		},
	)

	// to_convert: ≥ 5 inquiries within 3 months and no order within 3 months.
	inq := func(n int, from int) []ev {
		var out []ev
		for i := range n {
			out = append(out, inquiry(d(from+i)))
		}
		return out
	}
	cases = append(cases,
		labelCase{
			name: "to_convert/5 inquiries, no order", events: withProfile(inq(5, 10)...), at: now,
			tags: []string{"to_convert"},
			reasons: map[string][2]string{"tag:to_convert": {
				"近3个月咨询 5 ≥ 5；近3个月订单 0", "inquiries in 3 months 5 ≥ 5; orders in 3 months 0",
			}},
			want: map[string]string{domain.LabelLifecycle: "intent"},
		},
		labelCase{
			name: "to_convert/4 inquiries", events: withProfile(inq(4, 10)...), at: now,
			hasNot: []string{"to_convert"},
		},
		labelCase{
			name: "to_convert/6 inquiries", events: withProfile(inq(6, 10)...), at: now,
			has: []string{"to_convert"},
		},
		labelCase{
			name: "to_convert/one of 5 inquiries is older than 3 months", events: withProfile(append(inq(4, 10), inquiry(d(95)))...), at: now,
			hasNot: []string{"to_convert"},
		},
		labelCase{
			name: "to_convert/an order in 3 months", events: withProfile(append(inq(5, 10), order(d(80), "SO-1", "1.00"))...), at: now,
			hasNot: []string{"to_convert"},
		},
		labelCase{
			name: "to_convert/an order older than 3 months", events: withProfile(append(inq(5, 10), order(d(100), "SO-1", "1.00"))...), at: now,
			has: []string{"to_convert"}, want: map[string]string{domain.LabelLifecycle: "customer"},
		},
	)

	// needs_completion: each missing field on its own.
	missing := []struct {
		name   string
		edit   func(p *domain.Profile)
		zh, en string
	}{
		{"name", func(p *domain.Profile) { p.Name = nil }, "客户名称", "name"},
		{"industry", func(p *domain.Profile) { p.Industry = nil }, "所属行业", "industry"},
		{"owner", func(p *domain.Profile) { p.Owner = nil }, "负责人", "owner"},
		{"contact.name", func(p *domain.Profile) { p.Contact.Name = nil }, "联系人姓名", "contact.name"},
		{"phone and email", func(p *domain.Profile) { p.Contact.Phone, p.Contact.Email = nil, nil }, "联系电话或邮箱", "contact.phone or contact.email"},
	}
	for _, m := range missing {
		cases = append(cases, labelCase{
			name: "needs_completion/missing " + m.name, events: []ev{profile(m.edit)}, at: now,
			tags: []string{"needs_completion"},
			reasons: map[string][2]string{"tag:needs_completion": {
				"资料缺少：" + m.zh, "profile lacks: " + m.en,
			}},
		})
	}
	cases = append(cases,
		labelCase{
			name: "needs_completion/complete profile", events: withProfile(), at: now,
			tags: []string{},
		},
		labelCase{
			name: "needs_completion/phone without email is enough", events: []ev{profile(func(p *domain.Profile) { p.Contact.Email = nil })}, at: now,
			tags: []string{},
		},
		labelCase{
			name: "needs_completion/email without phone is enough", events: []ev{profile(func(p *domain.Profile) { p.Contact.Phone = nil })}, at: now,
			tags: []string{},
		},
		labelCase{
			name: "needs_completion/nothing known", events: []ev{inquiry(d(10))}, at: now,
			has: []string{"needs_completion"},
			reasons: map[string][2]string{"tag:needs_completion": {
				"资料缺少：客户名称、所属行业、负责人、联系人姓名、联系电话或邮箱",
				"profile lacks: name, industry, owner, contact.name, contact.phone or contact.email",
			}},
		},
		labelCase{
			name: "needs_completion/owner assigned later completes the profile",
			events: []ev{
				profile(func(p *domain.Profile) { p.Owner = nil }),
				{at: d(3), data: &domain.OwnerAssigned{Owner: "李娜"}},
			},
			at: now, tags: []string{},
		},
		labelCase{
			name: "needs_completion/a profile update fills the gap",
			events: []ev{
				profile(func(p *domain.Profile) { p.Industry = nil; p.Contact.Phone, p.Contact.Email = nil, nil }),
				{at: d(3), data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Industry: strp("物流"), Contact: &domain.Contact{Email: strp("a@b.cn")}}}},
			},
			at: now, tags: []string{},
		},
		labelCase{
			name:   "needs_completion/erasure keeps the sealed fields known",
			events: withProfile(ev{at: d(3), data: &domain.CustomerErased{Reason: "PIPL"}}),
			at:     now, tags: []string{},
		},
	)

	// Several tags at once.
	cases = append(cases, labelCase{
		name: "tags/churn warning and needs completion together",
		events: []ev{
			profile(func(p *domain.Profile) { p.Owner = nil }),
			order(d(400), "SO-1", "1,500,000.00"), score(d(10), 2),
			inquiry(d(1)), inquiry(d(2)), inquiry(d(3)), inquiry(d(4)), inquiry(d(5)),
		},
		at:   now,
		tags: []string{"churn_warning", "to_convert", "needs_completion"},
		want: map[string]string{
			domain.LabelValueTier: "strategic", domain.LabelActivity: "low", domain.LabelLifecycle: "lost",
			domain.LabelSegment: "strategic/low", domain.LabelNeedOrientation: "unknown",
		},
		display: map[string]string{domain.LabelSegment: "战略低活跃客户"},
	})
	return cases
}

// TestLabelTable checks every row of SPEC §4 at, just below and just above
// each threshold, with the default rules.
func TestLabelTable(t *testing.T) {
	rs := domain.DefaultRuleBook().Latest()
	for _, tc := range labelCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := fold(t, tc.events...)
			l, f, next := rs.Evaluate(s, tc.at)
			for label, want := range tc.want {
				if got := l.Value(label); got != want {
					t.Errorf("%s = %q, want %q (facts %+v)", label, got, want, f)
				}
			}
			got := tagNames(rs, l)
			if tc.tags != nil && !slices.Equal(got, tc.tags) {
				t.Errorf("tags = %v, want %v (facts %+v)", got, tc.tags, f)
			}
			for _, name := range tc.has {
				if !slices.Contains(got, name) {
					t.Errorf("tag %s absent, want present (facts %+v)", name, f)
				}
			}
			for _, name := range tc.hasNot {
				if slices.Contains(got, name) {
					t.Errorf("tag %s present, want absent (facts %+v)", name, f)
				}
			}
			for key, want := range tc.reasons {
				var zh, en string
				if name, ok := strings.CutPrefix(key, "tag:"); ok {
					i := rs.TagIndex(name)
					if i < 0 {
						t.Fatalf("no tag %s", name)
					}
					zh, en = rs.TagReason(i, l.HasTag(i), &f)
				} else {
					zh, en = rs.Reason(s, key, &l, &f)
				}
				if !strings.Contains(zh, want[0]) {
					t.Errorf("reason of %s = %q, want it to contain %q", key, zh, want[0])
				}
				if !strings.Contains(en, want[1]) {
					t.Errorf("English reason of %s = %q, want it to contain %q", key, en, want[1])
				}
			}
			for label, want := range tc.display {
				if got := rs.Display(label, l.Value(label)); got != want {
					t.Errorf("Display(%s, %q) = %q, want %q", label, l.Value(label), got, want)
				}
			}
			// The §11 facts have their own tests (analytics_test.go).
			f.AvgOrderValue, f.FirstOrderAt, f.Sales6m, f.SalesPrev6m, f.OrdersPrev6m = 0, 0, 0, 0, 0
			f.Growth6m, f.HasGrowth6m, f.LTVPredicted = 0, false, 0
			if tc.facts != nil && f != *tc.facts {
				t.Errorf("facts = %+v, want %+v", f, *tc.facts)
			}
			if !tc.next.IsZero() && !next.Equal(tc.next) {
				t.Errorf("next = %v, want %v", next, tc.next)
			}
			if !next.IsZero() && !next.After(tc.at) {
				t.Errorf("next %v is not after %v", next, tc.at)
			}
		})
	}
}

// TestEveryLabelHasAReason: every label value of every table row has a
// non-empty reason and display name in both languages.
func TestEveryLabelHasAReason(t *testing.T) {
	rs := domain.DefaultRuleBook().Latest()
	for _, tc := range labelCases() {
		s := fold(t, tc.events...)
		l, f, _ := rs.Evaluate(s, tc.at)
		for _, label := range domain.Labels {
			zh, en := rs.Reason(s, label, &l, &f)
			if zh == "" || en == "" {
				t.Errorf("%s: %s=%s has no reason (%q, %q)", tc.name, label, l.Value(label), zh, en)
			}
			if rs.Display(label, l.Value(label)) == "" {
				t.Errorf("%s: %s=%s has no display name", tc.name, label, l.Value(label))
			}
		}
		for i := range rs.Tags {
			zh, en := rs.TagReason(i, l.HasTag(i), &f)
			if zh == "" || en == "" || strings.Contains(zh, "{") || strings.Contains(en, "{") {
				t.Errorf("%s: tag %s has a bad reason (%q, %q)", tc.name, rs.Tags[i].Name, zh, en)
			}
		}
	}
}

// TestNoTimeBoundaryWithoutWindowedEvents: a customer with no orders and no
// inquiries never changes with time alone.
func TestNoTimeBoundaryWithoutWindowedEvents(t *testing.T) {
	rs := domain.DefaultRuleBook().Latest()
	s := fold(t, registered(), score(now, 2), needs(now, "售后"))
	if _, _, next := rs.Evaluate(s, now); !next.IsZero() {
		t.Errorf("next = %v, want none", next)
	}
	// Once every window has passed there is no further boundary either.
	s = fold(t, registered(), order(sh(2020, 5, 31, 10, 0), "SO-1", "1.00"), inquiry(sh(2020, 5, 31, 10, 0)))
	if _, _, next := rs.Evaluate(s, now); !next.IsZero() {
		t.Errorf("next = %v, want none", next)
	}
	if _, _, next := rs.Evaluate(s, sh(2020, 6, 1, 0, 0)); !next.Equal(sh(2020, 8, 31, 10, 0)) {
		t.Errorf("next = %v, want 31 Aug 2020 10:00 +08", next)
	}
}

// TestNextBoundaryIsTheEarliestExpiry: the next instant is the earliest
// expiry of all windowed events, across orders (3 and 6 months) and
// inquiries, with equal expiries handled once.
func TestNextBoundaryIsTheEarliestExpiry(t *testing.T) {
	rs := domain.DefaultRuleBook().Latest()
	s := fold(t, registered(),
		order(sh(2026, 1, 10, 8, 0), "SO-1", "1.00"),  // 3m: 10 Apr; 6m: 10 Jul
		inquiry(sh(2026, 2, 20, 9, 0)),                // 3m: 20 May
		order(sh(2026, 3, 31, 10, 0), "SO-2", "1.00"), // 3m: 30 Jun+1 = 1 Jul; 6m: 1 Oct
		order(sh(2026, 3, 31, 10, 0), "SO-3", "1.00"), // same instant
	)
	steps := []struct {
		at   time.Time
		next time.Time
	}{
		{sh(2026, 4, 1, 0, 0), sh(2026, 4, 10, 8, 0)},
		{sh(2026, 4, 10, 8, 0), sh(2026, 5, 20, 9, 0)},
		{sh(2026, 5, 20, 9, 0), sh(2026, 7, 1, 10, 0)},
		{sh(2026, 7, 1, 10, 0), sh(2026, 7, 10, 8, 0)},
		{sh(2026, 7, 10, 8, 0), sh(2026, 10, 1, 10, 0)},
		// SO-1 leaves the 6 months before the last 6 (sales_prev_6m).
		{sh(2026, 10, 1, 10, 0), sh(2027, 1, 10, 8, 0)},
		{sh(2027, 1, 10, 8, 0), sh(2027, 3, 31, 10, 0)},
		{sh(2027, 3, 31, 10, 0), time.Time{}},
	}
	for _, st := range steps {
		if _, _, next := rs.Evaluate(s, st.at); !next.Equal(st.next) {
			t.Errorf("at %v: next = %v, want %v", st.at, next, st.next)
		}
	}
	l, f, _ := rs.Evaluate(s, sh(2026, 6, 30, 23, 0))
	if f.Orders3m != 2 || l.Activity != domain.ActivityHigh {
		t.Errorf("30 Jun: orders_3m = %d, activity %s; want 2, high", f.Orders3m, l.Activity)
	}
}

// TestEvaluationDependsOnlyOnItsRuleSet: a state evaluated with one rule set
// and then another of the same version number (another rules file, e.g. a
// what-if evaluation of a candidate file) gets the second one's answer.
func TestEvaluationDependsOnlyOnItsRuleSet(t *testing.T) {
	def := domain.DefaultRuleBook().Latest()
	other := mustParse(t, replaceOnce(t, defaultYAML(), "{keyword: 售后,     orientation: service}", "{keyword: 售后,     orientation: product}")).Latest()
	if def.Version != other.Version {
		t.Fatalf("versions %d and %d", def.Version, other.Version)
	}
	s := fold(t, registered(), needs(now, "售后"))
	for i, c := range []struct {
		rs   *domain.RuleSet
		want string
	}{{def, "service"}, {other, "product"}, {def, "service"}, {other, "product"}} {
		l, f, _ := c.rs.Evaluate(s, now)
		if l.NeedOrientation != c.want {
			t.Errorf("evaluation %d: need_orientation %s, want %s", i, l.NeedOrientation, c.want)
		}
		fresh := fold(t, registered(), needs(now, "售后"))
		if fl, _, _ := c.rs.Evaluate(fresh, now); fl != l {
			t.Errorf("evaluation %d: %+v, a fresh state says %+v", i, l, fl)
		}
		if zh, _ := c.rs.Reason(s, domain.LabelNeedOrientation, &l, &f); !strings.Contains(zh, "售后") {
			t.Errorf("evaluation %d: reason %q", i, zh)
		}
	}
}
