package projections

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/eventstore"
)

// ownerEncoding is RFC 4648 base32hex in lower case without padding: only
// 0-9 and a-v, so a token is subject-safe (no '.', '*', '>' or spaces),
// stable and reversible.
var ownerEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NoOwnerToken stands for an alert without owner ('_' is outside the
// alphabet, so no owner encodes to it).
const NoOwnerToken = "_"

// OwnerToken is the subject token of an owner: the UTF-8 bytes of the
// name in lower-case base32hex without padding (张三 → "smua1p5oh4").
func OwnerToken(owner string) string {
	if owner == "" {
		return NoOwnerToken
	}
	return ownerEncoding.EncodeToString([]byte(owner))
}

// OwnerFromToken is the reverse of OwnerToken.
func OwnerFromToken(token string) (string, error) {
	if token == NoOwnerToken {
		return "", nil
	}
	b, err := ownerEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("owner token %q: %w", token, err)
	}
	return string(b), nil
}

// AlertSubject is the subject an alert is published on:
// alerts.<kind>.<owner token>, so alerts.> and alerts.<kind>.> take all
// of a kind, and alerts.*.<token> one owner's.
func AlertSubject(kind, owner string) string {
	return "alerts." + kind + "." + OwnerToken(owner)
}

// AlertStatus is an alert's current status (ErrNotFound when unknown).
func (q *Queries) AlertStatus(ctx context.Context, id uuid.UUID) (string, error) {
	var status string
	err := q.projector.pool.QueryRow(ctx, "SELECT status FROM alerts WHERE alert_id = $1", id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("alert status: %w", eventstore.MapError(err))
	}
	return strings.TrimSpace(status), nil
}
