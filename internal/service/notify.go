package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
)

// newNotifier is the notifier role on the read model.
func (s *Service) newNotifier() *notify.Notifier {
	q := projections.NewQueries(s.Projector, s.Store)
	return notify.New(notify.Options{
		Config: s.Notify, Store: notify.NewStore(s.Pool), Customers: customerInfo{q}, Statuses: q,
		Worklist: worklist{q}, Metrics: s.Metrics.Deliveries(), Logger: s.Log,
	})
}

// customerInfo gives the notifier a customer's masked name, value tier and
// tags from the read model.
type customerInfo struct{ q *projections.Queries }

func (c customerInfo) CustomerInfo(ctx context.Context, code string) (notify.CustomerInfo, error) {
	doc, err := c.q.Customer(ctx, domain.CustomerCode(code), time.Time{}, time.Now(), eventstore.Masked)
	if errors.Is(err, projections.ErrNotFound) {
		return notify.CustomerInfo{}, nil
	}
	if err != nil {
		return notify.CustomerInfo{}, err
	}
	info := notify.CustomerInfo{ValueTier: doc.Labels[domain.LabelValueTier].Value}
	if doc.Profile.Name != nil {
		info.MaskedName = *doc.Profile.Name
	}
	for _, t := range doc.Tags {
		info.Tags = append(info.Tags, t.Tag)
	}
	return info, nil
}

// worklist gives the daily digest the alerts still needing action, in the
// shape SEGMENTS_ALERTS carries them.
type worklist struct{ q *projections.Queries }

func (w worklist) ActionableAlerts(ctx context.Context) ([]notify.Alert, error) {
	docs, err := w.q.ActionableAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]notify.Alert, len(docs))
	for i := range docs {
		body, err := json.Marshal(&docs[i])
		if err != nil {
			return nil, fmt.Errorf("actionable alert: %w", err)
		}
		if err := json.Unmarshal(body, &out[i]); err != nil {
			return nil, fmt.Errorf("actionable alert: %w", err)
		}
	}
	return out, nil
}
