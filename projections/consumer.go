package projections

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/backoff"
)

// Message header and stream names shared with natsbus (kept as strings here
// so the projector does not depend on the bus package).
const (
	streamEvents   = "SEGMENTS_EVENTS"
	headerCustomer = "Segments-Customer"
	headerVersion  = "Segments-Version"
)

// MaxBatch bounds the messages folded into one projector transaction.
const MaxBatch = 1000

// Consume runs the projector on SEGMENTS_EVENTS with a durable consumer
// until ctx is done. Each message only says "customer X has new events":
// the projector reads X's stream from PostgreSQL after the version it has
// applied, so redelivered, duplicated or reordered messages change nothing.
//
// Nothing is lost from the read models, because a message is acknowledged
// only once the transaction that applied it is on disk. Those transactions
// commit asynchronously (synchronous_commit off, for them only): the labels
// are queryable at commit, without waiting for the WAL flush, which on a busy
// disk is the slowest step of the commit. The acknowledgements wait instead
// (ackWhenDurable) until the WAL is flushed past the commit, read on a
// connection held since before the transaction began (walWitness): a restart
// or crash recovery of PostgreSQL ends that session, and the messages of
// every transaction not yet known to be on disk are then rejected, come
// again and are applied again, with the same results and the same ids. What
// a lost transaction queued in the outbox cannot have been published: a
// relay publishes rows only after its claim commits synchronously, and the
// WAL is flushed in order.
//
// A message whose event this process has already stored is acknowledged
// without a transaction: its Segments-Version is at or below the version a
// transaction of this process wrote for the customer and saw durable (a
// synchronous Apply, such as FollowCommits', or one of Consume's own once
// the WAL is flushed past it). Nothing lowers a stored version, so the event
// stays applied; without this, the message's transaction would find nothing
// new and write nothing.
func (p *Projector) Consume(ctx context.Context, js jetstream.JetStream, durable string) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, streamEvents, jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("projector: consumer: %w", err)
	}
	// Several transactions in flight: while one waits for PostgreSQL the
	// other folds and evaluates, which is where a single one leaves a core
	// idle. Each worker has its own share of the customers (by a hash of
	// the code), so the workers' batches never meet: a customer in two
	// batches at once would make the second transaction wait, at its
	// advisory lock, for the first one's commit. (Customers are still
	// locked per transaction, in key order, against other processes.)
	shards := make([]chan jetstream.Msg, p.consumeWorkers)
	for i := range shards {
		shards[i] = make(chan jetstream.Msg, 2*MaxBatch)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case shards[customerShard(m.Headers().Get(headerCustomer), len(shards))] <- m:
			p.busWaiting.Add(1)
		case <-ctx.Done(): // the workers are gone; unacknowledged, it comes again
		}
	}, jetstream.PullMaxMessages(MaxBatch))
	if err != nil {
		return fmt.Errorf("projector: subscribe: %w", err)
	}
	defer cc.Stop()
	// The witness's connection must be up before the first transaction
	// starts: a transaction is judged by the epoch it began in.
	witness := newWALWitness(p.pool)
	if err := witness.connect(ctx); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	acks := make(chan durableAck, 2*p.consumeWorkers)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		defer witness.close(context.WithoutCancel(ctx))
		ackWhenDurable(ctx, acks, witness, consumeAckPoll)
	}()
	var workers sync.WaitGroup
	for _, msgs := range shards {
		workers.Go(func() { p.consumeBatches(ctx, msgs, acks, witness) })
	}
	workers.Wait()
	<-ackerDone
	return nil
}

// consumeAckPoll is how often the WAL flush position is read while
// acknowledgements wait for it. Under load the event store's synchronous
// commits flush the WAL continuously; idle, PostgreSQL's WAL writer flushes
// asynchronous commits within a few wal_writer_delay (200 ms by default).
const consumeAckPoll = 10 * time.Millisecond

// durableAck settles a batch's messages: acknowledged once the WAL is
// flushed to lsn within the epoch in which the transaction began, otherwise
// rejected for redelivery.
type durableAck struct {
	lsn   int64
	epoch uint64
	done  func(durable bool)
}

// walFlushSource tells how far the WAL is flushed, and in which epoch: an
// epoch is a span in which the server certainly did not restart or go
// through crash recovery. A flush position says nothing about a commit made
// in an earlier epoch: after a crash the WAL goes on from the last record
// on disk, and the positions of what was lost are written again.
type walFlushSource interface {
	// Epoch is the current epoch; odd while it is not known (no connection).
	Epoch() uint64
	// Flushed reads the flush position and the epoch it belongs to.
	Flushed(ctx context.Context) (lsn int64, epoch uint64, err error)
}

// walWitness is a walFlushSource that holds one connection: a restart or a
// crash recovery of PostgreSQL ends every session, so while the connection
// lives the server has not restarted. The epoch changes when the connection
// is lost (to odd) and again once a new one is up (to even).
type walWitness struct {
	pool  *pgxpool.Pool
	epoch atomic.Uint64
	conn  *pgxpool.Conn // used by one goroutine at a time: Consume, then the acknowledger
}

func newWALWitness(pool *pgxpool.Pool) *walWitness {
	w := &walWitness{pool: pool}
	w.epoch.Store(1)
	return w
}

func (w *walWitness) connect(ctx context.Context) error {
	c, err := w.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connection for WAL flush positions: %w", err)
	}
	w.conn = c
	w.epoch.Add(1) // even: up
	return nil
}

// Epoch implements walFlushSource.
func (w *walWitness) Epoch() uint64 { return w.epoch.Load() }

// Flushed implements walFlushSource.
func (w *walWitness) Flushed(ctx context.Context) (int64, uint64, error) {
	if w.conn == nil {
		if err := w.connect(ctx); err != nil {
			return 0, 0, err
		}
	}
	var lsn int64
	if err := w.conn.QueryRow(ctx, "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint").Scan(&lsn); err != nil {
		// Whatever the cause, this connection no longer vouches for the
		// server: a new epoch begins with a new connection.
		w.close(context.WithoutCancel(ctx))
		return 0, 0, fmt.Errorf("read the WAL flush position: %w", err)
	}
	return lsn, w.epoch.Load(), nil
}

func (w *walWitness) close(ctx context.Context) {
	if w.conn != nil {
		_ = w.conn.Conn().Close(ctx)
		w.conn.Release()
		w.conn = nil
		w.epoch.Add(1) // odd: down
	}
}

// ackWhenDurable settles each ack received on in, until ctx is done (acks
// still waiting are dropped: their messages come again after AckWait). An
// ack is acknowledged once the WAL is flushed to its LSN in the epoch in
// which its transaction began; one of another epoch is rejected at once,
// and its messages are applied again (a no-op if the transaction survived).
func ackWhenDurable(ctx context.Context, in <-chan durableAck, src walFlushSource, poll time.Duration) {
	var waiting []durableAck
	for {
		if len(waiting) == 0 {
			select {
			case <-ctx.Done():
				return
			case a := <-in:
				waiting = append(waiting, a)
			}
		}
		t := time.NewTimer(poll)
	collect:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case a := <-in:
				waiting = append(waiting, a)
			case <-t.C:
				break collect
			}
		}
		lsn, epoch, err := src.Flushed(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The epoch the waiting acks began in is over.
			lsn, epoch = -1, src.Epoch()
		}
		kept := waiting[:0]
		for _, a := range waiting {
			switch {
			case a.epoch%2 == 1 || a.epoch != epoch:
				a.done(false)
			case a.lsn <= lsn:
				a.done(true)
			default:
				kept = append(kept, a)
			}
		}
		clear(waiting[len(kept):])
		waiting = kept
	}
}

// shardSeed keys customerShard for this process (shards are per process).
var shardSeed = maphash.MakeSeed()

// customerShard is the worker of a customer code among n.
func customerShard(code string, n int) int {
	return int(maphash.String(shardSeed, code) % uint64(n)) //nolint:gosec // G115: n is a small positive worker count
}

// consumeBatches applies batches of what is waiting in msgs until ctx is done.
func (p *Projector) consumeBatches(ctx context.Context, msgs <-chan jetstream.Msg, acks chan<- durableAck, wal walFlushSource) {
	retry := backoff.New(backoff.Retry)
	for {
		var batch []jetstream.Msg
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < MaxBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		p.busWaiting.Add(-int64(len(batch)))
		streams := make([]uuid.UUID, 0, len(batch))
		var newest time.Time
		kept := batch[:0]
		for _, m := range batch {
			code := m.Headers().Get(headerCustomer)
			if !domain.ValidCustomerCode(code) {
				kept = append(kept, m) // acknowledged with the batch, as before
				continue
			}
			stream := domain.CustomerCode(code).StreamID()
			if v, err := strconv.ParseInt(m.Headers().Get(headerVersion), 10, 64); err == nil && p.durable.covers(stream, v) {
				// A transaction of this process already stored this event's
				// customer at or past its version, and that commit is on
				// disk: the message is settled without a transaction.
				_ = m.Ack()
				continue
			}
			kept = append(kept, m)
			streams = append(streams, stream)
			if md, err := m.Metadata(); err == nil && md.Timestamp.After(newest) {
				newest = md.Timestamp
			}
		}
		if skipped := len(batch) - len(kept); skipped > 0 && p.metrics != nil {
			p.metrics.MessagesAlreadyApplied(skipped)
		}
		clear(batch[len(kept):])
		batch = kept
		if len(batch) == 0 {
			continue
		}
		epoch := wal.Epoch() // before the transaction begins
		_, own, err := p.apply(ctx, streams, true)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := retry.Next()
			p.log.Warn("projector: apply failed; will retry", "customers", len(streams), "err", err, "retry_in", wait)
			for _, m := range batch {
				_ = m.NakWithDelay(wait)
			}
			continue
		}
		retry.Reset()
		select {
		case acks <- durableAck{lsn: own.commitEnd, epoch: epoch, done: func(durable bool) {
			if durable {
				p.durable.raise(own.written)
			}
			for _, m := range batch {
				if durable {
					_ = m.Ack()
				} else {
					_ = m.Nak()
				}
			}
		}}:
		case <-ctx.Done():
			return
		}
		if p.metrics != nil && !newest.IsZero() {
			p.metrics.ProjectionLag(time.Since(newest).Seconds())
		}
	}
}
