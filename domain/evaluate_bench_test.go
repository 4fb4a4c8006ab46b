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
