package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
)

// DisclosureRecord is one plaintext read of a customer's personal data.
type DisclosureRecord struct {
	At       time.Time `json:"at"`
	Who      string    `json:"who"`
	Customer string    `json:"customer"`
	Endpoint string    `json:"endpoint"`
}

// RecordDisclosure writes who read a customer's personal data in plaintext,
// before the data is returned (no record, no data).
func (s *Store) RecordDisclosure(ctx context.Context, who string, customer domain.CustomerCode, endpoint string) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO disclosures (at, who, customer, endpoint) VALUES ($1, $2, $3, $4)",
		s.cfg.Now(), who, string(customer), endpoint)
	if err != nil {
		return fmt.Errorf("record disclosure: %w", mapError(err))
	}
	return nil
}

// Disclosures lists plaintext reads, newest first; customer "" lists all.
func (s *Store) Disclosures(ctx context.Context, customer domain.CustomerCode, limit int) ([]DisclosureRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, who, customer, endpoint FROM disclosures
		WHERE $1 = '' OR customer = $1 ORDER BY id DESC LIMIT $2`, string(customer), limit)
	if err != nil {
		return nil, fmt.Errorf("list disclosures: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DisclosureRecord])
	if err != nil {
		return nil, fmt.Errorf("list disclosures: %w", mapError(err))
	}
	return out, nil
}

// RecordDisclosures records one plaintext read of each customer (an
// unmasked export), in one statement.
func (s *Store) RecordDisclosures(ctx context.Context, who string, customers []domain.CustomerCode, endpoint string) error {
	codes := make([]string, len(customers))
	for i, c := range customers {
		codes[i] = string(c)
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO disclosures (at, who, customer, endpoint) SELECT $1, $2, c, $4 FROM unnest($3::text[]) AS c",
		s.cfg.Now(), who, codes, endpoint)
	if err != nil {
		return fmt.Errorf("record disclosures: %w", mapError(err))
	}
	return nil
}
