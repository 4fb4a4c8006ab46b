package projections_test

import (
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// TestTheCardShowsTheValueAssessment: the customer document carries the
// value facts of SPEC §11 (seed 003's 价值评估), as of any instant too.
func TestTheCardShowsTheValueAssessment(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 15, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	const code = domain.CustomerCode("KHV1")
	e.record(start, ev(code, start, fullProfile("华芯电子", "王磊", "李明", "13800138000", "li@example.com")), ev(code, start, order("A", "1000.00")))
	at := start.AddDate(0, 1, 15)
	e.record(at, ev(code, at, order("B", "2000.00")), ev(code, at, refund("B", "500.00")))
	at = start.AddDate(0, 6, 0)
	e.record(at, ev(code, at, order("C", "3000.00")), ev(code, at, recommended(9)))
	e.apply(code)
	e.clock.Set(time.Date(2025, 12, 1, 0, 0, 0, 0, cst))
	d := e.doc(code)
	v := d.Value
	if v == nil {
		t.Fatal("no value section")
	}
	// Reading the card on 2025-12-01 records that day's RFM quintiles (no
	// scheduler ran): one customer, every boundary its own value, so it
	// scores 1 1 1; predicted: 5,500 a year (span under a year) × 3 × 1/5.
	if v.AvgOrderValue != money("1833.33") || !v.Repurchase || v.LTV != money("5500.00") || v.LTVPredicted != money("8800.00") {
		t.Errorf("value %+v: want avg 1833.33, repurchase, ltv 5500.00, predicted 8800.00", v)
	}
	if v.FirstOrderAt == nil || *v.FirstOrderAt != "2025-01-15T09:00:00+08:00" {
		t.Errorf("first order at %v", v.FirstOrderAt)
	}
	if v.Sales6m != money("3000.00") || v.SalesPrev6m != money("2500.00") || v.Growth6m == nil || *v.Growth6m != 20 {
		t.Errorf("growth: %s, %s, %v; want 3000.00, 2500.00, 20", v.Sales6m, v.SalesPrev6m, v.Growth6m)
	}
	if v.NPS == nil || v.NPS.Score != 9 || v.NPS.Category != domain.NPSPromoter || v.NPS.Display != "推荐者" {
		t.Errorf("nps %+v", v.NPS)
	}
	if r := v.RFM; r == nil || r.R != 1 || r.F != 1 || r.M != 1 || r.Segment != domain.RFMGeneralRetain || r.Day != "2025-12-01" || r.Customers != 1 {
		t.Errorf("rfm %+v, want 1 1 1 general_retain on the day 2025-12-01 over 1 customer", r)
	}
	asOf, err := e.q.Customer(ctxT(t), code, start.AddDate(0, 2, 0), e.clock.Now(), eventstore.Masked)
	if err != nil {
		t.Fatal(err)
	}
	if asOf.Value.NPS != nil || asOf.Value.LTV != money("2500.00") || asOf.Value.Growth6m != nil {
		t.Errorf("as of two months in: %+v", asOf.Value)
	}
}
