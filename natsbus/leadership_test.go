package natsbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestAFrozenPublisherLosesLeadershipAndNothingIsPublishedTwice freezes the
// leading publisher (a separate process, SIGSTOP) with events waiting:
// another instance takes over within about a lease and publishes them;
// thawed, the old leader finds its lease gone and stops. Every event is on
// SEGMENTS_EVENTS exactly once, in order.
func TestAFrozenPublisherLosesLeadershipAndNothingIsPublishedTwice(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx := context.Background()
	appendOrders := func(from int) {
		t.Helper()
		for i := from; i < from+10; i++ {
			if _, err := s.Append(ctx, orderEvents(fmt.Sprintf("KH-LEAD-%d", i), 0, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}

	old := testenv.StartChild(t, "publisher", "DATABASE_URL="+db.URL, "NATS_URL="+n.URL())
	old.WaitFor("publisher is the leader", 30*time.Second)
	appendOrders(0)
	testenv.Eventually(t, 30*time.Second, "the leader to publish 10 events", func() bool { return streamCount(js) == 10 })

	old.Freeze()
	appendOrders(10)
	p := eventstore.NewPublisher(eventstore.PublisherConfig{
		Store: s, Sink: natsbus.NewEventSink(nc, js), Logger: testenv.Logger(t), IdleWake: 20 * time.Millisecond, LeaseTTL: childLeaseTTL,
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	frozenAt := time.Now()
	testenv.Eventually(t, 30*time.Second, "another instance to publish the waiting events", func() bool { return streamCount(js) == 20 })
	if took := time.Since(frozenAt); took > 3*childLeaseTTL {
		t.Errorf("the new leader published %v after the old one froze, want within about a lease (%v)", took, childLeaseTTL)
	}

	old.Thaw()
	old.WaitFor("publisher lost leadership", 10*time.Second)
	appendOrders(20)
	testenv.Eventually(t, 30*time.Second, "30 events on the stream", func() bool { return streamCount(js) >= 30 })
	assertExactlyOnce(t, s, js)
}
