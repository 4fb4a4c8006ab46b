package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/notify"
	"github.com/segments-dev/segments/projections"
)

// timelineEntry is one line of an auditor's timeline.
type timelineEntry struct {
	At     time.Time `json:"-"`
	When   string    `json:"at"`
	Kind   string    `json:"kind"` // event, label, alert, message
	Detail any       `json:"detail"`
	Text   string    `json:"-"`
}

// replay prints a customer's history for an auditor: every event as
// recorded (personal data masked), every label change with its reason,
// cause and rule version, every alert with its status changes, and the
// labels at the end (as of --as-of when given).
func replay(ctx context.Context, args []string) error {
	fs := newFlagSet("replay", "<customer> [--as-of T] [--format text|json] [flags]\n\n"+
		"An auditor's timeline: events (masked), label changes with reason, cause and rule\nversion, alerts, final labels.")
	asOfText := fs.String("as-of", "", "show the history up to this instant (RFC 3339)")
	format := fs.String("format", "text", "text or json")
	var code domain.CustomerCode
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		code, args = domain.CustomerCode(args[0]), args[1:]
	}
	cfg, err := loadConfig(fs, args, dataDirFlag, rulesFlag, logLevelFlag)
	if err != nil {
		return err
	}
	if code == "" {
		return usageErrorf(fs, "a customer code is required")
	}
	if !domain.ValidCustomerCode(string(code)) {
		return fmt.Errorf("invalid customer code %q", code)
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format %q: want text or json", *format)
	}
	var asOf time.Time
	if *asOfText != "" {
		if asOf, err = time.Parse(time.RFC3339Nano, *asOfText); err != nil {
			return fmt.Errorf("--as-of %q: want an RFC 3339 instant such as 2026-06-01T00:00:00+08:00", *asOfText)
		}
	}
	book, err := loadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	s, closeStore, err := openLogReader(ctx, &cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	proj := projections.New(projections.Config{Pool: s.Pool(), Rules: book})
	if err := proj.CheckRules(ctx); err != nil {
		return err
	}
	q := projections.NewQueries(proj, s)
	return writeReplay(ctx, os.Stdout, s, q, code, asOf, *format, book.Latest().Location)
}

func writeReplay(ctx context.Context, w io.Writer, s *eventstore.Store, q *projections.Queries, code domain.CustomerCode,
	asOf time.Time, format string, loc *time.Location,
) error {
	until := asOf
	if until.IsZero() {
		until = time.Now()
	}
	ts := func(t time.Time) string { return t.In(loc).Format(time.RFC3339Nano) }
	var timeline []timelineEntry
	add := func(at time.Time, kind string, detail any, text string) {
		if at.After(until) {
			return
		}
		timeline = append(timeline, timelineEntry{At: at, When: ts(at), Kind: kind, Detail: detail, Text: text})
	}

	events, err := s.ReadStream(ctx, code, 0, 1_000_000)
	if err != nil {
		return err
	}
	pd, err := s.OpenPersonalData(ctx, []uuid.UUID{code.StreamID()})
	if err != nil {
		return err
	}
	for _, e := range events {
		data, err := pd.Reveal(e, eventstore.Masked)
		if err != nil {
			return err
		}
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		add(e.RecordedAt, "event", map[string]any{
			"version": e.Version, "position": e.Position, "event_id": e.EventID, "type": e.Type,
			"occurred_at": ts(e.OccurredAt), "source": e.Source, "data": json.RawMessage(b),
		}, fmt.Sprintf("event   v%d %s (occurred %s, source %q) %s", e.Version, e.Type, ts(e.OccurredAt), e.Source, b))
	}
	history, err := q.History(ctx, code)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return err
	}
	for _, c := range history {
		at, err := time.Parse(time.RFC3339Nano, c.At)
		if err != nil {
			return err
		}
		from := "—"
		if c.From != nil {
			from = *c.From
		}
		cause := c.Cause.Kind
		if c.Cause.EventID != nil {
			cause += " " + c.Cause.EventID.String()
		}
		add(at, "label", c, fmt.Sprintf("label   %s: %s → %s (cause %s, rules v%d) %s | %s", c.Label, from, c.To, cause, c.RuleVersion, c.Reason, c.ReasonEN))
	}
	deliveries := notify.NewStore(s.Pool())
	alerts, _, err := q.Alerts(ctx, projections.AlertFilter{Customer: code, Limit: 10_000})
	if err != nil {
		return err
	}
	for i := range alerts {
		a := &alerts[i]
		created, _ := time.Parse(time.RFC3339Nano, a.CreatedAt)
		due := "none"
		if a.DueAt != nil {
			due = *a.DueAt
		}
		note := ""
		if a.DeliverySuppressed {
			note = " [不推送 not delivered: " + a.SuppressionReason + "]"
		}
		add(created, "alert", a, fmt.Sprintf("alert   %s %s raised (%s → %s), owner %s, due %s: %s%s", a.Kind, a.AlertID, a.From, a.To, a.Owner, due, a.Reason, note))
		if a.DueAt != nil && (a.Status == "overdue" || a.Status == "resolved") {
			d, _ := time.Parse(time.RFC3339Nano, *a.DueAt)
			r := time.Time{}
			if a.ResolvedAt != nil {
				r, _ = time.Parse(time.RFC3339Nano, *a.ResolvedAt)
			}
			if r.IsZero() || d.Before(r) {
				add(d, "alert", map[string]any{"alert_id": a.AlertID, "status": "overdue"}, fmt.Sprintf("alert   %s %s overdue", a.Kind, a.AlertID))
			}
		}
		if a.ResolvedAt != nil {
			r, _ := time.Parse(time.RFC3339Nano, *a.ResolvedAt)
			how := "followed_up"
			if a.Resolution != nil {
				how = *a.Resolution
			}
			add(r, "alert", map[string]any{"alert_id": a.AlertID, "status": "resolved", "resolution": how, "resolved_by": a.ResolvedBy},
				fmt.Sprintf("alert   %s %s resolved (%s)", a.Kind, a.AlertID, how))
		}
		if err := addDeliveries(ctx, deliveries, a, add); err != nil {
			return err
		}
	}
	sort.SliceStable(timeline, func(i, j int) bool { return timeline[i].At.Before(timeline[j].At) })
	doc, err := q.Customer(ctx, code, asOf, time.Now(), eventstore.Masked)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"customer": code, "as_of": doc.AsOf, "timeline": timeline, "labels": doc.Labels, "tags": doc.Tags})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Customer %s — history as of %s\n\n", code, doc.AsOf)
	for _, e := range timeline {
		fmt.Fprintf(&b, "%s  %s\n", e.When, e.Text)
	}
	fmt.Fprintf(&b, "\nLabels as of %s:\n", doc.AsOf)
	for _, name := range domain.Labels {
		l := doc.Labels[name]
		fmt.Fprintf(&b, "  %-17s %-18s %s (since %s, rules v%d)\n", name, l.Value+" "+l.Display, l.Reason, l.Since, l.RuleVersion)
	}
	tags := make([]string, 0, len(doc.Tags))
	for _, t := range doc.Tags {
		tags = append(tags, t.Display+"（"+t.Reason+"）")
	}
	fmt.Fprintf(&b, "  %-17s %s\n", "tags", strings.Join(tags, "；"))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write replay: %w", err)
	}
	return nil
}

// addDeliveries adds the messages that told people about an alert (the
// notifier's delivered records, at the instant each was accepted), so the
// timeline shows who was told before anyone acted.
func addDeliveries(ctx context.Context, store *notify.Store, a *projections.AlertDocument,
	add func(time.Time, string, any, string),
) error {
	ds, err := store.AlertDeliveries(ctx, a.AlertID)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.DeliveredAt == nil {
			continue
		}
		add(*d.DeliveredAt, "message", map[string]any{"alert_id": a.AlertID, "delivery": d},
			fmt.Sprintf("message %s %s %s delivered to channel %s (attempts %d)", a.Kind, a.AlertID, d.Purpose, d.Channel, d.Attempts))
	}
	return nil
}
