package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/segments-dev/segments/domain"
)

func ruleTagNames(rs *domain.RuleSet) []string {
	var names []string
	for _, t := range rs.Tags {
		names = append(names, t.Name)
	}
	return names
}

// TestANewVersionsTagsMergeByName: a version 2 that names tags keeps the
// built-in ones (a tag of the same name is replaced field by field, a new
// one is added), and only an explicit remove list drops one.
func TestANewVersionsTagsMergeByName(t *testing.T) {
	t.Parallel()
	builtIn := []string{"strategic_partner", "churn_warning", "to_convert", "needs_completion"}
	book := mustParse(t, strings.TrimRight(defaultYAML(), "\n")+`
  - version: 2
    effective_at: "2026-07-01T00:00:00+08:00"
    tags:
      - name: strategic_partner
        when: net_amount >= yuan(800000) && orders_3m >= 2
      - name: big_spender
        display: 大客户
        when: net_amount >= yuan(800000)
  - version: 3
    effective_at: "2026-08-01T00:00:00+08:00"
    remove:
      tags: [to_convert]
`)
	if got := ruleTagNames(book.Versions[0]); !slices.Equal(got, builtIn) {
		t.Fatalf("version 1 tags %v", got)
	}
	v2 := book.Versions[1]
	if got, want := ruleTagNames(v2), append(slices.Clone(builtIn), "big_spender"); !slices.Equal(got, want) {
		t.Fatalf("version 2 tags %v; want %v", got, want)
	}
	if sp := v2.Tags[0]; sp.When != "net_amount >= yuan(800000) && orders_3m >= 2" || sp.Display != "★★★战略伙伴" || sp.ReasonZH == "" {
		t.Fatalf("version 2 strategic_partner = %+v; want the new condition and version 1's display and reasons", sp)
	}
	if got, want := ruleTagNames(book.Versions[2]), []string{"strategic_partner", "churn_warning", "needs_completion", "big_spender"}; !slices.Equal(got, want) {
		t.Fatalf("version 3 tags %v; want %v", got, want)
	}
}

func TestRemovingATagThatIsNotThereIsAnError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, version string }{
		{"unknown tag", "    remove:\n      tags: [no_such_tag]\n"},
		{"named and removed", "    tags:\n      - {name: to_convert, display: 待转化, when: \"true\"}\n    remove:\n      tags: [to_convert]\n"},
	} {
		_, err := domain.ParseRules([]byte(strings.TrimRight(defaultYAML(), "\n") + "\n  - version: 2\n    effective_at: \"2026-07-01T00:00:00+08:00\"\n" + tc.version))
		var re *domain.RulesError
		if !errors.As(err, &re) || re.Line == 0 {
			t.Errorf("%s: err = %v; want a rules error with a line", tc.name, err)
		}
	}
	if _, err := domain.ParseRules([]byte(strings.Replace(defaultYAML(), "    tags:\n", "    remove:\n      tags: [x]\n    tags:\n", 1))); err == nil {
		t.Error("a remove list in the first version was accepted")
	}
}
