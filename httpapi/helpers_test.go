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

	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/testenv"
)

// t0 is the fixed "now" of every test server.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// cst is the API's output time zone in the tests (Asia/Shanghai has no DST).
var cst = time.FixedZone("CST", 8*3600)

// apiEnv is an API server on a real event store with a fresh database.
type apiEnv struct {
	t     *testing.T
	srv   *httptest.Server
	db    *testenv.DB
	clock *testenv.Clock
}

// newAPI starts the API on a fresh migrated database; cfg may adjust the
// configuration before the server starts.
func newAPI(t *testing.T, adjust ...func(*httpapi.Config)) *apiEnv {
	t.Helper()
	clock := testenv.NewClock(t0)
	store, db := testenv.Store(t, clock.Now)
	cfg := httpapi.Config{Store: store, Now: clock.Now, Location: cst, Logger: testenv.Logger(t)}
	for _, f := range adjust {
		f(&cfg)
	}
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	return &apiEnv{t: t, srv: srv, db: db, clock: clock}
}

// response is a decoded HTTP response.
type response struct {
	status int
	header http.Header
	raw    []byte
	obj    map[string]any // the body as a JSON object
}

func (e *apiEnv) do(method, path string, body []byte) response {
	e.t.Helper()
	return doRequest(e.t, e.srv, method, path, body)
}

func doRequest(t testing.TB, srv *httptest.Server, method, path string, body []byte) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, want application/json; body %s", method, path, ct, raw)
	}
	if err := json.Unmarshal(raw, &r.obj); err != nil {
		t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, raw)
	}
	return r
}

func (e *apiEnv) post(body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/events", []byte(body))
}

func (e *apiEnv) get(path string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil)
}

// into decodes the response body into v.
func (r response) into(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

// expect fails the test unless the status is want.
func (r response) expect(t testing.TB, want int) response {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.raw)
	}
	return r
}

// apiError is the "error" member of an error response.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// expectError checks the status and that the body has exactly the shape
// {"error": {"code", "message", "field", ...}} with the given code and field
// (field "" means: field absent or empty).
func (r response) expectError(t testing.TB, status int, code, field string) apiError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	var body map[string]json.RawMessage
	r.into(t, &body)
	if len(body) != 1 || body["error"] == nil {
		t.Fatalf("error body has members other than a single \"error\": %s", r.raw)
	}
	var members map[string]any
	if err := json.Unmarshal(body["error"], &members); err != nil {
		t.Fatalf("\"error\" is not an object: %s", r.raw)
	}
	for _, m := range []string{"code", "message"} {
		if _, ok := members[m].(string); !ok {
			t.Errorf("error.%s is missing or not a string: %s", m, r.raw)
		}
	}
	if f, ok := members["field"]; ok {
		if _, ok := f.(string); !ok {
			t.Errorf("error.field is not a string: %s", r.raw)
		}
	}
	var e apiError
	if err := json.Unmarshal(body["error"], &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != code || e.Field != field {
		t.Errorf("error code %q field %q, want code %q field %q; body %s", e.Code, e.Field, code, field, r.raw)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Errorf("error message is empty: %s", r.raw)
	}
	return e
}

// appended is one entry of the ingest response.
type appended struct {
	EventID    string `json:"event_id"`
	Customer   string `json:"customer"`
	Version    int64  `json:"version"`
	Position   int64  `json:"position"`
	RecordedAt string `json:"recorded_at"`
	Duplicate  bool   `json:"duplicate"`
}

// ingestResponse is the body of a successful POST /v1/events.
type ingestResponse struct {
	appended
	Events []appended `json:"events"`
}

func (r response) ingest(t testing.TB) ingestResponse {
	t.Helper()
	var out ingestResponse
	r.into(t, &out)
	return out
}

// historyEvent is one entry of GET /v1/customers/{code}/events.
type historyEvent struct {
	EventID    string         `json:"event_id"`
	Type       string         `json:"type"`
	Customer   string         `json:"customer"`
	Version    int64          `json:"version"`
	Position   int64          `json:"position"`
	OccurredAt string         `json:"occurred_at"`
	RecordedAt string         `json:"recorded_at"`
	Source     *string        `json:"source"`
	Data       map[string]any `json:"data"`
}

type historyResponse struct {
	Customer string         `json:"customer"`
	Events   []historyEvent `json:"events"`
	Next     string         `json:"next"`
}

func (r response) history(t testing.TB) historyResponse {
	t.Helper()
	var out historyResponse
	r.into(t, &out)
	return out
}

// count returns the number of rows of a table in the test database.
func (e *apiEnv) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// events is the number of recorded events.
func (e *apiEnv) events() int {
	e.t.Helper()
	return e.count("events")
}

// expectStored fails the test unless exactly n events are recorded.
func (e *apiEnv) expectStored(n int) {
	e.t.Helper()
	if got := e.events(); got != n {
		e.t.Fatalf("events table holds %d rows, want %d", got, n)
	}
}

// Envelope builders. amount is raw JSON: 100, "100.00", 0.1, ...

func orderPlaced(customer, orderID, amount string) string {
	return fmt.Sprintf(`{"type":"OrderPlaced","customer":%q,"data":{"order_id":%q,"amount":%s,"channel":"online"}}`, customer, orderID, amount)
}

func orderRefunded(customer, orderID, amount string) string {
	return fmt.Sprintf(`{"type":"OrderRefunded","customer":%q,"data":{"order_id":%q,"amount":%s}}`, customer, orderID, amount)
}

func inquiry(customer, topic string) string {
	return fmt.Sprintf(`{"type":"InquiryReceived","customer":%q,"data":{"channel":"phone","topic":%q}}`, customer, topic)
}

func registered(customer string) string {
	return fmt.Sprintf(`{"type":"CustomerRegistered","customer":%q,"data":{"name":"深圳市华强电子有限公司","kind":"enterprise","industry":"制造业-电子元件","owner":"王经理"}}`, customer)
}

func ownerAssigned(customer, owner string) string {
	return fmt.Sprintf(`{"type":"OwnerAssigned","customer":%q,"data":{"owner":%q}}`, customer, owner)
}

// withID adds an event_id to an envelope built above.
func withID(envelope, id string) string {
	return `{"event_id":"` + id + `",` + strings.TrimPrefix(envelope, "{")
}

// with adds a raw member ("key":value) to an envelope built above.
func with(envelope, member string) string {
	return strings.TrimSuffix(envelope, "}") + "," + member + "}"
}

// batch wraps envelopes in {"events": [...]} with optional extra members.
func batch(envelopes []string, extra ...string) string {
	s := `{"events":[` + strings.Join(envelopes, ",") + `]`
	for _, m := range extra {
		s += "," + m
	}
	return s + "}"
}
