package main

import (
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/notify"
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
