package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// TestAFrozenRelayLosesLeadershipAndNothingIsPublishedTwice freezes the
// leading relay (a separate process, SIGSTOP) with label changes waiting:
// another relay takes over within about a lease; thawed, the old one finds
// its lease gone, claims nothing and stops. SEGMENTS_CHANGES holds every
// change once, in order.
func TestAFrozenRelayLosesLeadershipAndNothingIsPublishedTwice(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 4, 7, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	feed := &changesFeed{e: e, sc: newScript(52, "KHL", 20, start)}

	old := testenv.StartChild(t, "relay", "DATABASE_URL="+e.db.URL, "NATS_URL="+n.URL())
	feed.project(5, 5)
	testenv.Eventually(t, time.Minute, "the child relay to publish the first changes", func() bool { return changesCount(js) == len(feed.expected) })

	old.Freeze()
	feed.project(5, 5)
	r := projections.NewRelay(e.db.Pool, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges), projections.StreamChanges, testenv.Logger(t))
	r.LeaseTTL = relayLeaseTTL
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	frozenAt := time.Now()
	testenv.Eventually(t, time.Minute, "another relay to publish the waiting changes", func() bool { return changesCount(js) == len(feed.expected) })
	if took := time.Since(frozenAt); took > 4*relayLeaseTTL {
		t.Errorf("the new relay published %v after the old one froze, want within about a lease (%v)", took, relayLeaseTTL)
	}

	old.Thaw()
	old.WaitFor("outbox relay lost leadership", 10*time.Second)
	feed.project(5, 5)
	testenv.Eventually(t, time.Minute, "every change published", func() bool { return changesCount(js) >= len(feed.expected) })
	testenv.Eventually(t, time.Minute, "the outbox emptied", func() bool { return e.changesQueued() == 0 })
	assertPublishedOnceInOrder(t, e, js, feed.expected)
}
