package domain_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

// BenchmarkEvaluate100Events measures one evaluation of a customer whose
// state holds 100 events (SPEC target: ≤ 5 µs and ≤ 10 allocations).
func BenchmarkEvaluate100Events(b *testing.B) {
	rs := domain.DefaultRuleBook().Latest()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, rs.Location)
	var s domain.CustomerState
	name := "深圳市华芯电子元件有限公司"
	s.Apply(&domain.Recorded{Version: 1, Customer: "KH1", OccurredAt: now, Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: &name}}})
	for i := 2; i <= 100; i++ {
		var d domain.Event
		switch i % 3 {
		case 0:
			d = &domain.OrderPlaced{OrderID: strconv.Itoa(i), Amount: 10_000_00}
		case 1:
			d = &domain.InquiryReceived{Topic: "报价"}
		default:
			d = &domain.SatisfactionRated{Score: 4}
		}
		s.Apply(&domain.Recorded{Version: int64(i), Customer: "KH1", OccurredAt: now.AddDate(0, 0, -3*i), Data: d})
	}
	rs.Evaluate(&s, now) // builds the window cache once, as the projector does
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(&s, now)
	}
}
