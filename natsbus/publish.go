package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// CommitTimeout bounds the wait for an atomic batch's acknowledgement. A
// healthy server or cluster acknowledges within milliseconds; an
// acknowledgement that does not come was lost with a node or a connection,
// and the caller learns the batch's fate from the stream's tail whatever the
// wait, so a longer one only delays publication after a node is lost (the
// target is ≤ 5 s on a 3-node cluster, SPEC §12). A batch that commits after
// the wait is harmless: the next batch expects the sequence before it and
// is refused, which sends the publisher back to the tail.
const CommitTimeout = 2 * time.Second

// MaxAtomicBatch is the largest atomic batch nats-server accepts by default.
const MaxAtomicBatch = 1000

// Headers of JetStream's atomic batch publish protocol (nats-server ≥ 2.12).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// OutMsg is one message for a stream.
type OutMsg struct {
	Subject string
	MsgID   string
	Header  nats.Header
	Data    []byte
}

// ErrOutOfSync: the stream's last sequence is not what the publisher
// expected (someone else wrote, or an earlier batch's fate is unknown); the
// caller must re-read the stream's tail before publishing again.
var ErrOutOfSync = errors.New("stream is not at the expected last sequence")

// BatchPublisher appends messages to one stream in atomic batches: a batch
// is stored whole or not at all, in order, directly after the sequence the
// publisher last saw. Together with re-reading the stream's last message
// after any failure, this is what makes publication exactly-once and gap-free
// even beyond the 2-minute Nats-Msg-Id dedupe window.
type BatchPublisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	lastSeq uint64
	synced  bool
}

// NewBatchPublisher publishes to the named stream.
func NewBatchPublisher(nc *nats.Conn, js jetstream.JetStream, stream string) *BatchPublisher {
	return &BatchPublisher{nc: nc, js: js, stream: stream}
}

// LastMessage reads the stream's last message (nil when the stream is empty,
// or when its last message can no longer be read) and syncs the expected
// sequence to it.
//
// The read is bounded by CommitTimeout: a request that a stream's new leader
// drops while it takes over would otherwise wait the client's 5 s default,
// and the caller retries promptly anyway.
func (p *BatchPublisher) LastMessage(ctx context.Context) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, CommitTimeout)
	defer cancel()
	st, err := p.js.Stream(ctx, p.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", p.stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", p.stream, err)
	}
	p.lastSeq, p.synced = info.State.LastSeq, true
	if info.State.LastSeq == 0 {
		return nil, nil
	}
	msg, err := st.GetMsg(ctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s last message: %w", p.stream, err)
	}
	return msg, nil
}

type pubAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Count  int    `json:"count"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// Publish appends msgs (at most MaxAtomicBatch) as one atomic batch. On any
// error the publisher forgets its expected sequence; call LastMessage before
// publishing again.
func (p *BatchPublisher) Publish(ctx context.Context, msgs []OutMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	if len(msgs) > MaxAtomicBatch {
		return fmt.Errorf("batch of %d messages exceeds %d", len(msgs), MaxAtomicBatch)
	}
	if !p.synced {
		return ErrOutOfSync
	}
	p.synced = false // until the commit is acknowledged
	batchID := nuid.Next()
	for i, m := range msgs {
		msg := nats.NewMsg(m.Subject)
		msg.Data = m.Data
		for k, v := range m.Header {
			msg.Header[k] = v
		}
		msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
		msg.Header.Set(headerBatchID, batchID)
		msg.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if i == 0 {
			msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(p.lastSeq, 10))
		}
		if i < len(msgs)-1 {
			if err := p.nc.PublishMsg(msg); err != nil {
				return fmt.Errorf("publish batch message %d: %w", i+1, err)
			}
			continue
		}
		msg.Header.Set(headerBatchCommit, "1")
		// Bound the wait for the commit's acknowledgement: a server that
		// stored the batch and died before answering must not hang us; the
		// caller re-reads the stream's tail and learns what happened.
		ackCtx, cancel := context.WithTimeout(ctx, CommitTimeout)
		resp, err := p.nc.RequestMsgWithContext(ackCtx, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("commit batch of %d: %w", len(msgs), err)
		}
		var ack pubAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("commit batch: bad acknowledgement %q: %w", resp.Data, err)
		}
		if ack.Error != nil {
			if ack.Error.ErrCode == int(jetstream.JSErrCodeStreamWrongLastSequence) {
				return fmt.Errorf("commit batch: %w: %s", ErrOutOfSync, ack.Error.Description)
			}
			return fmt.Errorf("commit batch: %s (code %d)", ack.Error.Description, ack.Error.ErrCode)
		}
		if ack.Seq != p.lastSeq+uint64(len(msgs)) {
			return fmt.Errorf("commit batch: %w: acknowledged sequence %d, expected %d", ErrOutOfSync, ack.Seq, p.lastSeq+uint64(len(msgs)))
		}
		p.lastSeq, p.synced = ack.Seq, true
	}
	return nil
}
