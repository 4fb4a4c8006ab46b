package eventstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/privacy"
)

// Master keys. The log's head names the active master key (its id, a key
// check value); appends read it (an activation then waits for the appends in
// flight, AwaitSettled) and wrap new data keys with it, and every wrapped key carries the id of the key that wrapped it, so
// readers unwrap each with its own key. The master_keys table lists every key
// the log has used; one is retired once no wrapped key references it.

// rewrapBatch bounds the data keys re-wrapped in one transaction, so rotation
// never holds many row locks or one long transaction.
const rewrapBatch = 500

// CheckKeyring is the start-up check of a process's keyring against the log.
// A fresh log adopts the keyring's preferred key; otherwise the keyring must
// hold the active key and every key not yet retired, or the process would
// write data keys nobody else can read (or fail to read them): that is
// ErrMasterKeyMismatch, naming key ids only. It returns the active key's id.
func (s *Store) CheckKeyring(ctx context.Context) (string, error) {
	var active string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var head pgtype.Text
		if err := tx.QueryRow(ctx, "SELECT master_key_id FROM log_head FOR UPDATE").Scan(&head); err != nil {
			return err
		}
		if !head.Valid {
			active = s.keys.Preferred().ID()
			return adoptKey(ctx, tx, active)
		}
		active = head.String
		rows, err := tx.Query(ctx, "SELECT key_id FROM master_keys WHERE retired_at IS NULL OR key_id = $1 ORDER BY activated_at", active)
		if err != nil {
			return err
		}
		needed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var missing []string
		for _, id := range needed {
			if _, err := s.keys.Key(id); err != nil {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: the log's active master key is %s and keys %s still wrap data keys; this process's keyring holds %s",
				ErrMasterKeyMismatch, active, strings.Join(missing, ", "), strings.Join(s.keys.IDs(), ", "))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrMasterKeyMismatch) {
			return "", err
		}
		return "", fmt.Errorf("check master key: %w", mapError(err))
	}
	return active, nil
}

// adoptKey makes id the log's active key (the caller holds log_head's lock).
func adoptKey(ctx context.Context, tx pgx.Tx, id string) error {
	if _, err := tx.Exec(ctx, "UPDATE log_head SET master_key_id = $1", id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO master_keys (key_id, activated_at) VALUES ($1, now())
		ON CONFLICT (key_id) DO UPDATE SET activated_at = now(), retired_at = NULL`, id)
	return err
}

// wrappingKey is the key an append wraps new data keys with: the log's active
// key. On a fresh log (head is NULL) the keyring's preferred key is adopted
// first, in a transaction of its own (CheckKeyring): adopting inside the
// append would hold log_head's row lock until the append commits, and every
// other append on the fresh log would wait for it.
func (s *Store) wrappingKey(ctx context.Context, head pgtype.Text) (privacy.MasterKey, error) {
	id := head.String
	if !head.Valid {
		var err error
		if id, err = s.CheckKeyring(ctx); err != nil {
			return privacy.MasterKey{}, err
		}
	}
	key, err := s.keys.Key(id)
	if err != nil {
		return key, fmt.Errorf("%w: %w", ErrMasterKeyMismatch, err)
	}
	return key, nil
}

// ActivateMasterKey makes key the log's active master key: every append that
// commits after it wraps new data keys with key. The key must be in the
// store's keyring (and in that of every running process: a file keyring
// re-reads its file). Data keys wrapped earlier stay readable with their own
// key until RewrapKeys re-wraps them.
func (s *Store) ActivateMasterKey(ctx context.Context, key privacy.MasterKey) error {
	if _, err := s.keys.Key(key.ID()); err != nil {
		return fmt.Errorf("activate master key: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM log_head FOR UPDATE"); err != nil {
			return err
		}
		return adoptKey(ctx, tx, key.ID())
	})
	if err != nil {
		return fmt.Errorf("activate master key: %w", mapError(err))
	}
	// Appends read the active key after they mark themselves as appenders;
	// those in flight may have read the old one. Once they have ended every
	// data key the old key wraps is visible to RewrapKeys.
	if _, err := s.AwaitSettled(ctx); err != nil {
		return fmt.Errorf("activate master key: wait for appends in flight: %w", err)
	}
	return nil
}

// RewrapReport says what RewrapKeys did and what still references old keys.
type RewrapReport struct {
	Active    string
	Rewrapped int
	// Retired lists the keys that no wrapped key references any more.
	Retired []string
	// Remaining counts wrapped keys per older master key still in use
	// (empty when rotation finished).
	Remaining map[string]int64
}

// RewrapKeys re-wraps every live data key that an older master key wraps
// with the active one, a batch per transaction, while appends and reads go
// on (each wrapped key and its key id change together in one row). Then it
// retires the older keys that nothing references. The blind-index key is
// re-wrapped the same way (its digests stay valid). Events are not touched;
// destroyed keys stay destroyed.
func (s *Store) RewrapKeys(ctx context.Context) (RewrapReport, error) {
	var rep RewrapReport
	// An append that read an older active key before an activation in
	// another process may still be in flight: its data key must be visible
	// below, or the older key would be retired while it wraps one.
	if _, err := s.AwaitSettled(ctx); err != nil {
		return rep, fmt.Errorf("rewrap data keys: wait for appends in flight: %w", err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT master_key_id FROM log_head").Scan(&rep.Active); err != nil {
		return rep, fmt.Errorf("rewrap data keys: %w", mapError(err))
	}
	active, err := s.keys.Key(rep.Active)
	if err != nil {
		return rep, fmt.Errorf("rewrap data keys: %w", err)
	}
	after := uuid.Nil
	for {
		n, last, err := s.rewrapBatch(ctx, active, after)
		if err != nil {
			return rep, err
		}
		rep.Rewrapped += n
		if last == uuid.Nil {
			break
		}
		after = last
	}
	if err := s.rewrapBlindKey(ctx, active); err != nil {
		return rep, err
	}
	if err := s.retireUnusedKeys(ctx, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// rewrapBatch re-wraps the next batch of data keys after the stream id; last
// is the batch's last stream id, uuid.Nil when there was nothing left.
func (s *Store) rewrapBatch(ctx context.Context, active privacy.MasterKey, after uuid.UUID) (n int, last uuid.UUID, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT stream_id, wrapped_key, master_key_id FROM customer_keys
			WHERE stream_id > $1 AND wrapped_key IS NOT NULL AND master_key_id <> $2
			ORDER BY stream_id LIMIT $3 FOR UPDATE`, after, active.ID(), rewrapBatch)
		if err != nil {
			return err
		}
		var ids []uuid.UUID
		var wrapped [][]byte
		for rows.Next() {
			var id uuid.UUID
			var w []byte
			var keyID string
			if err := rows.Scan(&id, &w, &keyID); err != nil {
				rows.Close()
				return err
			}
			nw, err := s.rewrap(w, keyID, id, active)
			if err != nil {
				rows.Close()
				return err
			}
			ids, wrapped = append(ids, id), append(wrapped, nw)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE customer_keys k SET wrapped_key = u.w, master_key_id = $3
			FROM unnest($1::uuid[], $2::bytea[]) AS u(id, w) WHERE k.stream_id = u.id`, ids, wrapped, active.ID())
		n, last = len(ids), ids[len(ids)-1]
		return err
	})
	if err != nil {
		return 0, uuid.Nil, fmt.Errorf("rewrap data keys: %w", mapError(err))
	}
	return n, last, nil
}

func (s *Store) rewrap(wrapped []byte, keyID string, stream uuid.UUID, to privacy.MasterKey) ([]byte, error) {
	dataKey, err := s.unwrap(wrapped, keyID, stream)
	if err != nil {
		return nil, fmt.Errorf("data key of stream %s: %w", stream, err)
	}
	return to.Wrap(dataKey, stream)
}

// unwrap opens a stream's data key with the master key that wrapped it.
func (s *Store) unwrap(wrapped []byte, keyID string, stream uuid.UUID) ([]byte, error) {
	master, err := s.keys.Key(keyID)
	if err != nil {
		return nil, err
	}
	return master.Unwrap(wrapped, stream)
}

// retireUnusedKeys counts the wrapped keys of older master keys and retires
// every older key with none. No new reference can appear meanwhile: appends
// wrap with the active key only.
func (s *Store) retireUnusedKeys(ctx context.Context, rep *RewrapReport) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The blind-index key counts as one more wrapped key.
		rows, err := tx.Query(ctx, `SELECT master_key_id, count(*) FROM (
				SELECT master_key_id FROM customer_keys WHERE wrapped_key IS NOT NULL
				UNION ALL SELECT master_key_id FROM blind_index_key) k
			WHERE master_key_id <> $1 GROUP BY master_key_id`, rep.Active)
		if err != nil {
			return err
		}
		rep.Remaining = map[string]int64{}
		var id string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { rep.Remaining[id] = n; return nil }); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE master_keys SET retired_at = now()
			WHERE retired_at IS NULL AND key_id <> $1 AND key_id <> ALL($2::text[]) RETURNING key_id`, rep.Active, append([]string{}, slices.Collect(maps.Keys(rep.Remaining))...))
		if err != nil {
			return err
		}
		rep.Retired, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return fmt.Errorf("retire master keys: %w", mapError(err))
	}
	slices.Sort(rep.Retired)
	return nil
}

// RetiredMasterKeys lists the keys the log no longer needs (no wrapped key
// references them); a keyring file may drop them.
func (s *Store) RetiredMasterKeys(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT key_id FROM master_keys WHERE retired_at IS NOT NULL ORDER BY key_id")
	if err != nil {
		return nil, fmt.Errorf("retired master keys: %w", mapError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("retired master keys: %w", mapError(err))
	}
	return ids, nil
}
