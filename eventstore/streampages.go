package eventstore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// EachStreamPage calls fn with the events of up to size streams at a time,
// streams in stream_id order, each stream's events in version order. Only
// one page is held in memory, so an export of the whole log stays flat.
// Streams appended to while the walk runs are read as they are when their
// page is read.
func (s *Store) EachStreamPage(ctx context.Context, size int, fn func(streams [][]RecordedEvent) error) error {
	if size < 1 {
		size = 200
	}
	after := uuid.Nil
	for {
		rows, err := s.pool.Query(ctx, "SELECT stream_id FROM streams WHERE stream_id > $1 ORDER BY stream_id LIMIT $2", after, size)
		if err != nil {
			return fmt.Errorf("list streams: %w", mapError(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return fmt.Errorf("list streams: %w", mapError(err))
		}
		if len(ids) == 0 {
			return nil
		}
		rows, err = s.pool.Query(ctx, selectEvents+"WHERE stream_id = ANY($1) ORDER BY stream_id, version", ids)
		if err != nil {
			return fmt.Errorf("read streams: %w", mapError(err))
		}
		events, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return fmt.Errorf("read streams: %w", mapError(err))
		}
		var page [][]RecordedEvent
		for i, e := range events {
			if i == 0 || e.StreamID != events[i-1].StreamID {
				page = append(page, nil)
			}
			page[len(page)-1] = append(page[len(page)-1], e)
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(ids) < size {
			return nil
		}
		after = ids[len(ids)-1]
	}
}
