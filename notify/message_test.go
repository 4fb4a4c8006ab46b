package notify

import (
	"strings"
	"testing"
	"time"
)

func TestAnInformationalChangeIsNotTitledAnAlertAndAMissingOwnerIsSaid(t *testing.T) {
	it := testItem(t)
	it.Alert.Kind, it.Alert.Display, it.Alert.Status, it.Alert.DueAt = "value_tier_changed", "价值层级变化", "info", nil
	it.Alert.Owner = ""
	zh := composer{lang: LangZH, loc: time.UTC}.compose([]Item{it})
	if !strings.HasPrefix(zh.Title, "【客户变化】价值层级变化 · C001 李某") || !strings.Contains(zh.Text, "负责人：未指定（请在工作台分配）") ||
		!strings.Contains(zh.Text, "截止时间：无") {
		t.Errorf("zh:\n%s\n%s", zh.Title, zh.Text)
	}
	en := composer{lang: LangEN, loc: time.UTC}.compose([]Item{it})
	if !strings.HasPrefix(en.Title, "【Change】value_tier_changed") || !strings.Contains(en.Text, "Owner：none (assign one in the workbench)") {
		t.Errorf("en:\n%s\n%s", en.Title, en.Text)
	}
	// An alert needing action keeps its title.
	if got := (composer{lang: LangZH, loc: time.UTC}).compose([]Item{testItem(t)}).Title; !strings.HasPrefix(got, "【客户预警】活跃度下降") {
		t.Errorf("alert title %q", got)
	}
}
