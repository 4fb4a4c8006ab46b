package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// RecordedEvent is one event as stored in the log. Data holds the stored
// JSON, with personal fields sealed.
type RecordedEvent struct {
	Position   int64
	StreamID   uuid.UUID
	Customer   domain.CustomerCode
	Version    int64
	EventID    uuid.UUID
	Type       domain.EventType
	OccurredAt time.Time
	// OccurredOffset is the offset occurred_at was sent with ("" if none).
	OccurredOffset string
	RecordedAt     time.Time
	Data           []byte
	Source         string
	CorrelationID  string
	Hash           []byte
	// metadata is the stored metadata as it is in the row: the hash covers
	// these bytes, not a re-encoding of Source and CorrelationID (which would
	// let an added member go unnoticed).
	metadata []byte
}

const selectEvents = `SELECT position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data, metadata, hash FROM events `

func scanEvent(row pgx.CollectableRow) (RecordedEvent, error) {
	var e RecordedEvent
	var meta []byte
	if err := row.Scan(&e.Position, &e.StreamID, &e.Customer, &e.Version, &e.EventID, &e.Type,
		&e.OccurredAt, &e.RecordedAt, &e.Data, &meta, &e.Hash); err != nil {
		return e, err
	}
	var m storedMetadata
	if err := json.Unmarshal(meta, &m); err != nil {
		return e, fmt.Errorf("event %d metadata: %w", e.Position, err)
	}
	e.Source, e.CorrelationID, e.OccurredOffset, e.metadata = m.Source, m.CorrelationID, m.OccurredOffset, meta
	return e, nil
}

// ReadStream returns up to limit events of a customer's stream with version
// greater than afterVersion, in version order. ErrNotFound when the stream
// has no events at all.
func (s *Store) ReadStream(ctx context.Context, customer domain.CustomerCode, afterVersion int64, limit int) ([]RecordedEvent, error) {
	rows, err := s.pool.Query(ctx, selectEvents+"WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3",
		customer.StreamID(), afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", customer, mapError(err))
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", customer, mapError(err))
	}
	if len(events) == 0 {
		if _, err := s.StreamVersion(ctx, customer); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// StreamVersion returns the version of a customer's stream, ErrNotFound when
// it has none.
func (s *Store) StreamVersion(ctx context.Context, customer domain.CustomerCode) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT version FROM streams WHERE stream_id = $1", customer.StreamID()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("customer %s: %w", customer, mapError(err))
	}
	return v, nil
}

// ReadAll returns up to limit events with position greater than after, in
// position order, as far as they are committed now. Positions commit out of
// order: a reader that tails the log and must not pass an event committed
// late reads up to a settled position instead (ReadUpTo, AwaitSettled).
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]RecordedEvent, error) {
	return s.ReadUpTo(ctx, after, math.MaxInt64, limit)
}

// ReadUpTo returns up to limit events with after < position ≤ upTo, in
// position order. With upTo from AwaitSettled, nothing in that range can
// appear later: tailing the log this way never skips an event.
func (s *Store) ReadUpTo(ctx context.Context, after, upTo int64, limit int) ([]RecordedEvent, error) {
	rows, err := s.pool.Query(ctx, selectEvents+"WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3", after, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, mapError(err))
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, mapError(err))
	}
	return events, nil
}

// Head returns the highest committed position and its recorded_at (zero
// when the log is empty). Positions have gaps, so it is not a count.
func (s *Store) Head(ctx context.Context) (int64, time.Time, error) {
	var pos int64
	var at time.Time
	err := s.pool.QueryRow(ctx, "SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1").Scan(&pos, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read log head: %w", mapError(err))
	}
	return pos, at, nil
}

// Checkpoint returns a named publication checkpoint (0 when unset).
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, "SELECT position FROM publication_checkpoints WHERE name = $1", name).Scan(&pos)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("read checkpoint %s: %w", name, mapError(err))
	}
	return pos, nil
}

// SaveCheckpoint durably records a publication checkpoint.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO publication_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at`, name, position)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, mapError(err))
	}
	return nil
}

// PersonalData opens the sealed personal fields of some customers. It holds
// each customer's cipher, or nothing when the customer's key was destroyed.
// A key is unwrapped when a sealed field first needs it: a list or an
// export of enterprises, whose names are not sealed, unwraps none.
type PersonalData struct {
	ciphers map[uuid.UUID]*privacy.Cipher
	wrapped map[uuid.UUID]wrappedKey // keys loaded, not unwrapped yet
	unwrap  func(w wrappedKey, stream uuid.UUID) ([]byte, error)
	erased  map[uuid.UUID]bool
	// individual: streams of persons, whose name and region are personal.
	individual map[uuid.UUID]bool
}

// wrappedKey is a customer's data key as stored, and the id of the master
// key that wrapped it.
type wrappedKey struct {
	key   []byte
	keyID string
}

// OpenPersonalData loads the data keys of the given streams (each is
// unwrapped when first used).
func (s *Store) OpenPersonalData(ctx context.Context, streams []uuid.UUID) (*PersonalData, error) {
	pd := &PersonalData{ciphers: map[uuid.UUID]*privacy.Cipher{}, wrapped: map[uuid.UUID]wrappedKey{}, erased: map[uuid.UUID]bool{},
		unwrap: func(w wrappedKey, stream uuid.UUID) ([]byte, error) { return s.unwrap(w.key, w.keyID, stream) }}
	if len(streams) == 0 {
		return pd, nil
	}
	var err error
	if pd.individual, err = s.individualStreams(ctx, streams); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT stream_id, wrapped_key, master_key_id FROM customer_keys WHERE stream_id = ANY($1)", streams)
	if err != nil {
		return nil, fmt.Errorf("load data keys: %w", mapError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var wrapped []byte
		var keyID string
		if err := rows.Scan(&id, &wrapped, &keyID); err != nil {
			return nil, fmt.Errorf("load data keys: %w", mapError(err))
		}
		if wrapped == nil {
			pd.erased[id] = true
			continue
		}
		pd.wrapped[id] = wrappedKey{key: wrapped, keyID: keyID}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load data keys: %w", mapError(err))
	}
	return pd, nil
}

// Erased reports whether the stream's key was destroyed.
func (pd *PersonalData) Erased(stream uuid.UUID) bool { return pd.erased[stream] }

// cipher is the stream's cipher, its key unwrapped on first use; nil when
// the stream has no key.
func (pd *PersonalData) cipher(stream uuid.UUID) (*privacy.Cipher, error) {
	if c := pd.ciphers[stream]; c != nil {
		return c, nil
	}
	w, ok := pd.wrapped[stream]
	if !ok {
		return nil, nil
	}
	key, err := pd.unwrap(w, stream)
	if err != nil {
		return nil, fmt.Errorf("data key of stream %s: %w", stream, err)
	}
	c, err := privacy.NewCipher(key, stream)
	if err != nil {
		return nil, err
	}
	delete(pd.wrapped, stream)
	pd.ciphers[stream] = c
	return c, nil
}

// Disclosure says how personal fields appear in output.
type Disclosure int

const (
	// Masked shows 李某, 138****5678, l***@example.com.
	Masked Disclosure = iota
	// Plaintext shows the decrypted values (admin only).
	Plaintext
)
