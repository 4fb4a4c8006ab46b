package projections

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/internal/testenv"
)

// fakeWAL is a walFlushSource the test steers: each Flushed call announces
// itself on calls and then reads the state the test set before receiving.
type fakeWAL struct {
	calls chan struct{}
	mu    sync.Mutex
	lsn   int64
	epoch uint64
	down  bool // the next Flushed fails and the epoch moves on
}

func (f *fakeWAL) set(lsn int64, epoch uint64, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lsn, f.epoch, f.down = lsn, epoch, down
}

func (f *fakeWAL) Epoch() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}

func (f *fakeWAL) Flushed(ctx context.Context) (int64, uint64, error) {
	select {
	case f.calls <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, 0, errors.New("connection lost")
	}
	return f.lsn, f.epoch, nil
}

// A batch's messages are acknowledged only once the WAL is flushed past its
// commit within the epoch the transaction began in; acknowledgements of an
// epoch that ended are rejected (the messages come again), never given.
func TestAcksWaitForTheWALFlushWithinTheirEpoch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wal := &fakeWAL{calls: make(chan struct{}), epoch: 2}
	type outcome struct {
		settled, durable bool
	}
	var mu sync.Mutex
	outcomes := map[string]outcome{}
	ack := func(name string, lsn int64, epoch uint64) durableAck {
		return durableAck{lsn: lsn, epoch: epoch, done: func(durable bool) {
			mu.Lock()
			defer mu.Unlock()
			if outcomes[name].settled {
				t.Errorf("%s settled twice", name)
			}
			outcomes[name] = outcome{settled: true, durable: durable}
		}}
	}
	state := func(names ...string) []outcome {
		mu.Lock()
		defer mu.Unlock()
		var out []outcome
		for _, n := range names {
			out = append(out, outcomes[n])
		}
		return out
	}
	in := make(chan durableAck, 8)
	in <- ack("a", 100, 2)
	in <- ack("b", 200, 2)
	in <- ack("c", 300, 2)
	done := make(chan struct{})
	go func() { defer close(done); ackWhenDurable(ctx, in, wal, time.Millisecond) }()

	// Each call to Flushed begins after the previous call's settlements, so
	// after two calls the outcomes reflect what the first one returned.
	step := func(lsn int64, epoch uint64, down bool) {
		wal.set(lsn, epoch, down)
		<-wal.calls
		<-wal.calls
	}
	none, acked, rejected := outcome{}, outcome{true, true}, outcome{true, false}
	step(50, 2, false)
	if got := state("a", "b", "c"); got[0] != none || got[1] != none || got[2] != none {
		t.Fatalf("WAL flushed to 50: %v, want nothing settled", got)
	}
	step(200, 2, false)
	if got := state("a", "b", "c"); got[0] != acked || got[1] != acked || got[2] != none {
		t.Fatalf("WAL flushed to 200: %v, want a and b acknowledged", got)
	}
	// PostgreSQL restarted: the witness's connection is gone and the epoch
	// moves on. c's commit may be lost even though the new WAL will pass
	// 300 soon: it is rejected, not acknowledged.
	in <- ack("d", 400, 3) // began while the epoch was unknown
	wal.set(0, 3, true)
	<-wal.calls
	// That call's acks were fixed before it began: what is sent now waits
	// for the next one. g stays beyond the flush and keeps the acknowledger
	// polling (it reads the WAL only while acknowledgements wait).
	in <- ack("e", 500, 3) // began while down, committed in the new epoch
	in <- ack("f", 600, 4) // began in the new epoch
	in <- ack("g", 2000, 4)
	wal.set(1000, 4, false)
	<-wal.calls
	if got := state("c", "d"); got[0] != rejected || got[1] != rejected {
		t.Fatalf("connection lost: %v, want c and d rejected", got)
	}
	for range 1000 { // e and f may reach the acknowledger one poll apart
		if got := state("e", "f"); got[0].settled && got[1].settled {
			break
		}
		<-wal.calls
	}
	<-wal.calls
	if got := state("e", "f", "g"); got[0] != rejected || got[1] != acked || got[2] != none {
		t.Fatalf("new epoch, WAL flushed to 1000: %v, want e rejected, f acknowledged, g waiting", got)
	}
	cancel()
	<-done
}

// The witness's epoch ends when PostgreSQL ends its session (as a restart
// or a crash recovery would), and a new even epoch begins with a new one.
func TestWALWitnessEpochEndsWithItsSession(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ctx := context.Background()
	w := newWALWitness(db.Pool)
	if err := w.connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.close(ctx)
	lsn, epoch, err := w.Flushed(ctx)
	if err != nil || lsn <= 0 || epoch%2 != 0 {
		t.Fatalf("Flushed = %d, epoch %d, %v; want a position in an even epoch", lsn, epoch, err)
	}
	var pid int32
	if err := w.conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Flushed(ctx); err == nil {
		t.Fatal("Flushed on a terminated session succeeded")
	}
	if e := w.Epoch(); e != epoch+1 {
		t.Fatalf("epoch after the session ended: %d, want %d (odd)", e, epoch+1)
	}
	later, e, err := w.Flushed(ctx)
	if err != nil || e != epoch+2 || later < lsn {
		t.Fatalf("Flushed after reconnecting = %d, epoch %d, %v; want >= %d in epoch %d", later, e, err, lsn, epoch+2)
	}
}

func TestDurableVersionsCoverUpToTheHighestVersionAndForgetTheOldestGeneration(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	d := newDurableVersions(2)
	d.raise([]streamVersion{{a, 3}, {b, 1}})
	d.raise([]streamVersion{{a, 2}}) // lower: ignored
	cases := []struct {
		stream  uuid.UUID
		version int64
		want    bool
	}{
		{a, 1, true}, {a, 3, true}, {a, 4, false}, {b, 1, true}, {b, 2, false}, {c, 1, false},
	}
	for _, tc := range cases {
		if got := d.covers(tc.stream, tc.version); got != tc.want {
			t.Errorf("covers(%v, %d) = %v, want %v", tc.stream == a, tc.version, got, tc.want)
		}
	}
	// The current generation is full: c starts a new one, a and b stay
	// known in the previous one until the next turn.
	d.raise([]streamVersion{{c, 5}})
	if !d.covers(a, 3) || !d.covers(c, 5) {
		t.Fatal("one turn forgot what it should keep")
	}
	d.raise([]streamVersion{{a, 4}}) // a in the current generation too
	d.raise([]streamVersion{{uuid.New(), 1}})
	if d.covers(b, 1) {
		t.Error("b is still known two generations later")
	}
	if !d.covers(a, 4) || !d.covers(c, 5) {
		t.Error("a or c forgotten although raised in the last two generations")
	}
	var none *durableVersions
	if none.covers(a, 1) {
		t.Error("a nil durableVersions covers something")
	}
}
