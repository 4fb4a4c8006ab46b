package projections_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// applyOne projects one customer and returns the ids of the label changes
// it recorded, in the order they were queued.
func (e *env) applyOne(c domain.CustomerCode) []string {
	e.t.Helper()
	ctx := ctxT(e.t)
	var seq int64
	if err := e.db.Pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM label_changes WHERE stream_id = $1", c.StreamID()).Scan(&seq); err != nil {
		e.t.Fatal(err)
	}
	e.apply(c)
	rows, err := e.db.Pool.Query(ctx, "SELECT id::text FROM label_changes WHERE stream_id = $1 AND seq > $2 ORDER BY seq", c.StreamID(), seq)
	if err != nil {
		e.t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// changesFeed records a script's events step by step, projecting each
// customer on its own, and remembers the order in which label changes were
// queued.
type changesFeed struct {
	e        *env
	sc       *script
	expected []string
}

func (f *changesFeed) project(steps, perStep int) {
	f.e.t.Helper()
	for range steps {
		s := f.sc.next(perStep)
		f.e.record(s.at, s.events...)
		for _, c := range s.customers() {
			f.expected = append(f.expected, f.e.applyOne(c)...)
		}
	}
}

// observedSink counts failed publications.
type observedSink struct {
	eventstore.Sink
	mu       sync.Mutex
	failures int
}

func (o *observedSink) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	err := o.Sink.PublishAtomic(ctx, msgs)
	if err != nil {
		o.mu.Lock()
		o.failures++
		o.mu.Unlock()
	}
	return err
}

// crashAfterPublish publishes, then cancels the relay's context before it
// can delete what it published: a kill between publish and delete.
type crashAfterPublish struct {
	eventstore.Sink
	after  int
	calls  int
	cancel func()
}

func (c *crashAfterPublish) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	err := c.Sink.PublishAtomic(ctx, msgs)
	c.calls++
	if err == nil && c.calls == c.after {
		c.cancel()
		return errors.New("killed after publishing")
	}
	return err
}

// runRelay runs a relay until the returned stop is called.
func runRelay(t *testing.T, e *env, sink eventstore.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := projections.NewRelay(e.db.Pool, sink, projections.StreamChanges, testenv.Logger(t))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func changesCount(js jetstream.JetStream) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, natsbus.StreamChanges)
	if err != nil {
		return -1
	}
	info, err := st.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// assertPublishedOnceInOrder checks that SEGMENTS_CHANGES holds exactly the
// expected changes, in order, each with Nats-Msg-Id = change id, its
// subject and body, and consecutive publication positions.
func assertPublishedOnceInOrder(t *testing.T, e *env, js jetstream.JetStream, expected []string) {
	t.Helper()
	ctx := ctxT(t)
	st, err := js.Stream(ctx, natsbus.StreamChanges)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(info.State.Msgs) != len(expected) {
		t.Fatalf("SEGMENTS_CHANGES holds %d messages, %d label changes were recorded", info.State.Msgs, len(expected))
	}
	var n int
	if err := e.db.Pool.QueryRow(ctx, "SELECT count(*) FROM label_changes").Scan(&n); err != nil || n != len(expected) {
		t.Fatalf("label_changes holds %d rows (%v), %d expected", n, err, len(expected))
	}
	for i, want := range expected {
		m, err := st.GetMsg(ctx, info.State.FirstSeq+uint64(i))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != want {
			t.Fatalf("message %d: Nats-Msg-Id %s, want change %s", i, id, want)
		}
		if pos := m.Header.Get(natsbus.HeaderPosition); pos != strconv.Itoa(i+1) {
			t.Fatalf("message %d: publication position %s, want %d", i, pos, i+1)
		}
		var body struct {
			ID    string  `json:"id"`
			Label string  `json:"label"`
			From  *string `json:"from"`
			To    string  `json:"to"`
			At    string  `json:"at"`
			Cause struct {
				Kind string `json:"kind"`
			} `json:"cause"`
			RuleVersion int `json:"rule_version"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if body.ID != want || m.Subject != "segments.changed."+body.Label || body.To == "" || body.At == "" || body.Cause.Kind == "" || body.RuleVersion != 1 {
			t.Fatalf("message %d on %s: %s", i, m.Subject, m.Data)
		}
	}
}

func TestRelayPublishesEveryChangeOnceInOrder(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 4, 7, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	feed := &changesFeed{e: e, sc: newScript(51, "KHR", 30, start)}

	feed.project(10, 5)
	sink := &observedSink{Sink: natsbus.NewStreamSink(nc, js, natsbus.StreamChanges)}
	stop := runRelay(t, e, sink)
	testenv.Eventually(t, time.Minute, "the first changes published", func() bool { return changesCount(js) == len(feed.expected) })

	// NATS goes away while label changes keep coming.
	n.Stop()
	feed.project(10, 5)
	testenv.Eventually(t, time.Minute, "the relay to claim changes during the outage", func() bool {
		var claimed int
		_ = e.db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM outbox WHERE stream = $1 AND pub_pos IS NOT NULL", projections.StreamChanges).Scan(&claimed)
		return claimed > 0
	})
	n.Restart()
	testenv.Eventually(t, 2*time.Minute, "everything published after the outage", func() bool { return changesCount(js) == len(feed.expected) })
	stop()

	// A relay dies between publishing a batch and deleting it.
	feed.project(5, 5)
	ctx, cancel := context.WithCancel(ctxT(t))
	crash := &crashAfterPublish{Sink: natsbus.NewStreamSink(nc, js, natsbus.StreamChanges), after: 1, cancel: cancel}
	if err := projections.NewRelay(e.db.Pool, crash, projections.StreamChanges, testenv.Logger(t)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := changesCount(js); got != len(feed.expected) {
		t.Fatalf("the killed relay published %d of %d changes", got, len(feed.expected))
	}
	if e.changesQueued() == 0 {
		t.Fatal("the killed relay deleted what it published; the test proves nothing")
	}

	// Two relays start (only one leads), more changes arrive.
	feed.project(5, 5)
	runRelay(t, e, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges))
	runRelay(t, e, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges))
	testenv.Eventually(t, time.Minute, "every change published", func() bool { return changesCount(js) >= len(feed.expected) })
	testenv.Eventually(t, time.Minute, "the outbox emptied", func() bool { return e.changesQueued() == 0 })
	assertPublishedOnceInOrder(t, e, js, feed.expected)
	if len(feed.expected) < 100 {
		t.Errorf("only %d changes: the test proves little", len(feed.expected))
	}
}

// flakySink fails chosen calls: PublishAtomic calls in failPublish fail
// without publishing; LastPublishedPosition calls in failTail read the
// stream (as a request that times out after being served would) and then
// fail.
type flakySink struct {
	eventstore.Sink
	mu                    sync.Mutex
	publishes, tails      int
	failPublish, failTail map[int]bool
}

func (f *flakySink) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	f.mu.Lock()
	f.publishes++
	fail := f.failPublish[f.publishes]
	f.mu.Unlock()
	if fail {
		return errors.New("injected: publish failed")
	}
	return f.Sink.PublishAtomic(ctx, msgs)
}

func (f *flakySink) LastPublishedPosition(ctx context.Context) (int64, bool, error) {
	pos, known, err := f.Sink.LastPublishedPosition(ctx)
	f.mu.Lock()
	f.tails++
	fail := f.failTail[f.tails]
	f.mu.Unlock()
	if fail {
		return 0, false, errors.New("injected: reading the stream's tail failed")
	}
	return pos, known, err
}

// TestRelayResumesOnlyFromTheStreamsTail: after a failed publication the
// relay must read the stream's tail before it publishes again. When reading
// the tail fails too, it must neither forget its positions nor publish
// blind: a later resume would take the new batch for published and delete
// it unpublished.
func TestRelayResumesOnlyFromTheStreamsTail(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 4, 7, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	feed := &changesFeed{e: e, sc: newScript(52, "KHF", 8, start)}
	feed.project(4, 6)
	first := len(feed.expected)

	sink := &flakySink{Sink: natsbus.NewStreamSink(nc, js, natsbus.StreamChanges),
		failPublish: map[int]bool{1: true, 3: true}, failTail: map[int]bool{2: true}}
	runRelay(t, e, sink)
	testenv.Eventually(t, time.Minute, "the first batch published", func() bool { return changesCount(js) == first })

	// A smaller second batch (a new customer's first labels); its first
	// publication fails as well.
	feed.sc = newScript(53, "KHG", 1, feed.sc.at)
	feed.project(1, 1)
	if len(feed.expected) == first || len(feed.expected)-first >= first {
		t.Fatalf("second batch of %d changes after %d: want a smaller, non-empty one", len(feed.expected)-first, first)
	}
	testenv.Eventually(t, 30*time.Second, "the second batch published", func() bool { return changesCount(js) == len(feed.expected) })
	testenv.Eventually(t, time.Minute, "the outbox emptied", func() bool { return e.changesQueued() == 0 })
	assertPublishedOnceInOrder(t, e, js, feed.expected)
}

// A busy relay vacuums the outbox itself: every row of the queue table dies
// twice, and autovacuum may be off (it is on the reference machine) or a
// minute away.
func TestRelayVacuumsTheOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Date(2024, 3, 1, 9, 0, 0, 0, cst))
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx := ctxT(t)
	rows := projections.RelayVacuumRows + 500
	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO outbox (stream, subject, msg_id, payload)
		SELECT $1, 'segments.changed.activity', 'vacuum-test-' || i, '{}'::bytea FROM generate_series(1, $2) i`, projections.StreamChanges, rows); err != nil {
		t.Fatal(err)
	}
	vacuums := func() int64 {
		var c int64
		// Manual vacuums only (autovacuum_count is the server's own). Each
		// query is its own transaction, so it sees fresh statistics.
		if err := e.db.Pool.QueryRow(ctx, "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := vacuums()
	runRelay(t, e, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges))
	testenv.Eventually(t, time.Minute, "every row published", func() bool { return changesCount(js) == rows })
	testenv.Eventually(t, time.Minute, "the outbox vacuumed", func() bool { return vacuums() > before })
}
