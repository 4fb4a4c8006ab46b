// Package sinktest is the conformance suite of eventstore.Sink: what the
// publisher and the outbox relays rely on from any stream they put an
// ordered outbox onto. An implementation runs Run from its own tests, in the
// manner of hallgren/eventsourcing's core/testsuite; Memory is a reference
// implementation that passes it, for tests that need a sink without a bus.
//
// The contract, beyond the interface's comments: a sink learns where its
// stream stands from LastPublishedPosition, so a caller asks it before its
// first PublishAtomic and again after any error; the position a message
// carries is Message.Position, whatever its headers say.
package sinktest

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
)

// Open returns a sink on one stream; each call is a new sink on the same
// stream, as a restarted process would open it.
type Open func() eventstore.Sink

// Run runs every case, each on a fresh empty stream from newStream.
func Run(t *testing.T, newStream func(t *testing.T) Open) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, open Open)
	}{
		{"an empty stream holds position 0", emptyStreamHoldsPositionZero},
		{"the last position is the last published message's", lastPositionIsTheLastMessages},
		{"a restarted sink reads where publication stopped and goes on", restartedSinkGoesOn},
		{"an empty batch changes nothing", emptyBatchChangesNothing},
		{"a batch of MaxBatch messages is taken as one", fullBatchIsTaken},
		{"a batch over MaxBatch is refused whole", oversizedBatchIsRefused},
		{"the position comes from the message, not from its headers", positionComesFromTheMessage},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStream(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Messages returns n messages at positions from, from+1, … with distinct ids.
func Messages(from int64, n int) []eventstore.Message {
	out := make([]eventstore.Message, n)
	for i := range out {
		pos := from + int64(i)
		out[i] = eventstore.Message{Subject: "customers.events.OrderPlaced", ID: fmt.Sprintf("sinktest-%d", pos), Position: pos,
			Header: map[string]string{"Segments-Customer": "KH-SINKTEST"}, Body: []byte(`{"position":` + strconv.FormatInt(pos, 10) + `}`)}
	}
	return out
}

// last asks s where its stream stands and fails the test unless it knows.
func last(t *testing.T, s eventstore.Sink) int64 {
	t.Helper()
	pos, known, err := s.LastPublishedPosition(ctxFor(t))
	if err != nil {
		t.Fatalf("LastPublishedPosition: %v", err)
	}
	if !known {
		t.Fatal("LastPublishedPosition: the sink cannot tell where its own stream stands")
	}
	return pos
}

func publish(t *testing.T, s eventstore.Sink, msgs []eventstore.Message) {
	t.Helper()
	if err := s.PublishAtomic(ctxFor(t), msgs); err != nil {
		t.Fatalf("PublishAtomic of %d messages: %v", len(msgs), err)
	}
}

func wantLast(t *testing.T, s eventstore.Sink, want int64) {
	t.Helper()
	if got := last(t, s); got != want {
		t.Fatalf("LastPublishedPosition = %d, want %d", got, want)
	}
}

func emptyStreamHoldsPositionZero(t *testing.T, open Open) {
	wantLast(t, open(), 0)
}

func lastPositionIsTheLastMessages(t *testing.T, open Open) {
	s := open()
	wantLast(t, s, 0)
	publish(t, s, Messages(1, 3))
	wantLast(t, s, 3)
	publish(t, s, Messages(4, 2))
	wantLast(t, s, 5)
}

func restartedSinkGoesOn(t *testing.T, open Open) {
	first := open()
	wantLast(t, first, 0)
	publish(t, first, Messages(1, 3))
	second := open()
	wantLast(t, second, 3)
	publish(t, second, Messages(4, 1))
	wantLast(t, open(), 4)
}

func emptyBatchChangesNothing(t *testing.T, open Open) {
	s := open()
	wantLast(t, s, 0)
	publish(t, s, Messages(1, 2))
	publish(t, s, nil)
	wantLast(t, s, 2)
}

func fullBatchIsTaken(t *testing.T, open Open) {
	s := open()
	if s.MaxBatch() < 1 {
		t.Fatalf("MaxBatch = %d: a sink takes at least one message", s.MaxBatch())
	}
	wantLast(t, s, 0)
	publish(t, s, Messages(1, s.MaxBatch()))
	wantLast(t, open(), int64(s.MaxBatch()))
}

func oversizedBatchIsRefused(t *testing.T, open Open) {
	s := open()
	wantLast(t, s, 0)
	publish(t, s, Messages(1, 1))
	if err := s.PublishAtomic(ctxFor(t), Messages(2, s.MaxBatch()+1)); err == nil {
		t.Fatalf("a batch of MaxBatch+1 = %d messages was accepted", s.MaxBatch()+1)
	}
	wantLast(t, s, 1)
	wantLast(t, open(), 1)
	publish(t, s, Messages(2, 1))
	wantLast(t, s, 2)
}

func positionComesFromTheMessage(t *testing.T, open Open) {
	s := open()
	wantLast(t, s, 0)
	msgs := Messages(7, 2)
	msgs[0].Header, msgs[1].Header = nil, map[string]string{"Segments-Position": "1"}
	publish(t, s, msgs)
	wantLast(t, open(), 8)
}
