package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/internal/testenv"
)

// workbenchEnv is a real segmentd (embedded JetStream, PostgreSQL, the
// demo data set, bearer tokens) and the secrets of its tokens.
type workbenchEnv struct {
	t       *testing.T
	base    string
	secrets map[string]string
}

func startWorkbench(t *testing.T) *workbenchEnv {
	t.Helper()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	e := &workbenchEnv{t: t, secrets: map[string]string{}}
	var lines strings.Builder
	// zhao is bound to 赵经理, owner of the demo customer KH202405010002.
	owners := map[string]string{"zhao": zhaoOwner}
	for name, scopes := range map[string][]auth.Scope{"manager": {auth.ScopeRead, auth.ScopeAudit}, "ingester": {auth.ScopeIngest}, "zhao": {auth.ScopeRead}} {
		secret, line, err := auth.NewForOwner(name, scopes, owners[name])
		if err != nil {
			t.Fatal(err)
		}
		e.secrets[name] = secret
		lines.WriteString(line + "\n")
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--demo", "--tokens", tokens})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = db.URL
	cfg.EmbeddedNATSAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := start(ctx, &cfg, testenv.Logger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testenv.Eventually(t, 30*time.Second, "HTTP listener", func() bool { return a.Listening() != "" })
	e.base = "http://" + a.Listening()
	testenv.Eventually(t, 60*time.Second, "the five demo customers labelled", func() bool {
		var list struct{ Customers []any }
		return e.apiGet(ctx, "/v1/customers", &list) == nil && len(list.Customers) == 5
	})
	return e
}

// zhaoOwner is the demo owner the owner-bound token "zhao" reads for.
const zhaoOwner = "赵经理"

// apiGet reads an API path with the manager's token into v.
func (e *workbenchEnv) apiGet(ctx context.Context, path string, v any) error {
	return e.apiGetAs(ctx, "manager", path, v)
}

// apiGetAs reads an API path with the named token into v.
func (e *workbenchEnv) apiGetAs(ctx context.Context, token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.secrets[token])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

func (e *workbenchEnv) mustGet(t *testing.T, path string, v any) {
	t.Helper()
	if err := e.apiGet(t.Context(), path, v); err != nil {
		t.Fatal(err)
	}
}

// cspRecorder collects Content-Security-Policy violations of every page.
const cspRecorder = `window.__csp = []; document.addEventListener('securitypolicyviolation',
	(e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));`

// browser is a chromedp tab of a test.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// with is the same tab for a subtest.
func (b browser) with(t *testing.T) browser { return browser{t: t, ctx: b.ctx} }

// do runs chromedp steps, failing the test on error.
func (b browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	t, ctx := b.t, b.ctx
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, page)
	}
}

// value runs one chromedp action that yields a value.
func value[T any](b browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval evaluates a script in the page (awaiting a promise it returns).
func eval[T any](b browser, what, script string) T {
	b.t.Helper()
	return value(b, what, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
}

// visit opens a page of the workbench and waits until it has rendered.
func (b browser) visit(url, ready string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url), chromedp.WaitVisible(`main[data-ready="`+ready+`"]`))
	b.noViolations(url)
}

func (b browser) noViolations(where string) {
	b.t.Helper()
	violations := eval[[]string](b, "read CSP violations", `window.__csp || []`)
	if len(violations) > 0 {
		b.t.Errorf("%s: Content-Security-Policy violations: %q", where, violations)
	}
}

// screenshot saves the page when SEGMENTS_SCREENSHOTS names a directory
// (docs/screenshots when the README's pictures are renewed).
func (b browser) screenshot(name string) {
	t := b.t
	t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if len(png) < 1000 {
		t.Errorf("screenshot of %s is %d bytes", name, len(png))
	}
	if dir := os.Getenv("SEGMENTS_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWorkbenchInARealBrowser drives the workbench in headless Chromium
// against a real segmentd: log in with a token (HttpOnly, SameSite=Strict
// cookie), the inbox shows the alerts the API lists, the customer list
// filters as the API does and exports the same rows as CSV, the card shows
// the customer's labels, tags and timeline, the heat map cells and the
// trend values equal the API's, the auditor sees a customer at an instant —
// and no page breaks the Content-Security-Policy.
func TestWorkbenchInARealBrowser(t *testing.T) {
	t.Parallel()
	e := startWorkbench(t)
	b := browser{t: t, ctx: testenv.Browser(t, 4*time.Minute)}
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatal(err)
	}

	// Login: a wrong token is refused; the right one gives a session cookie.
	b.visit(e.base+"/", "login")
	b.screenshot("login")
	b.do("log in with a wrong token", chromedp.SendKeys("#login-token", "seg_wrong"), chromedp.Click("#login-submit"),
		chromedp.WaitVisible(`#login-error:not(:empty)`))
	msg := value(b, "read the login error", chromedp.Text("#login-error"))
	if !strings.Contains(msg, "登录失败") {
		t.Errorf("wrong token: %q", msg)
	}
	eval[bool](b, "clear the token field", `(document.getElementById('login-token').value = '') === ''`)
	b.do("log in", chromedp.SendKeys("#login-token", e.secrets["manager"]),
		chromedp.Click("#login-submit"), chromedp.WaitVisible(`main[data-ready="inbox"]`))
	got, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	cookies := got.Cookies
	if len(cookies) != 1 || cookies[0].Name != "segments_session" || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict {
		t.Errorf("session cookie: %+v", cookies)
	}
	who := value(b, "read identity", chromedp.Text("#who"))
	if who != "manager" {
		t.Errorf("logged in as %q", who)
	}

	t.Run("the inbox lists the open and overdue alerts", func(t *testing.T) { checkInbox(b.with(t), e) })
	t.Run("the customer list filters and exports what the API lists", func(t *testing.T) { checkCustomerList(b.with(t), e) })
	t.Run("the card shows labels, tags with reasons and the timeline", func(t *testing.T) { checkCard(b.with(t), e) })
	t.Run("heat map cells and trend values equal the API", func(t *testing.T) { checkOverview(b.with(t), e) })
	t.Run("the auditor sees a customer at an instant and verifies the chain", func(t *testing.T) { checkAudit(b.with(t), e) })
	t.Run("labels, the heat map's numbers and contrast, keyboard navigation", func(t *testing.T) { checkAccessibility(b.with(t), e) })
	t.Run("English on request, logout ends the session", func(t *testing.T) { checkLanguageAndLogout(b.with(t), e) })
	t.Run("an owner sees only their customers and alerts, acknowledges and follows up", func(t *testing.T) { checkOwnerInbox(b.with(t), e) })
}

type alertList struct {
	Alerts []struct {
		AlertID string `json:"alert_id"`
	} `json:"alerts"`
}

func checkInbox(b browser, e *workbenchEnv) {
	t := b.t
	b.visit(e.base+"/#/inbox", "inbox")
	var want []string
	for _, status := range []string{"open", "overdue"} {
		var l alertList
		e.mustGet(t, "/v1/alerts?status="+status+"&limit=500", &l)
		for _, a := range l.Alerts {
			want = append(want, a.AlertID)
		}
	}
	got := eval[[]string](b, "read the inbox", `[...document.querySelectorAll('article[data-alert]')].map(a => a.dataset.alert)`)
	sort.Strings(want)
	sort.Strings(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("inbox alerts %v, want the API's open and overdue %v", got, want)
	}
	sections := eval[[]string](b, "read the sections", `[...document.querySelectorAll('main section h2')].map(h => h.textContent)`)
	if len(sections) != 3 || !strings.HasPrefix(sections[0], "已逾期") || !strings.HasPrefix(sections[1], "今日到期") || !strings.HasPrefix(sections[2], "待处理") {
		t.Errorf("inbox sections %q", sections)
	}
	b.screenshot("inbox")
}

type customerList struct {
	Customers []struct {
		Customer string `json:"customer"`
	} `json:"customers"`
}

func (l customerList) codes() []string {
	out := []string{}
	for _, c := range l.Customers {
		out = append(out, c.Customer)
	}
	return out
}

func checkCustomerList(b browser, e *workbenchEnv) {
	t := b.t
	b.visit(e.base+"/#/customers", "customers")
	rows := func() []string {
		return eval[[]string](b, "read the rows", `[...document.querySelectorAll('#customer-table tr[data-customer]')].map(r => r.dataset.customer)`)
	}
	var all customerList
	e.mustGet(t, "/v1/customers", &all)
	if got := rows(); !slices.Equal(got, all.codes()) {
		t.Errorf("list rows %v, API %v", got, all.codes())
	}
	b.screenshot("customers")

	b.do("filter by lifecycle", chromedp.SetValue("#filter-lifecycle", "customer"), chromedp.Click("#filter-submit"),
		chromedp.WaitVisible(`main[data-ready="customers"]`))
	var filtered customerList
	e.mustGet(t, "/v1/customers?lifecycle=customer", &filtered)
	testenv.Eventually(t, 10*time.Second, "the filtered rows", func() bool { return slices.Equal(rows(), filtered.codes()) })
	if len(filtered.Customers) == 0 || len(filtered.Customers) == len(all.Customers) {
		t.Errorf("the filter selects %d of %d customers; it proves nothing", len(filtered.Customers), len(all.Customers))
	}

	// The export link, fetched by the page with its session cookie.
	text := eval[string](b, "export CSV", `fetch(document.getElementById('export-csv').href).then(r => r.text())`)
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatalf("exported CSV: %v\n%s", err, text)
	}
	var exported []string
	for _, r := range records[1:] {
		exported = append(exported, r[0])
	}
	if records[0][0] != "客户编号" || !slices.Equal(exported, filtered.codes()) {
		t.Errorf("exported rows %v (header %q), want %v", exported, records[0], filtered.codes())
	}
}

func checkCard(b browser, e *workbenchEnv) {
	t := b.t
	const code = "KH202405010001"
	b.visit(e.base+"/#/customer/"+code, "customer")
	title := value(b, "read the card title", chromedp.Text("#card-title"))
	tags := eval[[]string](b, "read the tags", `[...document.querySelectorAll('#card-tags li[data-tag]')].map(li => li.dataset.tag + ' ' + li.textContent)`)
	labels := eval[[]string](b, "read the labels", `[...document.querySelectorAll('p[data-label]')].map(p => p.dataset.label + ' ' + p.textContent)`)
	timeline := eval[int](b, "count the timeline", `document.querySelectorAll('#card-timeline tbody tr').length`)
	var doc struct {
		Labels map[string]struct{ Display, Reason string }
		Tags   []struct{ Tag, Reason string }
	}
	e.mustGet(t, "/v1/customers/"+code, &doc)
	if !strings.HasPrefix(title, code) {
		t.Errorf("card title %q", title)
	}
	if len(tags) != len(doc.Tags) || len(doc.Tags) == 0 || !strings.Contains(tags[0], doc.Tags[0].Reason) {
		t.Errorf("card tags %q, API %+v", tags, doc.Tags)
	}
	for _, l := range labels {
		name, _, _ := strings.Cut(l, " ")
		if want := doc.Labels[name]; !strings.Contains(l, want.Display) || !strings.Contains(l, want.Reason) {
			t.Errorf("card label %q, API %+v", l, want)
		}
	}
	var history struct{ Changes []any }
	e.mustGet(t, "/v1/customers/"+code+"/labels/history", &history)
	if timeline != len(history.Changes) || timeline == 0 {
		t.Errorf("timeline rows %d, API changes %d", timeline, len(history.Changes))
	}
	b.screenshot("card")
}

type summaryDoc struct {
	NetAmount string `json:"net_amount"`
	Matrix    []struct {
		Segment   string `json:"segment"`
		Customers int64  `json:"customers"`
		NetAmount string `json:"net_amount"`
	} `json:"matrix"`
	Population struct {
		Buyers       int64 `json:"buyers"`
		Repurchasers int64 `json:"repurchasers"`
		RFMScored    int64 `json:"rfm_scored"`
	} `json:"population"`
}

type trendDoc struct {
	Points []struct {
		Start     string `json:"start"`
		Customers int64  `json:"customers"`
		Values    []struct {
			Value     string `json:"value"`
			Customers int64  `json:"customers"`
			NetAmount string `json:"net_amount"`
		} `json:"values"`
	} `json:"points"`
}

// overviewFigures are the heat map cells and trend values as strings, for
// comparing the page with the API.
func apiOverview(t *testing.T, e *workbenchEnv) (map[string]string, map[string]string) {
	var s summaryDoc
	var tr trendDoc
	e.mustGet(t, "/v1/segments/summary", &s)
	e.mustGet(t, "/v1/segments/trend?label=segment&interval=month", &tr)
	heat := map[string]string{}
	total := parseYuan(s.NetAmount)
	for _, c := range s.Matrix {
		share := 0.0
		if total > 0 {
			share = parseYuan(c.NetAmount) / total
		}
		heat[c.Segment] = fmt.Sprintf("%d %.4f", c.Customers, share)
	}
	heat["population"] = fmt.Sprintf("%d %d %d", s.Population.Buyers, s.Population.Repurchasers, s.Population.RFMScored)
	trend := map[string]string{}
	for _, p := range tr.Points {
		month := p.Start[:7]
		trend[month] = fmt.Sprint(p.Customers)
		for _, v := range p.Values {
			if v.Customers > 0 {
				trend[month+" "+v.Value] = fmt.Sprintf("%d %s", v.Customers, v.NetAmount)
			}
		}
	}
	return heat, trend
}

func parseYuan(s string) float64 {
	var f float64
	_, _ = fmt.Sscan(s, &f)
	return f
}

func pageOverview(b browser) (map[string]string, map[string]string) {
	heat := eval[map[string]string](b, "read the heat map",
		`Object.fromEntries([...document.querySelectorAll('#heat-table td[data-segment]')].map(td => [td.dataset.segment, td.dataset.customers + ' ' + td.dataset.share]))`)
	heat["population"] = eval[string](b, "read the population figures", `(r => r.dataset.buyers + ' ' + r.dataset.repurchasers + ' ' +
		document.getElementById('rfm-segments').dataset.scored)(document.getElementById('repurchase-rate'))`)
	trend := eval[map[string]string](b, "read the trend table", `Object.fromEntries([...document.querySelectorAll('#trend-table tr[data-month]')].flatMap(tr => [
			[tr.dataset.month, tr.querySelector('[data-total]').dataset.total],
			...[...tr.querySelectorAll('td[data-value]')].filter(td => td.dataset.customers !== '0').map(td => [tr.dataset.month + ' ' + td.dataset.value, td.dataset.customers + ' ' + td.dataset.net])]))`)
	return heat, trend
}

func checkOverview(b browser, e *workbenchEnv) {
	t := b.t
	// The demo passes a window boundary a minute after it starts; the page
	// and the API agree when both are read on the same side of it.
	var heat, trend, apiHeat, apiTrend map[string]string
	for range 3 {
		beforeHeat, beforeTrend := apiOverview(t, e)
		b.visit(e.base+"/#/overview", "overview")
		heat, trend = pageOverview(b)
		apiHeat, apiTrend = apiOverview(t, e)
		if fmt.Sprint(beforeHeat, beforeTrend) == fmt.Sprint(apiHeat, apiTrend) {
			break
		}
	}
	if len(apiHeat) != 13 || fmt.Sprint(heat) != fmt.Sprint(apiHeat) {
		t.Errorf("heat map cells\n%v\nAPI\n%v", heat, apiHeat)
	}
	if len(apiTrend) < 12 || fmt.Sprint(trend) != fmt.Sprint(apiTrend) {
		t.Errorf("trend values\n%v\nAPI\n%v", trend, apiTrend)
	}
	canvases := eval[int](b, "count the charts", `document.querySelectorAll('#trend-chart canvas, #distribution canvas').length`)
	if canvases < 6 {
		t.Errorf("%d chart canvases, want the trend and five distributions", canvases)
	}
	b.screenshot("overview")
}

func checkAudit(b browser, e *workbenchEnv) {
	t := b.t
	b.visit(e.base+"/#/audit", "audit")
	b.do("verify the whole log", chromedp.Click("#verify-all"), chromedp.WaitVisible(`#audit-verify:not(:empty)`))
	verdict := value(b, "read the verdict", chromedp.Text("#audit-verify"))
	if !strings.HasPrefix(verdict, "哈希链完整") {
		t.Errorf("verification says %q", verdict)
	}
	// The customer a minute into the future as the browser's local time: the
	// document as of then.
	at := time.Now().Add(time.Minute).Format("2006-01-02T15:04:05")
	b.do("type the customer's code", chromedp.SendKeys("#audit-code", "KH202405010003"))
	// Set in the page: SetValue can meet a node the page has just re-rendered.
	eval[bool](b, "set the instant", fmt.Sprintf(`(document.getElementById('audit-at').value = %q) !== ''`, at))
	b.do("show a customer at an instant", chromedp.Click(`#audit-form button[type="submit"]`),
		chromedp.WaitVisible(`#audit-result #card-title`))
	title := value(b, "read the title", chromedp.Text("#audit-result #card-title"))
	asOf := value(b, "read the instant", chromedp.Text("#audit-result p.muted"))
	if !strings.HasPrefix(title, "KH202405010003") || !strings.Contains(asOf, "数据时点") {
		t.Errorf("auditor's view: %q / %q", title, asOf)
	}
	b.screenshot("audit")
}

func checkLanguageAndLogout(b browser, e *workbenchEnv) {
	t := b.t
	b.visit(e.base+"/#/customers", "customers")
	b.do("switch to English", chromedp.Click("#lang"), chromedp.WaitVisible(`main[data-ready="customers"]`))
	nav := value(b, "read the navigation", chromedp.Text("#nav-customers"))
	if nav != "Customers" {
		t.Errorf("English navigation says %q", nav)
	}
	b.do("back to Chinese", chromedp.Click("#lang"), chromedp.WaitVisible(`main[data-ready="customers"]`))
	nav = value(b, "read the navigation", chromedp.Text("#nav-customers"))
	if nav != "客户列表" {
		t.Errorf("Chinese navigation says %q", nav)
	}
	b.do("log out", chromedp.Click("#logout"), chromedp.WaitVisible(`main[data-ready="login"]`))
	status := eval[int](b, "the API without the session", `fetch('/v1/customers').then(r => r.status)`)
	if status != http.StatusUnauthorized {
		t.Errorf("after logout the API answers %d, want 401", status)
	}
}
