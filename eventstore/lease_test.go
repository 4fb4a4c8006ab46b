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

// A leader whose process dies is replaced at once, not when its lease
// expires: its session, and the session lock it holds, end with it. Here
// the leader's session is ended by the server (the lease, 30 s, is still
// valid), as the kernel ends it for a killed process.
func TestADeadLeaderIsReplacedBeforeItsLeaseExpires(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ttl = 30 * time.Second
	first, err := eventstore.AcquireLeadership(ctx, db.Pool, "dies", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release(ctx)
	acquired := make(chan *eventstore.Leadership, 1)
	go func() {
		l, err := eventstore.AcquireLeadership(ctx, db.Pool, "dies", ttl)
		if err != nil {
			t.Error(err)
		}
		acquired <- l
	}()
	select {
	case <-acquired:
		t.Fatal("a second instance took the lease of a live leader")
	case <-time.After(500 * time.Millisecond):
	}
	var ended bool
	died := time.Now()
	if err := db.Pool.QueryRow(ctx, `SELECT bool_and(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&ended); err != nil || !ended {
		t.Fatalf("end the leader's session: %v %v", ended, err)
	}
	second := <-acquired
	if second == nil {
		t.FailNow()
	}
	defer second.Release(ctx)
	took := time.Since(died)
	t.Logf("the second instance led %v after the first's session ended", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the second instance took %v to lead, want ≤ 1 s", took)
	}
	if !leaseHeld(t, db, second) || leaseHeld(t, db, first) {
		t.Error("after the takeover the new leader's fence does not hold, or the old one's still does")
	}
}
