package eventstore

import (
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// eventRow is one row of the events table.
type eventRow struct {
	position   int64
	streamID   uuid.UUID
	customer   string
	version    int64
	eventID    uuid.UUID
	typ        string
	occurredAt time.Time
	recordedAt time.Time
	data       []byte
	metadata   []byte
	hash       []byte
}

// encodeMetadata gives the stored metadata bytes; verification re-encodes
// them from the parsed row, so the encoding must be deterministic.
func encodeMetadata(m storedMetadata) ([]byte, error) {
	b, err := json.Marshal(m, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return b, nil
}

// storedMetadata is the envelope's metadata as stored (and hashed) with each
// event. Members are omitted when empty, so rows written before a member
// existed re-encode to their own bytes.
type storedMetadata struct {
	Source        string `json:"source,omitzero"`
	CorrelationID string `json:"correlation_id,omitzero"`
	// OccurredOffset is the UTC offset occurred_at was sent with.
	OccurredOffset string `json:"occurred_offset,omitzero"`
}

// buildRow seals personal data, encodes the event and chains its hash.
func (s *Store) buildRow(e domain.Envelope, w *streamWork, position int64, recordedAt time.Time) (eventRow, error) {
	eventID := e.EventID
	if eventID == uuid.Nil {
		// Time-ordered ids keep the unique index on event_id compact.
		id, err := uuid.NewV7()
		if err != nil {
			return eventRow{}, fmt.Errorf("generate event id: %w", err)
		}
		eventID = id
	}
	data := e.Data
	if domain.HasPersonalData(data, w.state.Individual) {
		c, err := s.cipherFor(w)
		if err != nil {
			return eventRow{}, err
		}
		data, err = sealPersonal(data, w.state.Individual, c)
		if err != nil {
			return eventRow{}, err
		}
	}
	if e.Type == domain.TypeCustomerErased {
		if w.key == nil {
			w.key = &keyWork{}
		}
		w.key.destroyed, w.key.cipher, w.key.wrapped = true, nil, nil
	}
	dataJSON, err := domain.EncodeData(data)
	if err != nil {
		return eventRow{}, err
	}
	meta, err := encodeMetadata(storedMetadata{Source: e.Source, CorrelationID: e.CorrelationID, OccurredOffset: e.OccurredOffset})
	if err != nil {
		return eventRow{}, err
	}
	// domain.ParseInstant refuses sub-microsecond fractions; the truncation
	// only guards envelopes built in code.
	occurredAt := e.OccurredAt.Truncate(time.Microsecond)
	if occurredAt.IsZero() {
		occurredAt = recordedAt
	}
	row := eventRow{
		position: position, streamID: w.id, customer: string(e.Customer), version: w.state.Version,
		eventID: eventID, typ: string(e.Type), occurredAt: occurredAt, recordedAt: recordedAt,
		data: dataJSON, metadata: meta,
	}
	row.hash = computeHash(hashInput{
		Prev: w.lastHash, Position: row.position, StreamID: row.streamID, Customer: row.customer,
		Version: row.version, EventID: row.eventID, Type: row.typ, OccurredAt: row.occurredAt,
		RecordedAt: row.recordedAt, Data: row.data, Metadata: row.metadata,
	})
	return row, nil
}

// cipherFor returns the stream's data-key cipher, creating the key if the
// stream has none yet.
func (s *Store) cipherFor(w *streamWork) (*privacy.Cipher, error) {
	k := w.key
	if k.cipher != nil {
		return k.cipher, nil
	}
	if k.destroyed || (k.loaded && k.wrapped == nil) {
		// Unreachable through Apply (erased streams refuse personal data),
		// kept as a guard: never create a new key for an erased customer.
		return nil, &domain.RuleError{Field: "data.contact", Err: domain.ErrCustomerErased}
	}
	var dataKey []byte
	var err error
	if k.loaded {
		dataKey, err = s.unwrap(k.wrapped, k.keyID, w.id)
	} else {
		dataKey, err = privacy.NewDataKey()
		if err == nil {
			k.wrapped, err = k.wrapWith.Wrap(dataKey, w.id)
			k.insert = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("data key of customer %s: %w", w.customer, err)
	}
	k.cipher, err = privacy.NewCipher(dataKey, w.id)
	if err != nil {
		return nil, err
	}
	return k.cipher, nil
}

// sealPersonal returns a copy of data whose personal fields (domain's
// table) are encrypted; the caller's event is not modified (it may be
// retried).
func sealPersonal(data domain.Event, individual bool, c *privacy.Cipher) (domain.Event, error) {
	return domain.MapPersonal(data, individual, func(field domain.PersonalField, value string) (*string, error) {
		sealed, err := c.Seal(string(field), value)
		if err != nil {
			return nil, fmt.Errorf("seal %s: %w", field, err)
		}
		return &sealed, nil
	})
}
