package natsbus

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/eventstore"
)

// EventSink puts an ordered outbox — the event log on SEGMENTS_EVENTS, the
// label changes on SEGMENTS_CHANGES — onto its stream; it implements
// eventstore.Sink. Every message carries its outbox position in the
// Segments-Position header, which is how a restarted publisher learns from
// the stream where publication stopped.
type EventSink struct {
	pub *BatchPublisher
}

// NewEventSink returns the sink of the events stream.
func NewEventSink(nc *nats.Conn, js jetstream.JetStream) *EventSink {
	return NewStreamSink(nc, js, StreamEvents)
}

// NewStreamSink returns the sink of any stream that allows atomic publish.
func NewStreamSink(nc *nats.Conn, js jetstream.JetStream, stream string) *EventSink {
	return &EventSink{pub: NewBatchPublisher(nc, js, stream)}
}

var _ eventstore.Sink = (*EventSink)(nil)

// LastPublishedPosition reads the Segments-Position header of the stream's
// last message. An empty stream holds position 0.
func (s *EventSink) LastPublishedPosition(ctx context.Context) (int64, bool, error) {
	msg, err := s.pub.LastMessage(ctx)
	if err != nil {
		return 0, false, err
	}
	if msg == nil {
		// Empty stream (everything is published from the start), or a last
		// message that can no longer be read (trust the checkpoint).
		return 0, s.pub.lastSeq == 0, nil
	}
	pos, err := strconv.ParseInt(msg.Header.Get(HeaderPosition), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("last message of %s has no valid %s header: %w", s.pub.stream, HeaderPosition, err)
	}
	return pos, true, nil
}

// PublishAtomic publishes the messages as one atomic batch, each with its
// position in the Segments-Position header.
func (s *EventSink) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	out := make([]OutMsg, len(msgs))
	for i, m := range msgs {
		h := make(nats.Header, len(m.Header)+4)
		for k, v := range m.Header {
			h.Set(k, v)
		}
		// The position is the message's, whatever a caller's headers say:
		// LastPublishedPosition reads it back from here.
		h.Set(HeaderPosition, strconv.FormatInt(m.Position, 10))
		out[i] = OutMsg{Subject: m.Subject, MsgID: m.ID, Header: h, Data: m.Body}
	}
	return s.pub.Publish(ctx, out)
}

// MaxBatch is the largest atomic batch.
func (s *EventSink) MaxBatch() int { return MaxAtomicBatch }
