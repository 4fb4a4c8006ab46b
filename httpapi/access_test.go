package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// The tokens of a secured test server, by name, and their scopes.
var testTokens = []struct {
	name   string
	scopes []auth.Scope
}{
	{"ingester", []auth.Scope{auth.ScopeIngest}},
	{"reader", []auth.Scope{auth.ScopeRead}},
	{"auditor", []auth.Scope{auth.ScopeAudit}},
	{"analyst", []auth.Scope{auth.ScopeRead, auth.ScopeAudit}},
	{"root", []auth.Scope{auth.ScopeAdmin}},
}

// Pseudo token names for call: no Authorization header, and a well-formed
// bearer token that is not configured.
const (
	noToken  = ""
	badToken = "bogus"
)

// secureAPI is the API with every part wired as segmentd wires it (real
// store as auditor, projector-backed queries) and bearer tokens configured.
type secureAPI struct {
	*apiEnv
	cfg     httpapi.Config
	store   *eventstore.Store
	proj    *projections.Projector
	secrets map[string]string // token name → secret
}

func newSecureAPI(t *testing.T) *secureAPI {
	t.Helper()
	clock := testenv.NewClock(t0)
	store, db := testenv.Store(t, clock.Now)
	proj := projections.New(projections.Config{Pool: db.Pool, Logger: testenv.Logger(t), Now: clock.Now})
	s := &secureAPI{store: store, proj: proj, secrets: map[string]string{}}
	var lines strings.Builder
	for _, tk := range testTokens {
		secret, line, err := auth.New(tk.name, tk.scopes)
		if err != nil {
			t.Fatal(err)
		}
		s.secrets[tk.name] = secret
		lines.WriteString(line + "\n")
	}
	s.secrets[badToken] = "seg_not-a-configured-token"
	tokens, err := auth.Parse(strings.NewReader(lines.String()))
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = httpapi.Config{
		Store: store, Now: clock.Now, Location: cst, Logger: testenv.Logger(t),
		MetricsHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "segments_up 1\n")
		}),
		Queries: projections.NewQueries(proj, store), Auditor: store, Tokens: tokens,
	}
	srv := httptest.NewServer(httpapi.New(s.cfg))
	t.Cleanup(srv.Close)
	s.apiEnv = &apiEnv{t: t, srv: srv, db: db, clock: clock}
	return s
}

// call sends a request with the named token (noToken: no Authorization
// header). A JSON body is decoded into obj; other bodies are kept raw.
func (s *secureAPI) call(method, path, token string, body []byte) response {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != noToken {
		secret, ok := s.secrets[token]
		if !ok {
			s.t.Fatalf("no token %q", token)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.obj); err != nil {
			s.t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

func (s *secureAPI) getAs(token, path string) response {
	s.t.Helper()
	return s.call(http.MethodGet, path, token, nil)
}

func (s *secureAPI) postAs(token, body string) response {
	s.t.Helper()
	return s.call(http.MethodPost, "/v1/events", token, []byte(body))
}

// apply projects the customers synchronously, as the live projector would.
func (s *secureAPI) apply(codes ...string) {
	s.t.Helper()
	ids := make([]uuid.UUID, len(codes))
	for i, c := range codes {
		ids[i] = domain.CustomerCode(c).StreamID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.proj.Apply(ctx, ids); err != nil {
		s.t.Fatalf("apply: %v", err)
	}
}

// tamper changes a recorded event behind the store's back, as a superuser
// could: append-only trigger off, stmt, trigger on, in one transaction.
func (s *secureAPI) tamper(stmt string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER TABLE events DISABLE TRIGGER events_append_only"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, stmt, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%s changed %d rows, want 1", stmt, tag.RowsAffected())
		}
		_, err = tx.Exec(ctx, "ALTER TABLE events ENABLE TRIGGER events_append_only")
		return err
	})
	if err != nil {
		s.t.Fatalf("tamper: %v", err)
	}
}

// The personal data of the seeded customer, and its masked forms.
var (
	plainContact  = []string{"李明", "13812345678", "li.ming@example.com"}
	maskedContact = map[string]string{"name": "李某", "phone": "138****5678", "email": "l***@example.com"}
)

// leaks lists the plaintext personal data (or recognisable parts of it)
// found in a body.
func leaks(raw []byte) []string {
	var found []string
	for _, p := range append(plainContact, "li.ming", "12345678") {
		if bytes.Contains(raw, []byte(p)) {
			found = append(found, p)
		}
	}
	return found
}

// seed records KH1 (registered with a contact, an order, an inquiry) and
// KH2 (an inquiry), and projects both.
func (s *secureAPI) seed() {
	s.t.Helper()
	s.postAs("ingester", `{"type":"CustomerRegistered","customer":"KH1","source":"crm","data":{"name":"深圳市华强电子有限公司",`+
		`"kind":"enterprise","industry":"制造业-电子元件","region":"广东","owner":"王经理","contact":{"name":"李明","title":"采购经理",`+
		`"phone":"13812345678","email":"li.ming@example.com"}}}`).expect(s.t, http.StatusCreated)
	s.postAs("ingester", orderPlaced("KH1", "SO-1", `"1200000.50"`)).expect(s.t, http.StatusCreated)
	s.postAs("ingester", inquiry("KH1", "交期")).expect(s.t, http.StatusCreated)
	s.postAs("ingester", inquiry("KH2", "价格")).expect(s.t, http.StatusCreated)
	s.apply("KH1", "KH2")
}

// contactOf returns profile.contact of a customer document.
func contactOf(t *testing.T, r response) map[string]any {
	t.Helper()
	p, ok := r.obj["profile"].(map[string]any)
	if !ok {
		t.Fatalf("document without profile: %s", r.raw)
	}
	c, ok := p["contact"].(map[string]any)
	if !ok {
		t.Fatalf("profile without contact: %s", r.raw)
	}
	return c
}

func TestEveryRouteNeedsItsScope(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()
	asOf := "?as_of=" + t0.Add(time.Hour).Format(time.RFC3339)

	// ok is the status a token with the right scope gets.
	routes := []struct {
		method, path string
		body         func() string // for POST: a fresh valid envelope
		scopes       []string      // token names allowed (root, as admin, always is)
		ok           int
	}{
		{method: http.MethodPost, path: "/v1/events", body: func() string { return inquiry("KH-SCRATCH", uuid.NewString()) },
			scopes: []string{"ingester"}, ok: http.StatusCreated},
		{method: http.MethodGet, path: "/v1/customers/KH1", scopes: []string{"reader", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/NOPE", scopes: []string{"reader", "analyst"}, ok: http.StatusNotFound},
		{method: http.MethodGet, path: "/v1/customers/KH1" + asOf, scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/KH1/events", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/NOPE/events", scopes: []string{"auditor", "analyst"}, ok: http.StatusNotFound},
		{method: http.MethodGet, path: "/v1/customers/KH1/labels/history", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/NOPE/labels/history", scopes: []string{"auditor", "analyst"}, ok: http.StatusNotFound},
		{method: http.MethodGet, path: "/v1/segments/summary", scopes: []string{"reader", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/alerts", scopes: []string{"reader", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/alerts?customer=KH1&status=open", scopes: []string{"reader", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/audit/verify", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/KH1/audit/verify", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/customers/NOPE/audit/verify", scopes: []string{"auditor", "analyst"}, ok: http.StatusNotFound},
		{method: http.MethodGet, path: "/v1/audit/disclosures", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
		{method: http.MethodGet, path: "/v1/audit/disclosures?customer=KH1&limit=5", scopes: []string{"auditor", "analyst"}, ok: http.StatusOK},
	}
	for _, rt := range routes {
		for _, tok := range []string{noToken, badToken, "ingester", "reader", "auditor", "analyst", "root"} {
			name := tok
			if name == noToken {
				name = "no token"
			}
			t.Run(rt.method+" "+rt.path+" "+name, func(t *testing.T) {
				var body []byte
				if rt.body != nil {
					body = []byte(rt.body())
				}
				before := api.events()
				r := api.call(rt.method, rt.path, tok, body)
				allowed := tok == "root"
				for _, s := range rt.scopes {
					allowed = allowed || s == tok
				}
				switch {
				case tok == noToken || tok == badToken:
					r.expectError(t, http.StatusUnauthorized, "unauthorized", "")
					if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("401 without a Bearer challenge: WWW-Authenticate %q", got)
					}
				case !allowed:
					e := r.expectError(t, http.StatusForbidden, "forbidden", "")
					if !strings.Contains(e.Message, "scope") {
						t.Errorf("403 message %q does not name the missing scope", e.Message)
					}
				default:
					if r.status != rt.ok {
						t.Fatalf("status %d, want %d; body %s", r.status, rt.ok, r.raw)
					}
					if r.obj == nil {
						t.Errorf("body is not JSON: %s", r.raw)
					}
				}
				if got := api.events(); rt.body != nil && (r.status == http.StatusCreated) != (got == before+1) {
					t.Errorf("events %d → %d after status %d", before, got, r.status)
				}
				// Nothing but an admin's explicit ask shows personal data.
				if l := leaks(r.raw); len(l) > 0 {
					t.Errorf("response shows personal data %v: %s", l, r.raw)
				}
			})
		}
	}

	// Health, readiness and metrics are open, whatever the token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, tok := range []string{noToken, badToken, "ingester", "root"} {
			if r := api.getAs(tok, path); r.status != http.StatusOK {
				t.Errorf("%s with token %q: status %d, body %s", path, tok, r.status, r.raw)
			}
		}
	}
	// Unknown endpoints are a 404 in the error shape, token or not.
	api.getAs(noToken, "/v1/nothing").expectError(t, http.StatusNotFound, "not_found", "")
	// Authentication comes before validation: a bad code without a token is
	// a 401, not a 400 that would tell the caller anything.
	api.getAs(noToken, "/v1/customers/a%20b").expectError(t, http.StatusUnauthorized, "unauthorized", "")
	api.postAs(noToken, "not json").expectError(t, http.StatusUnauthorized, "unauthorized", "")
	api.postAs("reader", "not json").expectError(t, http.StatusForbidden, "forbidden", "")
	// The scheme name is case-insensitive; other schemes are not bearer tokens.
	for _, h := range []struct {
		header string
		status int
	}{
		{"bearer " + api.secrets["reader"], http.StatusOK},
		{"Basic " + api.secrets["reader"], http.StatusUnauthorized},
		{api.secrets["reader"], http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, api.srv.URL+"/v1/segments/summary", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", h.header)
		res, err := api.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != h.status {
			t.Errorf("Authorization %.12q…: status %d, want %d", h.header, res.StatusCode, h.status)
		}
	}
}

func TestAsOfNeedsAudit(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()
	// A second order an hour later, so the past differs from the present.
	api.clock.Set(t0.Add(time.Hour))
	api.postAs("ingester", orderPlaced("KH1", "SO-2", "5")).expect(t, http.StatusCreated)
	api.apply("KH1")

	pastEscaped := "/v1/customers/KH1?as_of=" + strings.ReplaceAll(t0.Add(30*time.Minute).In(cst).Format(time.RFC3339), "+", "%2B")
	api.getAs("reader", pastEscaped).expectError(t, http.StatusForbidden, "forbidden", "")
	api.getAs("ingester", pastEscaped).expectError(t, http.StatusForbidden, "forbidden", "")
	api.getAs(noToken, pastEscaped).expectError(t, http.StatusUnauthorized, "unauthorized", "")
	// The scope is checked before the value: a reader learns nothing.
	api.getAs("reader", "/v1/customers/KH1?as_of=yesterday").expectError(t, http.StatusForbidden, "forbidden", "")
	api.getAs("auditor", "/v1/customers/KH1?as_of=yesterday").expectError(t, http.StatusBadRequest, "invalid_format", "as_of")

	for _, tok := range []string{"auditor", "analyst", "root"} {
		r := api.getAs(tok, pastEscaped).expect(t, http.StatusOK)
		if r.obj["version"] != float64(3) {
			t.Errorf("%s: as_of document version %v, want 3 (before the second order): %s", tok, r.obj["version"], r.raw)
		}
		m, _ := r.obj["metrics"].(map[string]any)
		if m["net_amount"] != "1200000.50" || m["order_count"] != float64(1) {
			t.Errorf("%s: as_of metrics %v", tok, m)
		}
		if c := contactOf(t, r); c["name"] != maskedContact["name"] || c["phone"] != maskedContact["phone"] || c["email"] != maskedContact["email"] {
			t.Errorf("%s: as_of contact %v, want masked", tok, c)
		}
		if l := leaks(r.raw); len(l) > 0 {
			t.Errorf("%s: as_of document shows %v", tok, l)
		}
	}
	// The present needs read, which an audit-only token lacks.
	api.getAs("auditor", "/v1/customers/KH1").expectError(t, http.StatusForbidden, "forbidden", "")
	r := api.getAs("reader", "/v1/customers/KH1").expect(t, http.StatusOK)
	if r.obj["version"] != float64(4) {
		t.Errorf("current version %v, want 4", r.obj["version"])
	}
}

func TestPersonalDataIsMaskedAndUnmaskingIsRecorded(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()

	// Masked by default, for every token that may read, on every endpoint.
	for _, tok := range []string{"reader", "analyst", "root"} {
		r := api.getAs(tok, "/v1/customers/KH1").expect(t, http.StatusOK)
		c := contactOf(t, r)
		for k, want := range maskedContact {
			if c[k] != want {
				t.Errorf("%s: contact.%s = %v, want %s", tok, k, c[k], want)
			}
		}
		if c["title"] != "采购经理" {
			t.Errorf("%s: contact.title = %v (not personal data, shown as is)", tok, c["title"])
		}
		if l := leaks(r.raw); len(l) > 0 {
			t.Errorf("%s: document shows %v: %s", tok, l, r.raw)
		}
		// ?unmasked=false is the default spelled out.
		if l := leaks(api.getAs(tok, "/v1/customers/KH1?unmasked=false").expect(t, http.StatusOK).raw); len(l) > 0 {
			t.Errorf("%s: unmasked=false shows %v", tok, l)
		}
	}
	for _, tok := range []string{"auditor", "analyst", "root"} {
		r := api.getAs(tok, "/v1/customers/KH1/events").expect(t, http.StatusOK)
		h := r.history(t)
		c, _ := h.Events[0].Data["contact"].(map[string]any)
		for k, want := range maskedContact {
			if c[k] != want {
				t.Errorf("%s: events[0].data.contact.%s = %v, want %s", tok, k, c[k], want)
			}
		}
		if l := leaks(r.raw); len(l) > 0 {
			t.Errorf("%s: events show %v: %s", tok, l, r.raw)
		}
	}
	for _, path := range []string{"/v1/customers/KH1/labels/history", "/v1/segments/summary", "/v1/alerts", "/v1/audit/verify", "/v1/audit/disclosures"} {
		if l := leaks(api.getAs("root", path).expect(t, http.StatusOK).raw); len(l) > 0 {
			t.Errorf("%s shows %v", path, l)
		}
	}
	// Nothing was disclosed so far.
	r := api.getAs("auditor", "/v1/audit/disclosures").expect(t, http.StatusOK)
	if d, ok := r.obj["disclosures"].([]any); !ok || len(d) != 0 {
		t.Fatalf("disclosures before any unmasked read: %s", r.raw)
	}

	// Only admin may ask for plaintext; a refused ask is not a disclosure.
	for _, tok := range []string{"reader", "analyst"} {
		api.getAs(tok, "/v1/customers/KH1?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "unmasked")
	}
	for _, tok := range []string{"auditor", "analyst"} {
		api.getAs(tok, "/v1/customers/KH1/events?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "unmasked")
	}
	api.getAs("auditor", "/v1/customers/KH1?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "")
	api.getAs("ingester", "/v1/customers/KH1?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "")
	api.getAs(noToken, "/v1/customers/KH1?unmasked=true").expectError(t, http.StatusUnauthorized, "unauthorized", "")
	api.getAs("root", "/v1/customers/KH1?unmasked=yes").expectError(t, http.StatusBadRequest, "invalid_value", "unmasked")
	if n := api.count("disclosures"); n != 0 {
		t.Fatalf("%d disclosures recorded for refused asks", n)
	}

	// Admin gets the plaintext, and the read is recorded.
	r = api.getAs("root", "/v1/customers/KH1?unmasked=true").expect(t, http.StatusOK)
	c := contactOf(t, r)
	if c["name"] != "李明" || c["phone"] != "13812345678" || c["email"] != "li.ming@example.com" || c["title"] != "采购经理" {
		t.Errorf("unmasked contact = %v", c)
	}
	h := api.getAs("root", "/v1/customers/KH1/events?unmasked=true").expect(t, http.StatusOK).history(t)
	if c, _ := h.Events[0].Data["contact"].(map[string]any); c["name"] != "李明" || c["phone"] != "13812345678" || c["email"] != "li.ming@example.com" {
		t.Errorf("unmasked event contact = %v", c)
	}
	// An admin's as_of read in plaintext is a disclosure too.
	api.getAs("root", "/v1/customers/KH1?unmasked=true&as_of="+strings.ReplaceAll(t0.Add(time.Minute).Format(time.RFC3339), "+", "%2B")).
		expect(t, http.StatusOK)

	type disclosure struct {
		At       string `json:"at"`
		Who      string `json:"who"`
		Customer string `json:"customer"`
		Endpoint string `json:"endpoint"`
	}
	var list struct {
		Disclosures []disclosure `json:"disclosures"`
	}
	r = api.getAs("auditor", "/v1/audit/disclosures").expect(t, http.StatusOK)
	r.into(t, &list)
	want := []disclosure{ // newest first
		{Who: "root", Customer: "KH1", Endpoint: "GET /v1/customers/KH1"},
		{Who: "root", Customer: "KH1", Endpoint: "GET /v1/customers/KH1/events"},
		{Who: "root", Customer: "KH1", Endpoint: "GET /v1/customers/KH1"},
	}
	if len(list.Disclosures) != len(want) {
		t.Fatalf("disclosures = %s, want %d", r.raw, len(want))
	}
	for i, w := range want {
		g := list.Disclosures[i]
		at, err := time.Parse(time.RFC3339Nano, g.At)
		if g.Who != w.Who || g.Customer != w.Customer || g.Endpoint != w.Endpoint || err != nil || !at.Equal(t0) {
			t.Errorf("disclosures[%d] = %+v, want %+v at %s", i, g, w, t0)
		}
	}
	if l := leaks(r.raw); len(l) > 0 {
		t.Errorf("the disclosure log shows %v", l)
	}
	// Filtered by customer and limited.
	r = api.getAs("analyst", "/v1/audit/disclosures?customer=KH1&limit=1").expect(t, http.StatusOK)
	r.into(t, &list)
	if len(list.Disclosures) != 1 || list.Disclosures[0].Endpoint != "GET /v1/customers/KH1" {
		t.Errorf("filtered disclosures = %s", r.raw)
	}
	r = api.getAs("auditor", "/v1/audit/disclosures?customer=KH2").expect(t, http.StatusOK)
	r.into(t, &list)
	if len(list.Disclosures) != 0 {
		t.Errorf("disclosures of KH2 = %s", r.raw)
	}
	api.getAs("auditor", "/v1/audit/disclosures?customer=a%20b").expectError(t, http.StatusBadRequest, "invalid_format", "customer")
	api.getAs("auditor", "/v1/audit/disclosures?limit=0").expectError(t, http.StatusBadRequest, "invalid_value", "limit")
	// Reading the disclosure log needs audit, not merely read.
	api.getAs("reader", "/v1/audit/disclosures").expectError(t, http.StatusForbidden, "forbidden", "")

	// The disclosure log is append-only, like the event log.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := api.db.Pool.Exec(ctx, "DELETE FROM disclosures"); err == nil {
		t.Error("deleting disclosure records succeeded")
	}
	if _, err := api.db.Pool.Exec(ctx, "UPDATE disclosures SET who = 'nobody'"); err == nil {
		t.Error("rewriting disclosure records succeeded")
	}
	if n := api.count("disclosures"); n != 3 {
		t.Errorf("%d disclosure records, want 3", n)
	}

	// Personal data is encrypted at rest.
	var stored string
	if err := api.db.Pool.QueryRow(ctx, "SELECT string_agg(data::text, ' ') FROM events").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if l := leaks([]byte(stored)); len(l) > 0 {
		t.Errorf("the events table holds the plaintext %v", l)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()

	type breakDoc struct {
		Customer string `json:"customer"`
		Version  int64  `json:"version"`
		Position int64  `json:"position"`
		Reason   string `json:"reason"`
	}
	type verifyDoc struct {
		OK            bool       `json:"ok"`
		Customer      string     `json:"customer"`
		EventsChecked int64      `json:"events_checked"`
		Breaks        []breakDoc `json:"breaks"`
	}
	verify := func(path string) verifyDoc {
		t.Helper()
		r := api.getAs("auditor", path).expect(t, http.StatusOK)
		var v verifyDoc
		r.into(t, &v)
		if _, ok := r.obj["breaks"].([]any); !ok {
			t.Errorf("%s: breaks is not a list: %s", path, r.raw)
		}
		return v
	}

	if v := verify("/v1/audit/verify"); !v.OK || v.EventsChecked != 4 || len(v.Breaks) != 0 {
		t.Fatalf("intact log: %+v", v)
	}
	for _, c := range []string{"KH1", "KH2"} {
		if v := verify("/v1/customers/" + c + "/audit/verify"); !v.OK || v.Customer != c || len(v.Breaks) != 0 {
			t.Fatalf("intact %s: %+v", c, v)
		}
	}
	api.getAs("auditor", "/v1/customers/NOPE/audit/verify").expectError(t, http.StatusNotFound, "customer_not_found", "customer")
	api.getAs("auditor", "/v1/customers/a%2Fb/audit/verify").expectError(t, http.StatusBadRequest, "invalid_format", "customer")

	// Someone with superuser access rewrites KH1's order (version 2).
	var position int64
	if err := api.db.Pool.QueryRow(context.Background(),
		"SELECT position FROM events WHERE customer = 'KH1' AND version = 2").Scan(&position); err != nil {
		t.Fatal(err)
	}
	api.tamper(`UPDATE events SET data = replace(data::text, '"SO-1"', '"SO-9"')::json WHERE customer = 'KH1' AND version = 2`)

	v := verify("/v1/audit/verify")
	if v.OK || len(v.Breaks) != 1 {
		t.Fatalf("tampered log: %+v", v)
	}
	if b := v.Breaks[0]; b.Customer != "KH1" || b.Version != 2 || b.Position != position || b.Reason == "" {
		t.Errorf("break = %+v, want KH1 version 2 position %d with a reason", b, position)
	}
	v = verify("/v1/customers/KH1/audit/verify")
	if v.OK || v.Customer != "KH1" || len(v.Breaks) != 1 || v.Breaks[0].Version != 2 || v.Breaks[0].Customer != "KH1" {
		t.Errorf("KH1 after tampering: %+v", v)
	}
	if v := verify("/v1/customers/KH2/audit/verify"); !v.OK || len(v.Breaks) != 0 {
		t.Errorf("KH2 is untouched but: %+v", v)
	}
	// Verification reads the log; it does not need (or give) more than audit.
	api.getAs("reader", "/v1/audit/verify").expectError(t, http.StatusForbidden, "forbidden", "")
}

func TestErasureThroughTheAPI(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()
	before := api.getAs("reader", "/v1/customers/KH1").expect(t, http.StatusOK)
	// The erasure comes an hour after the seed, so the past before it can be
	// asked for.
	api.clock.Set(t0.Add(time.Hour))

	api.postAs("reader", `{"type":"CustomerErased","customer":"KH1","data":{"reason":"客户要求删除个人信息"}}`).
		expectError(t, http.StatusForbidden, "forbidden", "")
	api.postAs("ingester", `{"type":"CustomerErased","customer":"KH1","data":{"reason":"客户要求删除个人信息"}}`).
		expect(t, http.StatusCreated)
	api.apply("KH1")

	for _, path := range []string{"/v1/customers/KH1", "/v1/customers/KH1?unmasked=true"} {
		r := api.getAs("root", path).expect(t, http.StatusOK)
		p, _ := r.obj["profile"].(map[string]any)
		if p["erased"] != true {
			t.Errorf("%s: profile.erased = %v", path, p["erased"])
		}
		c := contactOf(t, r)
		for _, k := range []string{"name", "phone", "email"} {
			if v, ok := c[k]; !ok || v != nil {
				t.Errorf("%s: contact.%s = %v (present %v), want null", path, k, v, ok)
			}
		}
		if c["title"] != "采购经理" || p["name"] != "深圳市华强电子有限公司" {
			t.Errorf("%s: non-personal profile lost: %v", path, p)
		}
		if l := leaks(r.raw); len(l) > 0 {
			t.Errorf("%s shows %v after erasure", path, l)
		}
		// Labels and metrics keep working.
		m, _ := r.obj["metrics"].(map[string]any)
		if m["net_amount"] != "1200000.50" || m["order_count"] != float64(1) {
			t.Errorf("%s: metrics after erasure = %v", path, m)
		}
		labels, _ := r.obj["labels"].(map[string]any)
		wantLabels, _ := before.obj["labels"].(map[string]any)
		for _, l := range []string{"value_tier", "activity", "lifecycle", "need_orientation", "segment"} {
			got, _ := labels[l].(map[string]any)
			want, _ := wantLabels[l].(map[string]any)
			if got == nil || got["value"] != want["value"] {
				t.Errorf("%s: label %s = %v after erasure, was %v", path, l, got, want)
			}
		}
		if lv, _ := labels["value_tier"].(map[string]any); lv["value"] != "strategic" {
			t.Errorf("value_tier after erasure = %v", lv)
		}
	}
	for _, path := range []string{"/v1/customers/KH1/events", "/v1/customers/KH1/events?unmasked=true", "/v1/customers/KH1/labels/history"} {
		if l := leaks(api.getAs("root", path).expect(t, http.StatusOK).raw); len(l) > 0 {
			t.Errorf("%s shows %v after erasure", path, l)
		}
	}
	// The log stays complete and verifiable.
	r := api.getAs("auditor", "/v1/audit/verify").expect(t, http.StatusOK)
	if r.obj["ok"] != true || r.obj["events_checked"] != float64(5) {
		t.Errorf("verify after erasure: %s", r.raw)
	}
	if r := api.getAs("auditor", "/v1/customers/KH1/audit/verify").expect(t, http.StatusOK); r.obj["ok"] != true {
		t.Errorf("verify KH1 after erasure: %s", r.raw)
	}
	// The document as it stood before the erasure can no longer show the
	// data either: the key is gone.
	r = api.getAs("root", "/v1/customers/KH1?unmasked=true&as_of="+t0.Add(time.Minute).UTC().Format(time.RFC3339)).expect(t, http.StatusOK)
	if r.obj["version"] != float64(3) {
		t.Errorf("as_of before erasure: version %v, want 3", r.obj["version"])
	}
	if l := leaks(r.raw); len(l) > 0 {
		t.Errorf("as_of before erasure shows %v", l)
	}
}

// failingAuditor cannot record disclosures (the database refuses the write).
type failingAuditor struct{ *eventstore.Store }

func (failingAuditor) RecordDisclosure(context.Context, string, domain.CustomerCode, string) error {
	return eventstore.ErrUnavailable
}

func TestNoDisclosureRecordNoPlaintext(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()
	cfg := api.cfg
	cfg.Auditor = failingAuditor{api.store}
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	failing := *api
	env := *api.apiEnv
	env.srv = srv
	failing.apiEnv = &env

	for _, path := range []string{"/v1/customers/KH1?unmasked=true", "/v1/customers/KH1/events?unmasked=true"} {
		r := failing.getAs("root", path)
		if r.status < 500 {
			t.Errorf("%s with the disclosure log failing: status %d, want 5xx; body %s", path, r.status, r.raw)
		}
		if l := leaks(r.raw); len(l) > 0 {
			t.Errorf("%s shows %v although the read was not recorded", path, l)
		}
	}
	// Masked reads do not need the disclosure log.
	failing.getAs("root", "/v1/customers/KH1").expect(t, http.StatusOK)
}

func TestOpenAPINeverShowsPlaintext(t *testing.T) {
	t.Parallel()
	// Without tokens there is no admin, so nobody may ask for plaintext.
	api := newAPI(t, func(c *httpapi.Config) { c.Auditor = c.Store.(*eventstore.Store) })
	api.post(`{"type":"CustomerRegistered","customer":"KH1","data":{"name":"华强电子","contact":{"name":"李明",`+
		`"phone":"13812345678","email":"li.ming@example.com"}}}`).expect(t, http.StatusCreated)
	r := api.get("/v1/customers/KH1/events?unmasked=true")
	r.expectError(t, http.StatusForbidden, "forbidden", "unmasked")
	if l := leaks(r.raw); len(l) > 0 {
		t.Errorf("open API shows %v", l)
	}
	if l := leaks(api.get("/v1/customers/KH1/events").expect(t, http.StatusOK).raw); len(l) > 0 {
		t.Errorf("open API shows %v", l)
	}
	if n := api.count("disclosures"); n != 0 {
		t.Errorf("%d disclosures recorded", n)
	}
}
