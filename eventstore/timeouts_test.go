package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

// TestAFrozenProcessHoldingTheAppendLockStallsAppendsOnlyBriefly freezes a
// separate process (SIGSTOP) in the middle of an append, holding the
// log_head row lock that every append needs: its idle transaction is ended
// by the server and the other appends go on; no append waits unboundedly.
func TestAFrozenProcessHoldingTheAppendLockStallsAppendsOnlyBriefly(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	holder := testenv.StartChild(t, "hold-log-head", "DATABASE_URL="+db.URL)
	holder.WaitFor("locked", 30*time.Second)
	holder.Freeze()

	start := time.Now()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		began := time.Now()
		_, err := s.Append(ctx, req(order("KH-FROZEN", fmt.Sprintf("SO-%d", attempt), "10.00")))
		cancel()
		if took := time.Since(began); took > 11*time.Second {
			t.Fatalf("an append waited %v for the lock of a frozen process", took)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("append behind a frozen lock holder: %v, want success or ErrUnavailable", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("appends still fail %v after the lock holder froze: %v", time.Since(start), err)
		}
	}
	idle, _ := time.ParseDuration(eventstore.AppendIdleTimeout)
	if took := time.Since(start); took > idle+3*time.Second {
		t.Errorf("appends resumed %v after the holder froze, want ≤ %v", took, idle+3*time.Second)
	}
}
