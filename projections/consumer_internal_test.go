package projections

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A batch's messages are acknowledged only once the WAL is flushed past its
// commit, and then all of them are.
func TestAcksWaitForTheWALFlush(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var flushedTo atomic.Int64
	calls := make(chan struct{})
	flushed := func(ctx context.Context) (int64, error) {
		select {
		case calls <- struct{}{}:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if flushedTo.Load() < 0 {
			return 0, errors.New("no connection")
		}
		return flushedTo.Load(), nil
	}
	var acked [3]atomic.Bool
	in := make(chan durableAck, 3)
	for i, lsn := range []int64{100, 200, 300} {
		in <- durableAck{lsn: lsn, ack: func() { acked[i].Store(true) }}
	}
	done := make(chan struct{})
	go func() { defer close(done); ackWhenDurable(ctx, in, flushed, time.Millisecond) }()

	// Each call to flushed begins after the previous call's acks ran, so
	// after two calls the state reflects what the first one returned.
	step := func(to int64) {
		flushedTo.Store(to)
		<-calls
		<-calls
	}
	state := func() [3]bool { return [3]bool{acked[0].Load(), acked[1].Load(), acked[2].Load()} }

	step(50)
	if s := state(); s != [3]bool{} {
		t.Fatalf("WAL flushed to 50: acked %v, want none", s)
	}
	step(-1) // the flush position cannot be read: nothing is acknowledged
	if s := state(); s != [3]bool{} {
		t.Fatalf("flush position unknown: acked %v, want none", s)
	}
	step(200)
	if s := state(); s != [3]bool{true, true, false} {
		t.Fatalf("WAL flushed to 200: acked %v, want the first two", s)
	}
	// Once nothing waits the acker waits for work, not for the WAL: give it
	// one more ack (beyond the flush) so that it calls flushed again.
	flushedTo.Store(1000)
	<-calls
	in <- durableAck{lsn: 2000, ack: func() { t.Error("acked at LSN 2000 with the WAL flushed to 1000") }}
	<-calls
	if s := state(); s != [3]bool{true, true, true} {
		t.Fatalf("WAL flushed to 1000: acked %v, want all", s)
	}
	cancel()
	<-done
}
