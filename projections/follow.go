package projections

import (
	"context"
	"sync"

	"github.com/google/uuid"
)

// FollowCommits applies customers as soon as the event store in this process
// commits their events (eventstore.Store.Committed), ahead of
// SEGMENTS_EVENTS: their labels are queryable without waiting for the
// publisher and JetStream. Below saturation that is about half the lag
// (docs/BENCHMARKS.md, session 7). It runs until ctx is done or commits is
// closed.
//
// It is a shortcut, not a path of its own. Consume still sees every event and
// is what makes the read models complete: the store drops hints when this
// falls behind, and an Apply that fails here is only logged. Nothing is
// applied or recorded twice: Apply reads each customer's stream after the
// version already applied, under the customer's advisory lock, so whichever
// of the two comes second finds nothing new and writes nothing. The commits
// here are synchronous (Apply), so nothing Consume acknowledges depends on a
// transaction of this path that could still be lost; and when the message
// comes after the commit, as it usually does, Consume acknowledges it
// without a transaction (see Consume).
func (p *Projector) FollowCommits(ctx context.Context, commits <-chan []uuid.UUID) error {
	// Shards by stream, like Consume's workers: one customer's hints always
	// go to the same worker, so two of them never wait on each other's locks.
	shards := make([]chan uuid.UUID, p.consumeWorkers)
	for i := range shards {
		shards[i] = make(chan uuid.UUID, 4*MaxBatch)
	}
	var workers sync.WaitGroup
	defer workers.Wait()
	ctx, stop := context.WithCancel(ctx) // the workers stop when commits closes too
	defer stop()
	for _, ids := range shards {
		workers.Go(func() { p.followShard(ctx, ids) })
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case streams, ok := <-commits:
			if !ok {
				return nil
			}
			for _, id := range streams {
				select {
				case shards[int(id[15])%len(shards)] <- id:
				default: // this worker is behind: Consume will apply the customer
				}
			}
		}
	}
}

// followYieldAbove is how many messages may wait for Consume before
// FollowCommits stops applying: below it the bus path keeps up and the
// shortcut saves the trip through the publisher and JetStream; above it the
// machine is saturated, the shortcut doubles the projector's transactions,
// and measured at 5,000 events/s on two cores it made the lag ten times
// worse (docs/BENCHMARKS.md, session 7). Since Consume acknowledges what
// this path already stored without a transaction, the rule matters less:
// without it the p99 stayed within the spread of runs with it (session 8,
// before the binary document), so it stays until measured otherwise.
const followYieldAbove = 256

// followMaxBatch is the most customers FollowCommits applies at once: more
// waiting than that means commits come faster than it applies them (at
// 5,000 events/s it met batches of hundreds), and it drops them for Consume.
const followMaxBatch = 64

// followShard applies what is waiting in ids, up to followMaxBatch customers
// per transaction, until ctx is done.
func (p *Projector) followShard(ctx context.Context, ids <-chan uuid.UUID) {
	for {
		var first uuid.UUID
		select {
		case <-ctx.Done():
			return
		case first = <-ids:
		}
		batch := []uuid.UUID{first}
		seen := map[uuid.UUID]bool{first: true}
	more:
		for len(batch) < MaxBatch {
			select {
			case id := <-ids:
				if !seen[id] {
					seen[id] = true
					batch = append(batch, id)
				}
			default:
				break more
			}
		}
		if len(batch) > followMaxBatch || p.busWaiting.Load() > followYieldAbove {
			// Commits come faster than this path applies them, or Consume
			// is behind: the machine is saturated, the bus brings these
			// customers in large batches anyway, and a second transaction
			// on them here would only contend for their locks and the CPU.
			continue
		}
		if _, err := p.Apply(ctx, batch); err != nil && ctx.Err() == nil {
			p.log.Warn("projector: applying just-committed events failed; the bus will bring them", "customers", len(batch), "err", err)
		}
	}
}
