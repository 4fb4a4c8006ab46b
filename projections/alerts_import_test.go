package projections_test

import (
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// imported marks envelopes as spreadsheet history (segmentd import).
func imported(envs ...domain.Envelope) []domain.Envelope {
	for i := range envs {
		envs[i].Source = domain.ImportSourcePrefix + "sha256-0123456789abcdef"
	}
	return envs
}

func TestImportedHistoryRaisesSuppressedAlertsInRowsAndMessagesAndRebuildAgrees(t *testing.T) {
	importAt := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	e := newEnv(t, importAt)
	old := time.Date(2024, 6, 1, 1, 0, 0, 0, time.UTC)
	const oldCode, recentCode = domain.CustomerCode("KH-OLD"), domain.CustomerCode("KH-RECENT")
	e.record(importAt, imported(
		ev(oldCode, old, fullProfile("甲公司", "周经理", "李某", "010-12345678", "li@example.com")),
		ev(oldCode, old, order("期初余额", "100.00")),
		ev(oldCode, old, rated(2)),
		ev(recentCode, old, fullProfile("乙公司", "王经理", "张某", "13800138000", "z@example.com")),
		ev(recentCode, old, order("期初余额", "100.00")),
		ev(recentCode, importAt.Add(-time.Hour), rated(2)),
	)...)
	e.apply(oldCode, recentCode)
	alerts, _, err := e.q.Alerts(ctxT(t), projections.AlertFilter{Kind: domain.AlertChurnRisk})
	if err != nil {
		t.Fatal(err)
	}
	byCustomer := map[string]projections.AlertDocument{}
	for _, a := range alerts {
		byCustomer[a.Customer] = a
	}
	if a := byCustomer[string(oldCode)]; !a.DeliverySuppressed || a.SuppressionReason != domain.SuppressedDueBeforeImport {
		t.Errorf("2024's churn risk imported in 2026: %+v", a)
	}
	if a, ok := byCustomer[string(recentCode)]; !ok || a.DeliverySuppressed {
		t.Errorf("a churn risk from an hour before the import: %+v (found %v)", a, ok)
	}
	var body string
	if err := e.db.Pool.QueryRow(ctxT(t), "SELECT encode(payload, 'escape') FROM outbox WHERE stream = $1 AND msg_id = $2",
		projections.StreamAlerts, byCustomer[string(oldCode)].AlertID.String()).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `"delivery_suppressed":true`) || !strings.Contains(body, `"delivery_suppressed_reason":"due_before_import"`) {
		t.Errorf("published alert %s does not say it is suppressed", body)
	}
	// At the deadline the suppressed alert's escalation is suppressed too.
	e.clock.Set(importAt.Add(48 * time.Hour))
	e.catchUp(e.proj)
	esc, _, err := e.q.Alerts(ctxT(t), projections.AlertFilter{Kind: domain.AlertFollowUpOverdue})
	if err != nil {
		t.Fatal(err)
	}
	if len(esc) != 2 {
		t.Fatalf("escalations: %+v", esc)
	}
	for _, a := range esc {
		if want := a.Customer == string(oldCode); a.DeliverySuppressed != want {
			t.Errorf("escalation of %s: suppressed %v (%q)", a.Customer, a.DeliverySuppressed, a.SuppressionReason)
		}
	}
	live := e.snapshot()
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, e.snapshot(), live)
}
