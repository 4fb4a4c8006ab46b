package projections

import (
	"time"

	"github.com/segments-dev/segments/domain"
)

// ValueDocument is the value assessment of a customer (SPEC §11, seed 003's
// 价值评估): the customer document's "value" member.
type ValueDocument struct {
	AvgOrderValue domain.Money `json:"avg_order_value"` // 客单价
	FirstOrderAt  *string      `json:"first_order_at"`
	Repurchase    bool         `json:"repurchase"` // at least 2 orders
	LTV           domain.Money `json:"ltv"`        // historical: the net amount
	LTVPredicted  domain.Money `json:"ltv_predicted"`
	Sales6m       domain.Money `json:"sales_6m"`
	SalesPrev6m   domain.Money `json:"sales_prev_6m"`
	Growth6m      *int64       `json:"growth_6m"` // percent; null without sales in the 6 months before
	RFM           *RFMDocument `json:"rfm"`       // null when not scored
	NPS           *NPSDocument `json:"nps"`       // null without a recommendation score
}

// RFMDocument is a customer's RFM scores and segment, with the recorded day
// of quintiles they come from.
type RFMDocument struct {
	R         int8   `json:"r"`
	F         int8   `json:"f"`
	M         int8   `json:"m"`
	Segment   string `json:"segment"`
	Display   string `json:"display"`
	Day       string `json:"day"`
	DayAt     string `json:"day_at"`
	DaySeq    int64  `json:"day_seq"`
	Customers int64  `json:"population"`
}

// NPSDocument is the latest recommendation score and its category.
type NPSDocument struct {
	Score    int64  `json:"score"`
	Category string `json:"category"`
	Display  string `json:"display"`
	At       string `json:"at"`
}

// npsDisplay names the NPS categories (Chinese first).
var npsDisplay = map[string]string{domain.NPSPromoter: "推荐者", domain.NPSPassive: "被动者", domain.NPSDetractor: "贬损者"}

// valueDocument is the value section of p evaluated at (the instant of the
// document), in the time format ts.
func valueDocument(book *domain.RuleBook, p *domain.Projection, ts func(time.Time) string) *ValueDocument {
	f := &p.Facts
	v := &ValueDocument{AvgOrderValue: f.AvgOrderValue, Repurchase: f.OrderCount >= 2, LTV: f.NetAmount,
		LTVPredicted: f.LTVPredicted, Sales6m: f.Sales6m, SalesPrev6m: f.SalesPrev6m}
	if f.FirstOrderAt != 0 {
		s := ts(time.Unix(0, f.FirstOrderAt))
		v.FirstOrderAt = &s
	}
	if f.HasGrowth6m {
		g := f.Growth6m
		v.Growth6m = &g
	}
	if f.RFMRecency > 0 {
		seg := f.RFMSegment()
		v.RFM = &RFMDocument{R: f.RFMRecency, F: f.RFMFrequency, M: f.RFMMonetary, Segment: seg, Display: domain.RFMSegmentName(seg)}
		if c := book.RFM().At(p.EvaluatedAt); c != nil {
			v.RFM.Day, v.RFM.DayAt, v.RFM.DaySeq, v.RFM.Customers = c.Day, ts(c.At), c.Seq, c.Customers
		}
	}
	if f.HasRecommendation {
		cat := f.NPS()
		v.NPS = &NPSDocument{Score: f.RecommendationScore, Category: cat, Display: npsDisplay[cat]}
		if r := p.State.Recommendation; r != nil {
			v.NPS.At = ts(r.At)
		}
	}
	return v
}
