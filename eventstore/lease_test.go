package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

func leaseHeld(t *testing.T, db *testenv.DB, l *eventstore.Leadership) bool {
	t.Helper()
	name, holder, epoch := l.Fence()
	var held bool
	if err := db.Pool.QueryRow(context.Background(), "SELECT "+fmt.Sprintf(eventstore.LeaseHeld, 1, 2, 3), name, holder, epoch).Scan(&held); err != nil {
		t.Fatal(err)
	}
	return held
}

func TestOneLeaderAtATimeAndAStaleLeaderIsFencedOut(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ttl = time.Second
	first, err := eventstore.AcquireLeadership(ctx, db.Pool, "test", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Held() || !leaseHeld(t, db, first) {
		t.Fatal("a new leader does not hold its lease")
	}

	// A second instance waits while the first renews.
	waitCtx, stopWaiting := context.WithTimeout(ctx, 3*ttl)
	_, err = eventstore.AcquireLeadership(waitCtx, db.Pool, "test", ttl)
	stopWaiting()
	if err == nil {
		t.Fatal("a second instance took the lease of a leader that renews it")
	}

	// The first stops renewing (as a frozen process does): its lease runs
	// out, the second takes it, and the first's fence no longer holds.
	if _, err := db.Pool.Exec(ctx, "UPDATE leader_leases SET expires_at = clock_timestamp() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	second, err := eventstore.AcquireLeadership(ctx, db.Pool, "test", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release(ctx)
	if leaseHeld(t, db, first) || !leaseHeld(t, db, second) {
		t.Error("after a takeover the stale leader's fence still holds, or the new one's does not")
	}
	select {
	case <-first.Lost():
	case <-time.After(3 * ttl):
		t.Fatal("the stale leader was not told it lost leadership")
	}
	if first.Held() {
		t.Error("the stale leader still believes it holds the lease")
	}
	first.Release(ctx) // must not release the new leader's lease
	if !leaseHeld(t, db, second) {
		t.Error("the stale leader's Release ended the new leader's lease")
	}
}
