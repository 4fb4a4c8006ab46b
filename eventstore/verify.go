package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// Break is the first broken link of a stream's hash chain.
type Break struct {
	Customer domain.CustomerCode
	StreamID uuid.UUID
	Version  int64
	// Position is 0 when the broken link is a missing event.
	Position int64
	Reason   string
}

// VerifyStream recomputes a customer's hash chain from the stored rows and
// returns the first broken link, or nil when the chain is intact. It reads
// the stream in pages, so memory does not grow with the stream's length.
//
// The chain must also reach the stream's head as the store recorded it
// (streams.version and last_hash): events deleted from the end of a stream,
// or a whole stream deleted, leave no broken link behind, only a chain that
// stops short of its head.
func (s *Store) VerifyStream(ctx context.Context, customer domain.CustomerCode) (*Break, error) {
	id := customer.StreamID()
	// The head is read first: events up to it are committed, so the walk
	// below sees them all, and events appended meanwhile are beyond it.
	head, err := s.streamHeads(ctx, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	h, ok := head[id]
	if !ok {
		// No head: the customer is unknown, unless events exist without one.
		events, err := s.ReadStream(ctx, customer, 0, 1)
		if err != nil {
			return nil, err
		}
		again, err := s.streamHeads(ctx, []uuid.UUID{id})
		if err != nil {
			return nil, err
		}
		if _, ok := again[id]; ok {
			// The stream's first append committed meanwhile.
			return s.VerifyStream(ctx, customer)
		}
		if len(events) == 0 {
			return nil, fmt.Errorf("customer %s: %w", customer, ErrNotFound)
		}
		e := events[0]
		return &Break{Customer: e.Customer, StreamID: id, Version: e.Version, Position: e.Position,
			Reason: "the stream has events but no recorded head"}, nil
	}
	prev := genesisHash
	var after, lastPosition int64
	for after < h.version {
		events, err := s.ReadStream(ctx, customer, after, int(min(1000, h.version-after)))
		if err != nil {
			return nil, err
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if b := checkLink(e, prev, after+1); b != nil {
				return b, nil
			}
			prev, after, lastPosition = e.Hash, e.Version, e.Position
		}
	}
	return checkHead(customer, id, h, after, lastPosition, prev), nil
}

// streamHead is the end of a stream's chain as the store recorded it.
type streamHead struct {
	customer domain.CustomerCode
	version  int64
	hash     []byte
}

// streamHeads reads the recorded heads of the given streams, or of all
// streams when ids is nil.
func (s *Store) streamHeads(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]streamHead, error) {
	q := "SELECT stream_id, customer, version, last_hash FROM streams"
	var args []any
	if ids != nil {
		q += " WHERE stream_id = ANY($1)"
		args = append(args, ids)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read stream heads: %w", mapError(err))
	}
	defer rows.Close()
	heads := map[uuid.UUID]streamHead{}
	for rows.Next() {
		var id uuid.UUID
		var h streamHead
		if err := rows.Scan(&id, &h.customer, &h.version, &h.hash); err != nil {
			return nil, fmt.Errorf("read stream heads: %w", mapError(err))
		}
		heads[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream heads: %w", mapError(err))
	}
	return heads, nil
}

// checkHead compares the end of a verified chain (its last version, position
// and hash) with the stream's recorded head.
func checkHead(customer domain.CustomerCode, id uuid.UUID, h streamHead, version, position int64, hash []byte) *Break {
	if version < h.version {
		return &Break{Customer: customer, StreamID: id, Version: version + 1,
			Reason: fmt.Sprintf("events are missing: the chain ends at version %d, the stream's head is version %d", version, h.version)}
	}
	if !bytes.Equal(hash, h.hash) {
		return &Break{Customer: customer, StreamID: id, Version: version, Position: position,
			Reason: "the hash of the stream's last event differs from the recorded head"}
	}
	return nil
}

// checkLink verifies one event against the previous hash of its stream.
func checkLink(e RecordedEvent, prev []byte, wantVersion int64) *Break {
	brk := func(reason string) *Break {
		return &Break{Customer: e.Customer, StreamID: e.StreamID, Version: e.Version, Position: e.Position, Reason: reason}
	}
	if e.Version != wantVersion {
		return brk(fmt.Sprintf("version %d follows %d", e.Version, wantVersion-1))
	}
	if e.StreamID != e.Customer.StreamID() {
		return brk("stream id does not belong to the customer code")
	}
	got := computeHash(hashInput{
		Prev: prev, Position: e.Position, StreamID: e.StreamID, Customer: string(e.Customer),
		Version: e.Version, EventID: e.EventID, Type: string(e.Type), OccurredAt: e.OccurredAt,
		RecordedAt: e.RecordedAt, Data: e.Data, Metadata: e.metadata,
	})
	if !bytes.Equal(got, e.Hash) {
		return brk("stored hash does not match the event's contents and the previous hash")
	}
	return nil
}

// VerifyAll walks every stream's chain in one pass over the log (streaming,
// memory proportional to the number of streams) and returns the first broken
// link of each broken stream: breaks found in the log in position order, then
// streams whose chain stops short of their recorded head (see VerifyStream).
func (s *Store) VerifyAll(ctx context.Context) ([]Break, int64, error) {
	type tail struct {
		hash     []byte
		version  int64
		position int64
		broken   bool
	}
	// Heads first, as in VerifyStream: streams appended to during the walk
	// are checked up to the head read here. Every event up to logEnd (a
	// settled position) was committed before the heads were read, so its
	// stream must have one.
	logEnd, err := s.AwaitSettled(ctx)
	if err != nil {
		return nil, 0, err
	}
	heads, err := s.streamHeads(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	tails := map[uuid.UUID]*tail{}
	var breaks []Break
	var checked int64
	var after int64
	for {
		events, err := s.ReadAll(ctx, after, 5000)
		if err != nil {
			return nil, checked, err
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			after = e.Position
			checked++
			tl := tails[e.StreamID]
			if tl == nil {
				tl = &tail{hash: genesisHash}
				tails[e.StreamID] = tl
				if _, ok := heads[e.StreamID]; !ok && e.Position <= logEnd {
					tl.broken = true
					breaks = append(breaks, Break{Customer: e.Customer, StreamID: e.StreamID, Version: e.Version,
						Position: e.Position, Reason: "the stream has events but no recorded head"})
				}
			}
			if tl.broken {
				continue
			}
			if b := checkLink(e, tl.hash, tl.version+1); b != nil {
				tl.broken = true
				breaks = append(breaks, *b)
				continue
			}
			tl.hash, tl.version, tl.position = e.Hash, e.Version, e.Position
			if h, ok := heads[e.StreamID]; ok && e.Version == h.version {
				if b := checkHead(e.Customer, e.StreamID, h, e.Version, e.Position, e.Hash); b != nil {
					tl.broken = true
					breaks = append(breaks, *b)
				}
			}
		}
	}
	var short []Break
	for id, h := range heads {
		tl := tails[id]
		if tl == nil {
			tl = &tail{hash: genesisHash}
		}
		if tl.broken || tl.version >= h.version {
			continue
		}
		short = append(short, *checkHead(h.customer, id, h, tl.version, tl.position, tl.hash))
	}
	slices.SortFunc(short, func(a, b Break) int { return strings.Compare(string(a.Customer), string(b.Customer)) })
	return append(breaks, short...), checked, nil
}
