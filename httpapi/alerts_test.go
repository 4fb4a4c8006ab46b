package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// alertAPI is an API server with the read side (projector, queries and
// scheduler) on one database; the clock drives the store and the scheduler.
type alertAPI struct {
	*apiEnv
	proj  *projections.Projector
	sched *projections.Scheduler
}

func newAlertAPI(t *testing.T) *alertAPI {
	t.Helper()
	a := &alertAPI{}
	a.apiEnv = newAPI(t, func(cfg *httpapi.Config) { a.wireReadSide(t, cfg) })
	return a
}

// wireReadSide gives cfg the projector-backed queries and a the projector
// and scheduler on cfg's store.
func (a *alertAPI) wireReadSide(t *testing.T, cfg *httpapi.Config) {
	store, ok := cfg.Store.(*eventstore.Store)
	if !ok {
		t.Fatalf("the test store is a %T", cfg.Store)
	}
	a.proj = projections.New(projections.Config{Pool: store.Pool(), Logger: testenv.Logger(t), Now: cfg.Now})
	cfg.Queries = projections.NewQueries(a.proj, store)
	a.sched = projections.NewScheduler(a.proj, cfg.Now, testenv.Logger(t), nil)
}

// at moves the clock (recorded_at of what is posted next) to t.
func (a *alertAPI) at(t time.Time) {
	a.clock.Set(t)
}

// project applies the customers' new events and passes every boundary up to
// the clock's instant.
func (a *alertAPI) project(codes ...domain.CustomerCode) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]uuid.UUID, len(codes))
	for i, c := range codes {
		ids[i] = c.StreamID()
	}
	if _, err := a.proj.Apply(ctx, ids); err != nil {
		a.t.Fatal(err)
	}
	for {
		n, err := a.sched.RunDue(ctx, a.clock.Now())
		if err != nil {
			a.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// alertJSON is one alert of GET /v1/alerts as §6.1 shows it.
type alertJSON struct {
	AlertID    string  `json:"alert_id"`
	Customer   string  `json:"customer"`
	Kind       string  `json:"kind"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	Reason     string  `json:"reason"`
	CreatedAt  string  `json:"created_at"`
	DueAt      *string `json:"due_at"`
	Owner      string  `json:"owner"`
	Status     string  `json:"status"`
	Playbook   string  `json:"playbook"`
	ResolvedAt *string `json:"resolved_at"`
}

type alertsPage struct {
	Alerts []alertJSON `json:"alerts"`
	Next   *string     `json:"next"`
}

func (a *alertAPI) alerts(query string) alertsPage {
	a.t.Helper()
	r := a.get("/v1/alerts"+query).expect(a.t, http.StatusOK)
	var p alertsPage
	r.into(a.t, &p)
	if p.Next == nil || p.Alerts == nil {
		a.t.Fatalf("GET /v1/alerts%s: want {\"alerts\": [...], \"next\": \"...\"}, got %s", query, r.raw)
	}
	return p
}

// allAlerts follows next until the last page.
func (a *alertAPI) allAlerts(query string) ([]alertJSON, int) {
	a.t.Helper()
	var all []alertJSON
	pages := 0
	sep := "?"
	if query != "" {
		sep = "&"
	}
	p := a.alerts(query)
	for {
		pages++
		all = append(all, p.Alerts...)
		if *p.Next == "" || pages > 100 {
			return all, pages
		}
		p = a.alerts(query + sep + "cursor=" + url.QueryEscape(*p.Next))
	}
}

func alertKinds(as []alertJSON) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Customer + "/" + a.Kind
	}
	return out
}

const (
	alCustomer1 = "KH-AL-1" // value tier up (event), then its order leaves the 3-month window
	alCustomer2 = "KH-AL-2" // registered without contact: data_incomplete
	alCustomer3 = "KH-AL-3" // an old order and a low score: churn_risk
)

// seedAlerts posts the three customers' events at t0 (Monday 18:00 in
// Shanghai), projects them, then passes KH-AL-1's window boundary.
func (a *alertAPI) seedAlerts() {
	a.t.Helper()
	full := `"name":"深圳市华强电子有限公司","kind":"enterprise","industry":"制造业-电子元件","contact":{"name":"李明","phone":"13812345678"}`
	a.post(batch([]string{
		fmt.Sprintf(`{"type":"CustomerRegistered","customer":%q,"occurred_at":"2024-05-01T09:30:00+08:00","data":{%s,"owner":"王经理"}}`, alCustomer1, full),
		with(orderPlaced(alCustomer1, "SO-1", `"150000.00"`), `"occurred_at":"2026-08-24T10:00:00+08:00"`),
		registered(alCustomer2),
		fmt.Sprintf(`{"type":"CustomerRegistered","customer":%q,"occurred_at":"2024-05-01T09:30:00+08:00","data":{%s,"owner":"赵经理"}}`, alCustomer3, full),
		with(orderPlaced(alCustomer3, "SO-9", "10"), `"occurred_at":"2026-03-01T10:00:00+08:00"`),
		`{"type":"SatisfactionRated","customer":"` + alCustomer3 + `","data":{"score":2,"feedback":"交期慢"}}`,
	})).expect(a.t, http.StatusCreated)
	a.project(alCustomer1, alCustomer2, alCustomer3)
	// The order of 24 Aug 10:00 leaves the window on 24 Nov 10:00.
	a.at(time.Date(2026, 11, 24, 12, 0, 0, 0, cst))
	a.project()
}

func TestAlertsEndpointShape(t *testing.T) {
	t.Parallel()
	a := newAlertAPI(t)
	a.seedAlerts()

	r := a.get("/v1/alerts").expect(t, http.StatusOK)
	if len(r.obj) != 2 || r.obj["next"] != "" {
		t.Fatalf("body members %v, want exactly alerts and an empty next: %s", r.obj, r.raw)
	}
	raw, _ := r.obj["alerts"].([]any)
	if len(raw) != 4 {
		t.Fatalf("%d alerts: %s", len(raw), r.raw)
	}
	for i, x := range raw {
		m, _ := x.(map[string]any)
		for _, k := range []string{"alert_id", "customer", "kind", "from", "to", "reason", "created_at", "owner", "status", "playbook"} {
			if s, ok := m[k].(string); !ok || s == "" {
				t.Errorf("alerts[%d].%s = %v, want a non-empty string", i, k, m[k])
			}
		}
		for _, k := range []string{"due_at", "resolved_at"} {
			v, ok := m[k]
			if !ok {
				t.Errorf("alerts[%d] lacks %q (null when none)", i, k)
			}
			if _, isString := v.(string); v != nil && !isString {
				t.Errorf("alerts[%d].%s = %v, want a string or null", i, k, v)
			}
		}
		if m["resolved_at"] != nil {
			t.Errorf("alerts[%d] of an open alert has resolved_at %v", i, m["resolved_at"])
		}
	}

	var p alertsPage
	r.into(t, &p)
	rs := domain.DefaultRuleBook().Latest()
	str := func(s string) *string { return &s }
	const created = "2026-11-23T18:00:00+08:00" // t0 in the rules' time zone
	want := []alertJSON{
		{Customer: alCustomer1, Kind: "activity_dropped", From: "medium", To: "low", CreatedAt: "2026-11-24T10:00:00+08:00",
			DueAt: str("2026-11-25T10:00:00+08:00"), Owner: "王经理", Status: "open"},
		// Three alerts created at t0: ties in alert_id order, descending.
		{Customer: alCustomer1, Kind: "value_tier_changed", From: "potential", To: "regular", CreatedAt: created, Owner: "王经理", Status: "info"},
		{Customer: alCustomer2, Kind: "data_incomplete", From: "absent", To: "present", CreatedAt: created,
			DueAt: str("2026-11-26T18:00:00+08:00"), Owner: "王经理", Status: "open"}, // Monday + 3 business days
		{Customer: alCustomer3, Kind: "churn_risk", From: "absent", To: "present", CreatedAt: created,
			DueAt: str("2026-11-24T18:00:00+08:00"), Owner: "赵经理", Status: "open"},
	}
	got := slices.Clone(p.Alerts)
	if got[0].Kind != want[0].Kind {
		t.Fatalf("newest first: %v", alertKinds(got))
	}
	slices.SortFunc(got[1:], func(x, y alertJSON) int { return compareStrings(x.Customer, y.Customer) })
	for i, w := range want {
		g := got[i]
		w.AlertID = g.AlertID
		w.Reason, w.Playbook = g.Reason, rs.Alerts[w.Kind].Playbook
		if alertLine(g) != alertLine(w) || g.Reason == "" {
			t.Errorf("alert %d:\n got  %s\n want %s", i, alertLine(g), alertLine(w))
		}
		at, err := time.Parse(time.RFC3339, g.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		if g.AlertID != domain.AlertID(domain.CustomerCode(g.Customer), g.Kind, at).String() {
			t.Errorf("alert %d: alert_id %s is not deterministic from customer, kind and instant", i, g.AlertID)
		}
	}
	// Ties in created_at are ordered by alert_id, descending.
	for i := 2; i < len(p.Alerts); i++ {
		if p.Alerts[i-1].AlertID <= p.Alerts[i].AlertID {
			t.Errorf("alerts created at the same instant are not in alert_id order: %v", alertKinds(p.Alerts))
		}
	}
}

// alertLine shows every field of an alert, pointers dereferenced.
func alertLine(a alertJSON) string {
	opt := func(s *string) string {
		if s == nil {
			return "null"
		}
		return *s
	}
	return fmt.Sprintf("%s %s %s %s→%s created %s due %s owner %s %s resolved %s playbook %q reason %q",
		a.AlertID, a.Customer, a.Kind, a.From, a.To, a.CreatedAt, opt(a.DueAt), a.Owner, a.Status, opt(a.ResolvedAt), a.Playbook, a.Reason)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestAlertsEndpointFiltersAndPages(t *testing.T) {
	t.Parallel()
	a := newAlertAPI(t)
	a.seedAlerts()
	ids := map[string]string{} // customer/kind -> alert_id
	for _, x := range a.alerts("").Alerts {
		ids[x.Customer+"/"+x.Kind] = x.AlertID
	}

	cases := []struct {
		query string
		want  []string
	}{
		{"?kind=churn_risk", []string{alCustomer3 + "/churn_risk"}},
		{"?kind=followup_overdue", []string{}},
		{"?owner=" + url.QueryEscape("赵经理"), []string{alCustomer3 + "/churn_risk"}},
		{"?owner=nobody", []string{}},
		{"?customer=" + alCustomer1, []string{alCustomer1 + "/activity_dropped", alCustomer1 + "/value_tier_changed"}},
		{"?customer=KH-NOBODY", []string{}},
		{"?customer=" + alCustomer1 + "&kind=value_tier_changed&status=info&owner=" + url.QueryEscape("王经理"), []string{alCustomer1 + "/value_tier_changed"}},
		{"?customer=" + alCustomer1 + "&kind=value_tier_changed&status=open", []string{}},
		{"?status=overdue", []string{}},
		{"?status=resolved", []string{}},
	}
	for _, c := range cases {
		if got := alertKinds(a.alerts(c.query).Alerts); !slices.Equal(got, c.want) {
			t.Errorf("GET /v1/alerts%s: %v, want %v", c.query, got, c.want)
		}
	}
	if got := a.alerts("?status=open").Alerts; len(got) != 3 {
		t.Errorf("open: %v", alertKinds(got))
	}

	// Pages of one: each alert once, newest first, then an empty next.
	all := a.alerts("").Alerts
	paged, pages := a.allAlerts("?limit=1")
	if pages != 4 || len(paged) != 4 {
		t.Fatalf("limit=1: %d alerts in %d pages", len(paged), pages)
	}
	for i := range all {
		if paged[i].AlertID != all[i].AlertID {
			t.Errorf("page %d: %s, want %s", i, paged[i].AlertID, all[i].AlertID)
		}
	}
	if p, n := a.allAlerts("?limit=3&customer=" + alCustomer1); len(p) != 2 || n != 1 {
		t.Errorf("limit=3 for one customer: %d alerts in %d pages", len(p), n)
	}
	if p, n := a.allAlerts("?limit=2&status=open"); len(p) != 3 || n != 2 {
		t.Errorf("limit=2, open: %d alerts in %d pages", len(p), n)
	}

	// A follow-up naming the churn_risk alert resolves it; past the other
	// deadlines the scheduler marks them overdue and escalates.
	a.at(time.Date(2026, 11, 24, 15, 0, 0, 0, cst))
	a.post(fmt.Sprintf(`{"type":"FollowUpLogged","customer":%q,"data":{"by":"赵经理","channel":"phone","summary":"回访","outcome":"已安抚","alert_id":%q}}`,
		alCustomer3, ids[alCustomer3+"/churn_risk"])).expect(t, http.StatusCreated)
	a.project(alCustomer3)
	resolved := a.alerts("?status=resolved").Alerts
	if len(resolved) != 1 || resolved[0].AlertID != ids[alCustomer3+"/churn_risk"] || resolved[0].ResolvedAt == nil ||
		*resolved[0].ResolvedAt != "2026-11-24T15:00:00+08:00" {
		t.Fatalf("resolved: %+v", resolved)
	}
	a.at(time.Date(2026, 11, 27, 9, 0, 0, 0, cst)) // Friday: past the 25 Nov and 26 Nov deadlines
	a.project()
	overdue := alertKinds(a.alerts("?status=overdue").Alerts)
	if want := []string{alCustomer1 + "/activity_dropped", alCustomer2 + "/data_incomplete"}; !slices.Equal(overdue, want) {
		t.Errorf("overdue %v, want %v", overdue, want)
	}
	esc := a.alerts("?kind=followup_overdue").Alerts
	if len(esc) != 2 || esc[0].CreatedAt != "2026-11-26T18:00:00+08:00" || esc[1].CreatedAt != "2026-11-25T10:00:00+08:00" ||
		esc[0].DueAt != nil || esc[0].Status != "open" || esc[0].From != "data_incomplete" || esc[0].To != "overdue" {
		t.Errorf("escalations %+v", esc)
	}
	if got := a.alerts("?status=open&customer=" + alCustomer1).Alerts; len(got) != 1 {
		t.Errorf("KH-AL-1 open: %v", alertKinds(got))
	}
}

func TestAlertsEndpointRejectsBadParameters(t *testing.T) {
	t.Parallel()
	a := newAlertAPI(t)
	a.seedAlerts()
	cases := []struct {
		query, code, field string
	}{
		{"?status=closed", domain.CodeInvalidEnum, "status"},
		{"?status=OPEN", domain.CodeInvalidEnum, "status"},
		{"?kind=activity", domain.CodeInvalidEnum, "kind"},
		{"?kind=churn_risk&status=pending", domain.CodeInvalidEnum, "status"},
		{"?limit=0", domain.CodeInvalidValue, "limit"},
		{"?limit=-1", domain.CodeInvalidValue, "limit"},
		{"?limit=501", domain.CodeInvalidValue, "limit"},
		{"?limit=ten", domain.CodeInvalidValue, "limit"},
		{"?limit=1.5", domain.CodeInvalidValue, "limit"},
		{"?cursor=garbage", domain.CodeInvalidValue, "cursor"},
		{"?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("2026-11-23T10:00:00Z|not-a-uuid")), domain.CodeInvalidValue, "cursor"},
		{"?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("yesterday|"+uuid.Nil.String())), domain.CodeInvalidValue, "cursor"},
		{"?customer=" + url.QueryEscape("bad code!"), domain.CodeInvalidFormat, "customer"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			doRequest(t, a.srv, http.MethodGet, "/v1/alerts"+c.query, nil).expectError(t, http.StatusBadRequest, c.code, c.field)
		})
	}
	// The bounds themselves are fine.
	a.alerts("?limit=1")
	a.alerts("?limit=500")
	// A cursor from another query still is a valid position.
	p := a.alerts("?limit=1")
	if got := a.alerts("?limit=10&kind=churn_risk&cursor=" + url.QueryEscape(*p.Next)).Alerts; len(got) != 1 {
		t.Errorf("cursor reused with a filter: %v", alertKinds(got))
	}
}
