package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
)

// loadNotify reads SEGMENTS_NOTIFY for the notifier role; a file that
// cannot work refuses the start (line and field named).
func loadNotify(cfg *config, rules *domain.RuleBook, loc *time.Location, log *slog.Logger) (*notify.Config, error) {
	if !cfg.has("notifier") {
		return nil, nil
	}
	if cfg.NotifyFile == "" {
		if !cfg.Demo {
			log.Info("notifier: SEGMENTS_NOTIFY is unset, alerts are published but not delivered")
		}
		return nil, nil
	}
	return notify.LoadConfig(cfg.NotifyFile, vocabulary(rules, loc), os.LookupEnv)
}

// vocabulary lists the alert kinds, value tiers and tags of every rule
// version, against which routes are checked.
func vocabulary(rules *domain.RuleBook, loc *time.Location) notify.Vocabulary {
	v := notify.Vocabulary{Location: loc}
	add := func(list *[]string, s string) {
		if !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	for _, rs := range rules.Versions {
		for kind := range rs.Alerts {
			add(&v.Kinds, kind)
		}
		add(&v.Kinds, domain.AlertFollowUpOverdue)
		for _, t := range rs.ValueTiers {
			add(&v.ValueTiers, t.Value)
		}
		for _, t := range rs.Tags {
			add(&v.Tags, t.Name)
		}
		if v.Location == nil {
			v.Location = rs.Location
		}
	}
	slices.Sort(v.Kinds)
	return v
}

func (a *app) newNotifier() *notify.Notifier {
	q := projections.NewQueries(a.proj, a.store)
	return notify.New(notify.Options{
		Config: a.notify, Store: notify.NewStore(a.pool), Customers: customerInfo{q}, Statuses: q,
		Worklist: worklist{q}, Metrics: a.metrics.Deliveries(), Logger: a.log,
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
