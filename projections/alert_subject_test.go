package projections_test

import (
	"testing"

	"github.com/segments-dev/segments/projections"
)

func TestOwnerTokensAreSubjectSafeStableAndReversible(t *testing.T) {
	for owner, want := range map[string]string{"张三": "smua1p5oh4", "王经理": "su78nptrhvjp11g", "": "_", "a.b *>": "c4n6481a7o"} {
		got := projections.OwnerToken(owner)
		if got != want {
			t.Errorf("OwnerToken(%q) = %q, want %q", owner, got, want)
		}
		back, err := projections.OwnerFromToken(got)
		if err != nil || back != owner {
			t.Errorf("OwnerFromToken(%q) = %q, %v", got, back, err)
		}
	}
	if s := projections.AlertSubject("churn_risk", "张三"); s != "alerts.churn_risk.smua1p5oh4" {
		t.Errorf("subject %q", s)
	}
}
