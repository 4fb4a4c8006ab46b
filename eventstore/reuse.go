package eventstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// storedEvent is a recorded event whose event_id is sent again: what the
// log holds of it, enough to tell a duplicate (same content, see
// domain.SameContent) from a reused event_id. Nothing beyond the log row is
// stored for this: personal fields are compared in plaintext after opening
// the stored seals with the customer's data key (ciphertexts differ per seal).
type storedEvent struct {
	result     Result
	typ        domain.EventType
	occurredAt time.Time
	data       []byte
	metadata   []byte
}

const selectStoredEvents = "SELECT event_id, customer, version, position, recorded_at, type, occurred_at, data, metadata FROM events WHERE event_id = ANY($1)"

func scanStoredEvent(rows pgx.Rows) (storedEvent, error) {
	var st storedEvent
	r := &st.result
	err := rows.Scan(&r.EventID, &r.Customer, &r.Version, &r.Position, &r.RecordedAt, &st.typ, &st.occurredAt, &st.data, &st.metadata)
	r.Duplicate = true
	return st, err
}

// sealed reports whether the stored data holds sealed personal fields.
func (st storedEvent) sealed() bool {
	return bytes.Contains(st.data, []byte(privacy.SealedPrefix))
}

// loadKeysToCompare reads the data keys of streams whose stored events must be
// opened to be compared and whose keys the group did not read already (one
// more round trip, only when an event_id with sealed data is sent again).
func (s *Store) loadKeysToCompare(ctx context.Context, tx batchSender, existing map[uuid.UUID]storedEvent,
	streams map[uuid.UUID]*streamWork, keyWanted map[uuid.UUID]bool,
) error {
	var ids []uuid.UUID
	for _, st := range existing {
		id := st.result.Customer.StreamID()
		if _, ok := streams[id]; ok && st.sealed() && !keyWanted[id] {
			keyWanted[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue("SELECT stream_id, wrapped_key, master_key_id FROM customer_keys WHERE stream_id = ANY($1)", ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			k := &keyWork{loaded: true}
			if err := rows.Scan(&id, &k.wrapped, &k.keyID); err != nil {
				return err
			}
			streams[id].key = k
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append: read data keys: %w", mapError(err))
	}
	return nil
}

// openerFor returns the stream's data-key cipher without ever creating a
// key; nil when the stream has none (never had one, or erased).
func (s *Store) openerFor(w *streamWork) (*privacy.Cipher, error) {
	k := w.key
	if k == nil || k.destroyed || (!k.insert && (!k.loaded || k.wrapped == nil)) {
		return nil, nil
	}
	return s.cipherFor(w)
}

// sameAsStored compares an envelope with the stored event of its event_id.
// When the stored personal fields cannot be opened any more (the customer
// was erased), personal fields are left out of the comparison on both sides.
func (s *Store) sameAsStored(e *domain.Envelope, st storedEvent, w *streamWork) (bool, error) {
	if st.result.Customer != e.Customer || st.typ != e.Type {
		return false, nil
	}
	var meta storedMetadata
	if err := json.Unmarshal(st.metadata, &meta); err != nil {
		return false, fmt.Errorf("event %s metadata: %w", st.result.EventID, err)
	}
	pd := &PersonalData{ciphers: map[uuid.UUID]*privacy.Cipher{}}
	sent := *e
	if st.sealed() {
		c, err := s.openerFor(w)
		if err != nil {
			return false, err
		}
		if c != nil {
			pd.ciphers[w.id] = c
		} else if sent.Data, err = domain.MapPersonal(sent.Data, w.state.Individual, func(domain.PersonalField, string) (*string, error) { return nil, nil }); err != nil {
			return false, err
		}
	}
	// Reveal opens what it can; a seal without its key reads as absent.
	data, err := pd.Reveal(RecordedEvent{StreamID: w.id, EventID: st.result.EventID, Type: st.typ, Data: st.data}, Plaintext)
	if err != nil {
		return false, err
	}
	stored := domain.Envelope{
		Type: st.typ, Customer: st.result.Customer, Source: meta.Source, CorrelationID: meta.CorrelationID,
		OccurredOffset: meta.OccurredOffset, Data: data,
	}
	// An absent occurred_at was stored as the time of recording, without an offset.
	if meta.OccurredOffset != "" || !st.occurredAt.Equal(st.result.RecordedAt) {
		stored.OccurredAt = st.occurredAt
	}
	return domain.SameContent(&sent, &stored)
}

// newEvent is an event recorded earlier in the same group.
type newEvent struct {
	result   Result
	envelope *domain.Envelope
}

// findDuplicates answers, for each event of a request that carries an
// event_id already recorded (in the log, earlier in the group or earlier in
// the request), with the recorded result; the same event_id with different
// content is an *EventError (domain.ErrEventIDReused). dupOf maps a repeated
// index of the request to its first; allDuplicates says nothing is new.
func (s *Store) findDuplicates(req domain.AppendRequest, streams map[uuid.UUID]*streamWork,
	existing map[uuid.UUID]storedEvent, newIDs map[uuid.UUID]newEvent,
) (results []Result, dupOf map[int]int, allDuplicates bool, err error) {
	results = make([]Result, len(req.Events))
	allDuplicates = true
	firstInReq := map[uuid.UUID]int{}
	dupOf = map[int]int{}
	reused := func(i int) error {
		return &EventError{Index: i, Err: &domain.RuleError{Field: "event_id", Err: domain.ErrEventIDReused}}
	}
	for i := range req.Events {
		e := &req.Events[i]
		if e.EventID == uuid.Nil {
			allDuplicates = false
			continue
		}
		var same bool
		if st, ok := existing[e.EventID]; ok {
			if same, err = s.sameAsStored(e, st, streams[e.Customer.StreamID()]); err != nil || !same {
				return nil, nil, false, cmp.Or(err, reused(i))
			}
			results[i] = st.result
		} else if n, ok := newIDs[e.EventID]; ok {
			if same, err = domain.SameContent(e, n.envelope); err != nil || !same {
				return nil, nil, false, cmp.Or(err, reused(i))
			}
			results[i] = n.result
			results[i].Duplicate = true
		} else if j, ok := firstInReq[e.EventID]; ok {
			if same, err = domain.SameContent(e, &req.Events[j]); err != nil || !same {
				return nil, nil, false, cmp.Or(err, reused(i))
			}
			dupOf[i] = j
		} else {
			firstInReq[e.EventID] = i
			allDuplicates = false
		}
	}
	return results, dupOf, allDuplicates, nil
}
