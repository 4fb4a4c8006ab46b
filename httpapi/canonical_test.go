package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
)

func TestCustomerOrderedTotalIsCappedBeforeAnySumCanOverflow(t *testing.T) {
	t.Parallel()
	e := newAPI(t)
	// Ten batches of 1,000 orders at the largest amount for one customer
	// would be 10^17 yuan, beyond int64 fen: every batch is refused whole.
	for b := range 10 {
		orders := make([]string, 1000)
		for i := range orders {
			orders[i] = orderPlaced("KH-BIG", fmt.Sprintf("SO-%d-%d", b, i), `"10000000000000.00"`)
		}
		e.post(batch(orders)).expectError(t, http.StatusConflict, "customer_total_exceeded", "events[1].data.amount")
	}
	e.expectStored(0)
	// One order at the bound is fine; one fen more for that customer is not.
	e.post(orderPlaced("KH-BIG", "SO-1", `"10000000000000.00"`)).expect(t, http.StatusCreated)
	e.post(orderPlaced("KH-BIG", "SO-2", `"0.01"`)).expectError(t, http.StatusConflict, "customer_total_exceeded", "data.amount")
	e.expectStored(1)
}

func TestOccurredAtIsShownWithTheOffsetItWasSentWith(t *testing.T) {
	t.Parallel()
	e := newAPI(t)
	sent := []string{
		"1900-01-01T00:00:00+08:00", // Asia/Shanghai's local mean time then was +08:05:43
		"2024-05-01T22:00:00.123456-04:00",
		"2024-05-02T01:00:00Z",
	}
	for i, at := range sent {
		e.post(with(inquiry("KH-OFFSET", fmt.Sprint(i)), `"occurred_at":"`+at+`"`)).expect(t, http.StatusCreated)
	}
	h := e.get("/v1/customers/KH-OFFSET/events").expect(t, http.StatusOK).history(t)
	if len(h.Events) != len(sent) {
		t.Fatalf("%d events", len(h.Events))
	}
	for i, ev := range h.Events {
		if ev.OccurredAt != sent[i] {
			t.Errorf("event %d occurred_at = %q, want %q as sent", i, ev.OccurredAt, sent[i])
		}
	}
}
