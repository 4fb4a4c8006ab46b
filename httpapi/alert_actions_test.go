package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/httpapi"
)

// actionAPI is alertAPI (open, for seeding) plus a second server on the
// same store and read side with tokens: owner-bound ones for 王经理 and
// 赵经理, a team lead (manage), and the scopes of SPEC §6.
type actionAPI struct {
	*alertAPI
	secure  *httptest.Server
	secrets map[string]string
}

func newActionAPI(t *testing.T) *actionAPI {
	t.Helper()
	a := &actionAPI{alertAPI: &alertAPI{}, secrets: map[string]string{}}
	var cfg httpapi.Config
	a.apiEnv = newAPI(t, func(c *httpapi.Config) {
		a.wireReadSide(t, c)
		cfg = *c
	})
	var lines strings.Builder
	for _, tk := range []struct {
		name, owner string
		scopes      []auth.Scope
	}{
		{"ingester", "", []auth.Scope{auth.ScopeIngest}},
		{"reader", "", []auth.Scope{auth.ScopeRead}},
		{"wang", "王经理", []auth.Scope{auth.ScopeRead}},
		{"zhao", "赵经理", []auth.Scope{auth.ScopeRead}},
		{"lead", "", []auth.Scope{auth.ScopeManage}},
		{"root", "", []auth.Scope{auth.ScopeAdmin}},
	} {
		secret, line, err := auth.NewForOwner(tk.name, tk.scopes, tk.owner)
		if err != nil {
			t.Fatal(err)
		}
		a.secrets[tk.name] = secret
		lines.WriteString(line + "\n")
	}
	tokens, err := auth.Parse(strings.NewReader(lines.String()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tokens = tokens
	a.secure = httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(a.secure.Close)
	a.seedAlerts()
	return a
}

// as sends a request with the named token.
func (a *actionAPI) as(token, method, path, body string) response {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, a.secure.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+a.secrets[token])
	}
	res, err := a.secure.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.obj); err != nil {
		a.t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, raw)
	}
	return r
}

// alertView is GET /v1/alerts/{id}.
type alertView struct {
	Alert struct {
		alertJSON
		Resolution     *string `json:"resolution"`
		AcknowledgedAt *string `json:"acknowledged_at"`
		SnoozedUntil   *string `json:"snoozed_until"`
	} `json:"alert"`
	Actions []struct {
		Type    string `json:"type"`
		By      string `json:"by"`
		To      string `json:"to"`
		Until   string `json:"until"`
		Note    string `json:"note"`
		Channel string `json:"channel"`
	} `json:"actions"`
	Deliveries []map[string]any `json:"deliveries"`
}

func (a *actionAPI) view(token string, id uuid.UUID) alertView {
	a.t.Helper()
	var v alertView
	a.as(token, http.MethodGet, "/v1/alerts/"+id.String(), "").expect(a.t, http.StatusOK).into(a.t, &v)
	return v
}

var (
	dropID  = domain.AlertID(alCustomer1, domain.AlertActivityDropped, time.Date(2026, 11, 24, 10, 0, 0, 0, cst))
	tierID  = domain.AlertID(alCustomer1, domain.AlertValueTierChanged, t0)
	churnID = domain.AlertID(alCustomer3, domain.AlertChurnRisk, t0)
)

func TestAlertTokenMatrix(t *testing.T) {
	t.Parallel()
	a := newActionAPI(t)
	ack := "/v1/alerts/" + dropID.String() + "/ack"
	// KH-AL-1 and its activity_dropped alert are 王经理's.
	for _, c := range []struct {
		token     string
		get, post int
	}{
		{"", http.StatusUnauthorized, http.StatusUnauthorized},
		{"ingester", http.StatusForbidden, http.StatusForbidden},
		{"reader", http.StatusOK, http.StatusForbidden},    // reads, may not act
		{"zhao", http.StatusNotFound, http.StatusNotFound}, // another owner's: as if absent
		{"wang", http.StatusOK, http.StatusAccepted},       // the owner
		{"lead", http.StatusOK, http.StatusAccepted},       // manage: any alert
		{"root", http.StatusOK, http.StatusAccepted},       // admin: any alert
	} {
		if got := a.as(c.token, http.MethodGet, "/v1/alerts/"+dropID.String(), "").status; got != c.get {
			t.Errorf("GET as %q: %d, want %d", c.token, got, c.get)
		}
		if got := a.as(c.token, http.MethodPost, ack, "").status; got != c.post {
			t.Errorf("POST ack as %q: %d, want %d", c.token, got, c.post)
		}
	}
	a.as("zhao", http.MethodGet, "/v1/alerts/"+dropID.String(), "").expectError(t, http.StatusNotFound, "alert_not_found", "id")
	a.as("zhao", http.MethodGet, "/v1/alerts/"+uuid.NewString(), "").expectError(t, http.StatusNotFound, "alert_not_found", "id")

	// Customers: an owner-bound token reads only its owner's, 404 for the
	// others exactly as for a customer that does not exist.
	for _, c := range []struct {
		token, path string
		want        int
	}{
		{"wang", "/v1/customers/" + alCustomer1, http.StatusOK},
		{"wang", "/v1/customers/" + alCustomer3, http.StatusNotFound},
		{"wang", "/v1/customers/KH-NOBODY", http.StatusNotFound},
		{"zhao", "/v1/customers/" + alCustomer3, http.StatusOK},
		{"zhao", "/v1/customers/" + alCustomer1, http.StatusNotFound},
		{"reader", "/v1/customers/" + alCustomer3, http.StatusOK},
		{"lead", "/v1/customers/" + alCustomer1, http.StatusOK},
	} {
		if got := a.as(c.token, http.MethodGet, c.path, "").status; got != c.want {
			t.Errorf("GET %s as %s: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	a.as("wang", http.MethodGet, "/v1/customers/"+alCustomer3, "").expectError(t, http.StatusNotFound, "customer_not_found", "customer")

	// Lists: an owner-bound token sees the alerts its owner holds.
	var page alertsPage
	a.as("zhao", http.MethodGet, "/v1/alerts?owner="+"%E7%8E%8B%E7%BB%8F%E7%90%86", "").expect(t, http.StatusOK).into(t, &page)
	if got := alertKinds(page.Alerts); len(got) != 1 || got[0] != alCustomer3+"/churn_risk" {
		t.Errorf("赵经理's list: %v", got)
	}
	a.as("lead", http.MethodGet, "/v1/alerts", "").expect(t, http.StatusOK).into(t, &page)
	if len(page.Alerts) != 4 {
		t.Errorf("the lead's list: %v", alertKinds(page.Alerts))
	}
}

func TestAlertActionsAreEventsByTheToken(t *testing.T) {
	t.Parallel()
	a := newActionAPI(t)
	path := "/v1/alerts/" + dropID.String()

	// Acknowledge: recorded with by = the owner the token is bound to.
	r := a.as("wang", http.MethodPost, path+"/ack", "").expect(t, http.StatusAccepted)
	if r.obj["by"] != "王经理" || r.obj["type"] != "AlertAcknowledged" {
		t.Fatalf("ack answer %s", r.raw)
	}
	a.project(alCustomer1)
	v := a.view("wang", dropID)
	if v.Alert.Status != domain.AlertStatusAcknowledged || v.Alert.AcknowledgedAt == nil || len(v.Actions) != 1 ||
		v.Actions[0].Type != "AlertAcknowledged" || v.Actions[0].By != "王经理" || v.Deliveries == nil || len(v.Deliveries) != 0 {
		t.Fatalf("after ack: %+v", v)
	}

	// Snooze: at most 7 days; the body is strict.
	a.as("wang", http.MethodPost, path+"/snooze", `{"until":"2026-12-02T12:00:01+08:00"}`).expectError(t, http.StatusBadRequest, domain.CodeOutOfRange, "until")
	a.as("wang", http.MethodPost, path+"/snooze", `{"until":"明天"}`).expectError(t, http.StatusBadRequest, domain.CodeInvalidFormat, "until")
	a.as("wang", http.MethodPost, path+"/snooze", `{}`).expectError(t, http.StatusBadRequest, domain.CodeRequired, "until")
	a.as("wang", http.MethodPost, path+"/snooze", `{"until":"2026-11-24T14:00:00+08:00","by":"路人甲"}`).expect(t, http.StatusBadRequest)
	a.as("wang", http.MethodPost, path+"/ack", `{"to":"x"}`).expectError(t, http.StatusBadRequest, domain.CodeUnknownField, "to")
	a.as("wang", http.MethodPost, path+"/snooze", `{"until":"2026-11-24T14:00:00+08:00"}`).expect(t, http.StatusAccepted)
	a.project(alCustomer1)
	if v := a.view("wang", dropID); v.Alert.Status != domain.AlertStatusSnoozed || v.Alert.SnoozedUntil == nil || *v.Alert.SnoozedUntil != "2026-11-24T14:00:00+08:00" {
		t.Fatalf("after snooze: %+v", v.Alert)
	}

	// Assign (the team lead): 赵经理 now holds it and may see and act on it.
	a.as("lead", http.MethodPost, path+"/assign", `{}`).expectError(t, http.StatusBadRequest, domain.CodeRequired, "to")
	a.as("lead", http.MethodPost, path+"/assign", `{"to":"赵经理"}`).expect(t, http.StatusAccepted)
	a.project(alCustomer1)
	if v := a.view("zhao", dropID); v.Alert.Owner != "赵经理" {
		t.Fatalf("after assign: %+v", v.Alert)
	}

	// Resolve: a follow-up by 赵经理 naming the alert.
	a.as("zhao", http.MethodPost, path+"/resolve", `{"note":"电话回访，客户下月补单","channel":"phone"}`).expect(t, http.StatusAccepted)
	a.project(alCustomer1)
	v = a.view("root", dropID)
	if v.Alert.Status != domain.AlertResolved || v.Alert.Resolution == nil || *v.Alert.Resolution != domain.ResolutionFollowedUp {
		t.Fatalf("after resolve: %+v", v.Alert)
	}
	var kinds []string
	for _, act := range v.Actions {
		kinds = append(kinds, act.Type+"/"+act.By)
	}
	if want := "AlertAcknowledged/王经理 AlertSnoozed/王经理 AlertAssigned/lead FollowUpLogged/赵经理"; strings.Join(kinds, " ") != want {
		t.Errorf("actions %v, want %s", kinds, want)
	}
	if last := v.Actions[len(v.Actions)-1]; last.Note != "电话回访，客户下月补单" || last.Channel != "phone" {
		t.Errorf("follow-up %+v", last)
	}

	// A resolved alert takes no action; an info alert is no task.
	a.as("lead", http.MethodPost, path+"/ack", "").expectError(t, http.StatusConflict, "alert_closed", "id")
	a.as("wang", http.MethodPost, "/v1/alerts/"+tierID.String()+"/ack", "").expectError(t, http.StatusConflict, "alert_not_actionable", "id")
	a.as("wang", http.MethodPost, "/v1/alerts/not-a-uuid/ack", "").expectError(t, http.StatusBadRequest, domain.CodeInvalidFormat, "id")
}

func TestEventsEndpointTakesByFromTheToken(t *testing.T) {
	t.Parallel()
	a := newActionAPI(t)
	// Alert actions only through the alert endpoints.
	a.as("ingester", http.MethodPost, "/v1/events",
		`{"type":"AlertAcknowledged","customer":"`+alCustomer3+`","data":{"alert_id":"`+churnID.String()+`","by":"赵经理"}}`).
		expectError(t, http.StatusBadRequest, domain.CodeInvalidValue, "type")
	// A follow-up in someone else's name is refused, nothing is stored.
	a.as("ingester", http.MethodPost, "/v1/events",
		`{"type":"FollowUpLogged","customer":"`+alCustomer3+`","data":{"by":"路人甲","alert_id":"`+churnID.String()+`"}}`).
		expectError(t, http.StatusBadRequest, domain.CodeInvalidValue, "data.by")
	a.project(alCustomer3)
	if v := a.view("zhao", churnID); v.Alert.Status != domain.AlertOpen || len(v.Actions) != 0 {
		t.Fatalf("after refused requests: %+v", v)
	}
	// In the token's own name it is recorded and resolves the alert.
	a.as("ingester", http.MethodPost, "/v1/events",
		`{"type":"FollowUpLogged","customer":"`+alCustomer3+`","data":{"by":"ingester","alert_id":"`+churnID.String()+`"}}`).
		expect(t, http.StatusCreated)
	a.project(alCustomer3)
	if v := a.view("zhao", churnID); v.Alert.Status != domain.AlertResolved || len(v.Actions) != 1 || v.Actions[0].By != "ingester" {
		t.Fatalf("after the follow-up: %+v", v)
	}
}
