package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

type trendResponse struct {
	Label    string `json:"label"`
	Interval string `json:"interval"`
	Points   []struct {
		Start     string       `json:"start"`
		End       string       `json:"end"`
		At        string       `json:"at"`
		Customers int64        `json:"customers"`
		NetAmount string       `json:"net_amount"`
		Values    []trendValue `json:"values"`
	} `json:"points"`
}

type trendValue struct {
	Value     string `json:"value"`
	Customers int64  `json:"customers"`
	NetAmount string `json:"net_amount"`
}

// Every point of the trend equals what as_of at its instant says of each
// customer, summed: customers per label value and their net amounts. The
// history holds changes caused by events, by time alone (the scheduler
// passing window boundaries, some months after a customer's last event) and
// refunds; a rebuild, which writes the trend's days again from the log,
// gives the same trend.
func TestSegmentTrendEqualsAsOfAtEachIntervalEnd(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	// In recording order: the store never records an instant before one it
	// has recorded already.
	day := 24 * time.Hour
	for _, e := range []struct {
		ago      time.Duration
		customer string
		envelope string
	}{
		{400 * day, qKH1, fullRegistration(qKH1)},
		{330 * day, qKH1, orderPlaced(qKH1, "SO-2025-0101", `"650000.00"`)},
		{240 * day, qKH4, orderPlaced(qKH4, "SO-2026-0320", "3000")},
		{200 * day, "KH-OLD", registered("KH-OLD")},
		{199 * day, "KH-OLD", orderPlaced("KH-OLD", "SO-OLD", `"80000.00"`)},
		{150 * day, "KH-OLD", orderRefunded("KH-OLD", "SO-OLD", `"30000.00"`)},
		{120 * day, qKH1, orderRefunded(qKH1, "SO-2025-0101", `"50000.00"`)},
		{45 * day, qKH1, orderPlaced(qKH1, "SO-2026-0815", `"550000.00"`)},
		{20 * day, qKH7, `{"type":"CustomerRegistered","customer":"` + qKH7 + `","data":{"name":"张三丰","kind":"individual","owner":"周经理"}}`},
		{3 * day, qKH4, orderPlaced(qKH4, "SO-2026-1120", "3000")},
		{day, qKH8, registered(qKH8)},
		{12 * time.Hour, qKH8, orderPlaced(qKH8, "SO-8", "100")},
	} {
		q.postAt(t0.Add(-e.ago), e.customer, e.envelope)
	}
	q.clock.Set(t0)
	ctx := context.Background()
	sched := projections.NewScheduler(q.proj, q.clock.Now, testenv.Logger(t), nil)
	for {
		n, err := sched.RunDue(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var timeChanges int
	if err := q.db.Pool.QueryRow(ctx, `SELECT count(*) FROM label_changes WHERE cause_kind = 'time' AND label NOT LIKE 'tag:%'`).Scan(&timeChanges); err != nil {
		t.Fatal(err)
	}
	if timeChanges == 0 {
		t.Fatal("no label changed by time alone: the history lacks what this test is about")
	}
	codes := []string{qKH1, qKH4, qKH7, qKH8, "KH-OLD"}
	live := q.trendsAgreeWithAsOf(t, codes)

	if _, err := q.proj.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if rebuilt := q.trendsAgreeWithAsOf(t, codes); !reflect.DeepEqual(rebuilt, live) {
		t.Errorf("after a rebuild the trend is\n%+v\nwas\n%+v", rebuilt, live)
	}
}

// trendsAgreeWithAsOf checks the 12-month trend of three labels against
// as_of of each customer at each point and returns the trends.
func (q *queryAPI) trendsAgreeWithAsOf(t *testing.T, codes []string) map[string]trendResponse {
	t.Helper()
	out := map[string]trendResponse{}
	for _, label := range []string{domain.LabelSegment, domain.LabelActivity, domain.LabelValueTier} {
		var tr trendResponse
		q.get("/v1/segments/trend?label="+label+"&interval=month&from=2025-12-01").expect(t, http.StatusOK).into(t, &tr)
		out[label] = tr
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
			if q.pointAgreesWithAsOf(t, label, codes, p.At, p.Values) > 0 {
				nonEmpty++
			}
			var total int64
			for _, v := range p.Values {
				total += v.Customers
			}
			if p.Customers != total {
				t.Errorf("%s at %s: total %d customers, values sum to %d", label, p.At, p.Customers, total)
			}
		}
		if nonEmpty < 6 {
			t.Errorf("%s: only %d points with customers; the comparison proves little", label, nonEmpty)
		}
	}
	return out
}

// pointAgreesWithAsOf compares one point's values with as_of at its
// instant and returns how many customers as_of counts.
func (q *queryAPI) pointAgreesWithAsOf(t *testing.T, label string, codes []string, at string, values []trendValue) int64 {
	t.Helper()
	want := map[string][2]int64{}
	for _, code := range codes {
		res := q.get("/v1/customers/" + code + "?as_of=" + url.QueryEscape(at))
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
	for _, v := range values {
		w := want[v.Value]
		delete(want, v.Value)
		total += w[0]
		if v.Customers != w[0] || v.NetAmount != domain.Money(w[1]).String() {
			t.Errorf("%s at %s, %s: trend %d customers %s, as_of %d customers %s",
				label, at, v.Value, v.Customers, v.NetAmount, w[0], domain.Money(w[1]).String())
		}
	}
	if len(want) > 0 {
		t.Errorf("%s at %s: values missing from the trend: %v", label, at, want)
	}
	return total
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
