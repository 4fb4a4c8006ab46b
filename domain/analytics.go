package domain

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// Value analytics of SPEC §11 (seed 003): RFM scores against recorded
// population quintiles, LTV, 6-month growth and the NPS category.

// RFMCuts are the quintile boundaries of one day's RFM recomputation. They
// are recorded (projections: rfm_days), never recomputed: a customer's
// scores at an instant are a function of its own facts and the cuts in
// force then, so replay, as_of and rebuild give the same scores whatever the
// population looks like when they run.
//
// Each array holds the values at the 20, 40, 60 and 80 % positions of the
// customers with orders, in ascending order (percentile_disc). A value's
// score is 1 + the number of boundaries strictly below it: the top quintile
// scores 5, and a value tied with a boundary stays in the lower quintile.
type RFMCuts struct {
	Seq int64     // 1, 2, … in the order recorded
	Day string    // the day in the rules' time zone, 2006-01-02
	At  time.Time // the instant from which these cuts are in force
	// Next is the next daily instant after At: until then no other day is
	// due (RFMHistory.Covers). Not recorded: derived from At and the zone.
	Next time.Time
	// Recency: last order instants (Unix microseconds, PostgreSQL's
	// precision): later is better.
	Recency [4]int64
	// Frequency: order counts.
	Frequency [4]int64
	// Monetary: net amounts in fen.
	Monetary [4]int64
	// Customers is the population the cuts were taken over.
	Customers int64
}

// quintile is 1 + the number of boundaries strictly below v.
func quintile(cuts *[4]int64, v int64) int8 {
	n := int8(1)
	for _, c := range cuts {
		if v > c {
			n++
		}
	}
	return n
}

// Scores returns s's recency, frequency and monetary scores under c (all 0
// for a customer without orders, or when c is nil or was taken over no
// customers: not scored).
func (c *RFMCuts) Scores(s *CustomerState) (r, f, m int8) {
	if c == nil || c.Customers == 0 || len(s.Orders) == 0 {
		return 0, 0, 0
	}
	return quintile(&c.Recency, s.LastOrderAt.UnixMicro()), quintile(&c.Frequency, int64(len(s.Orders))),
		quintile(&c.Monetary, int64(s.NetAmount))
}

// RFMHistory is every recorded day of cuts, in recording order (At
// ascending). It is immutable: a new day makes a new history.
type RFMHistory struct {
	Days []RFMCuts
}

// At returns the cuts in force at t (nil before the first day).
func (h *RFMHistory) At(t time.Time) *RFMCuts {
	if h == nil {
		return nil
	}
	i := sort.Search(len(h.Days), func(i int) bool { return h.Days[i].At.After(t) })
	if i == 0 {
		return nil
	}
	return &h.Days[i-1]
}

// Covers says whether every day due by instant t is recorded: a day
// recorded at or after t's daily instant exists (days not recorded in time
// are skipped for good once a later one is).
func (h *RFMHistory) Covers(t time.Time) bool {
	last := h.Last()
	return last != nil && t.Before(last.Next)
}

// Last returns the latest day (nil when none).
func (h *RFMHistory) Last() *RFMCuts {
	if h == nil || len(h.Days) == 0 {
		return nil
	}
	return &h.Days[len(h.Days)-1]
}

// With returns a history with c appended (c must be later than the last).
func (h *RFMHistory) With(c RFMCuts) *RFMHistory {
	var days []RFMCuts
	if h != nil {
		days = slices.Clip(h.Days)
	}
	return &RFMHistory{Days: append(days, c)}
}

// rfmHolder lets the projectors publish newly recorded days to a rule book
// that every goroutine of the process shares.
type rfmHolder struct{ p atomic.Pointer[RFMHistory] }

// SetRFM makes h the book's RFM history (the projections package loads it
// from rfm_days and extends it as days are recorded).
func (b *RuleBook) SetRFM(h *RFMHistory) { b.rfm.p.Store(h) }

// CompareAndSwapRFM makes h the book's RFM history if it still is old
// (goroutines that read new days concurrently extend it one at a time).
func (b *RuleBook) CompareAndSwapRFM(old, h *RFMHistory) bool { return b.rfm.p.CompareAndSwap(old, h) }

// RFM returns the book's RFM history (nil: none recorded).
func (b *RuleBook) RFM() *RFMHistory { return b.rfm.p.Load() }

// nextRFMChange is the first recorded day after the last evaluation, and not
// after to, at which the customer's scores differ from its current ones
// (zero when none). Days that change nothing for the customer are not
// boundaries: a customer whose bucket does not change is never touched.
func (b *RuleBook) nextRFMChange(p *Projection, to time.Time) time.Time {
	h := b.RFM()
	if h == nil || p.RuleVersion == 0 || len(p.State.Orders) == 0 {
		return time.Time{}
	}
	i := sort.Search(len(h.Days), func(i int) bool { return h.Days[i].At.After(p.EvaluatedAt) })
	for ; i < len(h.Days); i++ {
		c := &h.Days[i]
		if !to.IsZero() && c.At.After(to) {
			break
		}
		if r, f, m := c.Scores(&p.State); r != p.Facts.RFMRecency || f != p.Facts.RFMFrequency || m != p.Facts.RFMMonetary {
			return c.At
		}
	}
	return time.Time{}
}

// RFM segment names: 重要/一般 by monetary, 价值/发展/保持/挽留 by recency
// and frequency (the classic eight-cell RFM model). A score is "high" when
// it is at least RFMHighScore.
const (
	RFMImportantValue   = "important_value"
	RFMImportantDevelop = "important_develop"
	RFMImportantKeep    = "important_keep"
	RFMImportantRetain  = "important_retain"
	RFMGeneralValue     = "general_value"
	RFMGeneralDevelop   = "general_develop"
	RFMGeneralKeep      = "general_keep"
	RFMGeneralRetain    = "general_retain"
	RFMHighScore        = 3
)

// RFMSegments lists the segments in display order with their names.
var RFMSegments = []struct{ Value, ZH, EN string }{
	{RFMImportantValue, "重要价值客户", "important value"},
	{RFMImportantDevelop, "重要发展客户", "important to develop"},
	{RFMImportantKeep, "重要保持客户", "important to keep"},
	{RFMImportantRetain, "重要挽留客户", "important to win back"},
	{RFMGeneralValue, "一般价值客户", "general value"},
	{RFMGeneralDevelop, "一般发展客户", "general to develop"},
	{RFMGeneralKeep, "一般保持客户", "general to keep"},
	{RFMGeneralRetain, "一般挽留客户", "general to win back"},
}

// RFMSegment names the cell of scores r, f, m ("" when not scored).
func RFMSegment(r, f, m int8) string {
	if r == 0 {
		return ""
	}
	// Index into RFMSegments: monetary low adds 4, recency low adds 2,
	// frequency low adds 1 — in the table's order.
	i := 0
	if m < RFMHighScore {
		i += 4
	}
	if r < RFMHighScore {
		i += 2
	}
	if f < RFMHighScore {
		i++
	}
	return RFMSegments[i].Value
}

// RFMSegmentName is the Chinese display name of a segment ("" when unknown).
func RFMSegmentName(v string) string {
	for _, s := range RFMSegments {
		if s.Value == v {
			return s.ZH
		}
	}
	return ""
}

// NPS categories of a 0–10 recommendation score.
const (
	NPSPromoter  = "promoter"
	NPSPassive   = "passive"
	NPSDetractor = "detractor"
)

// NPSCategory is promoter (9–10), passive (7–8) or detractor (0–6).
func NPSCategory(score int64) string {
	switch {
	case score >= 9:
		return NPSPromoter
	case score >= 7:
		return NPSPassive
	default:
		return NPSDetractor
	}
}

// LTVHorizonYears is how far ahead the predictive LTV looks.
const LTVHorizonYears = 3

// PredictLTV is the predictive LTV in fen (docs/ANALYTICS.md):
//
//	annual = net × 365 / max(365, span_days)
//	ltv_predicted = net + annual × LTVHorizonYears × r / 5
//
// where span_days is the whole days from the first to the last order and r
// the recency score (0: not scored, nothing predicted). The division rounds
// half up; the result saturates at the largest amount.
func PredictLTV(net Money, spanDays int64, r int8) Money {
	if net <= 0 || r <= 0 {
		return net
	}
	num := uint64(365 * LTVHorizonYears * int64(r))
	den := uint64(max(365, spanDays) * 5)
	hi, lo := bits.Mul64(uint64(net), num)
	lo, carry := bits.Add64(lo, den/2, 0)
	hi += carry
	if hi >= den {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, den)
	if q > uint64(math.MaxInt64) {
		return math.MaxInt64
	}
	return net.AddSaturating(Money(q))
}

// growthPercent is the change from prev to recent in whole percent,
// truncated toward zero (false when prev is not positive: no base).
func growthPercent(recent, prev Money) (int64, bool) {
	if prev <= 0 {
		return 0, false
	}
	d := int64(recent) - int64(prev)
	hi, lo := bits.Mul64(uint64(abs64(d)), 100) //nolint:gosec // G115: abs64 is not negative (but MinInt64, which net sales never reach)
	if hi != 0 {
		return math.MaxInt64, true
	}
	q := int64(lo / uint64(prev)) //nolint:gosec // G115: bounded by the product
	if d < 0 {
		q = -q
	}
	return q, true
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// analytics fills the SPEC §11 facts of f at instant t (Unix ns): average
// order value, first order, repurchase, sales of the last and previous long
// windows and their growth, RFM scores, LTV and NPS. It returns the next
// instant an order leaves the previous long window (0: none).
func analytics(s *CustomerState, c *windowCache, t int64, cuts *RFMCuts, f *Facts) int64 {
	var next int64
	if n := int64(len(s.Orders)); n > 0 {
		f.AvgOrderValue = Money((int64(s.NetAmount) + n/2) / n)
		first := s.Orders[0].At
		for i := range s.Orders {
			o := &s.Orders[i]
			if o.At.Before(first) {
				first = o.At
			}
			w := &c.orderWindows[i]
			switch {
			case t < w.long:
				f.Sales6m = f.Sales6m.AddSaturating(o.Amount - o.Refunded)
			case t < w.double:
				f.SalesPrev6m = f.SalesPrev6m.AddSaturating(o.Amount - o.Refunded)
				f.OrdersPrev6m++
			}
		}
		f.FirstOrderAt = first.UnixNano()
		_, next = countAfter(c.ordersDouble, t)
		f.RFMRecency, f.RFMFrequency, f.RFMMonetary = cuts.Scores(s)
		span := s.LastOrderAt.Sub(first) / (24 * time.Hour)
		f.LTVPredicted = PredictLTV(s.NetAmount, int64(span), f.RFMRecency)
	}
	f.Growth6m, f.HasGrowth6m = growthPercent(f.Sales6m, f.SalesPrev6m)
	if s.Recommendation != nil {
		f.HasRecommendation, f.RecommendationScore = true, int64(s.Recommendation.Value)
	}
	return next
}
