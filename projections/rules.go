package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/segments-dev/segments/eventstore"
)

// RegisterRules records the rule book's versions. For a version seen for the
// first time, every customer last evaluated before its effective_at gets its
// next_at brought forward to that instant, so the scheduler re-evaluates it
// exactly then and the resulting changes have cause rules. A version that
// takes effect before some customers' last evaluation cannot rewrite their
// past; RegisterRules reports how many such customers there are (rebuild
// recomputes them from the log).
func (p *Projector) RegisterRules(ctx context.Context) (late int64, err error) {
	for _, v := range p.book.Versions {
		tag, err := p.pool.Exec(ctx, "INSERT INTO rule_versions (version, effective_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING", v.Version, v.EffectiveAt)
		if err != nil {
			return 0, fmt.Errorf("register rule version %d: %w", v.Version, err)
		}
		if tag.RowsAffected() == 0 || v.Version == p.book.Versions[0].Version {
			continue
		}
		if _, err := p.pool.Exec(ctx, `UPDATE customer_projections SET next_at = LEAST(coalesce(next_at, $1), $1)
			WHERE evaluated_at < $1`, v.EffectiveAt); err != nil {
			return 0, fmt.Errorf("schedule rule version %d: %w", v.Version, err)
		}
		var n int64
		if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE evaluated_at >= $1", v.EffectiveAt).Scan(&n); err != nil {
			return 0, fmt.Errorf("check rule version %d: %w", v.Version, err)
		}
		late += n
		if _, err := p.pool.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyNextAt, v.EffectiveAt.UTC().String()); err != nil {
			return 0, fmt.Errorf("notify schedulers: %w", err)
		}
	}
	return late, nil
}

// RuleVersionInfo says when a rule-set version was in force and how many
// label changes it caused on taking effect (cause rules).
type RuleVersionInfo struct {
	Version      int     `json:"version"`
	EffectiveAt  string  `json:"effective_at"`
	InForceUntil *string `json:"in_force_until"`
	TimeZone     string  `json:"time_zone"`
	InForceNow   bool    `json:"in_force_now"`
	// ChangesCaused counts label changes with cause rules attributed to it.
	ChangesCaused int64    `json:"changes_caused"`
	Tags          []string `json:"tags"`
}

// RuleHistory lists the rule-set versions (SPEC §4: rule changes are
// auditable).
func (q *Queries) RuleHistory(ctx context.Context, now time.Time) ([]RuleVersionInfo, error) {
	book := q.projector.book
	counts := map[int]int64{}
	rows, err := q.projector.pool.Query(ctx, "SELECT rule_version, count(*) FROM label_changes WHERE cause_kind = 'rules' GROUP BY 1")
	if err != nil {
		return nil, fmt.Errorf("rule history: %w", eventstore.MapError(err))
	}
	for rows.Next() {
		var v int
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rule history: %w", eventstore.MapError(err))
		}
		counts[v] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rule history: %w", eventstore.MapError(err))
	}
	current := book.At(now).Version
	out := make([]RuleVersionInfo, len(book.Versions))
	for i, v := range book.Versions {
		info := RuleVersionInfo{
			Version: v.Version, EffectiveAt: v.EffectiveAt.In(v.Location).Format(time.RFC3339), TimeZone: v.Location.String(),
			InForceNow: v.Version == current, ChangesCaused: counts[v.Version], Tags: []string{},
		}
		if i+1 < len(book.Versions) {
			u := book.Versions[i+1].EffectiveAt.In(v.Location).Format(time.RFC3339)
			info.InForceUntil = &u
		}
		for _, t := range v.Tags {
			info.Tags = append(info.Tags, t.Name+": "+t.When)
		}
		out[i] = info
	}
	return out, nil
}
