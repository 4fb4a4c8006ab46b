package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/natsbus"
)

// Eraser makes erasure reach the bus copies the product keeps of upstream
// messages: when CustomerErased is published, every message of
// SEGMENTS_INGEST and SEGMENTS_REJECTED that names the customer is deleted
// (JetStream secure delete: the bytes are overwritten on disk).
//
// Those messages are addressed by upstream subjects (ingest.crm), not by
// customer, so no subject purge can find them: the eraser reads both
// streams once per batch of erasures (an ordered consumer from the first
// message to the last one present when the scan starts) and deletes by
// sequence. The cost is one read of every retained message of the two
// streams (at most 7 and 30 days) per batch; erasures that arrive together
// share one scan. Messages that arrive after the scan and carry personal
// data of the erased customer are refused by the store and rejected by the
// worker without their payload (rejectErased).
type Eraser struct {
	js      jetstream.JetStream
	log     *slog.Logger
	durable string
}

// EraserDurable is the eraser's consumer on SEGMENTS_EVENTS.
const EraserDurable = "segments-eraser"

// NewEraser returns an eraser; Run drives it.
func NewEraser(js jetstream.JetStream, log *slog.Logger) *Eraser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Eraser{js: js, log: log, durable: EraserDurable}
}

// Run consumes CustomerErased from SEGMENTS_EVENTS until ctx is done. An
// erasure is acknowledged only after its purge completed, so a failure or a
// restart purges again (deleting is idempotent). Bus failures are retried
// in place: the eraser stays up through a NATS outage.
func (e *Eraser) Run(ctx context.Context) error {
	retry := backoff.New(backoff.Retry)
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			cons, err = e.js.CreateOrUpdateConsumer(ctx, natsbus.StreamEvents, jetstream.ConsumerConfig{
				Durable:       e.durable,
				FilterSubject: natsbus.SubjectEventsPrefix + string(domain.TypeCustomerErased),
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Minute,
				MaxDeliver:    -1,
			})
			if err != nil {
				cons, err = nil, fmt.Errorf("consumer: %w", err)
			}
		}
		if err == nil {
			err = e.round(ctx, cons)
		}
		if err == nil || ctx.Err() != nil {
			retry.Reset()
			continue
		}
		wait := retry.Next()
		e.log.Warn("eraser: bus failure; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// round waits up to two seconds for erasures, purges the customers of those
// that came and acknowledges them.
func (e *Eraser) round(ctx context.Context, cons jetstream.Consumer) error {
	first, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil {
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			return nil
		}
		return fmt.Errorf("fetch: %w", err)
	}
	msgs := []jetstream.Msg{first}
	// The erasures waiting beside it share the scan.
	if more, err := cons.FetchNoWait(255); err == nil {
		for m := range more.Messages() {
			msgs = append(msgs, m)
		}
	}
	customers := map[domain.CustomerCode]bool{}
	for _, m := range msgs {
		customers[domain.CustomerCode(m.Headers().Get(natsbus.HeaderCustomer))] = true
	}
	deleted, err := e.Purge(ctx, customers)
	if err != nil {
		for _, m := range msgs {
			_ = m.Nak()
		}
		return err
	}
	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	e.log.Info("erasure reached the bus: deleted the customers' ingest and rejected messages", "customers", len(customers), "deleted", deleted)
	return nil
}

// Purge deletes every message of SEGMENTS_INGEST and SEGMENTS_REJECTED
// that names one of the customers, and returns how many it deleted.
func (e *Eraser) Purge(ctx context.Context, customers map[domain.CustomerCode]bool) (int, error) {
	total := 0
	for _, name := range []string{natsbus.StreamIngest, natsbus.StreamRejected} {
		n, err := e.purgeStream(ctx, name, customers)
		total += n
		if err != nil {
			return total, fmt.Errorf("eraser: %s: %w", name, err)
		}
	}
	return total, nil
}

func (e *Eraser) purgeStream(ctx context.Context, name string, customers map[domain.CustomerCode]bool) (int, error) {
	stream, err := e.js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	deleted, idle := 0, 0
	for idle < 3 {
		batch, err := oc.FetchNoWait(1000)
		if err != nil {
			return deleted, err
		}
		seen := 0
		for m := range batch.Messages() {
			seen++
			md, err := m.Metadata()
			if err != nil {
				return deleted, err
			}
			seq := md.Sequence.Stream
			if namesAny(m.Data(), customers) {
				if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					return deleted, fmt.Errorf("delete message %d: %w", seq, err)
				}
				deleted++
			}
			if seq >= state.LastSeq || md.NumPending == 0 {
				return deleted, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return deleted, err
		}
		if seen == 0 {
			// Nothing delivered yet (or the rest was deleted meanwhile).
			idle++
			time.Sleep(100 * time.Millisecond)
		} else {
			idle = 0
		}
	}
	return deleted, nil
}

// namesAny reports whether a message body (an envelope or a batch of them,
// valid or not) names one of the customers. It reads leniently: a rejected
// message may be anything that merely looks like an envelope.
func namesAny(body []byte, customers map[domain.CustomerCode]bool) bool {
	for _, c := range customersNamed(body) {
		if customers[domain.CustomerCode(c)] {
			return true
		}
	}
	return false
}

func customersNamed(body []byte) []string {
	opts := json.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var top map[string]jsontext.Value
	if json.Unmarshal(body, &top, opts) != nil {
		return nil
	}
	var out []string
	var c string
	if json.Unmarshal(top["customer"], &c, opts) == nil {
		out = append(out, c)
	}
	var events []map[string]jsontext.Value
	if json.Unmarshal(top["events"], &events, opts) == nil {
		for _, ev := range events {
			if json.Unmarshal(ev["customer"], &c, opts) == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
