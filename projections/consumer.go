package projections

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
)

// Message header and stream names shared with natsbus (kept as strings here
// so the projector does not depend on the bus package).
const (
	streamEvents   = "SEGMENTS_EVENTS"
	headerCustomer = "Segments-Customer"
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
// (ackWhenDurable): a crash of PostgreSQL before the flush loses the
// transaction but not its messages, which come again and are applied again,
// with the same results and the same ids. What such a transaction queued in
// the outbox cannot have been published: a relay publishes rows only after
// its claim commits synchronously, and the WAL is flushed in order.
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
		case <-ctx.Done(): // the workers are gone; unacknowledged, it comes again
		}
	}, jetstream.PullMaxMessages(MaxBatch))
	if err != nil {
		return fmt.Errorf("projector: subscribe: %w", err)
	}
	defer cc.Stop()
	acks := make(chan durableAck, 2*p.consumeWorkers)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		ackWhenDurable(ctx, acks, p.walFlushed, consumeAckPoll)
	}()
	var workers sync.WaitGroup
	for _, msgs := range shards {
		workers.Go(func() { p.consumeBatches(ctx, msgs, acks) })
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

// durableAck acknowledges a batch's messages once the WAL is flushed to lsn.
type durableAck struct {
	lsn int64
	ack func()
}

// walFlushed returns how far PostgreSQL has flushed the WAL.
func (p *Projector) walFlushed(ctx context.Context) (int64, error) {
	var lsn int64
	err := p.pool.QueryRow(ctx, "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint").Scan(&lsn)
	return lsn, err
}

// ackWhenDurable runs each ack received on in once flushed reports the WAL
// flushed to its LSN, until ctx is done (acks still waiting are dropped:
// their messages come again).
func ackWhenDurable(ctx context.Context, in <-chan durableAck, flushed func(context.Context) (int64, error), poll time.Duration) {
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
		lsn, err := flushed(ctx)
		if err != nil {
			continue // try again at the next poll; the acks wait
		}
		kept := waiting[:0]
		for _, a := range waiting {
			if a.lsn <= lsn {
				a.ack()
			} else {
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
func (p *Projector) consumeBatches(ctx context.Context, msgs <-chan jetstream.Msg, acks chan<- durableAck) {
	wait := 100 * time.Millisecond
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
		streams := make([]uuid.UUID, 0, len(batch))
		var newest time.Time
		for _, m := range batch {
			code := m.Headers().Get(headerCustomer)
			if !domain.ValidCustomerCode(code) {
				continue
			}
			streams = append(streams, domain.CustomerCode(code).StreamID())
			if md, err := m.Metadata(); err == nil && md.Timestamp.After(newest) {
				newest = md.Timestamp
			}
		}
		_, lsn, err := p.apply(ctx, streams, true)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("projector: apply failed; will retry", "customers", len(streams), "err", err, "retry_in", wait)
			for _, m := range batch {
				_ = m.NakWithDelay(wait)
			}
			wait = min(wait*2, 10*time.Second)
			continue
		}
		wait = 100 * time.Millisecond
		select {
		case acks <- durableAck{lsn: lsn, ack: func() {
			for _, m := range batch {
				_ = m.Ack()
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
