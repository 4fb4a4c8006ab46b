package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// Blind indexes (SPEC §10 duplicates). The log has one random blind-index
// key, wrapped by a master key in blind_index_key like a data key: rotating
// the master key re-wraps it and every digest stays valid, where a key
// derived from the master key would change with it and recomputing the
// digests would need every customer's plaintext. Digests are computed where
// an append holds the plaintext anyway and written in its transaction
// (customer_blind_indexes); stored personal data is never decrypted for them.

// blindKeyAAD is what the blind-index key's wrapping is bound to (a data key
// is bound to its stream id; no stream id is nil).
var blindKeyAAD = uuid.Nil

// Duplicate names another customer that shares normalised values with one.
type Duplicate struct {
	Customer domain.CustomerCode `json:"customer"`
	Fields   []domain.MatchField `json:"fields"`
}

// blindEntry is one digest an event states.
type blindEntry struct {
	digest []byte
	field  domain.MatchField
}

// blindRow is a digest a stream states, to insert with its event.
type blindRow struct {
	blindEntry
	position int64
}

// blindOwner is a stream holding a digest (stored or earlier in the group).
type blindOwner struct {
	stream   uuid.UUID
	customer domain.CustomerCode
	field    domain.MatchField
}

// blindIndex returns the log's blind index, loading (or on a fresh log
// creating) its key once: the key never changes, only its wrapping.
func (s *Store) blindIndex(ctx context.Context) (*privacy.BlindIndex, error) {
	if bi := s.blind.Load(); bi != nil {
		return bi, nil
	}
	var wrapped []byte
	var keyID string
	err := s.pool.QueryRow(ctx, "SELECT wrapped_key, master_key_id FROM blind_index_key").Scan(&wrapped, &keyID)
	if errors.Is(err, pgx.ErrNoRows) {
		wrapped, keyID, err = s.createBlindKey(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("blind index key: %w", mapError(err))
	}
	master, err := s.keys.Key(keyID)
	if err != nil {
		return nil, fmt.Errorf("blind index key: %w: %w", ErrMasterKeyMismatch, err)
	}
	key, err := master.Unwrap(wrapped, blindKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("blind index key: %w", err)
	}
	bi, err := privacy.NewBlindIndex(key)
	if err != nil {
		return nil, err
	}
	s.blind.Store(bi)
	return bi, nil
}

// createBlindKey makes the log's blind-index key, wrapped by the active
// master key, and returns the stored one (another process's, if it won).
// Like an append it marks itself an appender and reads the active key after
// that, so a rotation (which waits for appenders) re-wraps it.
func (s *Store) createBlindKey(ctx context.Context) (wrapped []byte, keyID string, err error) {
	key, err := privacy.NewDataKey()
	if err != nil {
		return nil, "", err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE events IN ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		var head pgtype.Text
		if err := tx.QueryRow(ctx, "SELECT master_key_id FROM log_head").Scan(&head); err != nil {
			return err
		}
		master, err := s.wrappingKey(ctx, head)
		if err != nil {
			return err
		}
		w, err := master.Wrap(key, blindKeyAAD)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO blind_index_key (wrapped_key, master_key_id, created_at)
			VALUES ($1, $2, now()) ON CONFLICT (id) DO NOTHING`, w, master.ID()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT wrapped_key, master_key_id FROM blind_index_key").Scan(&wrapped, &keyID)
	})
	return wrapped, keyID, err
}

// blindEntries computes the digests each event of the requests states
// ([request][event]); nil when none states any.
func (s *Store) blindEntries(ctx context.Context, reqs []domain.AppendRequest) ([][][]blindEntry, [][]byte, error) {
	var out [][][]blindEntry
	var digests [][]byte
	var bi *privacy.BlindIndex
	for ri, r := range reqs {
		for ei, e := range r.Events {
			values := domain.MatchValues(e.Data)
			if len(values) == 0 {
				continue
			}
			if bi == nil {
				var err error
				if bi, err = s.blindIndex(ctx); err != nil {
					return nil, nil, err
				}
				out = make([][][]blindEntry, len(reqs))
			}
			if out[ri] == nil {
				out[ri] = make([][]blindEntry, len(r.Events))
			}
			for _, v := range values {
				d := bi.Digest(string(v.Field), v.Value)
				out[ri][ei] = append(out[ri][ei], blindEntry{digest: d, field: v.Field})
				digests = append(digests, d)
			}
		}
	}
	return out, digests, nil
}

// queueStoredOwners reads who already holds the group's digests.
func queueStoredOwners(b *pgx.Batch, digests [][]byte, into map[string][]blindOwner) {
	b.Queue("SELECT digest, stream_id, customer, field FROM customer_blind_indexes WHERE digest = ANY($1)", digests).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var d []byte
			var o blindOwner
			if err := rows.Scan(&d, &o.stream, &o.customer, &o.field); err != nil {
				return err
			}
			into[string(d)] = append(into[string(d)], o)
		}
		return rows.Err()
	})
}

// blindGroup is the group's view of digests while its rows are built: the
// stored owners plus the streams of this group that stated one earlier.
type blindGroup struct {
	owners map[string][]blindOwner
}

// state records that stream w states the entries with the event at
// position, and returns the other customers that hold them. undo reverts
// it (the request failed).
func (g *blindGroup) state(w *streamWork, entries []blindEntry, position int64) (dups []Duplicate, undo func()) {
	rowsBefore := len(w.blind)
	var added []string
	for _, e := range entries {
		key := string(e.digest)
		if slices.ContainsFunc(w.blind, func(r blindRow) bool { return bytes.Equal(r.digest, e.digest) }) ||
			slices.ContainsFunc(g.owners[key], func(o blindOwner) bool { return o.stream == w.id }) {
			// Stated before: its first statement decided what it matched.
			continue
		}
		for _, o := range g.owners[key] {
			if len(dups) >= MaxDuplicates {
				break // a value many customers share (a switchboard) stays cheap
			}
			dups = addDuplicate(dups, o.customer, e.field)
		}
		w.blind = append(w.blind, blindRow{blindEntry: e, position: position})
		g.owners[key] = append(g.owners[key], blindOwner{stream: w.id, customer: w.customer, field: e.field})
		added = append(added, key)
	}
	return dups, func() {
		w.blind = w.blind[:rowsBefore]
		for _, key := range added {
			g.owners[key] = g.owners[key][:len(g.owners[key])-1]
		}
	}
}

// MaxDuplicates bounds the customers named as one customer's possible
// duplicates (in a result, on a card).
const MaxDuplicates = 20

// addDuplicate adds customer c, matched on field f; a new customer beyond
// MaxDuplicates is left out.
func addDuplicate(dups []Duplicate, c domain.CustomerCode, f domain.MatchField) []Duplicate {
	for i := range dups {
		if dups[i].Customer == c {
			if !slices.Contains(dups[i].Fields, f) {
				dups[i].Fields = append(dups[i].Fields, f)
			}
			return dups
		}
	}
	if len(dups) >= MaxDuplicates {
		return dups
	}
	return append(dups, Duplicate{Customer: c, Fields: []domain.MatchField{f}})
}

// PossibleDuplicates returns, for each of the streams, the customers that
// stated one of its normalised phone, email or legal name before it did
// (the later of two customers is the possible duplicate of the earlier).
// Erased customers have no digests left, so they match nobody. With asOf
// set, only values stated by events recorded by then count (as_of
// documents show what was shown then, less what erasure removed since).
func (s *Store) PossibleDuplicates(ctx context.Context, streams []uuid.UUID, asOf time.Time) (map[uuid.UUID][]Duplicate, error) {
	out := map[uuid.UUID][]Duplicate{}
	if len(streams) == 0 {
		return out, nil
	}
	var until pgtype.Timestamptz
	if !asOf.IsZero() {
		until = pgtype.Timestamptz{Time: asOf, Valid: true}
	}
	rows, err := s.pool.Query(ctx, `SELECT a.stream_id, b.customer, a.field FROM customer_blind_indexes a
		JOIN customer_blind_indexes b ON b.digest = a.digest AND b.stream_id <> a.stream_id AND b.position < a.position
		WHERE a.stream_id = ANY($1) AND ($2::timestamptz IS NULL
			OR (SELECT recorded_at FROM events WHERE position = a.position) <= $2)
		ORDER BY a.stream_id, b.customer, array_position(ARRAY['name','phone','email'], a.field)`, streams, until)
	if err != nil {
		return nil, fmt.Errorf("possible duplicates: %w", mapError(err))
	}
	var id uuid.UUID
	var c domain.CustomerCode
	var f domain.MatchField
	_, err = pgx.ForEachRow(rows, []any{&id, &c, &f}, func() error {
		out[id] = addDuplicate(out[id], c, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("possible duplicates: %w", mapError(err))
	}
	return out, nil
}

// rewrapBlindKey re-wraps the blind-index key with the active master key.
func (s *Store) rewrapBlindKey(ctx context.Context, active privacy.MasterKey) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var wrapped []byte
		var keyID string
		err := tx.QueryRow(ctx, "SELECT wrapped_key, master_key_id FROM blind_index_key FOR UPDATE").Scan(&wrapped, &keyID)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && keyID == active.ID()) {
			return nil
		}
		if err != nil {
			return err
		}
		nw, err := s.rewrap(wrapped, keyID, blindKeyAAD, active)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE blind_index_key SET wrapped_key = $1, master_key_id = $2", nw, active.ID())
		return err
	})
	if err != nil {
		return fmt.Errorf("rewrap blind index key: %w", mapError(err))
	}
	return nil
}
