package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/httpapi"
)

// expectRefused checks a 4xx answer in the error shape: the given status,
// and the given error code unless code is "".
func (r response) expectRefused(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %.300s", r.status, status, r.raw)
	}
	e, _ := r.obj["error"].(map[string]any)
	if e == nil || e["code"] == nil || e["message"] == nil {
		t.Fatalf("not an error body: %.300s", r.raw)
	}
	if code != "" && e["code"] != code {
		t.Errorf("error code %v, want %s; body %.300s", e["code"], code, r.raw)
	}
}

// followUp shows the server unharmed after a hostile request: a valid
// event is recorded and the customer's history is served.
func (s *secureAPI) followUp(t *testing.T) {
	t.Helper()
	before := s.events()
	r := s.postAs("ingester", inquiry("KH-FOLLOWUP", "跟进")).expect(t, http.StatusCreated)
	if got := r.ingest(t); got.Customer != "KH-FOLLOWUP" {
		t.Errorf("follow-up recorded %+v", got)
	}
	if got := s.events(); got != before+1 {
		t.Errorf("follow-up: events %d → %d", before, got)
	}
	s.getAs("auditor", "/v1/customers/KH-FOLLOWUP/events").expect(t, http.StatusOK)
}

// nested returns depth opening brackets then depth closing ones.
func nested(depth int, opening, closing string) string {
	return strings.Repeat(opening, depth) + strings.Repeat(closing, depth)
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()

	digits := "1" + strings.Repeat("0", 399) // a 400-digit number
	tenThousand := make([]string, 10_000)
	for i := range tenThousand {
		tenThousand[i] = inquiry("KH-BATCH", "x")
	}
	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   string // for POST
		status int
		code   string // "" = any error code
	}{
		// Bodies that are not an envelope at all.
		{name: "empty body", body: "", status: 400, code: "invalid_json"},
		{name: "whitespace body", body: " \n\t ", status: 400, code: "invalid_json"},
		{name: "JSON null", body: "null", status: 400},
		{name: "JSON array", body: "[]", status: 400},
		{name: "JSON string", body: `"OrderPlaced"`, status: 400},
		{name: "JSON number", body: "42", status: 400},
		{name: "empty object", body: "{}", status: 400},
		{name: "two envelopes back to back", body: inquiry("KH1", "a") + inquiry("KH1", "b"), status: 400, code: "invalid_json"},
		{name: "trailing garbage", body: inquiry("KH1", "a") + " ;DROP TABLE events", status: 400, code: "invalid_json"},
		{name: "null data", body: `{"type":"InquiryReceived","customer":"KH1","data":null}`, status: 400},
		{name: "null events", body: `{"events":null}`, status: 400},
		{name: "null in events", body: `{"events":[null]}`, status: 400},

		// Size and depth.
		{name: "10,000 events in one batch", body: batch(tenThousand), status: 400, code: "too_many"},
		{name: "100,000 nested arrays in data", body: `{"type":"InquiryReceived","customer":"KH1","data":` + nested(100_000, "[", "]") + `}`, status: 400, code: "invalid_json"},
		{name: "100,000 nested objects in data", body: `{"type":"InquiryReceived","customer":"KH1","data":` + nested(100_000, `{"a":`, "}") + `}`, status: 400, code: "invalid_json"},
		{name: "100,000 nested arrays as the body", body: nested(100_000, "[", "]"), status: 400},
		{name: "100,000 unclosed arrays", body: strings.Repeat("[", 100_000), status: 400},
		{name: "nested arrays in a batch member", body: `{"events":[` + nested(100_000, "[", "]") + `]}`, status: 400, code: "invalid_json"},

		// Invalid UTF-8, raw and disguised.
		{name: "invalid UTF-8 in a text field", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"` + "\xff\xfe" + `"}}`, status: 400},
		{name: "invalid UTF-8 in the customer", body: `{"type":"InquiryReceived","customer":"KH` + "\xc3" + `","data":{"topic":"x"}}`, status: 400},
		{name: "invalid UTF-8 in a key", body: `{"type":"InquiryReceived","customer":"KH1","data":{"top` + "\x80" + `ic":"x"}}`, status: 400},
		{name: "overlong encoding of /", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"` + "\xc0\xaf" + `"}}`, status: 400},
		{name: "UTF-8 encoded surrogate", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"` + "\xed\xa0\x80" + `"}}`, status: 400},
		{name: "lone surrogate escape", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"\ud800"}}`, status: 400},
		{name: "truncated multi-byte character", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"交` + "\xe6\x9c" + `"}}`, status: 400},
		{name: "NUL in a text field", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"a\u0000b"}}`, status: 400, code: "invalid_value"},

		// Numbers with 400 digits.
		{name: "400-digit amount", body: orderPlaced("KH1", "SO-H1", digits), status: 400},
		{name: "400-digit amount as a string", body: orderPlaced("KH1", "SO-H2", `"`+digits+`"`), status: 400},
		{name: "400-digit fraction", body: orderPlaced("KH1", "SO-H3", "0."+strings.Repeat("0", 398)+"1"), status: 400},
		{name: "amount 1e400", body: orderPlaced("KH1", "SO-H4", "1e400"), status: 400},
		{name: "amount in exponent form", body: orderPlaced("KH1", "SO-H6", `"1e3"`), status: 400, code: "invalid_type"},
		{name: "amount number in exponent form", body: orderPlaced("KH1", "SO-H7", `1e3`), status: 400, code: "invalid_type"},
		{name: "amount with a plus sign", body: orderPlaced("KH1", "SO-H8", `"+1.00"`), status: 400, code: "invalid_type"},
		{name: "amount with a leading zero", body: orderPlaced("KH1", "SO-H9", `"01.00"`), status: 400, code: "invalid_type"},
		{name: "occurred_at offset +24:00", body: with(inquiry("KH1", "x"), `"occurred_at":"2024-05-02T10:00:00+24:00"`), status: 400, code: "invalid_value"},
		{name: "occurred_at in nanoseconds", body: with(inquiry("KH1", "x"), `"occurred_at":"2024-05-02T10:00:00.123456789+08:00"`), status: 400, code: "invalid_value"},
		{name: "400-digit negative amount", body: orderPlaced("KH1", "SO-H5", "-"+digits), status: 400},
		{name: "400-digit score", body: `{"type":"SatisfactionRated","customer":"KH1","data":{"score":` + digits + `}}`, status: 400},
		{name: "400-digit employees", body: `{"type":"CustomerProfileUpdated","customer":"KH1","data":{"employees":` + digits + `}}`, status: 400},
		{name: "400-digit annual revenue", body: `{"type":"CustomerProfileUpdated","customer":"KH1","data":{"annual_revenue":` + digits + `}}`, status: 400},
		{name: "400-digit expected_version", body: with(inquiry("KH1", "x"), `"expected_version":`+digits), status: 400},
		{name: "400-digit number in an unknown field", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"x","n":` + digits + `}}`, status: 400, code: "unknown_field"},

		// Duplicated keys: which one wins would differ between parsers.
		{name: "duplicated type", body: `{"type":"InquiryReceived","type":"OrderPlaced","customer":"KH1","data":{"topic":"x"}}`, status: 400, code: "duplicate_field"},
		{name: "duplicated customer", body: `{"type":"InquiryReceived","customer":"KH1","customer":"KH2","data":{"topic":"x"}}`, status: 400, code: "duplicate_field"},
		{name: "duplicated data member", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"a","topic":"b"}}`, status: 400, code: "duplicate_field"},
		{name: "duplicated amount", body: `{"type":"OrderPlaced","customer":"KH1","data":{"order_id":"SO-D","amount":1,"amount":1000000}}`, status: 400, code: "duplicate_field"},
		{name: "duplicated contact phone", body: `{"type":"CustomerProfileUpdated","customer":"KH1","data":{"contact":{"phone":"13800000000","phone":"13900000000"}}}`, status: 400, code: "duplicate_field"},
		{name: "duplicated events", body: `{"events":[` + inquiry("KH1", "a") + `],"events":[` + inquiry("KH1", "b") + `]}`, status: 400, code: "duplicate_field"},
		{name: "duplicated key in a batch member", body: batch([]string{`{"type":"InquiryReceived","customer":"KH1","customer":"KH1","data":{}}`}), status: 400, code: "duplicate_field"},
		{name: "duplicated key spelled with an escape", body: `{"type":"InquiryReceived","customer":"KH1","data":{"topic":"a","\u0074opic":"b"}}`, status: 400, code: "duplicate_field"},
		{name: "key differing only in case", body: `{"type":"InquiryReceived","TYPE":"OrderPlaced","customer":"KH1","data":{"topic":"x"}}`, status: 400},

		// Hostile customer codes in the body.
		{name: "SQL in the customer code", body: inquiry("KH1'; DROP TABLE events;--", "x"), status: 400, code: "invalid_format"},
		{name: "path traversal in the customer code", body: inquiry("../../etc/passwd", "x"), status: 400, code: "invalid_format"},
		{name: "dot-dot customer code", body: inquiry("..", "x"), status: 400, code: "invalid_format"},
		{name: "NUL in the customer code", body: inquiry("KH1\x00", "x"), status: 400},
		{name: "65-character customer code", body: inquiry(strings.Repeat("K", 65), "x"), status: 400, code: "invalid_format"},

		// Path traversal in the customer code of the URL: 400 or 404, never
		// a 5xx, never another customer's data.
		{name: "encoded traversal, document", method: "GET", path: "/v1/customers/..%2F..%2Fetc%2Fpasswd", token: "reader", status: 400, code: "invalid_format"},
		{name: "encoded traversal, events", method: "GET", path: "/v1/customers/..%2F..%2Fetc%2Fpasswd/events", token: "auditor", status: 400, code: "invalid_format"},
		{name: "encoded traversal, history", method: "GET", path: "/v1/customers/..%2FKH1/labels/history", token: "auditor", status: 400, code: "invalid_format"},
		{name: "encoded traversal, verify", method: "GET", path: "/v1/customers/..%2F..%2Fetc%2Fpasswd/audit/verify", token: "auditor", status: 400, code: "invalid_format"},
		{name: "encoded dot-dot, document", method: "GET", path: "/v1/customers/%2e%2e", token: "reader", status: 400, code: "invalid_format"},
		{name: "encoded dot-dot, events", method: "GET", path: "/v1/customers/%2e%2e/events", token: "auditor", status: 400, code: "invalid_format"},
		{name: "encoded dot-dot, verify", method: "GET", path: "/v1/customers/%2E%2E/audit/verify", token: "auditor", status: 400, code: "invalid_format"},
		{name: "double-encoded dot-dot", method: "GET", path: "/v1/customers/%252e%252e/events", token: "auditor", status: 400, code: "invalid_format"},
		{name: "slash in the code", method: "GET", path: "/v1/customers/a/b", token: "reader", status: 404, code: "not_found"},
		{name: "encoded slash in the code", method: "GET", path: "/v1/customers/a%2Fb", token: "reader", status: 400, code: "invalid_format"},
		{name: "backslash traversal", method: "GET", path: "/v1/customers/..%5C..%5Cwindows/events", token: "auditor", status: 400, code: "invalid_format"},
		{name: "NUL in the code", method: "GET", path: "/v1/customers/KH1%00/events", token: "auditor", status: 400, code: "invalid_format"},
		{name: "raw traversal", method: "GET", path: "/v1/customers/KH1/../../../etc/passwd", token: "reader", status: 404, code: "not_found"},

		// SQL in query parameters that are validated.
		{name: "SQL in the disclosures filter", method: "GET", path: "/v1/audit/disclosures?customer=%27%20OR%201%3D1--", token: "auditor", status: 400, code: "invalid_format"},
		{name: "SQL in the alerts cursor", method: "GET", path: "/v1/alerts?cursor=%27%20OR%201%3D1--", token: "reader", status: 400, code: "invalid_value"},
		{name: "SQL in the alerts status", method: "GET", path: "/v1/alerts?status=open%27--", token: "reader", status: 400, code: "invalid_enum"},
		{name: "SQL in the page limit", method: "GET", path: "/v1/customers/KH1/events?limit=1%3BDELETE%20FROM%20events", token: "auditor", status: 400, code: "invalid_value"},

		// Query strings that do not parse name the parameter; nothing is
		// silently dropped (Go's parser drops what has a ';').
		{name: "invalid UTF-8 in the alerts owner", method: "GET", path: "/v1/alerts?owner=%ff", token: "reader", status: 400, code: "invalid_query"},
		{name: "semicolon in the alerts customer", method: "GET", path: "/v1/alerts?customer=%27;--", token: "reader", status: 400, code: "invalid_query"},
		{name: "unknown alerts filter", method: "GET", path: "/v1/alerts?ownr=x", token: "reader", status: 400, code: "unknown_parameter"},
		{name: "invalid UTF-8 in as_of", method: "GET", path: "/v1/customers/KH1?as_of=%c3", token: "auditor", status: 400, code: "invalid_query"},

		// A huge token is only a bad token.
		{name: "64 KiB bearer token", method: "POST", body: inquiry("KH1", "x"), token: "huge", status: 401, code: "unauthorized"},
	}
	api.secrets["huge"] = "seg_" + strings.Repeat("A", 60<<10)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path, token := c.method, c.path, c.token
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/events"
			}
			if token == "" {
				token = "ingester"
			}
			var body []byte
			if method == http.MethodPost {
				body = []byte(c.body)
			}
			before := api.events()
			r := api.call(method, path, token, body)
			r.expectRefused(t, c.status, c.code)
			if got := api.events(); got != before {
				t.Errorf("events %d → %d: something was stored", before, got)
			}
			api.followUp(t)
		})
	}
	// Nothing of the hostile batch customers exists.
	api.getAs("auditor", "/v1/customers/KH-BATCH/events").expectRefused(t, http.StatusNotFound, "customer_not_found")
	if r := api.getAs("auditor", "/v1/audit/verify").expect(t, http.StatusOK); r.obj["ok"] != true {
		t.Errorf("verify after the hostile requests: %s", r.raw)
	}
}

// sqlPayloads are classic injection strings. As data they are valid text:
// they must be stored and returned exactly, and do nothing else.
var sqlPayloads = []string{
	`Robert'); DROP TABLE events;--`,
	`' OR '1'='1`,
	`1; DELETE FROM streams WHERE ''=''; --`,
	`"; TRUNCATE disclosures, events CASCADE; --`,
	`\'; SELECT pg_sleep(30); --`,
	`' UNION SELECT hash, data FROM events --`,
	`$$; DROP SCHEMA public CASCADE; $$`,
	`'); COPY events TO PROGRAM 'rm -rf /'; --`,
	`%s%n%x {{.}} ${jndi:ldap://x/a} <script>alert(1)</script>`,
	`客户'); UPDATE customer_projections SET projection = NULL; --`,
}

func TestSQLInjectionStringsAreStoredLiterally(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	api.seed()
	str := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var codes []string
	for i, p := range sqlPayloads {
		code := fmt.Sprintf("SQLI-%d", i)
		codes = append(codes, code)
		q := str(p)
		orderID := p
		if len([]rune(orderID)) > 64 {
			orderID = string([]rune(orderID)[:64])
		}
		events := []string{
			`{"type":"CustomerRegistered","customer":"` + code + `","source":` + q + `,"data":{"name":` + q + `,"kind":"enterprise",` +
				`"industry":` + q + `,"region":` + q + `,"source_channel":` + q + `,"owner":` + q + `,` +
				`"contact":{"name":` + q + `,"title":` + q + `,"phone":"13812345678","email":"o'reilly@example.com"}}}`,
			`{"type":"OrderPlaced","customer":"` + code + `","data":{"order_id":` + str(orderID) + `,"amount":"10.00","category":` + q + `,"channel":"online"}}`,
			`{"type":"InquiryReceived","customer":"` + code + `","data":{"channel":` + q + `,"topic":` + q + `}}`,
			`{"type":"SatisfactionRated","customer":"` + code + `","data":{"score":3,"feedback":` + q + `}}`,
			`{"type":"NeedsDeclared","customer":"` + code + `","data":{"core_needs":[` + q + `]}}`,
			// by is the token's identity (SPEC §8), not a free field.
			`{"type":"FollowUpLogged","customer":"` + code + `","data":{"by":"ingester","channel":` + q + `,"summary":` + q + `,"outcome":` + q + `}}`,
			`{"type":"OwnerAssigned","customer":"` + code + `","data":{"owner":` + q + `}}`,
			`{"type":"CustomerProfileUpdated","customer":"` + code + `","data":{"region":` + q + `,"contact":{"title":` + q + `}}}`,
		}
		res := api.postAs("ingester", batch(events)).expect(t, http.StatusCreated).ingest(t)
		if len(res.Events) != len(events) {
			t.Fatalf("%q: %d events recorded", p, len(res.Events))
		}
	}
	api.apply(codes...)
	const perCustomer = 8
	if got, want := api.events(), 4+perCustomer*len(sqlPayloads); got != want {
		t.Fatalf("events table holds %d rows, want %d", got, want)
	}

	for i, p := range sqlPayloads {
		code := codes[i]
		orderID := p
		if len([]rune(orderID)) > 64 {
			orderID = string([]rune(orderID)[:64])
		}
		// The recorded history returns every field as sent.
		h := api.getAs("root", "/v1/customers/"+code+"/events?unmasked=true").expect(t, http.StatusOK).history(t)
		if len(h.Events) != perCustomer {
			t.Fatalf("%s: %d events", code, len(h.Events))
		}
		get := func(m map[string]any, path ...string) any {
			var v any = m
			for _, k := range path {
				mm, _ := v.(map[string]any)
				v = mm[k]
			}
			return v
		}
		checks := []struct {
			event int
			path  []string
			want  any
		}{
			{0, []string{"name"}, p}, {0, []string{"industry"}, p}, {0, []string{"region"}, p},
			{0, []string{"source_channel"}, p}, {0, []string{"owner"}, p},
			{0, []string{"contact", "name"}, p}, {0, []string{"contact", "title"}, p},
			{0, []string{"contact", "email"}, "o'reilly@example.com"},
			{1, []string{"order_id"}, orderID}, {1, []string{"category"}, p},
			{2, []string{"channel"}, p}, {2, []string{"topic"}, p},
			{3, []string{"feedback"}, p},
			{5, []string{"by"}, "ingester"}, {5, []string{"channel"}, p}, {5, []string{"summary"}, p}, {5, []string{"outcome"}, p},
			{6, []string{"owner"}, p},
			{7, []string{"region"}, p}, {7, []string{"contact", "title"}, p},
		}
		for _, c := range checks {
			if got := get(h.Events[c.event].Data, c.path...); got != c.want {
				t.Errorf("%s events[%d].data.%s = %v, want %q", code, c.event, strings.Join(c.path, "."), got, c.want)
			}
		}
		if needs, _ := h.Events[4].Data["core_needs"].([]any); len(needs) != 1 || needs[0] != p {
			t.Errorf("%s core_needs = %v", code, h.Events[4].Data["core_needs"])
		}
		if s := h.Events[0].Source; s == nil || *s != p {
			t.Errorf("%s source = %v, want %q", code, deref(s), p)
		}

		// So does the customer document.
		r := api.getAs("root", "/v1/customers/"+code+"?unmasked=true").expect(t, http.StatusOK)
		prof, _ := r.obj["profile"].(map[string]any)
		for _, k := range []string{"name", "industry", "region", "source_channel", "owner"} {
			if prof[k] != p {
				t.Errorf("%s profile.%s = %v, want %q", code, k, prof[k], p)
			}
		}
		if c := contactOf(t, r); c["name"] != p || c["title"] != p || c["email"] != "o'reilly@example.com" {
			t.Errorf("%s contact = %v", code, c)
		}
		// Masked, the name shows its first character only.
		r = api.getAs("reader", "/v1/customers/"+code).expect(t, http.StatusOK)
		if c := contactOf(t, r); c["name"] == p || c["email"] == "o'reilly@example.com" {
			t.Errorf("%s masked contact = %v", code, c)
		}
	}

	// A filter value with SQL in it is just a value that matches nothing.
	for _, p := range sqlPayloads[:3] {
		r := api.getAs("reader", "/v1/alerts?owner="+url.QueryEscape(p)).expect(t, http.StatusOK)
		// Owner p has alerts only where a rule fired for a customer owned by p.
		a, _ := r.obj["alerts"].([]any)
		for _, x := range a {
			if m, _ := x.(map[string]any); m["owner"] != p {
				t.Errorf("alerts?owner=%q returned an alert of owner %v", p, m["owner"])
			}
		}
	}

	// The schema and the log are intact.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, table := range []string{"events", "streams", "disclosures", "customer_projections"} {
		var exists bool
		if err := api.db.Pool.QueryRow(ctx, "SELECT to_regclass('public.'||$1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
			t.Errorf("table %s: exists %v, err %v", table, exists, err)
		}
	}
	if r := api.getAs("auditor", "/v1/audit/verify").expect(t, http.StatusOK); r.obj["ok"] != true {
		t.Errorf("verify: %s", r.raw)
	}
	api.followUp(t)
}

// hardenedServer serves the API like segmentd does (timeouts, header limit),
// with a read timeout short enough for a test.
func hardenedServer(t *testing.T, api *secureAPI, readTimeout time.Duration) string {
	t.Helper()
	srv := &http.Server{
		Handler:           httpapi.New(api.cfg),
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawExchange writes request on a fresh connection from its own goroutine
// (paced by pace between bytes when non-zero, after the first head bytes)
// while reading the answer, all bounded by limit. It returns the response
// (nil when the server closed the connection without one), how long the
// server took to answer or hang up, and the read error.
func rawExchange(t *testing.T, addr string, head, body string, pace, limit time.Duration) (*http.Response, []byte, time.Duration, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		if pace == 0 {
			_, _ = io.WriteString(conn, body)
			return
		}
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for i := range len(body) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	res, rerr := http.ReadResponse(bufio.NewReader(conn), nil)
	var raw []byte
	if rerr == nil {
		raw, _ = io.ReadAll(res.Body)
		_ = res.Body.Close()
	}
	elapsed := time.Since(start)
	close(stop)
	_ = conn.Close()
	<-wrote
	return res, raw, elapsed, rerr
}

func TestSlowLorisBodyIsCutOff(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	const readTimeout = 500 * time.Millisecond
	addr := hardenedServer(t, api, readTimeout)

	// A valid envelope padded to 4 KiB, sent one byte every 20 ms: it would
	// take 80 s to arrive. The server must give up after its read timeout.
	body := inquiry("KH-SLOW", "slow")
	body += strings.Repeat(" ", 4096-len(body))
	head := "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + api.secrets["ingester"] +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
	const limit = 10 * time.Second
	res, raw, elapsed, err := rawExchange(t, addr, head, body, 20*time.Millisecond, limit)
	var ne net.Error
	switch {
	case err == nil:
		if !slices.Contains([]int{http.StatusBadRequest, http.StatusRequestTimeout}, res.StatusCode) {
			t.Errorf("slow body answered %d, want 400 or 408; body %s", res.StatusCode, raw)
		}
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the server neither answered nor closed the connection within %s", limit)
	default:
		t.Logf("the server closed the connection: %v", err)
	}
	if elapsed >= limit/2 {
		t.Errorf("the server took %s to give up on a slow body (read timeout %s)", elapsed, readTimeout)
	}
	api.expectStored(0)

	// The server is unharmed: a normal request on a new connection works.
	res, raw, _, err = rawExchange(t, addr, head, body, 0, limit)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("follow-up: %v %v %s", err, res, raw)
	}
	api.expectStored(1)
}

func TestSlowLorisHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	addr := hardenedServer(t, api, 500*time.Millisecond)
	// Headers that never end.
	head := "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	const limit = 10 * time.Second
	_, _, elapsed, err := rawExchange(t, addr, head, strings.Repeat("X-A: b\r\n", 500), 20*time.Millisecond, limit)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server neither answered nor closed the connection within %s", limit)
	}
	if elapsed >= limit/2 {
		t.Errorf("the server took %s to give up on slow headers", elapsed)
	}
	api.expectStored(0)
}

func TestHugeHeaderIsRefused(t *testing.T) {
	t.Parallel()
	api := newSecureAPI(t)
	addr := hardenedServer(t, api, 5*time.Second)
	body := inquiry("KH-HDR", "x")
	for _, c := range []struct {
		name string
		head string
	}{
		{"one huge header", "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + api.secrets["ingester"] +
			"\r\nX-Junk: " + strings.Repeat("a", 1<<20) + "\r\n"},
		{"many headers", "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + api.secrets["ingester"] +
			"\r\n" + strings.Repeat("X-Junk: aaaaaaaaaaaaaaaa\r\n", 50_000)},
		{"huge URL", "POST /v1/events?" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
			api.secrets["ingester"] + "\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			head := c.head + "Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
			res, raw, _, err := rawExchange(t, addr, head, body, 0, 10*time.Second)
			var ne net.Error
			switch {
			case err == nil:
				if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge && res.StatusCode != http.StatusRequestURITooLong {
					t.Errorf("status %d, want 431; body %s", res.StatusCode, raw)
				}
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatal("the server neither answered nor closed the connection")
			default:
				// Refused by hanging up mid-request (the client was still
				// writing): acceptable, and nothing may be stored.
				t.Logf("the server closed the connection: %v", err)
			}
			api.expectStored(0)
		})
	}
	// Unharmed.
	res, raw, _, err := rawExchange(t, addr, "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+api.secrets["ingester"]+
		"\r\nContent-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n", body, 0, 10*time.Second)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("follow-up: %v %v %s", err, res, raw)
	}
	api.expectStored(1)
}
