package ingest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// countingAppender counts the appends one worker made, to tell which
// worker receives the messages.
type countingAppender struct {
	next  ingest.Appender
	calls atomic.Int64
}

func (a *countingAppender) Append(ctx context.Context, req domain.AppendRequest) ([]eventstore.Result, error) {
	a.calls.Add(1)
	return a.next.Append(ctx, req)
}

// Three instances' workers share one stream: each customer's order and its
// refund are recorded in publish order, with no retry of unknown_order to
// hide a refund that overtook its order, even while the worker receiving
// the messages stops twice and another takes over.
func TestCustomerOrderAcrossInstances(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const customers = 500
	apps := make([]*countingAppender, 3)
	workers := make([]*worker, 3)
	for i := range apps {
		apps[i] = &countingAppender{next: h.store}
		workers[i] = h.start(apps[i], func(c *ingest.Config) { c.OrderWait = -1 })
	}

	// Each refund directly follows its order: without the pin, the two
	// often go to different workers and the refund may be appended first.
	const lag = 1
	ctx := ctxT(t)
	publish := func(subject string, b []byte) {
		if _, err := h.js.PublishAsync(subject, b); err != nil {
			t.Fatal(err)
		}
	}
	customer := func(i int) string { return fmt.Sprintf("KH-I%03d", i) }
	stopBusiest := func() {
		busiest := -1
		for i, w := range workers {
			if w != nil && (busiest < 0 || apps[i].calls.Load() > apps[busiest].calls.Load()) {
				busiest = i
			}
		}
		if err := workers[busiest].stop(within); err != nil {
			t.Fatal(err)
		}
		t.Logf("stopped worker %d after %d appends", busiest, apps[busiest].calls.Load())
		workers[busiest] = nil
	}
	for i := range customers + lag {
		if i < customers {
			publish("ingest.probe."+customer(i), body(t, orderPlaced(customer(i), "o1", "100")))
		}
		if j := i - lag; j >= 0 {
			publish("ingest.probe."+customer(j), body(t, orderRefunded(customer(j), "o1", "40")))
		}
		if i == customers/3 || i == 2*customers/3 {
			waitPublished(ctx, t, h)
			h.awaitEventsAtLeast(i)
			stopBusiest()
		}
	}
	waitPublished(ctx, t, h)

	testenv.Eventually(t, within, "every message recorded or rejected", func() bool {
		return h.countEvents()+int(h.rejectedCount()) >= 2*customers
	})
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		codes := map[string]int{}
		for _, m := range h.rejected() {
			codes[m.Header.Get(natsbus.HeaderErrorCode)]++
		}
		t.Fatalf("%d messages rejected (%v), want none", n, codes)
	}
	for i := range customers {
		events := h.readStream(customer(i))
		if len(events) != 2 || events[0].Type != domain.TypeOrderPlaced || events[1].Type != domain.TypeOrderRefunded {
			t.Fatalf("%s: %d events, want the order then the refund", customer(i), len(events))
		}
	}
}

// A refund published before its order (two upstream systems) is retried
// until the order arrives, then recorded; nothing is rejected.
func TestRefundBeforeItsOrderIsRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store, func(c *ingest.Config) { c.OrderWait = time.Minute })

	h.publish("ingest.refunds", body(t, orderRefunded("KH-EARLY", "o1", "40")))
	h.awaitDelivered(2) // tried and given back at least once
	h.publish("ingest.orders", body(t, orderPlaced("KH-EARLY", "o1", "100")))
	h.awaitEvents(2)
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		t.Fatalf("%d messages rejected, want none", n)
	}
	events := h.readStream("KH-EARLY")
	if events[0].Type != domain.TypeOrderPlaced || events[1].Type != domain.TypeOrderRefunded {
		t.Errorf("KH-EARLY: %s then %s, want the order then the refund", events[0].Type, events[1].Type)
	}
}

func waitPublished(ctx context.Context, t *testing.T, h *harness) {
	t.Helper()
	select {
	case <-h.js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("asynchronous publishes not acknowledged")
	}
}

func (h *harness) awaitEventsAtLeast(n int) {
	h.t.Helper()
	testenv.Eventually(h.t, within, fmt.Sprintf("at least %d events recorded", n), func() bool { return h.countEvents() >= n })
}

// awaitDelivered waits until the consumer delivered n messages in all,
// redeliveries included.
func (h *harness) awaitDelivered(n uint64) {
	h.t.Helper()
	testenv.Eventually(h.t, within, fmt.Sprintf("%d deliveries", n), func() bool {
		cons, err := h.js.Consumer(ctxT(h.t), natsbus.StreamIngest, durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctxT(h.t))
		return err == nil && info.Delivered.Consumer >= n
	})
}

// A consumer created by an earlier version (no priority policy) is
// brought to the pinned policy at start, keeping what it has delivered.
func TestAnUnpinnedConsumerIsUpgraded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxT(t)
	st, err := h.js.Stream(ctx, natsbus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxDeliver: -1, MaxAckPending: 4096, FilterSubject: natsbus.SubjectIngest,
	}); err != nil {
		t.Fatal(err)
	}
	h.publish("ingest.orders", body(t, orderPlaced("KH-UP", "o1", "100")))
	h.start(h.store)
	h.awaitEvents(1)
	h.awaitIdle()
	cons, err := st.Consumer(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	if p := cons.CachedInfo().Config.PriorityPolicy; p != jetstream.PriorityPolicyPinned {
		t.Errorf("priority policy %v after the upgrade, want pinned", p)
	}
}
