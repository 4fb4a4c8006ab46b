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
// Messages are acknowledged after the transaction that applied them commits.
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
	var workers sync.WaitGroup
	for _, msgs := range shards {
		workers.Go(func() { p.consumeBatches(ctx, msgs) })
	}
	workers.Wait()
	return nil
}

// shardSeed keys customerShard for this process (shards are per process).
var shardSeed = maphash.MakeSeed()

// customerShard is the worker of a customer code among n.
func customerShard(code string, n int) int {
	return int(maphash.String(shardSeed, code) % uint64(n)) //nolint:gosec // G115: n is a small positive worker count
}

// consumeBatches applies batches of what is waiting in msgs until ctx is done.
func (p *Projector) consumeBatches(ctx context.Context, msgs <-chan jetstream.Msg) {
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
		if _, err := p.Apply(ctx, streams); err != nil {
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
		for _, m := range batch {
			_ = m.Ack()
		}
		if p.metrics != nil && !newest.IsZero() {
			p.metrics.ProjectionLag(time.Since(newest).Seconds())
		}
	}
}
