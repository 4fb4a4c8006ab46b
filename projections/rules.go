package projections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// ErrRulesMismatch: the rules file disagrees with a rule-set version that
// the log recorded and that is in force (its text changed, or it is missing).
var ErrRulesMismatch = errors.New("the rules file disagrees with the rule versions in force")

// recordedRules are the rule-set versions the log recorded, by version.
type recordedRules map[int]recordedVersion

type recordedVersion struct {
	effectiveAt time.Time
	hash        *string // nil: recorded before versions carried their text
}

func readRecordedRules(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (recordedRules, error) {
	rows, err := q.Query(ctx, "SELECT version, effective_at, sha256 FROM rule_versions")
	if err != nil {
		return nil, fmt.Errorf("read rule versions: %w", eventstore.MapError(err))
	}
	out := recordedRules{}
	var v int
	var r recordedVersion
	if _, err := pgx.ForEachRow(rows, []any{&v, &r.effectiveAt, &r.hash}, func() error { out[v] = r; return nil }); err != nil {
		return nil, fmt.Errorf("read rule versions: %w", eventstore.MapError(err))
	}
	return out, nil
}

// checkInForce compares the rule book with every recorded version in force
// at now: each must be in the book with the same effective_at and text.
func checkInForce(book *domain.RuleBook, recorded recordedRules, now time.Time) error {
	versions := slices.Sorted(maps.Keys(recorded))
	for _, v := range versions {
		r := recorded[v]
		if r.effectiveAt.After(now) {
			continue
		}
		i := slices.IndexFunc(book.Versions, func(rs *domain.RuleSet) bool { return rs.Version == v })
		since := r.effectiveAt.Format(time.RFC3339)
		switch {
		case i < 0:
			return fmt.Errorf("%w: rule version %d, in force since %s, is missing from the rules file", ErrRulesMismatch, v, since)
		case !book.Versions[i].EffectiveAt.Equal(r.effectiveAt):
			return fmt.Errorf("%w: rule version %d took effect at %s, the rules file says %s", ErrRulesMismatch, v, since, book.Versions[i].EffectiveAt.Format(time.RFC3339))
		case r.hash != nil && *r.hash != book.Versions[i].Hash:
			return fmt.Errorf("%w: rule version %d, in force since %s, differs from its recorded text (sha256 %s, the file's %s); add a new version instead",
				ErrRulesMismatch, v, since, (*r.hash)[:12], book.Versions[i].Hash[:12])
		}
	}
	return nil
}

// CheckRules refuses a rule book that disagrees with the versions in force
// that the log recorded; it writes nothing (for read-only commands).
func (p *Projector) CheckRules(ctx context.Context) error {
	recorded, err := readRecordedRules(ctx, p.pool)
	if err != nil {
		return err
	}
	return checkInForce(p.book, recorded, p.now())
}

// RegisterRules checks the rule book against the log (CheckRules) and
// records each version the log does not hold yet, with its text and hash; a
// version not yet in force may still change or go, and its record follows.
// For a version seen for the first time, every customer last evaluated
// before its effective_at gets its next_at brought forward to that instant,
// so the scheduler re-evaluates it exactly then and the resulting changes
// have cause rules. A version that takes effect before some customers' last
// evaluation cannot rewrite their past; RegisterRules reports how many such
// customers there are (rebuild recomputes them from the log).
func (p *Projector) RegisterRules(ctx context.Context) (late int64, err error) {
	now := p.now()
	var fresh []*domain.RuleSet
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Instances starting together record one after the other.
		if _, err := tx.Exec(ctx, "LOCK TABLE rule_versions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("record rule versions: %w", eventstore.MapError(err))
		}
		recorded, err := readRecordedRules(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkInForce(p.book, recorded, now); err != nil {
			return err
		}
		fresh, err = p.recordRules(ctx, tx, recorded, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, v := range fresh {
		n, err := p.scheduleRuleSwitch(ctx, v)
		if err != nil {
			return 0, err
		}
		late += n
	}
	return late, nil
}

// recordRules writes the book's versions that the log lacks (or holds
// without text, or holds differently while not yet in force) and drops the
// records of versions not yet in force that the book no longer has. It
// returns the versions whose switch must be scheduled.
func (p *Projector) recordRules(ctx context.Context, tx pgx.Tx, recorded recordedRules, now time.Time) ([]*domain.RuleSet, error) {
	var fresh []*domain.RuleSet
	for _, v := range p.book.Versions {
		r, seen := recorded[v.Version]
		if seen && r.hash != nil && *r.hash == v.Hash && r.effectiveAt.Equal(v.EffectiveAt) {
			continue
		}
		if seen && r.hash != nil {
			p.log.Warn("a rule version not yet in force changed", "version", v.Version, "effective_at", v.EffectiveAt, "sha256", v.Hash)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rule_versions (version, effective_at, source, definition, sha256, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (version) DO UPDATE SET effective_at = EXCLUDED.effective_at, source = EXCLUDED.source,
				definition = EXCLUDED.definition, sha256 = EXCLUDED.sha256, recorded_at = EXCLUDED.recorded_at`,
			v.Version, v.EffectiveAt, v.Source, v.Definition, v.Hash, now); err != nil {
			return nil, fmt.Errorf("record rule version %d: %w", v.Version, eventstore.MapError(err))
		}
		if (!seen || !r.effectiveAt.Equal(v.EffectiveAt)) && v != p.book.Versions[0] {
			fresh = append(fresh, v)
		}
	}
	for version, r := range recorded {
		if r.effectiveAt.After(now) && !slices.ContainsFunc(p.book.Versions, func(rs *domain.RuleSet) bool { return rs.Version == version }) {
			p.log.Warn("a rule version not yet in force was withdrawn", "version", version, "effective_at", r.effectiveAt)
			if _, err := tx.Exec(ctx, "DELETE FROM rule_versions WHERE version = $1", version); err != nil {
				return nil, fmt.Errorf("withdraw rule version %d: %w", version, eventstore.MapError(err))
			}
		}
	}
	return fresh, nil
}

// scheduleRuleSwitch brings forward the next_at of customers evaluated
// before the version's effective_at and counts those evaluated after it.
func (p *Projector) scheduleRuleSwitch(ctx context.Context, v *domain.RuleSet) (late int64, err error) {
	if _, err := p.pool.Exec(ctx, `UPDATE customer_projections SET next_at = LEAST(coalesce(next_at, $1), $1)
		WHERE evaluated_at < $1`, v.EffectiveAt); err != nil {
		return 0, fmt.Errorf("schedule rule version %d: %w", v.Version, err)
	}
	if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE evaluated_at >= $1", v.EffectiveAt).Scan(&late); err != nil {
		return 0, fmt.Errorf("check rule version %d: %w", v.Version, err)
	}
	if _, err := p.pool.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyNextAt, v.EffectiveAt.UTC().String()); err != nil {
		return 0, fmt.Errorf("notify schedulers: %w", err)
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
	// SHA256 identifies the version's text as recorded in rule_versions.
	SHA256 string `json:"sha256"`
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
			InForceNow: v.Version == current, ChangesCaused: counts[v.Version], Tags: []string{}, SHA256: v.Hash,
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
