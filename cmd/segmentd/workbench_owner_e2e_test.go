package main

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

type ownedAlert struct {
	AlertID string `json:"alert_id"`
	Owner   string `json:"owner"`
	Status  string `json:"status"`
}

// inboxAlerts are the ids of the alerts an inbox shows for token (open,
// overdue), sorted, and their owners.
func inboxAlerts(t *testing.T, e *workbenchEnv, token string) ([]string, []string) {
	t.Helper()
	var ids, owners []string
	for _, status := range []string{"open", "overdue"} {
		var l struct{ Alerts []ownedAlert }
		if err := e.apiGetAs(t.Context(), token, "/v1/alerts?status="+status+"&limit=500", &l); err != nil {
			t.Fatal(err)
		}
		for _, a := range l.Alerts {
			ids, owners = append(ids, a.AlertID), append(owners, a.Owner)
		}
	}
	sort.Strings(ids)
	return ids, owners
}

// checkOwnerInbox logs in with a token bound to 赵经理: the inbox and the
// customer list hold only 赵经理's alerts and customers, another owner's
// card is not found, a request without the CSRF token is refused, and the
// owner acknowledges an alert, then logs a follow-up that resolves it and
// takes it out of the inbox — recorded as events by 赵经理.
func checkOwnerInbox(b browser, e *workbenchEnv) {
	t := b.t
	b.visit(e.base+"/", "login")
	b.do("log in as 赵经理", chromedp.SendKeys("#login-token", e.secrets["zhao"]),
		chromedp.Click("#login-submit"), chromedp.WaitVisible(`main[data-ready="inbox"]`))
	if who := value(b, "read identity", chromedp.Text("#who")); who != "zhao · "+zhaoOwner {
		t.Errorf("logged in as %q", who)
	}
	mine, owners := inboxAlerts(t, e, "zhao")
	all, _ := inboxAlerts(t, e, "manager")
	if len(mine) == 0 || len(mine) >= len(all) || slices.ContainsFunc(owners, func(o string) bool { return o != zhaoOwner }) {
		t.Fatalf("the owner-bound token lists %v (owners %q) of %v: proves nothing", mine, owners, all)
	}
	got := eval[[]string](b, "read the inbox", `[...document.querySelectorAll('article[data-alert]')].map(a => a.dataset.alert)`)
	sort.Strings(got)
	if !slices.Equal(got, mine) {
		t.Errorf("owner's inbox %v, want %v", got, mine)
	}
	if disabled := eval[bool](b, "owner field", `document.getElementById('inbox-owner').disabled`); !disabled {
		t.Error("an owner-bound session can widen the inbox's owner filter")
	}

	b.visit(e.base+"/#/customers", "customers")
	var list customerList
	if err := e.apiGetAs(t.Context(), "zhao", "/v1/customers", &list); err != nil {
		t.Fatal(err)
	}
	rows := eval[[]string](b, "read the rows", `[...document.querySelectorAll('#customer-table tr[data-customer]')].map(r => r.dataset.customer)`)
	if len(list.Customers) != 1 || !slices.Equal(rows, list.codes()) {
		t.Errorf("owner's list %v, API %v (want only KH202405010002)", rows, list.codes())
	}
	b.visit(e.base+"/#/customer/KH202405010001", "customer")
	if msg := value(b, "read the error", chromedp.Text("main p.error")); !strings.Contains(msg, "no customer") {
		t.Errorf("another owner's card: %q", msg)
	}

	b.visit(e.base+"/#/inbox", "inbox")
	id := mine[0]
	sel := `article[data-alert="` + id + `"]`
	status := eval[int](b, "act without the CSRF token", `fetch('/v1/alerts/`+id+`/ack', {method: 'POST',
		headers: {'Content-Type': 'application/json'}, body: '{}'}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Errorf("an action without the CSRF token: %d, want 403", status)
	}
	b.do("acknowledge", chromedp.Click(sel+" .act-ack"), chromedp.WaitVisible(sel+`[data-status="acknowledged"]`))
	b.do("log a follow-up", chromedp.SendKeys(sel+" .act-followup input", "电话回访：已安排技术支持上门"),
		chromedp.SetValue(sel+" .act-followup select", "phone"), chromedp.Click(sel+" .act-followup button"),
		chromedp.WaitNotPresent(sel))
	var doc struct {
		Alert struct {
			Status     string  `json:"status"`
			Resolution *string `json:"resolution"`
		} `json:"alert"`
		Actions []struct{ Type, By, Note, Channel string } `json:"actions"`
	}
	e.mustGet(t, "/v1/alerts/"+id, &doc)
	if doc.Alert.Status != "resolved" || doc.Alert.Resolution == nil || *doc.Alert.Resolution != "followed_up" {
		t.Errorf("after the follow-up the alert is %+v", doc.Alert)
	}
	if len(doc.Actions) != 2 || doc.Actions[0].Type != "AlertAcknowledged" || doc.Actions[1].Type != "FollowUpLogged" ||
		doc.Actions[0].By != zhaoOwner || doc.Actions[1].By != zhaoOwner || doc.Actions[1].Channel != "phone" {
		t.Errorf("recorded actions %+v", doc.Actions)
	}
}
