package sinktest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/segments-dev/segments/eventstore"
)

// MemoryStream is an in-memory stream that sinks opened on it share; it
// keeps every published message in order.
type MemoryStream struct {
	mu       sync.Mutex
	messages []eventstore.Message
	maxBatch int
}

// NewMemoryStream returns an empty stream taking batches of up to maxBatch.
func NewMemoryStream(maxBatch int) *MemoryStream { return &MemoryStream{maxBatch: maxBatch} }

// Open returns a new sink on the stream.
func (m *MemoryStream) Open() eventstore.Sink { return memorySink{m} }

// Messages returns a copy of what the stream holds, in order.
func (m *MemoryStream) Messages() []eventstore.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.messages)
}

type memorySink struct{ stream *MemoryStream }

func (s memorySink) LastPublishedPosition(context.Context) (int64, bool, error) {
	s.stream.mu.Lock()
	defer s.stream.mu.Unlock()
	if len(s.stream.messages) == 0 {
		return 0, true, nil
	}
	return s.stream.messages[len(s.stream.messages)-1].Position, true, nil
}

func (s memorySink) PublishAtomic(_ context.Context, msgs []eventstore.Message) error {
	if len(msgs) > s.stream.maxBatch {
		return fmt.Errorf("batch of %d messages exceeds %d", len(msgs), s.stream.maxBatch)
	}
	s.stream.mu.Lock()
	defer s.stream.mu.Unlock()
	s.stream.messages = append(s.stream.messages, msgs...)
	return nil
}

func (s memorySink) MaxBatch() int { return s.stream.maxBatch }
