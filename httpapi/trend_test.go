package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

type trendResponse struct {
	Label    string `json:"label"`
	Interval string `json:"interval"`
	Points   []struct {
		Start     string `json:"start"`
		End       string `json:"end"`
		At        string `json:"at"`
		Customers int64  `json:"customers"`
		NetAmount string `json:"net_amount"`
		Values    []struct {
			Value     string `json:"value"`
			Customers int64  `json:"customers"`
			NetAmount string `json:"net_amount"`
		} `json:"values"`
	} `json:"points"`
}

// Every point of the trend equals what as_of at its instant says of each
// customer, summed: customers per label value and their net amounts.
func TestSegmentTrendEqualsAsOfAtEachIntervalEnd(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedList()
	q.postAt(t0.Add(-30*24*time.Hour), qKH1, orderRefunded(qKH1, "SO-2026-0815", `"50000.00"`))
	q.postAt(t0.Add(-200*24*time.Hour), "KH-OLD", registered("KH-OLD"))
	q.postAt(t0.Add(-199*24*time.Hour), "KH-OLD", orderPlaced("KH-OLD", "SO-OLD", `"80000.00"`))
	q.clock.Set(t0)
	codes := []string{qKH1, qKH4, qKH7, qKH8, "KH-OLD"}

	for _, label := range []string{domain.LabelSegment, domain.LabelActivity, domain.LabelValueTier} {
		var tr trendResponse
		q.get("/v1/segments/trend?label="+label+"&interval=month&from=2025-12-01").expect(t, http.StatusOK).into(t, &tr)
		if len(tr.Points) != 12 || tr.Label != label || tr.Interval != "month" {
			t.Fatalf("%s: %d points (label %q interval %q), want 12 months Dec 2025 … Nov 2026", label, len(tr.Points), tr.Label, tr.Interval)
		}
		if tr.Points[0].Start != "2025-12-01T00:00:00+08:00" || tr.Points[0].At != "2025-12-31T23:59:59.999999+08:00" {
			t.Errorf("first point %s … %s", tr.Points[0].Start, tr.Points[0].At)
		}
		if last := tr.Points[11]; last.At != t0.In(cst).Format(time.RFC3339Nano) {
			t.Errorf("the month under way is described at %s, want now", last.At)
		}
		nonEmpty := 0
		for _, p := range tr.Points {
			want := map[string][2]int64{}
			for _, code := range codes {
				res := q.get("/v1/customers/" + code + "?as_of=" + url.QueryEscape(p.At))
				if res.status == http.StatusNotFound {
					continue
				}
				var doc struct {
					Labels  map[string]struct{ Value string } `json:"labels"`
					Metrics struct {
						NetAmount string `json:"net_amount"`
					} `json:"metrics"`
				}
				res.expect(t, http.StatusOK).into(t, &doc)
				net, err := domain.ParseMoney(doc.Metrics.NetAmount)
				if err != nil {
					t.Fatal(err)
				}
				w := want[doc.Labels[label].Value]
				want[doc.Labels[label].Value] = [2]int64{w[0] + 1, w[1] + int64(net)}
			}
			var total int64
			for _, v := range p.Values {
				w := want[v.Value]
				delete(want, v.Value)
				total += w[0]
				if v.Customers != w[0] || v.NetAmount != domain.Money(w[1]).String() {
					t.Errorf("%s at %s, %s: trend %d customers %s, as_of %d customers %s",
						label, p.At, v.Value, v.Customers, v.NetAmount, w[0], domain.Money(w[1]).String())
				}
			}
			if len(want) > 0 {
				t.Errorf("%s at %s: values missing from the trend: %v", label, p.At, want)
			}
			if p.Customers != total {
				t.Errorf("%s at %s: total %d customers, as_of %d", label, p.At, p.Customers, total)
			}
			if total > 0 {
				nonEmpty++
			}
		}
		if nonEmpty < 6 {
			t.Errorf("%s: only %d points with customers; the comparison proves little", label, nonEmpty)
		}
	}
}

func TestSegmentTrendRejectsBadParametersNamingTheField(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	for query, want := range map[string][2]string{
		"label=tag":                     {"invalid_enum", "label"},
		"label=colour":                  {"invalid_enum", "label"},
		"interval=year":                 {"invalid_enum", "interval"},
		"from=yesterday":                {"invalid_format", "from"},
		"to=2026-13-01":                 {"invalid_format", "to"},
		"from=2026-11-01&to=2026-10-01": {"invalid_value", "from"},
		"interval=day&from=2020-01-01":  {"invalid_value", "from"},
	} {
		q.get("/v1/segments/trend?"+query).expectError(t, http.StatusBadRequest, want[0], want[1])
	}
}
