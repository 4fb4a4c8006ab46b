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
	first.Close()
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
			second.Close()
		}
		t.Fatalf("start with version 1 changed: %v; want ErrRulesMismatch", err)
	}
}

// TestRulesRemovingWhatARouteMatchesAreRefusedBeforeStart: a rules version
// that removes a tag a notify route matches on is refused with the rules
// file's line and field and the route's place; keeping it passes.
func TestRulesRemovingWhatARouteMatchesAreRefusedBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("channels:\n  a: {type: webhook, url: http://x, secret_env: HOOK}\nroutes:\n  - name: quiet\n    match:\n      tags: [to_convert]\n    channels: [a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := strings.TrimRight(string(domain.DefaultRulesYAML()), "\n") + "\n  - version: 2\n    effective_at: \"2027-01-01T00:00:00+08:00\"\n    remove:\n      tags: [to_convert]\n"
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(v2), 0o600); err != nil {
		t.Fatal(err)
	}
	book, err := loadRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	err = checkRoutesAgainstRules(book, routes)
	var re *domain.RulesError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v; want a rules error", err)
	}
	before, _, _ := strings.Cut(v2, "tags: [to_convert]")
	if want := strings.Count(before, "\n") + 1; re.File != rules || re.Line != want || re.Path != "$.versions[1].remove.tags[0]" {
		t.Errorf("refused at %s line %d (%s); want %s line %d", re.File, re.Line, re.Path, rules, want)
	}
	if !strings.Contains(err.Error(), `route "quiet"`) || !strings.Contains(err.Error(), "routes.yaml line 6") {
		t.Errorf("%q does not name the route and its line", err)
	}
	if err := checkRoutesAgainstRules(domain.DefaultRuleBook(), routes); err != nil {
		t.Errorf("rules keeping the tag refused: %v", err)
	}
}
