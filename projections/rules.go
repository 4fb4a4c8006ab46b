package projections

import (
	"context"
	"fmt"
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
