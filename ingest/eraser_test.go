package ingest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// bodies returns every message of a stream by sequence.
func (h *harness) bodies(stream string) map[uint64]string {
	h.t.Helper()
	ctx := ctxT(h.t)
	st, err := h.js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[uint64]string{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out[seq] = string(m.Data)
	}
	return out
}

func (h *harness) holding(stream, text string) []uint64 {
	var seqs []uint64
	for seq, b := range h.bodies(stream) {
		if strings.Contains(b, text) {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// runInBackground runs a supervised part until the end of the test.
func runInBackground(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
}

func registration(customer, phone string) obj {
	return envelope("CustomerRegistered", customer, obj{"name": "王小明", "kind": "individual", "contact": obj{"phone": phone}})
}

func TestErasurePurgesTheCustomersIngestAndRejectedMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store, func(c *ingest.Config) { c.Erasures = h.store })
	// The erased customer's data, valid and invalid, alone and in a batch;
	// another customer's; a message that names no one.
	h.publish("ingest.crm", body(t, registration("KH-X", "13800000001")))
	h.publish("ingest.crm", body(t, envelope("CustomerProfileUpdated", "KH-X", obj{"contact": obj{"phone": "13800000001"}, "unknown": 1})))
	h.publish("ingest.orders", body(t, batch(orderPlaced("KH-Y", "Y1", "10.00"), orderPlaced("KH-X", "X1", "-1"))))
	h.publish("ingest.crm", body(t, registration("KH-Y", "13900000002")))
	h.publish("ingest.crm", body(t, envelope("CustomerProfileUpdated", "KH-Y", obj{"contact": obj{"phone": "13900000002"}, "unknown": 1})))
	h.publish("ingest.crm", []byte("13800000001 is not JSON"))
	h.awaitIdle()
	if len(h.holding(natsbus.StreamIngest, "KH-X")) != 3 || len(h.holding(natsbus.StreamRejected, "KH-X")) != 2 {
		t.Fatalf("before erasure: ingest %v, rejected %v", h.holding(natsbus.StreamIngest, "KH-X"), h.holding(natsbus.StreamRejected, "KH-X"))
	}

	// Erasure is recorded, published to SEGMENTS_EVENTS, and reaches the eraser.
	h.publish("ingest.crm", body(t, envelope("CustomerErased", "KH-X", obj{"reason": "客户申请注销"})))
	h.awaitIdle()
	pub := eventstore.NewPublisher(eventstore.PublisherConfig{Store: h.store, Sink: natsbus.NewEventSink(h.js.Conn(), h.js), Logger: testenv.Logger(t)})
	runInBackground(t, pub.Run)
	runInBackground(t, ingest.NewEraser(h.js, testenv.Logger(t)).Run)
	testenv.Eventually(t, within, "KH-X gone from SEGMENTS_INGEST and SEGMENTS_REJECTED", func() bool {
		return len(h.holding(natsbus.StreamIngest, "KH-X")) == 0 && len(h.holding(natsbus.StreamRejected, "KH-X")) == 0
	})
	for stream, want := range map[string]int{natsbus.StreamIngest: 3, natsbus.StreamRejected: 2} {
		if got := len(h.bodies(stream)); got != want {
			t.Errorf("%s holds %d messages, want %d (KH-Y's and the unattributable one): %v", stream, got, want, h.bodies(stream))
		}
	}
	// What SEGMENTS_EVENTS (kept forever) got carries no personal data at
	// all: neither plain, masked nor sealed.
	events := h.bodies(natsbus.StreamEvents)
	if len(events) != 3 {
		t.Errorf("SEGMENTS_EVENTS holds %d messages, want 3: %v", len(events), events)
	}
	for seq, b := range events {
		for _, pd := range []string{"王小明", "王某", "13800000001", "13900000002", "138****", "139****", "enc:v1:", `"phone"`} {
			if strings.Contains(b, pd) {
				t.Errorf("SEGMENTS_EVENTS message %d holds %q: %s", seq, pd, b)
			}
		}
	}
	if len(h.holding(natsbus.StreamIngest, "13900000002")) != 2 || len(h.holding(natsbus.StreamRejected, "13900000002")) != 1 {
		t.Error("KH-Y's messages were deleted too")
	}

	// After the scan: new personal data of the erased customer is refused
	// and leaves no copy of itself on the bus.
	seq := h.publish("ingest.crm", body(t, envelope("CustomerProfileUpdated", "KH-X", obj{"contact": obj{"phone": "13800000009"}})))
	testenv.Eventually(t, within, "the late message rejected", func() bool { _, ok := h.rejected()[seq]; return ok })
	h.awaitIdle()
	r := h.rejected()[seq]
	if r.Header.Get(natsbus.HeaderErrorCode) != "customer_erased" || len(r.Data) != 0 {
		t.Errorf("rejection of the late message: code %s, body %q", r.Header.Get(natsbus.HeaderErrorCode), r.Data)
	}
	if got := h.holding(natsbus.StreamIngest, "13800000009"); len(got) != 0 {
		t.Errorf("the late message is still in SEGMENTS_INGEST: %v", got)
	}
	// Likewise an invalid message about the erased customer (refused before
	// the store is asked); invalid messages about others keep their payload.
	late := h.publish("ingest.crm", body(t, envelope("CustomerProfileUpdated", "KH-X", obj{"contact": obj{"phone": "13800000010"}, "unknown": 1})))
	other := h.publish("ingest.crm", body(t, envelope("CustomerProfileUpdated", "KH-Y", obj{"contact": obj{"phone": "13900000011"}, "unknown": 1})))
	testenv.Eventually(t, within, "the invalid late messages rejected", func() bool {
		r := h.rejected()
		return r[late] != nil && r[other] != nil
	})
	h.awaitIdle()
	if r := h.rejected()[late]; len(r.Data) != 0 || r.Header.Get(natsbus.HeaderErrorField) == "" {
		t.Errorf("rejection of the invalid late message: field %q, body %q", r.Header.Get(natsbus.HeaderErrorField), r.Data)
	}
	if got := h.holding(natsbus.StreamIngest, "13800000010"); len(got) != 0 {
		t.Errorf("the invalid late message is still in SEGMENTS_INGEST: %v", got)
	}
	if r := h.rejected()[other]; !strings.Contains(string(r.Data), "13900000011") {
		t.Errorf("another customer's rejection lost its payload: %q", r.Data)
	}
}
