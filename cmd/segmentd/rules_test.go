package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// TestServeRefusesARulesFileThatChangesAVersionInForce: the first start
// records the rule versions; a later start whose rules file changes the
// text of version 1 (in force) is refused.
func TestServeRefusesARulesFileThatChangesAVersionInForce(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	ctx := context.Background()
	first, err := start(ctx, keysConfig(t, dir, db.URL), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	first.close()
	changed := strings.Replace(string(domain.DefaultRulesYAML()), `min_net_amount: "500000.00"`, `min_net_amount: "450000.00"`, 1)
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := keysConfig(t, dir, db.URL)
	cfg.RulesFile = rules
	second, err := start(ctx, cfg, testenv.Logger(t))
	if !errors.Is(err, projections.ErrRulesMismatch) {
		if second != nil {
			second.close()
		}
		t.Fatalf("start with version 1 changed: %v; want ErrRulesMismatch", err)
	}
}
