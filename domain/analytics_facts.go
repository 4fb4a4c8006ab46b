package domain

import (
	"strconv"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Fact names of SPEC §11, usable in tag conditions and reason templates.
// Amounts are fen (yuan(n) converts), like net_amount.
const (
	FactAvgOrderValue       = "avg_order_value" // 客单价: net amount / order count, rounded half up
	FactFirstOrderAt        = "first_order_at"  // a CEL timestamp; conditions only
	FactRepurchase          = "repurchase"      // at least 2 orders
	FactRFMRecency          = "rfm_r"           // 1–5, 0 when not scored
	FactRFMFrequency        = "rfm_f"
	FactRFMMonetary         = "rfm_m"
	FactRFMSegment          = "rfm_segment" // important_value … general_retain, "" when not scored
	FactLTV                 = "ltv"         // historical: the net amount
	FactLTVPredicted        = "ltv_predicted"
	FactSales6m             = "sales_6m"      // net sales of orders within the long window
	FactSalesPrev6m         = "sales_prev_6m" // … of orders in the long window before it
	FactOrdersPrev6m        = "orders_prev_6m"
	FactGrowth6m            = "growth_6m" // percent, truncated; 0 when has_growth_6m is false
	FactHasGrowth6m         = "has_growth_6m"
	FactRecommendationScore = "recommendation_score" // 0–10, latest; 0 when none
	FactHasRecommendation   = "has_recommendation"
	FactNPSCategory         = "nps_category" // promoter, passive, detractor; "" when none
)

func analyticsVariables() []cel.EnvOption {
	ints := []string{FactAvgOrderValue, FactRFMRecency, FactRFMFrequency, FactRFMMonetary, FactLTV, FactLTVPredicted,
		FactSales6m, FactSalesPrev6m, FactOrdersPrev6m, FactGrowth6m, FactRecommendationScore}
	opts := make([]cel.EnvOption, 0, len(ints)+6)
	for _, n := range ints {
		opts = append(opts, cel.Variable(n, cel.IntType))
	}
	return append(opts,
		cel.Variable(FactFirstOrderAt, cel.TimestampType),
		cel.Variable(FactRepurchase, cel.BoolType),
		cel.Variable(FactHasGrowth6m, cel.BoolType),
		cel.Variable(FactHasRecommendation, cel.BoolType),
		cel.Variable(FactRFMSegment, cel.StringType),
		cel.Variable(FactNPSCategory, cel.StringType),
	)
}

// resolveAnalytics is ResolveName for the facts of SPEC §11.
func (f *Facts) resolveAnalytics(name string) (any, bool) {
	switch name {
	case FactAvgOrderValue:
		return types.Int(f.AvgOrderValue), true
	case FactFirstOrderAt:
		return types.Timestamp{Time: time.Unix(0, f.FirstOrderAt).UTC()}, true
	case FactRepurchase:
		return types.Bool(f.OrderCount >= 2), true
	case FactRFMRecency:
		return types.Int(f.RFMRecency), true
	case FactRFMFrequency:
		return types.Int(f.RFMFrequency), true
	case FactRFMMonetary:
		return types.Int(f.RFMMonetary), true
	case FactRFMSegment:
		return types.String(f.RFMSegment()), true
	case FactLTV:
		return types.Int(f.NetAmount), true
	case FactLTVPredicted:
		return types.Int(f.LTVPredicted), true
	case FactSales6m:
		return types.Int(f.Sales6m), true
	case FactSalesPrev6m:
		return types.Int(f.SalesPrev6m), true
	case FactOrdersPrev6m:
		return types.Int(f.OrdersPrev6m), true
	case FactGrowth6m:
		return types.Int(f.Growth6m), true
	case FactHasGrowth6m:
		return types.Bool(f.HasGrowth6m), true
	case FactRecommendationScore:
		return types.Int(f.RecommendationScore), true
	case FactHasRecommendation:
		return types.Bool(f.HasRecommendation), true
	case FactNPSCategory:
		return types.String(f.NPS()), true
	}
	return nil, false
}

// RFMSegment is the facts' RFM segment ("" when not scored).
func (f *Facts) RFMSegment() string { return RFMSegment(f.RFMRecency, f.RFMFrequency, f.RFMMonetary) }

// NPS is the NPS category of the latest recommendation ("" when none).
func (f *Facts) NPS() string {
	if !f.HasRecommendation {
		return ""
	}
	return NPSCategory(f.RecommendationScore)
}

// analyticsText renders a §11 fact in a reason template ("", false when
// name is not one).
func analyticsText(name string, f *Facts, chinese bool) (string, bool) {
	switch name {
	case FactAvgOrderValue:
		return f.AvgOrderValue.Grouped(), true
	case FactLTV:
		return f.NetAmount.Grouped(), true
	case FactLTVPredicted:
		return f.LTVPredicted.Grouped(), true
	case FactSales6m:
		return f.Sales6m.Grouped(), true
	case FactSalesPrev6m:
		return f.SalesPrev6m.Grouped(), true
	case FactGrowth6m:
		return strconv.FormatInt(f.Growth6m, 10) + "%", true
	case FactRepurchase, FactHasGrowth6m, FactHasRecommendation:
		v, _ := f.resolveAnalytics(name)
		if b, ok := v.(types.Bool); ok && bool(b) {
			return "true", true
		}
		return "false", true
	case FactRFMSegment:
		if chinese {
			return RFMSegmentName(f.RFMSegment()), true
		}
		return f.RFMSegment(), true
	case FactNPSCategory:
		return f.NPS(), true
	}
	return "", false
}
