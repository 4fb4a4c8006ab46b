package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// groupHead is what a group writes beside its rows.
type groupHead struct {
	recordedAt  time.Time
	masterKeyID string // the active master key, which wraps the group's new data keys
}

// write stores the group's rows and the updated write model; it all commits
// with the caller's transaction (with commit, in the same round trip).
func (s *Store) write(ctx context.Context, tx batchSender, rows []eventRow, streams map[uuid.UUID]*streamWork, head groupHead, commit bool) error {
	recordedAt := head.recordedAt
	// Rows go in in stream order: two groups that both open the same new
	// streams then wait for each other's index entries in one order, and
	// the second fails on the unique (stream_id, version) instead of
	// deadlocking (the store retries it).
	slices.SortFunc(rows, func(a, b eventRow) int {
		if c := bytes.Compare(a.streamID[:], b.streamID[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.version, b.version)
	})
	b := &pgx.Batch{}
	if len(rows) > copyMinRows {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"position", "stream_id", "customer", "version", "event_id", "type", "occurred_at", "recorded_at", "data", "metadata", "hash"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := &rows[i]
				return []any{r.position, r.streamID, r.customer, r.version, r.eventID, r.typ, r.occurredAt, r.recordedAt, r.data, r.metadata, r.hash}, nil
			}))
		if err != nil {
			return fmt.Errorf("append: insert events: %w", mapError(err))
		}
	} else {
		queueInsertEvents(b, rows)
	}

	var (
		sIDs                 []uuid.UUID
		sCustomers           []string
		sVersions            []int64
		sHashes              [][]byte
		sRegistered, sErased []bool
		sIndividual          []bool
		sOrdered             []int64
		sRecordedAt          []time.Time
		oStreams             []uuid.UUID
		oIDs                 []string
		oAmounts, oRefunded  []int64
		kStreams             []uuid.UUID
		kWrapped             [][]byte
		destroyed            []uuid.UUID
		blind                blindColumns
	)
	for _, w := range streams {
		if !w.changed {
			continue
		}
		sIDs = append(sIDs, w.id)
		sCustomers = append(sCustomers, string(w.customer))
		sVersions = append(sVersions, w.state.Version)
		sHashes = append(sHashes, w.lastHash)
		sRegistered = append(sRegistered, w.state.Registered)
		sErased = append(sErased, w.state.Erased)
		sIndividual = append(sIndividual, w.state.Individual)
		sOrdered = append(sOrdered, int64(w.state.Ordered))
		sRecordedAt = append(sRecordedAt, recordedAt)
		for _, oid := range w.state.Touched {
			ob := w.state.Orders[oid]
			oStreams = append(oStreams, w.id)
			oIDs = append(oIDs, oid)
			oAmounts = append(oAmounts, int64(ob.Amount))
			oRefunded = append(oRefunded, int64(ob.Refunded))
		}
		if !w.state.Erased {
			blind.add(w)
		}
		if k := w.key; k != nil {
			switch {
			case k.destroyed:
				destroyed = append(destroyed, w.id)
			case k.insert:
				kStreams = append(kStreams, w.id)
				kWrapped = append(kWrapped, k.wrapped)
			}
		}
	}
	b.Queue(`INSERT INTO streams (stream_id, customer, version, last_hash, registered, erased, individual, ordered, recorded_at)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[], $5::bool[], $6::bool[], $7::bool[], $8::bigint[], $9::timestamptz[])
		ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, last_hash = EXCLUDED.last_hash,
			registered = EXCLUDED.registered, erased = EXCLUDED.erased, individual = EXCLUDED.individual, ordered = EXCLUDED.ordered,
			recorded_at = EXCLUDED.recorded_at`,
		sIDs, sCustomers, sVersions, sHashes, sRegistered, sErased, sIndividual, sOrdered, sRecordedAt)
	if len(oIDs) > 0 {
		// Touched may name an order twice (placed then refunded in one group):
		// DISTINCT ON keeps one row, and both carry the final balance.
		b.Queue(`INSERT INTO stream_orders (stream_id, order_id, amount, refunded)
			SELECT DISTINCT ON (stream_id, order_id) * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS o(stream_id, order_id, amount, refunded)
			ON CONFLICT (stream_id, order_id) DO UPDATE SET refunded = EXCLUDED.refunded`,
			oStreams, oIDs, oAmounts, oRefunded)
	}
	if len(kStreams) > 0 {
		b.Queue(`INSERT INTO customer_keys (stream_id, wrapped_key, master_key_id, created_at)
			SELECT k.stream_id, k.wrapped, $3, $4 FROM unnest($1::uuid[], $2::bytea[]) AS k(stream_id, wrapped)`,
			kStreams, kWrapped, head.masterKeyID, recordedAt)
	}
	if len(destroyed) > 0 {
		// Crypto-shredding: without the wrapped key the ciphertexts in the log
		// are noise. Events are not touched, so the hash chain still verifies.
		b.Queue(`INSERT INTO customer_keys (stream_id, wrapped_key, master_key_id, created_at, destroyed_at)
			SELECT id, NULL, $2, $3, $3 FROM unnest($1::uuid[]) AS id
			ON CONFLICT (stream_id) DO UPDATE SET wrapped_key = NULL, destroyed_at = EXCLUDED.destroyed_at`,
			destroyed, head.masterKeyID, recordedAt)
	}
	if len(blind.digests) > 0 {
		// A digest the stream stated before stays with its first position.
		b.Queue(`INSERT INTO customer_blind_indexes (digest, stream_id, customer, field, position)
			SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::text[], $4::text[], $5::bigint[])
			ON CONFLICT (digest, stream_id) DO NOTHING`,
			blind.digests, blind.streams, blind.customers, blind.fields, blind.positions)
	}
	if len(destroyed) > 0 {
		// An erased customer's digests go with its data key: nobody is
		// flagged as its duplicate any more.
		b.Queue("DELETE FROM customer_blind_indexes WHERE stream_id = ANY($1)", destroyed)
	}
	if !commit {
		// In a caller's transaction (an import, an alert action: few and
		// short) the notification commits with it; the store's own groups
		// notify after their commit (runNotifier).
		var top int64
		for i := range rows {
			top = max(top, rows[i].position)
		}
		b.Queue("SELECT pg_notify($1, $2)", NotifyChannel, strconv.FormatInt(top, 10))
	}
	if commit {
		// A statement that fails above makes the server skip the rest of
		// the batch, COMMIT included: all or nothing still holds.
		b.Queue("COMMIT")
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append: write events and stream state: %w", mapError(err))
	}
	// Reset per-group bookkeeping so the same work map is not written twice.
	for _, w := range streams {
		w.state.Touched, w.blind = nil, nil
		if w.key != nil {
			w.key.insert = false
		}
	}
	return nil
}

// copyMinRows is the group size above which events go in by COPY. Smaller
// groups (the single-event requests of many clients) insert with the rest of
// the write batch: COPY is a round trip of its own, and below a few hundred
// rows the round trip costs more than COPY saves. It was 64; at a steady
// 5,000 single-event appends a second, groups of 65–256 form after every
// stall, and inserting them in the write batch took the append's p99 from
// 102–138 to 82–95 ms over three runs each (docs/BENCHMARKS.md, session 6).
// Batch requests (hundreds of events each) still go by COPY.
const copyMinRows = 256

// queueInsertEvents queues the rows as one INSERT … SELECT FROM unnest.
// data and metadata travel as text and become json unchanged: json keeps
// the exact bytes the hash chain covers.
func queueInsertEvents(b *pgx.Batch, rows []eventRow) {
	n := len(rows)
	var (
		positions, versions    = make([]int64, n), make([]int64, n)
		streamIDs, eventIDs    = make([]uuid.UUID, n), make([]uuid.UUID, n)
		customers, types       = make([]string, n), make([]string, n)
		occurredAt, recordedAt = make([]time.Time, n), make([]time.Time, n)
		data, metadata         = make([]string, n), make([]string, n)
		hashes                 = make([][]byte, n)
	)
	for i := range rows {
		r := &rows[i]
		positions[i], streamIDs[i], customers[i], versions[i], eventIDs[i] = r.position, r.streamID, r.customer, r.version, r.eventID
		types[i], occurredAt[i], recordedAt[i] = r.typ, r.occurredAt, r.recordedAt
		data[i], metadata[i], hashes[i] = string(r.data), string(r.metadata), r.hash
	}
	b.Queue(`INSERT INTO events (position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data, metadata, hash)
		SELECT p, s, c, v, e, t, o, r, d::json, m::json, h
		FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::bytea[])
			AS u(p, s, c, v, e, t, o, r, d, m, h)`,
		positions, streamIDs, customers, versions, eventIDs, types, occurredAt, recordedAt, data, metadata, hashes)
}

// NotifyChannel is the PostgreSQL NOTIFY channel signalled after append
// commits (see Store.runNotifier); its payload is a recent position.
const NotifyChannel = "segments_events_appended"

// blindColumns are the customer_blind_indexes rows of a group, by column.
type blindColumns struct {
	digests   [][]byte
	streams   []uuid.UUID
	customers []string
	fields    []string
	positions []int64
}

func (c *blindColumns) add(w *streamWork) {
	for _, r := range w.blind {
		c.digests = append(c.digests, r.digest)
		c.streams = append(c.streams, w.id)
		c.customers = append(c.customers, string(w.customer))
		c.fields = append(c.fields, string(r.field))
		c.positions = append(c.positions, r.position)
	}
}
