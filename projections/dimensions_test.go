package projections_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// spendBandV2 adds an operator-defined label from the start of time.
const spendBandV2 = `  - version: 2
    effective_at: "2000-01-02T00:00:00+08:00"
    labels:
      - name: spend_band
        display: 消费档位
        cases:
          - {value: high, display: 高消费, when: "net_amount >= yuan(100000)", reason: "累计净额 {net_amount} ≥ 100,000.00"}
          - {value: low, display: 低消费}
`

// TestOperatorDefinedLabelsAreStoredShownAndRecorded: the label's value
// survives the stored document (a projector that reads it back records no
// spurious change), the card shows it with its reason, and the version
// defining it is recorded in rule_versions.
func TestOperatorDefinedLabelsAreStoredShownAndRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	book := rulesBook(t, string(domain.DefaultRulesYAML()), spendBandV2)
	proj, q := e.withRules(book)
	if _, err := proj.RegisterRules(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if r := e.recordedRules()[2]; !strings.Contains(r.source, "spend_band") || r.checksum != book.Versions[1].Hash {
		t.Fatalf("version 2 recorded as %+v", r)
	}
	const code = domain.CustomerCode("DIM-1")
	e.record(tNow.Add(-2*time.Hour), ev(code, tNow.Add(-2*time.Hour), order("SO-D-1", "150000")))
	if _, err := proj.Apply(ctxT(t), streamIDs(code)); err != nil {
		t.Fatal(err)
	}
	// A second projector has no cached projection: it decodes the stored one.
	e.record(tNow.Add(-time.Hour), ev(code, tNow.Add(-time.Hour), order("SO-D-2", "1000")))
	fresh, _ := e.withRules(book)
	if _, err := fresh.Apply(ctxT(t), streamIDs(code)); err != nil {
		t.Fatal(err)
	}
	history, err := q.History(ctxT(t), code)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, h := range history {
		if h.Label == "spend_band" {
			changes = append(changes, h.To)
		}
	}
	if strings.Join(changes, ",") != "high" {
		t.Fatalf("spend_band changes %v; want one change to high", changes)
	}
	doc, err := q.Customer(ctxT(t), code, time.Time{}, tNow, eventstore.Masked)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := doc.Labels["spend_band"]
	if !ok || l.Value != "high" || l.Display != "高消费" || !strings.Contains(l.Reason, "151,000.00") || l.RuleVersion != 2 {
		t.Fatalf("card label %+v (present %v)", l, ok)
	}
	for value, want := range map[string]int{"high": 1, "low": 0} {
		cards, _, err := q.Customers(ctxT(t), projections.CustomerFilter{Dims: map[string]string{"spend_band": value}}, eventstore.Masked)
		if err != nil || len(cards) != want {
			t.Fatalf("?spend_band=%s: %d cards, %v; want %d", value, len(cards), err, want)
		}
		if want == 1 && cards[0].Labels["spend_band"].Display != "高消费" {
			t.Errorf("card labels %+v", cards[0].Labels)
		}
	}
	var fe *projections.FilterError
	if _, _, err := q.Customers(ctxT(t), projections.CustomerFilter{Dims: map[string]string{"spend_band": "medium"}}, eventstore.Masked); !errors.As(err, &fe) || fe.Field != "spend_band" {
		t.Errorf("?spend_band=medium: %v; want a filter error on spend_band", err)
	}
	sum, err := q.Summary(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := sum.Labels["spend_band"]; len(got) != 2 || got[0].Value != "high" || got[0].Customers != 1 || got[1].Customers != 0 {
		t.Errorf("summary of spend_band %+v", got)
	}
}
