// Package samplecustomer builds the customer that the domain evaluation
// benchmark and the load tools' calibration both measure, so the two
// figures stay comparable.
package samplecustomer

import (
	"strconv"
	"time"

	"github.com/segments-dev/segments/domain"
)

// Hundred is a registered customer whose state holds 100 events before
// now, every three days back: orders, inquiries and satisfaction scores in
// turn. The returned state has not been evaluated yet.
func Hundred(now time.Time) *domain.CustomerState {
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
	return &s
}
