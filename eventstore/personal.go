package eventstore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// maskers masks each personal field of domain's table for display.
var maskers = map[domain.PersonalField]func(string) string{
	domain.PersonalContactName:  privacy.MaskName,
	domain.PersonalContactPhone: privacy.MaskPhone,
	domain.PersonalContactEmail: privacy.MaskEmail,
	domain.PersonalName:         privacy.MaskName,
	domain.PersonalRegion:       privacy.MaskRegion,
}

// maskPersonal masks a personal field; a field without a masker is hidden
// whole.
func maskPersonal(field domain.PersonalField, value string) string {
	if m, ok := maskers[field]; ok {
		return m(value)
	}
	return "***"
}

// individualStreams returns which of the streams belong to individuals.
func (s *Store) individualStreams(ctx context.Context, streams []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := map[uuid.UUID]bool{}
	if len(streams) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT stream_id FROM streams WHERE individual AND stream_id = ANY($1)", streams)
	if err != nil {
		return nil, fmt.Errorf("load customer kinds: %w", mapError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("load customer kinds: %w", mapError(err))
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// Field discloses one personal field of a customer as the projection holds
// it: sealed (opened, then masked unless plaintext is asked for), or plain
// when it was recorded before it counted as personal (an individual's name
// or region in events older than migration 0008; shown masked as well).
// nil when the customer was erased: the data is gone from every output.
func (pd *PersonalData) Field(stream uuid.UUID, field domain.PersonalField, value string, how Disclosure) (*string, error) {
	if value == "" {
		return nil, nil
	}
	if !privacy.IsSealed(value) {
		if !domain.IsPersonal(field, pd.individual[stream]) {
			return &value, nil
		}
		if pd.erased[stream] {
			return nil, nil
		}
	} else {
		c, err := pd.cipher(stream)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, nil
		}
		plain, err := c.Open(string(field), value)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", field, err)
		}
		value = plain
	}
	if how == Masked {
		value = maskPersonal(field, value)
	}
	return &value, nil
}

// Reveal decodes a recorded event's data with its personal fields decrypted
// and masked (or in plaintext). Fields of an erased customer become absent.
func (pd *PersonalData) Reveal(e RecordedEvent, how Disclosure) (domain.Event, error) {
	data, err := domain.DecodeData(e.Type, e.Data)
	if err != nil {
		return nil, err
	}
	return domain.MapPersonal(data, true, func(field domain.PersonalField, value string) (*string, error) {
		v, err := pd.Field(e.StreamID, field, value, how)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.EventID, err)
		}
		return v, nil
	})
}

// withoutPersonalData returns an event's data without any personal field,
// not even masked or sealed (SPEC §6: published events carry none).
func withoutPersonalData(e RecordedEvent, individual bool) ([]byte, error) {
	data, err := domain.DecodeData(e.Type, e.Data)
	if err != nil {
		return nil, err
	}
	individual = individual || domain.DeclaresIndividual(data)
	stripped, err := domain.MapPersonal(data, true, func(field domain.PersonalField, value string) (*string, error) {
		if privacy.IsSealed(value) || domain.IsPersonal(field, individual) {
			return nil, nil
		}
		return &value, nil
	})
	if err != nil {
		return nil, err
	}
	return domain.EncodeData(stripped)
}

// AnyErased reports whether one of the customers was erased.
func (s *Store) AnyErased(ctx context.Context, customers []domain.CustomerCode) (bool, error) {
	ids := make([]uuid.UUID, len(customers))
	for i, c := range customers {
		ids[i] = c.StreamID()
	}
	var erased bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM streams WHERE erased AND stream_id = ANY($1))", ids).Scan(&erased); err != nil {
		return false, fmt.Errorf("erased customers: %w", mapError(err))
	}
	return erased, nil
}
