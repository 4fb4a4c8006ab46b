package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
)

// Delivery statuses.
const (
	StatusPending    = "pending"
	StatusDelivered  = "delivered"
	StatusDead       = "dead"
	StatusSuppressed = "suppressed"
	StatusSkipped    = "skipped"
)

// Delivery is one delivery of an alert as GET /v1/alerts/{id} shows it.
type Delivery struct {
	Channel     string     `json:"channel"`
	Purpose     string     `json:"purpose"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

// Store is the notifier's table alert_deliveries.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns the delivery records kept in pool's database.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// AlertDeliveries lists an alert's deliveries (empty when none).
func (s *Store) AlertDeliveries(ctx context.Context, alertID uuid.UUID) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel, purpose, status, attempts, last_error, delivered_at
		FROM alert_deliveries WHERE alert_id = $1 ORDER BY created_at, channel, purpose`, alertID)
	if err != nil {
		return nil, fmt.Errorf("alert deliveries: %w", eventstore.MapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := r.Scan(&d.Channel, &d.Purpose, &d.Status, &d.Attempts, &d.LastError, &d.DeliveredAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("alert deliveries: %w", eventstore.MapError(err))
	}
	if out == nil {
		out = []Delivery{}
	}
	return out, nil
}

// planned is a delivery to record.
type planned struct {
	channel, status string
	due             time.Time
	item            Item
	lastError       string
}

// record inserts deliveries; ones already recorded (a redelivered alert)
// stay as they are.
func (s *Store) record(ctx context.Context, now time.Time, ds []planned) error {
	if len(ds) == 0 {
		return nil
	}
	var ids []uuid.UUID
	var channels, purposes, statuses, owners, errs []string
	var dues []time.Time
	var items [][]byte
	for i := range ds {
		item, err := json.Marshal(&ds[i].item)
		if err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
		ids, channels, purposes = append(ids, ds[i].item.Alert.ID), append(channels, ds[i].channel), append(purposes, ds[i].item.Purpose)
		statuses, owners, errs = append(statuses, ds[i].status), append(owners, ds[i].item.Alert.Owner), append(errs, ds[i].lastError)
		dues, items = append(dues, ds[i].due), append(items, item)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO alert_deliveries
		(alert_id, channel, purpose, status, owner, last_error, next_attempt_at, item, created_at)
		SELECT *, $9::timestamptz FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::jsonb[])
		ON CONFLICT DO NOTHING`, ids, channels, purposes, statuses, owners, errs, dues, items, now)
	if err != nil {
		return fmt.Errorf("record deliveries: %w", eventstore.MapError(err))
	}
	return nil
}

// claimed is a pending delivery taken for an attempt.
type claimed struct {
	key       deliveryKey
	attempts  int
	createdAt time.Time
	item      Item
}

type deliveryKey struct {
	AlertID          uuid.UUID
	Channel, Purpose string
}

// IdempotencyKey is the same for every attempt of a delivery.
func (k deliveryKey) IdempotencyKey() string {
	return k.AlertID.String() + ":" + k.Channel + ":" + k.Purpose
}

// claim takes up to limit due deliveries of a channel for an attempt,
// leasing them until now+lease: a notifier that dies mid-attempt leaves
// them to be retried when the lease ends (with the same key).
func (s *Store) claim(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]claimed, error) {
	rows, err := s.pool.Query(ctx, `UPDATE alert_deliveries d SET next_attempt_at = $3, attempts = d.attempts + 1
		FROM (SELECT alert_id, channel, purpose FROM alert_deliveries
			WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= $2
			ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) c
		WHERE d.alert_id = c.alert_id AND d.channel = c.channel AND d.purpose = c.purpose
		RETURNING d.alert_id, d.channel, d.purpose, d.attempts, d.created_at, d.item`, channel, now, now.Add(lease), limit)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", eventstore.MapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		var item []byte
		if err := r.Scan(&c.key.AlertID, &c.key.Channel, &c.key.Purpose, &c.attempts, &c.createdAt, &item); err != nil {
			return c, err
		}
		return c, json.Unmarshal(item, &c.item)
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", eventstore.MapError(err))
	}
	return out, nil
}

// outcome is the result of an attempt.
type outcome struct {
	key       deliveryKey
	status    string // delivered, pending (retry at next), dead, skipped
	next      time.Time
	lastError string
}

// settle records the outcomes of attempts. Only pending deliveries change;
// the condition says so by naming the other statuses because "status =
// 'pending'" matches the partial index alert_deliveries_due, which the
// planner then chose over the primary key, scanning every pending delivery
// of the channel for each outcome (quadratic in the backlog: 2.7 s per
// settle at 10,000 pending, bench/notify).
func (s *Store) settle(ctx context.Context, now time.Time, outs []outcome) error {
	if len(outs) == 0 {
		return nil
	}
	var ids []uuid.UUID
	var channels, purposes, statuses, errs []string
	var nexts []time.Time
	for _, o := range outs {
		ids, channels, purposes = append(ids, o.key.AlertID), append(channels, o.key.Channel), append(purposes, o.key.Purpose)
		statuses, errs, nexts = append(statuses, o.status), append(errs, o.lastError), append(nexts, o.next)
	}
	_, err := s.pool.Exec(ctx, `UPDATE alert_deliveries d SET status = o.status, last_error = o.err,
			next_attempt_at = CASE WHEN o.status = 'pending' THEN o.next ELSE d.next_attempt_at END,
			delivered_at = CASE WHEN o.status = 'delivered' THEN $7::timestamptz END
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS o(alert_id, channel, purpose, status, err, next)
		WHERE d.alert_id = o.alert_id AND d.channel = o.channel AND d.purpose = o.purpose
			AND d.status NOT IN ('delivered', 'dead', 'suppressed', 'skipped')`,
		ids, channels, purposes, statuses, errs, nexts, now)
	if err != nil {
		return fmt.Errorf("settle deliveries: %w", eventstore.MapError(err))
	}
	return nil
}

// nextDue is the earliest pending attempt of a channel (zero when none).
func (s *Store) nextDue(ctx context.Context, channel string) (time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM alert_deliveries WHERE status = 'pending' AND channel = $1`, channel).Scan(&at)
	if err != nil || at == nil {
		return time.Time{}, eventstore.MapError(err)
	}
	return *at, nil
}
