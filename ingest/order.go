package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/natsbus"
)

// Per-customer order across instances (SPEC §12).
//
// Every instance runs a worker on the same durable consumer, but the
// consumer pins its messages to one of them at a time (JetStream's pinned
// client priority policy): the pinned worker sees SEGMENTS_INGEST in stream
// order and keeps each customer's messages in order through its shards; the
// others wait with pull requests the server holds back. A pinned worker
// that stops asking for messages for PinnedTTL (crashed, frozen,
// partitioned) loses the pin to the next waiting worker; one that stops
// gracefully finishes what it holds and gives the pin up at once.
//
// What a lost worker held comes back after the consumer's AckWait, possibly
// after newer messages of the same customer reached its successor. The
// rules that fail only because an earlier event has not arrived yet
// (unknown_order: a refund before its order) are therefore retried for
// OrderWait before the message is rejected, which also heals upstream
// systems that publish a refund before its order.

// PriorityGroup is the consumer's only priority group.
const PriorityGroup = "segments"

// Defaults of Config.PinnedTTL and Config.OrderWait.
const (
	DefaultPinnedTTL = 10 * time.Second
	DefaultOrderWait = time.Minute
)

// Delays between the attempts at a message that failed as unknown_order:
// doubling from orderRetryFirst, at most orderRetryMax.
const (
	orderRetryFirst = 250 * time.Millisecond
	orderRetryMax   = 5 * time.Second
)

// consumerConfig is the durable consumer every instance shares.
func (w *Worker) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        w.cfg.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1, // never drop a message: invalid ones are rejected, others retried
		MaxAckPending:  4096,
		FilterSubject:  natsbus.SubjectIngest,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      w.cfg.PinnedTTL,
	}
}

// pullOptions ask often enough that an idle pinned worker keeps its pin:
// the server unpins a worker that sent no pull request for PinnedTTL.
func (w *Worker) pullOptions() []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{
		jetstream.PullMaxMessages(512),
		jetstream.PullPriorityGroup(PriorityGroup),
		jetstream.PullExpiry(max(w.cfg.PinnedTTL/3, time.Second)),
	}
}

// notePin remembers the pin the server delivered a message under.
func (w *Worker) notePin(msg jetstream.Msg) {
	if id := msg.Headers().Get("Nats-Pin-Id"); id != "" {
		w.pin.Store(id)
	}
}

// unpin gives the pin up after a graceful stop, if this worker still holds
// it, so that another instance takes over now rather than after PinnedTTL.
func (w *Worker) unpin(ctx context.Context) {
	mine, _ := w.pin.Load().(string)
	if mine == "" || w.stream == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	cons, err := w.stream.Consumer(ctx, w.cfg.Durable)
	if err != nil {
		w.cfg.Logger.Warn("ingest: give up the pin", "err", err)
		return
	}
	for _, g := range cons.CachedInfo().PriorityGroups {
		if g.Group == PriorityGroup && g.PinnedClientID == mine {
			if err := w.stream.UnpinConsumer(ctx, w.cfg.Durable, PriorityGroup); err != nil {
				w.cfg.Logger.Warn("ingest: give up the pin", "err", err)
			}
		}
	}
}

// retryOrder reports whether a message whose append failed with err is
// given back to be tried again later: the error is unknown_order and the
// message has not yet been retried for OrderWait. Giving it back (instead
// of retrying in place) lets the shard go on to the customer's next
// messages, among which the missing order may be.
func (w *Worker) retryOrder(msg jetstream.Msg, err error) bool {
	if w.cfg.OrderWait < 0 || !errors.Is(err, domain.ErrUnknownOrder) {
		return false
	}
	var ee *eventstore.EventError
	if !errors.As(err, &ee) {
		return false
	}
	md, mdErr := msg.Metadata()
	if mdErr != nil {
		return false
	}
	waited, next := orderRetryDelays(md.NumDelivered)
	if waited >= w.cfg.OrderWait {
		return false
	}
	w.cfg.Logger.Info("ingest: refund before its order; retrying", "subject", msg.Subject(),
		"delivery", md.NumDelivered, "retry_in", next)
	_ = msg.NakWithDelay(next)
	return true
}

// orderRetryDelays returns, for the n-th delivery of a message, how long
// its earlier unknown_order attempts waited in all and the delay before the
// next one. Derived from the delivery count, it needs no state of its own
// and survives a change of worker.
func orderRetryDelays(delivered uint64) (waited, next time.Duration) {
	d := orderRetryFirst
	for i := uint64(1); i < delivered && waited < 24*time.Hour; i++ {
		waited += d
		d = min(2*d, orderRetryMax)
	}
	return waited, d
}
