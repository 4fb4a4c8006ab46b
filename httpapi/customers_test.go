package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// listCard is the part of a list card the tests read.
type listCard struct {
	Customer string `json:"customer"`
	Name     *string
	Owner    string `json:"owner"`
	Labels   map[string]struct {
		Value   string `json:"value"`
		Display string `json:"display"`
	} `json:"labels"`
	Tags []struct {
		Tag string `json:"tag"`
	} `json:"tags"`
	NetAmount   string  `json:"net_amount"`
	LastOrderAt *string `json:"last_order_at"`
	ChangedAt   string  `json:"changed_at"`
}

type listPage struct {
	Customers []listCard `json:"customers"`
	Next      string     `json:"next"`
}

const (
	qKH7 = "KH202405010007" // an individual (personal name)
	qKH8 = "ZZ-8"           // registered last, a small order
)

// seedList adds to seedQueries an individual customer and one more
// enterprise, each changed later than the one before.
func (q *queryAPI) seedList() {
	q.t.Helper()
	q.seedQueries()
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	q.postAt(ago(2*24*time.Hour), qKH7, `{"type":"CustomerRegistered","customer":"`+qKH7+`","data":{"name":"张三丰","kind":"individual","owner":"周经理"}}`)
	q.postAt(ago(24*time.Hour), qKH8, registered(qKH8))
	q.postAt(ago(12*time.Hour), qKH8, orderPlaced(qKH8, "SO-8", "100"))
	q.clock.Set(t0)
}

func (q *queryAPI) list(query string) listPage {
	q.t.Helper()
	var p listPage
	q.get("/v1/customers?"+query).expect(q.t, http.StatusOK).into(q.t, &p)
	return p
}

func codesOf(cards []listCard) []string {
	out := make([]string, len(cards))
	for i, c := range cards {
		out[i] = c.Customer
	}
	return out
}

func TestCustomerListIsNewestChangeFirstWithEveryFilter(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedList()

	all := q.list("")
	if got, want := codesOf(all.Customers), []string{qKH8, qKH7, qKH4, qKH1}; !slices.Equal(got, want) {
		t.Fatalf("list order %v, want %v (newest change first)", got, want)
	}
	if all.Next != "" {
		t.Errorf("one page holds all: next = %q", all.Next)
	}
	for i := 1; i < len(all.Customers); i++ {
		if all.Customers[i-1].ChangedAt < all.Customers[i].ChangedAt {
			t.Errorf("changed_at not descending: %v", all.Customers)
		}
	}
	kh1 := all.Customers[3]
	if kh1.Name == nil || *kh1.Name != "深圳市华芯电子元件有限公司" || kh1.Owner != "王经理" || kh1.NetAmount != "1200000.00" ||
		kh1.Labels["value_tier"].Value != "strategic" || kh1.Labels["segment"].Value != "strategic/high" ||
		kh1.Labels["segment"].Display == "" || kh1.LastOrderAt == nil || !strings.HasSuffix(*kh1.LastOrderAt, "+08:00") {
		t.Errorf("card of %s: %+v", qKH1, kh1)
	}
	if kh7 := all.Customers[1]; kh7.Name == nil || *kh7.Name != "张某" {
		t.Errorf("an individual's name in the list is %v, want masked 张某", kh7.Name)
	}

	for query, want := range map[string][]string{
		"value_tier=strategic":              {qKH1},
		"activity=high":                     {qKH1},
		"segment=strategic%2Fhigh":          {qKH1},
		"tag=strategic_partner":             {qKH1},
		"owner=" + url.QueryEscape("周经理"):   {qKH7},
		"lifecycle=customer":                {qKH8, qKH4, qKH1},
		"need_orientation=unknown":          {qKH8, qKH7, qKH4, qKH1},
		"q=KH20240501000":                   {qKH7, qKH4, qKH1},
		"q=" + url.QueryEscape("深圳市华芯"):     {qKH1},
		"q=" + url.QueryEscape("张"):         {}, // a person's name is never searched
		"value_tier=strategic&activity=low": {},
	} {
		if got := codesOf(q.list(query).Customers); !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", query, got, want)
		}
	}
}

func TestCustomerListPagesWithACursorWithoutGapsOrRepeats(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedList()
	var walked []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatalf("more pages than customers: %v", walked)
		}
		p := q.list("limit=1&cursor=" + url.QueryEscape(cursor))
		walked = append(walked, codesOf(p.Customers)...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if want := []string{qKH8, qKH7, qKH4, qKH1}; !slices.Equal(walked, want) {
		t.Errorf("pages walked %v, want %v", walked, want)
	}
}

func TestCustomerListRejectsBadFiltersNamingTheField(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	for query, field := range map[string]string{
		"value_tier=gold": "value_tier", "activity=busy": "activity", "segment=strategic": "segment",
		"tag=vip": "tag", "lifecycle=x": "lifecycle", "need_orientation=x": "need_orientation",
		"limit=0": "limit", "limit=501": "limit", "cursor=!!": "cursor", "unmasked=yes": "unmasked",
		"q=" + strings.Repeat("x", 65): "q",
	} {
		code := "invalid_enum"
		if field == "limit" || field == "cursor" || field == "unmasked" || field == "q" {
			code = "invalid_value"
		}
		q.get("/v1/customers?"+query).expectError(t, http.StatusBadRequest, code, field)
	}
	q.get("/v1/customers?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "unmasked")
}

func csvRows(t *testing.T, raw []byte) [][]string {
	t.Helper()
	body, ok := bytes.CutPrefix(raw, []byte("\ufeff"))
	if !ok {
		t.Errorf("CSV without a UTF-8 byte-order mark: %.40q", raw)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, raw)
	}
	return rows
}

func TestCustomerExportsAreTheFilteredListMasked(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedList()
	res := fetchRaw(t, q.apiEnv, "/v1/customers.csv?lifecycle=customer", "")
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(res.header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("CSV export: %d %v", res.status, res.header)
	}
	rows := csvRows(t, res.raw)
	if len(rows) != 4 || rows[0][0] != "客户编号" || rows[0][1] != "客户名称" {
		t.Fatalf("CSV rows %q, want the header and 3 customers", rows)
	}
	var codes []string
	for _, r := range rows[1:] {
		codes = append(codes, r[0])
	}
	if want := []string{qKH8, qKH4, qKH1}; !slices.Equal(codes, want) {
		t.Errorf("CSV customers %v, want %v", codes, want)
	}
	if r := rows[3]; r[9] != "1200000.00" || r[3] != "战略客户" || !strings.Contains(r[8], "★★★战略伙伴") {
		t.Errorf("CSV row of %s: %q", qKH1, r)
	}
	// The same list by content negotiation; the individual appears masked.
	accept := fetchRaw(t, q.apiEnv, "/v1/customers?owner="+url.QueryEscape("周经理"), "text/csv")
	if !strings.HasPrefix(accept.header.Get("Content-Type"), "text/csv") {
		t.Errorf("Accept: text/csv answered %s", accept.header.Get("Content-Type"))
	}
	if rows := csvRows(t, accept.raw); len(rows) != 2 || rows[1][0] != qKH7 || rows[1][1] != "张某" {
		t.Errorf("Accept: text/csv rows %q, want %s masked", rows, qKH7)
	}

	res = fetchRaw(t, q.apiEnv, "/v1/customers.xlsx?lifecycle=customer", "")
	if res.status != http.StatusOK {
		t.Fatalf("XLSX export: %d %s", res.status, res.raw)
	}
	book, err := excelize.OpenReader(bytes.NewReader(res.raw))
	if err != nil {
		t.Fatalf("XLSX: %v", err)
	}
	defer book.Close()
	sheet, err := book.GetRows("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	if len(sheet) != 4 || sheet[0][0] != "客户编号" || sheet[3][0] != qKH1 || sheet[3][9] != "1200000" {
		t.Errorf("XLSX rows %q", sheet)
	}
	// An empty list exports its header alone.
	if rows := csvRows(t, fetchRaw(t, q.apiEnv, "/v1/customers.csv?value_tier=strategic&activity=low", "").raw); len(rows) != 1 {
		t.Errorf("empty export rows %q, want the header only", rows)
	}
}

// fetchRaw is a GET with an Accept header ("" for none), the body kept raw.
func fetchRaw(t *testing.T, e *apiEnv, path, accept string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, raw: buf.Bytes()}
}

func TestUnmaskedExportNeedsAdminAndIsRecordedPerCustomer(t *testing.T) {
	t.Parallel()
	s := newSecureAPI(t)
	s.postAs("ingester", `{"type":"CustomerRegistered","customer":"KH-P1","data":{"name":"张三丰","kind":"individual","owner":"周经理"}}`).expect(t, http.StatusCreated)
	s.postAs("ingester", registered("KH-E1")).expect(t, http.StatusCreated)
	s.apply("KH-P1", "KH-E1")

	s.getAs("reader", "/v1/customers.csv?unmasked=true").expectError(t, http.StatusForbidden, "forbidden", "unmasked")
	if res := s.getAs("reader", "/v1/customers.csv"); res.status != http.StatusOK || !bytes.Contains(res.raw, []byte("张某")) || bytes.Contains(res.raw, []byte("张三丰")) {
		t.Errorf("masked export: %d %s", res.status, res.raw)
	}
	if n := s.count("disclosures"); n != 0 {
		t.Fatalf("%d disclosures after masked reads", n)
	}
	res := s.getAs("root", "/v1/customers.csv?unmasked=true")
	if res.status != http.StatusOK || !bytes.Contains(res.raw, []byte("张三丰")) {
		t.Fatalf("unmasked export: %d %s", res.status, res.raw)
	}
	var who, customer, endpoint string
	rows, err := s.db.Pool.Query(t.Context(), "SELECT who, customer, endpoint FROM disclosures ORDER BY customer")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		if err := rows.Scan(&who, &customer, &endpoint); err != nil {
			t.Fatal(err)
		}
		got = append(got, who+" "+customer+" "+endpoint)
	}
	if want := []string{"root KH-E1 GET /v1/customers.csv", "root KH-P1 GET /v1/customers.csv"}; !slices.Equal(got, want) {
		t.Errorf("disclosures %q, want %q", got, want)
	}
	s.getAs(noToken, "/v1/customers").expectError(t, http.StatusUnauthorized, "unauthorized", "")
	s.getAs("ingester", "/v1/segments/trend").expectError(t, http.StatusForbidden, "forbidden", "")
}
