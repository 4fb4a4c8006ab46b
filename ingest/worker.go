// Package ingest records events that upstream systems publish on JetStream
// subjects ingest.>. Valid messages are appended to the event store; invalid
// ones are published with their error to rejected.<subject> and
// acknowledged; failures that are not the message's fault (database down)
// are retried with backoff and never turned into rejections.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/natsbus"
)

// Appender records events; *eventstore.Store is one.
type Appender interface {
	Append(ctx context.Context, req domain.AppendRequest) ([]eventstore.Result, error)
}

// Metrics receives the worker's measurements.
type Metrics interface {
	Rejected(transport, reason string)
	Ingested(transport string, n int)
}

// Config configures a Worker.
type Config struct {
	JS       jetstream.JetStream
	Appender Appender
	Now      func() time.Time
	Logger   *slog.Logger
	Metrics  Metrics
	// Shards is the number of concurrent appenders. Messages of one customer
	// always go to the same shard, so they are appended in publish order.
	Shards int
	// Durable is the consumer name.
	Durable string
	// ShutdownGrace bounds how long messages in hand may take after Run's
	// context is done.
	ShutdownGrace time.Duration
	// Erasures, when set, keeps rejections of messages about erased
	// customers free of their payload (*eventstore.Store is one).
	Erasures ErasureChecker
	// PinnedTTL is how long the worker that receives the messages may stop
	// asking for them before another instance's worker takes over
	// (DefaultPinnedTTL when 0). See order.go.
	PinnedTTL time.Duration
	// OrderWait is how long a message that fails only as unknown_order (a
	// refund before its order) is retried before it is rejected
	// (DefaultOrderWait when 0; negative: rejected at once).
	OrderWait time.Duration
}

// ErasureChecker says whether customers were erased.
type ErasureChecker interface {
	AnyErased(ctx context.Context, customers []domain.CustomerCode) (bool, error)
}

// Worker consumes SEGMENTS_INGEST.
type Worker struct {
	cfg     Config
	created time.Time
	stream  jetstream.Stream // SEGMENTS_INGEST
	pin     atomic.Value     // string: the pin id of the latest message received
}

// ingestNamespace derives event ids for messages that carry none.
var ingestNamespace = uuid.MustParse("3b0c7f5e-2a61-5d8e-b1f4-9e7a6c5d4b3a")

// New returns a worker.
func New(cfg Config) *Worker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 32
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Durable == "" {
		cfg.Durable = "segments-ingest"
	}
	if cfg.PinnedTTL <= 0 {
		cfg.PinnedTTL = DefaultPinnedTTL
	}
	if cfg.OrderWait == 0 {
		cfg.OrderWait = DefaultOrderWait
	}
	return &Worker{cfg: cfg}
}

// Run consumes until ctx is done, then finishes the messages in hand.
func (w *Worker) Run(ctx context.Context) error {
	stream, err := w.cfg.JS.Stream(ctx, natsbus.StreamIngest)
	if err != nil {
		return fmt.Errorf("ingest: stream %s: %w", natsbus.StreamIngest, err)
	}
	w.created, w.stream = stream.CachedInfo().Created, stream
	cons, err := stream.CreateOrUpdateConsumer(ctx, w.consumerConfig())
	if err != nil {
		return fmt.Errorf("ingest: consumer: %w", err)
	}
	iter, err := cons.Messages(w.pullOptions()...)
	if err != nil {
		return fmt.Errorf("ingest: subscribe: %w", err)
	}
	// On shutdown stop fetching, but finish the messages in hand: they get
	// a grace period before their appends are cancelled (then they are
	// simply redelivered).
	procCtx, cancelProc := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProc()
	go func() {
		<-ctx.Done()
		iter.Drain()
		time.AfterFunc(w.cfg.ShutdownGrace, cancelProc)
	}()

	shards := make([]chan work, w.cfg.Shards)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan work, 64)
		wg.Go(func() {
			for item := range shards[i] {
				w.append(procCtx, item)
			}
		})
	}
	defer func() {
		for _, ch := range shards {
			close(ch)
		}
		wg.Wait()
		w.unpin(ctx)
	}()
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if ctx.Err() != nil {
				continue // draining: Next returns the buffered messages, then closed
			}
			w.cfg.Logger.Warn("ingest: fetch", "err", err)
			continue
		}
		w.notePin(msg)
		item, ok := w.decode(procCtx, msg)
		if !ok {
			continue
		}
		shards[shardOf(item.req, len(shards))] <- item
	}
}

type work struct {
	msg jetstream.Msg
	req domain.AppendRequest
}

func shardOf(req domain.AppendRequest, n int) int {
	h := fnv.New32a()
	h.Write([]byte(req.Events[0].Customer))
	return int(h.Sum32() % uint32(n)) //nolint:gosec // n is the shard count, small and positive
}

// decode validates a message; an invalid one is rejected here.
func (w *Worker) decode(ctx context.Context, msg jetstream.Msg) (work, bool) {
	req, err := domain.DecodeAppendRequest(msg.Data(), w.cfg.Now())
	if err != nil {
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			fe := ve.First()
			w.reject(ctx, msg, fe.Code, fe.Field, ve.Error())
		} else {
			w.reject(ctx, msg, "invalid", "", err.Error())
		}
		return work{}, false
	}
	w.assignIDs(msg, &req)
	return work{msg: msg, req: req}, true
}

// assignIDs gives events without an event_id one derived from the message
// itself, so a redelivered message is recognised as a duplicate by the store
// instead of being recorded twice.
func (w *Worker) assignIDs(msg jetstream.Msg, req *domain.AppendRequest) {
	base := "msgid/" + msg.Headers().Get(jetstream.MsgIDHeader)
	if base == "msgid/" {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		base = fmt.Sprintf("seq/%s/%d/%d", natsbus.StreamIngest, w.created.UnixNano(), md.Sequence.Stream)
	}
	for i := range req.Events {
		if req.Events[i].EventID == uuid.Nil {
			req.Events[i].EventID = uuid.NewSHA1(ingestNamespace, []byte(base+"/"+strconv.Itoa(i)))
		}
	}
}

// append records one message's events, retrying failures that are not the
// message's fault until they succeed or the worker stops. Retrying in place
// (instead of Nak) keeps a customer's messages in order.
func (w *Worker) append(ctx context.Context, item work) {
	retry := backoff.New(backoff.Retry)
	for {
		res, err := w.cfg.Appender.Append(ctx, item.req)
		if err == nil {
			if w.cfg.Metrics != nil {
				w.cfg.Metrics.Ingested("nats", len(res))
			}
			if err := item.msg.Ack(); err != nil {
				// Redelivery is harmless: the events are now duplicates.
				w.cfg.Logger.Warn("ingest: ack", "err", err)
			}
			return
		}
		var ee *eventstore.EventError
		var vc *eventstore.VersionConflictError
		switch {
		case w.retryOrder(item.msg, err):
			return
		case errors.As(err, &ee):
			field := ee.Err.Field
			if len(item.req.Events) > 1 || item.req.Batch {
				field = "events[" + strconv.Itoa(ee.Index) + "]." + field
			}
			if errors.Is(ee.Err, domain.ErrCustomerErased) {
				w.rejectErased(ctx, item.msg, ee.Err.Code(), field, ee.Error())
				return
			}
			w.reject(ctx, item.msg, ee.Err.Code(), field, ee.Error())
			return
		case errors.As(err, &vc):
			w.reject(ctx, item.msg, "version_conflict", "expected_version", vc.Error())
			return
		case ctx.Err() != nil:
			abandon(item.msg)
			return
		}
		wait := retry.Next()
		w.cfg.Logger.Warn("ingest: append failed; retrying", "err", err, "retry_in", wait)
		_ = item.msg.InProgress()
		select {
		case <-ctx.Done():
			abandon(item.msg)
			return
		case <-time.After(wait):
		}
	}
}

// abandon gives back a message whose append was cut short by shutdown. A
// negative acknowledgement has it redelivered at once, ahead of messages not
// yet delivered; left unacknowledged it would come back only after AckWait,
// behind the customer's newer messages (a refund before its order).
func abandon(msg jetstream.Msg) {
	_ = msg.Nak()
}

// reject publishes the original message and its error to
// rejected.<subject>, then acknowledges it. If the rejection cannot be
// published the message is left unacknowledged and comes back later.
// A message that names an erased customer is rejected as rejectErased does:
// it may be personal data sent after the eraser's scan.
func (w *Worker) reject(ctx context.Context, msg jetstream.Msg, code, field, message string) {
	erased, err := w.namesErased(ctx, msg.Data())
	if err != nil {
		w.cfg.Logger.Warn("ingest: check for erased customers; will retry", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if erased {
		w.rejectErased(ctx, msg, code, field, message)
		return
	}
	if w.publishRejection(ctx, msg, msg.Data(), code, field, message) {
		w.ack(msg)
	}
}

// namesErased reports whether a message names an erased customer.
func (w *Worker) namesErased(ctx context.Context, body []byte) (bool, error) {
	if w.cfg.Erasures == nil {
		return false, nil
	}
	named := customersNamed(body)
	if len(named) == 0 {
		return false, nil
	}
	codes := make([]domain.CustomerCode, len(named))
	for i, c := range named {
		codes[i] = domain.CustomerCode(c)
	}
	return w.cfg.Erasures.AnyErased(ctx, codes)
}

// rejectErased rejects a message that brings (or may bring) personal data
// of an erased customer: the rejection carries the error but not the
// payload, and the original is deleted from SEGMENTS_INGEST (the eraser's
// scan may be over).
func (w *Worker) rejectErased(ctx context.Context, msg jetstream.Msg, code, field, message string) {
	if !w.publishRejection(ctx, msg, nil, code, field, message) {
		return
	}
	md, err := msg.Metadata()
	if err == nil {
		err = w.stream.SecureDeleteMsg(ctx, md.Sequence.Stream)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		w.cfg.Logger.Warn("ingest: delete a message of an erased customer; will retry", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	w.ack(msg)
}

// publishRejection publishes data and the error to rejected.<subject>;
// false (and the message given back) when that failed.
func (w *Worker) publishRejection(ctx context.Context, msg jetstream.Msg, data []byte, code, field, message string) bool {
	out := nats.NewMsg(natsbus.RejectedPrefix + msg.Subject())
	out.Data = data
	for k, v := range msg.Headers() {
		// Nats-* headers direct the original publish (Nats-Msg-Id,
		// Nats-Expected-Stream, Nats-TTL, ...): copied, they would
		// deduplicate the rejection away or fail its publish forever.
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue
		}
		out.Header[k] = v
	}
	out.Header.Set(natsbus.HeaderErrorCode, code)
	out.Header.Set(natsbus.HeaderErrorField, field)
	out.Header.Set(natsbus.HeaderErrorMsg, message)
	out.Header.Set(natsbus.HeaderOrigSubj, msg.Subject())
	var opts []jetstream.PublishOpt
	if md, err := msg.Metadata(); err == nil {
		seq := strconv.FormatUint(md.Sequence.Stream, 10)
		out.Header.Set(natsbus.HeaderOrigSeq, seq)
		// A redelivered message is rejected once: same id, deduplicated.
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("rejected/%d/%s", w.created.UnixNano(), seq)))
	}
	if _, err := w.cfg.JS.PublishMsg(ctx, out, opts...); err != nil {
		w.cfg.Logger.Warn("ingest: publish rejection; will retry", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return false
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.Rejected("nats", code)
	}
	// Log the subject and error only: the payload may hold personal data.
	w.cfg.Logger.Info("ingest: rejected message", "subject", msg.Subject(), "code", code, "field", field)
	return true
}

func (w *Worker) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		w.cfg.Logger.Warn("ingest: ack rejected message", "err", err)
	}
}
