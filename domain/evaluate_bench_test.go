package domain_test

import (
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/samplecustomer"
)

// BenchmarkEvaluate100Events measures one evaluation of a customer whose
// state holds 100 events (SPEC target: ≤ 5 µs and ≤ 10 allocations).
func BenchmarkEvaluate100Events(b *testing.B) {
	rs := domain.DefaultRuleBook().Latest()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, rs.Location)
	s := samplecustomer.Hundred(now)
	rs.Evaluate(s, now) // builds the window cache once, as the projector does
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(s, now)
	}
}

// BenchmarkEvaluate100EventsScored is the same evaluation against a
// recorded RFM day, so the scores, segment and predictive LTV are computed.
func BenchmarkEvaluate100EventsScored(b *testing.B) {
	rs := domain.DefaultRuleBook().Latest()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, rs.Location)
	s := samplecustomer.Hundred(now)
	cuts := &domain.RFMCuts{At: now.Add(-time.Hour), Customers: 1000,
		Recency:   [4]int64{now.AddDate(-1, 0, 0).UnixMicro(), now.AddDate(0, -6, 0).UnixMicro(), now.AddDate(0, -3, 0).UnixMicro(), now.AddDate(0, -1, 0).UnixMicro()},
		Frequency: [4]int64{1, 1, 2, 4}, Monetary: [4]int64{10_000, 100_000, 1_000_000, 10_000_000}}
	if _, f, _ := rs.EvaluateWith(s, now, cuts); f.RFMRecency == 0 {
		b.Fatal("the sample customer was not scored")
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.EvaluateWith(s, now, cuts)
	}
}
