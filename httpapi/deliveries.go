package httpapi

import (
	"context"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/notify"
)

// Deliveries is what GET /v1/alerts/{id} needs of the notifier's records:
// an alert's deliveries ({channel, status, attempts, last_error,
// delivered_at}), empty when none.
type Deliveries interface {
	AlertDeliveries(ctx context.Context, alertID uuid.UUID) ([]notify.Delivery, error)
}
