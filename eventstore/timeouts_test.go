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

// TestAFrozenWriterDoesNotBlockOtherWriters freezes a separate process
// (SIGSTOP) in the middle of an append: appends of other customers go on at
// once (there is no global append lock); its own customer's appends and the
// settled position (publication) wait only until the server ends the
// frozen transaction (AppendIdleTimeout).
func TestAFrozenWriterDoesNotBlockOtherWriters(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	holder := testenv.StartChild(t, "hold-append", "DATABASE_URL="+db.URL)
	holder.WaitFor("locked", 30*time.Second)
	holder.Freeze()
	start := time.Now()
	idle, _ := time.ParseDuration(eventstore.AppendIdleTimeout)

	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), idle)
		_, err := s.Append(ctx, req(order(fmt.Sprintf("KH-OTHER-%d", i), "SO-1", "10.00")))
		cancel()
		if err != nil {
			t.Fatalf("append of another customer beside a frozen writer: %v", err)
		}
	}
	if took := time.Since(start); took >= idle {
		t.Errorf("20 appends of other customers took %v beside a frozen writer, want well under %v", took, idle)
	}

	ctx, cancel := context.WithTimeout(context.Background(), idle+10*time.Second)
	defer cancel()
	if _, err := s.AwaitSettled(ctx); err != nil {
		t.Fatalf("settled position behind a frozen writer: %v", err)
	}
	if took := time.Since(start); took > idle+3*time.Second {
		t.Errorf("the settled position passed the frozen writer %v after it froze, want ≤ %v", took, idle+3*time.Second)
	}

	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		began := time.Now()
		_, err := s.Append(ctx, req(order("KH-HOLDER", fmt.Sprintf("SO-%d", attempt+1), "10.00")))
		cancel()
		if took := time.Since(began); took > 11*time.Second {
			t.Fatalf("an append waited %v for the stream lock of a frozen process", took)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("append behind a frozen stream lock holder: %v, want success or ErrUnavailable", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("appends still fail %v after the lock holder froze: %v", time.Since(start), err)
		}
	}
	if took := time.Since(start); took > idle+3*time.Second {
		t.Errorf("the frozen writer's customer took appends again %v after it froze, want ≤ %v", took, idle+3*time.Second)
	}
}
