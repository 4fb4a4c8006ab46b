package domain_test

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/segments-dev/segments/domain"
)

func recommend(at time.Time, n int) ev {
	return ev{at: at, data: &domain.RecommendationRated{Score: &n}}
}

// TestPredictLTVHandComputed checks the documented formula (docs/ANALYTICS.md)
// against examples computed by hand:
//
//	ltv_predicted = net + round(net × 365 × 3 × r / (max(365, span_days) × 5))
func TestPredictLTVHandComputed(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  string
		span int64
		r    int8
		want string
	}{
		// Seed 003's card: 9,600 yuan over 116 days, recent (r = 5):
		// 9600 × 365/365 × 3 × 5/5 = 28,800 ahead, 38,400 in all.
		{"seed card, r 5", "9600.00", 116, 5, "38400.00"},
		// The same customer less recent (r = 3): 9600 × 3 × 3/5 = 17,280.
		{"seed card, r 3", "9600.00", 116, 3, "26880.00"},
		// Two years of buying: 10,000 × 365/730 = 5,000 a year; × 3 × 4/5 = 12,000.
		{"two years, r 4", "10000.00", 730, 4, "22000.00"},
		// Rounding half up in fen: 1 × 365 × 3 × 1 / (1100 × 5) = 0.199 fen → 0;
		// with 400 days 1095 / 2000 = 0.5475 fen → 1.
		{"rounds down below half", "0.01", 1100, 1, "0.01"},
		{"rounds up at half", "0.01", 400, 1, "0.02"},
		// 0.01 × 1095 × 5 / (365 × 5) = 3 fen exactly.
		{"one fen, r 5", "0.01", 0, 5, "0.04"},
		// 1.00 × 1095 × 1 / (1000 × 5) = 21.9 fen → 22.
		{"rounds up from half", "1.00", 1000, 1, "1.22"},
		{"not scored: history only", "9600.00", 116, 0, "9600.00"},
		{"nothing bought", "0", 0, 5, "0.00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := domain.PredictLTV(yuan(tc.net), tc.span, tc.r); got != yuan(tc.want) {
				t.Errorf("PredictLTV(%s, %d, %d) = %s, want %s", tc.net, tc.span, tc.r, got, tc.want)
			}
		})
	}
	if got := domain.PredictLTV(domain.MaxMoney*9, 0, 5); got <= domain.MaxMoney*9 {
		t.Errorf("a huge net amount gives %d: it must saturate, not wrap", got)
	}
}

func TestRFMScoresAndSegments(t *testing.T) {
	day := sh(2026, 6, 1, 0, 0)
	cuts := &domain.RFMCuts{
		At:        day,
		Customers: 100,
		Recency:   [4]int64{sh(2026, 1, 1, 0, 0).UnixMicro(), sh(2026, 3, 1, 0, 0).UnixMicro(), sh(2026, 4, 1, 0, 0).UnixMicro(), sh(2026, 5, 1, 0, 0).UnixMicro()},
		Frequency: [4]int64{1, 1, 2, 4},
		Monetary:  [4]int64{int64(yuan("100")), int64(yuan("1000")), int64(yuan("10000")), int64(yuan("100000"))},
	}
	for _, tc := range []struct {
		name    string
		evs     []ev
		r, f, m int8
		segment string
	}{
		{"no orders: not scored", nil, 0, 0, 0, ""},
		{"one small old order", []ev{order(sh(2025, 12, 1, 9, 0), "A", "50")}, 1, 1, 1, domain.RFMGeneralRetain},
		{"tied with a boundary stays below it", []ev{order(sh(2026, 1, 1, 0, 0), "A", "100")}, 1, 1, 1, domain.RFMGeneralRetain},
		{"recent, frequent, big", []ev{
			order(sh(2026, 2, 1, 9, 0), "A", "60000"), order(sh(2026, 3, 1, 9, 0), "B", "60000"),
			order(sh(2026, 4, 1, 9, 0), "C", "60000"), order(sh(2026, 4, 20, 9, 0), "D", "60000"),
			order(sh(2026, 5, 20, 9, 0), "E", "60000"),
		}, 5, 5, 5, domain.RFMImportantValue},
		{"recent single big order", []ev{order(sh(2026, 5, 2, 9, 0), "A", "200000")}, 5, 1, 5, domain.RFMImportantDevelop},
		{"old, frequent, big", []ev{order(sh(2025, 1, 1, 9, 0), "A", "6000"), order(sh(2025, 2, 1, 9, 0), "B", "6000"), order(sh(2025, 3, 1, 9, 0), "C", "6000")}, 1, 4, 4, domain.RFMImportantKeep},
		{"old single big order", []ev{order(sh(2025, 1, 1, 9, 0), "A", "20000")}, 1, 1, 4, domain.RFMImportantRetain},
		{"recent frequent small", []ev{order(sh(2026, 3, 10, 9, 0), "A", "10"), order(sh(2026, 4, 10, 9, 0), "B", "10"), order(sh(2026, 5, 10, 9, 0), "C", "10")}, 5, 4, 1, domain.RFMGeneralValue},
		{"recent single small", []ev{order(sh(2026, 3, 10, 9, 0), "A", "10")}, 3, 1, 1, domain.RFMGeneralDevelop},
		{"old frequent small", []ev{order(sh(2025, 3, 10, 9, 0), "A", "10"), order(sh(2025, 4, 10, 9, 0), "B", "10"), order(sh(2025, 5, 10, 9, 0), "C", "10")}, 1, 4, 1, domain.RFMGeneralKeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fold(t, withProfile(tc.evs...)...)
			_, f, _ := domain.DefaultRuleBook().Latest().EvaluateWith(s, day, cuts)
			if f.RFMRecency != tc.r || f.RFMFrequency != tc.f || f.RFMMonetary != tc.m || f.RFMSegment() != tc.segment {
				t.Errorf("scores %d %d %d %q, want %d %d %d %q", f.RFMRecency, f.RFMFrequency, f.RFMMonetary, f.RFMSegment(), tc.r, tc.f, tc.m, tc.segment)
			}
		})
	}
}

func TestValueFactsOfOneCustomer(t *testing.T) {
	s := fold(t, withProfile(
		order(sh(2025, 1, 15, 9, 0), "A", "1000.00"), // previous 6 months at 2025-12-01
		order(sh(2025, 3, 1, 9, 0), "B", "2000.00"),
		refund(sh(2025, 3, 2, 9, 0), "B", "500.00"),
		order(sh(2025, 7, 1, 9, 0), "C", "3000.00"), // last 6 months
		recommend(sh(2025, 8, 1, 9, 0), 10),
		recommend(sh(2025, 9, 1, 9, 0), 7),
	)...)
	rs := domain.DefaultRuleBook().Latest()
	_, f, next := rs.Evaluate(s, sh(2025, 12, 1, 0, 0))
	checks := []struct {
		name      string
		got, want any
	}{
		{"avg_order_value", f.AvgOrderValue, yuan("1833.33")}, // 5500 / 3
		{"first_order_at", f.FirstOrderAt, sh(2025, 1, 15, 9, 0).UnixNano()},
		{"sales_6m", f.Sales6m, yuan("3000.00")},
		{"sales_prev_6m", f.SalesPrev6m, yuan("2500.00")},
		{"orders_prev_6m", f.OrdersPrev6m, int64(2)},
		{"growth_6m", f.Growth6m, int64(20)}, // (3000 − 2500) / 2500
		{"has_growth_6m", f.HasGrowth6m, true},
		{"recommendation", f.RecommendationScore, int64(7)},
		{"nps", f.NPS(), domain.NPSPassive},
		{"not scored without cuts", f.RFMRecency, int8(0)},
		{"ltv_predicted without a score", f.LTVPredicted, yuan("5500.00")},
	}
	if !next.Equal(sh(2026, 1, 1, 9, 0)) {
		t.Errorf("next = %v, want C leaving the last 6 months on 2026-01-01 09:00", next)
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	_, f, _ = rs.Evaluate(s, sh(2026, 1, 20, 0, 0))
	// A left the previous window on 2026-01-15 (+12 months); B (net 1500)
	// and C (3000, out of the last 6 months since 2026-01-01) are in it.
	if f.SalesPrev6m != yuan("4500.00") || f.Sales6m != 0 || f.Growth6m != -100 {
		t.Errorf("on 2026-01-20: sales %s, before %s, growth %d; want 0, 4500.00, -100", f.Sales6m, f.SalesPrev6m, f.Growth6m)
	}
	for score, want := range map[int64]string{0: domain.NPSDetractor, 6: domain.NPSDetractor, 7: domain.NPSPassive, 8: domain.NPSPassive, 9: domain.NPSPromoter, 10: domain.NPSPromoter} {
		if got := domain.NPSCategory(score); got != want {
			t.Errorf("NPSCategory(%d) = %s, want %s", score, got, want)
		}
	}
}

// TestTagsOverValueFacts: every new fact is a CEL variable, and reasons
// may name them.
func TestTagsOverValueFacts(t *testing.T) {
	book, err := domain.ParseRules([]byte(`versions:
  - version: 1
    effective_at: "2000-01-01T00:00:00+08:00"
    tags:
      - name: vip
        display: 重要价值
        when: rfm_segment == "important_value" && ltv_predicted >= yuan(1000) && repurchase
        reason: RFM {rfm_segment}，预测LTV {ltv_predicted}
        reason_en: RFM {rfm_segment}, predicted LTV {ltv_predicted}
      - name: promoter
        display: 推荐者
        when: nps_category == "promoter" && has_recommendation && recommendation_score >= 9
      - name: growing
        display: 成长
        when: has_growth_6m && growth_6m >= 30 && sales_6m > sales_prev_6m && orders_prev_6m >= 1
        reason: 近6个月增长 {growth_6m}
      - name: early
        display: 老客户
        when: order_count > 0 && first_order_at < timestamp("2025-01-01T00:00:00Z") && avg_order_value > 0 && ltv > 0
      - name: scored
        display: 已评分
        when: rfm_r + rfm_f + rfm_m == 15
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := book.Latest()
	s := fold(t, withProfile(
		order(sh(2024, 6, 1, 9, 0), "A", "1000"), order(sh(2025, 8, 1, 9, 0), "B", "2000"),
		recommend(sh(2025, 8, 2, 9, 0), 9),
	)...)
	day := sh(2025, 9, 1, 0, 0)
	cuts := &domain.RFMCuts{At: day, Customers: 1, Recency: [4]int64{1, 2, 3, 4}, Frequency: [4]int64{0, 0, 1, 1}, Monetary: [4]int64{1, 2, 3, 4}}
	l, f, _ := rs.EvaluateWith(s, day, cuts)
	for _, name := range []string{"vip", "promoter", "early", "scored"} {
		if !l.HasTag(rs.TagIndex(name)) {
			t.Errorf("tag %s absent with facts %+v", name, f)
		}
	}
	if l.HasTag(rs.TagIndex("growing")) {
		t.Errorf("growing present: no orders in the 6 months before the last 6")
	}
	zh, en := rs.TagReason(rs.TagIndex("vip"), true, &f)
	// 3,000 over 426 days, r 5: 3000 × 1095 × 5 / (426 × 5) = 7,711.27 ahead.
	if zh != "RFM 重要价值客户，预测LTV 10,711.27" || en != "RFM important_value, predicted LTV 10,711.27" {
		t.Errorf("reasons %q / %q", zh, en)
	}
	if _, err := domain.ParseRules([]byte("versions:\n  - version: 1\n    effective_at: \"2000-01-01T00:00:00+08:00\"\n    tags:\n      - {name: x, display: x, when: rfm_segment > 3}\n")); err == nil {
		t.Error("a string fact compared with a number was accepted")
	}
}

// TestRFMDaysAreBoundariesOnlyWhenScoresChange: a recorded day passes in
// Advance (cause time) only for a customer whose scores it changes, and an
// incremental advance agrees with one from scratch.
func TestRFMDaysAreBoundariesOnlyWhenScoresChange(t *testing.T) {
	book, err := domain.ParseRules([]byte(`versions:
  - version: 1
    effective_at: "2000-01-01T00:00:00+08:00"
    tags:
      - {name: top, display: 顶级, when: "rfm_r == 5"}
`))
	if err != nil {
		t.Fatal(err)
	}
	last := sh(2026, 5, 1, 9, 0)
	recs := recorded(testCode, withProfile(order(last, "A", "10")))
	d1, d2, d3 := sh(2026, 5, 2, 0, 0), sh(2026, 5, 3, 0, 0), sh(2026, 5, 4, 0, 0)
	below, above := last.UnixMicro()-1, last.UnixMicro()+1
	h := (&domain.RFMHistory{}).
		With(domain.RFMCuts{Seq: 1, At: d1, Customers: 1, Recency: [4]int64{0, 0, 0, below}}).
		With(domain.RFMCuts{Seq: 2, At: d2, Customers: 1, Recency: [4]int64{0, 0, 0, below}}).
		With(domain.RFMCuts{Seq: 3, At: d3, Customers: 1, Recency: [4]int64{0, 0, below, above}})
	book.SetRFM(h)
	p := &domain.Projection{}
	for _, r := range recs {
		book.Advance(p, r.RecordedAt, r)
	}
	if got := book.NextInstant(p); !got.Equal(d1) {
		t.Fatalf("next instant %v, want the first day %v", got, d1)
	}
	changes := book.Advance(p, sh(2026, 6, 1, 0, 0), nil)
	if len(changes) != 2 || changes[0].At != d1 || changes[0].To != domain.TagPresent || changes[1].At != d3 || changes[1].To != domain.TagAbsent {
		t.Fatalf("changes %+v, want the tag gained on day 1 and lost on day 3 (day 2 changes nothing)", changes)
	}
	if !p.EvaluatedAt.Equal(d3) || p.Facts.RFMRecency != 4 {
		t.Errorf("evaluated at %v with r %d, want %v and 4", p.EvaluatedAt, p.Facts.RFMRecency, d3)
	}
	rapid.Check(t, func(rt *rapid.T) {
		q := &domain.Projection{}
		for _, r := range recs {
			book.Advance(q, r.RecordedAt, r)
		}
		var all []domain.LabelChange
		for _, to := range []time.Time{d1, d2, d3} {
			if rapid.Bool().Draw(rt, "stop") {
				all = append(all, book.Advance(q, to.Add(-time.Duration(rapid.IntRange(0, 1).Draw(rt, "before"))), nil)...)
			}
		}
		all = append(all, book.Advance(q, sh(2026, 6, 1, 0, 0), nil)...)
		if len(all) != len(changes) || all[0].ID != changes[0].ID || all[1].ID != changes[1].ID || q.Facts != p.Facts {
			rt.Fatalf("incremental %+v, at once %+v", all, changes)
		}
	})
}
