package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

// tail reads the log from after up to settled positions until it holds want
// events or nothing more is settled.
func tail(ctx context.Context, t *testing.T, s *eventstore.Store, after int64) []eventstore.RecordedEvent {
	t.Helper()
	upTo, err := s.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []eventstore.RecordedEvent
	for {
		batch, err := s.ReadUpTo(ctx, after, upTo, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return got
		}
		got = append(got, batch...)
		after = batch[len(batch)-1].Position
	}
}

// TestAnOpenAppendDelaysOnlyItsCustomerAndTailingPastIt holds an append
// transaction open: appends of other customers commit meanwhile (no global
// lock), an append of the same customer waits for it, and a reader tailing
// by settled positions passes none of the held positions: it sees the held
// events, committed late, before the ones committed after them.
func TestAnOpenAppendDelaysOnlyItsCustomerAndTailingPastIt(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, req(order("KH0", "o0", "1"))); err != nil {
		t.Fatal(err)
	}
	checkpoint, err := s.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := s.AppendTx(ctx, tx, req(order("HELD", "h1", "1"), order("HELD", "h2", "1")))
	if err != nil {
		t.Fatal(err)
	}
	const later = 16
	var wg sync.WaitGroup
	for i := range later {
		wg.Go(func() {
			if _, err := s.Append(ctx, req(order(fmt.Sprintf("LATE%d", i), "o", "1"))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait() // while the held transaction is still open
	same := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, req(order("HELD", "h3", "1")))
		same <- err
	}()
	testenv.Eventually(t, 30*time.Second, "the held customer's next append to wait for its row lock", func() bool {
		var waiting int
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return waiting >= 1
	})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.AwaitSettled(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitSettled with an append in flight: %v, want it to wait", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-same; err != nil {
		t.Fatal(err)
	}
	got := tail(ctx, t, s, checkpoint)
	if len(got) != 2+later+1 {
		t.Fatalf("tailing read %d events, want %d", len(got), 2+later+1)
	}
	if got[0].Position != held[0].Position || got[1].Position != held[1].Position {
		t.Fatalf("held events (positions %d, %d) are not first: %d, %d", held[0].Position, held[1].Position, got[0].Position, got[1].Position)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Fatalf("positions out of order at %d", i)
		}
	}
	if last := got[len(got)-1]; last.Customer != "HELD" || last.Version != 3 {
		t.Fatalf("the append that waited for the held one is %s v%d at the end, want HELD v3", last.Customer, last.Version)
	}
}

// TestAnAbortedAppendLeavesAGapThatTailingPasses: a rolled-back append's
// positions are never used; once it has ended, readers go past them.
func TestAnAbortedAppendLeavesAGapThatTailingPasses(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	aborted, err := s.AppendTx(ctx, tx, req(order("GONE", "g1", "1")))
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Append(ctx, req(order("KEPT", "k1", "1")))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := tail(ctx, t, s, 0)
	if len(got) != 1 || got[0].EventID != after[0].EventID || got[0].Position <= aborted[0].Position {
		t.Fatalf("tailing read %+v, want only KEPT past the gap at %d", got, aborted[0].Position)
	}
}

// TestConcurrentAppendersWithGapsArePublishedOnceInOrder runs three stores
// (three instances' worth of writers) against one database, some of whose
// appends roll back (gaps) or commit late, while a publisher tails the log:
// every committed event is published once, in increasing position order,
// and nothing rolled back is.
func TestConcurrentAppendersWithGapsArePublishedOnceInOrder(t *testing.T) {
	t.Parallel()
	_, db := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	stores := make([]*eventstore.Store, 3)
	for i := range stores {
		stores[i] = instance(t, db)
	}
	// The customers exist first: two transactions of callers (AppendTx)
	// opening the same new stream conflict, and the loser is the caller's
	// to retry (the store's own groups retry; this test is about gaps).
	for c := range 10 {
		if _, err := stores[0].Append(ctx, req(order(fmt.Sprintf("C%d", c), "first", "1"))); err != nil {
			t.Fatal(err)
		}
	}
	sink := &memorySink{}
	pctx, stop := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- eventstore.NewPublisher(eventstore.PublisherConfig{Store: stores[0], Sink: sink, IdleWake: 50 * time.Millisecond}).Run(pctx)
	}()
	var mu sync.Mutex
	committed := map[uuid.UUID]bool{}
	rolledBack := map[uuid.UUID]bool{}
	var wg sync.WaitGroup
	for w := range 12 {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range 20 {
				ids, ok, err := appendMaybeLate(ctx, s, db, fmt.Sprintf("C%d", (w*7+i)%10), w, i)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, id := range ids {
					if ok {
						committed[id] = true
					} else {
						rolledBack[id] = true
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	testenv.Eventually(t, 30*time.Second, "every committed event to be published", func() bool {
		return sink.count() >= 10+len(committed)
	})
	stop()
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]bool{}
	var last int64
	for _, m := range sink.published()[10:] {
		id := uuid.MustParse(m.ID)
		switch {
		case m.Position <= last:
			t.Fatalf("position %d published after %d", m.Position, last)
		case seen[id]:
			t.Fatalf("event %s published twice", id)
		case rolledBack[id] || !committed[id]:
			t.Fatalf("event %s published but not committed", id)
		}
		seen[id], last = true, m.Position
	}
	if len(seen) != len(committed) || len(rolledBack) == 0 {
		t.Fatalf("published %d of %d committed events (%d rolled back)", len(seen), len(committed), len(rolledBack))
	}
}

// appendMaybeLate appends one event of customer: through the group writer,
// or in a transaction that commits after a pause (late) or rolls back (a
// gap), chosen by the writer and round. ok is false when it rolled back.
func appendMaybeLate(ctx context.Context, s *eventstore.Store, db *testenv.DB, customer string, w, i int) ([]uuid.UUID, bool, error) {
	e := order(customer, fmt.Sprintf("w%d-%d", w, i), "1")
	if (w+i)%3 == 0 {
		res, err := s.Append(ctx, req(e))
		if err != nil {
			return nil, false, err
		}
		return []uuid.UUID{res[0].EventID}, true, nil
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := s.AppendTx(ctx, tx, req(e))
	if err != nil {
		return nil, false, err
	}
	time.Sleep(time.Duration(w%4) * 3 * time.Millisecond) // the slow one commits late
	if (w+i)%3 == 1 {
		return []uuid.UUID{res[0].EventID}, false, tx.Rollback(ctx)
	}
	return []uuid.UUID{res[0].EventID}, true, tx.Commit(ctx)
}

// instance is another process's store on db: a pool and writer of its own.
func instance(t *testing.T, db *testenv.DB) *eventstore.Store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	eventstore.TuneSession(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: testenv.MasterKey(t), Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); pool.Close() })
	return s
}

// memorySink is a Sink that keeps what it is given, in order.
type memorySink struct {
	mu   sync.Mutex
	msgs []eventstore.Message
}

func (m *memorySink) LastPublishedPosition(context.Context) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.msgs) == 0 {
		return 0, true, nil
	}
	return m.msgs[len(m.msgs)-1].Position, true, nil
}

func (m *memorySink) PublishAtomic(_ context.Context, msgs []eventstore.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msgs...)
	return nil
}

func (m *memorySink) MaxBatch() int { return 5 }

func (m *memorySink) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

func (m *memorySink) published() []eventstore.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]eventstore.Message(nil), m.msgs...)
}
