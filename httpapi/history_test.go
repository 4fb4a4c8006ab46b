package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestCustomerHistory(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	regID, orderID := uuid.NewString(), uuid.NewString()
	api.post(withID(`{"type":"CustomerRegistered","customer":"KH202405010001","source":"crm",`+
		`"occurred_at":"2024-05-01T09:30:00+08:00","data":{"name":"深圳市华强电子有限公司","kind":"enterprise",`+
		`"industry":"制造业-电子元件","owner":"王经理","contact":{"name":"李明","title":"采购经理",`+
		`"phone":"13812345678","email":"li.ming@example.com"}}}`, regID)).expect(t, http.StatusCreated)
	api.post(inquiry("OTHER", "x")).expect(t, http.StatusCreated)
	api.post(withID(with(orderPlaced("KH202405010001", "SO-1", `"1200000.50"`), `"source":"order-system","occurred_at":"2024-05-02T02:00:00Z"`), orderID)).
		expect(t, http.StatusCreated)
	api.post(inquiry("KH202405010001", "交期")).expect(t, http.StatusCreated)

	r := api.get("/v1/customers/KH202405010001/events").expect(t, http.StatusOK)
	for _, plain := range []string{"李明", "13812345678", "li.ming@example.com", "li.ming", "12345678"} {
		if bytes.Contains(r.raw, []byte(plain)) {
			t.Errorf("history shows the personal data %q: %s", plain, r.raw)
		}
	}
	h := r.history(t)
	if h.Customer != "KH202405010001" || h.Next != "" || len(h.Events) != 3 {
		t.Fatalf("history = %s", r.raw)
	}
	evs, _ := r.obj["events"].([]any)
	for i, e := range evs {
		m, _ := e.(map[string]any)
		for _, k := range []string{"event_id", "type", "customer", "version", "position", "occurred_at", "recorded_at", "source", "data"} {
			if _, ok := m[k]; !ok {
				t.Errorf("events[%d] lacks %q", i, k)
			}
		}
	}
	const recorded = "2026-11-23T18:00:00+08:00"
	crm, orders := "crm", "order-system"
	want := []historyEvent{
		{EventID: regID, Type: "CustomerRegistered", Customer: "KH202405010001", Version: 1, Position: 1,
			OccurredAt: "2024-05-01T09:30:00+08:00", RecordedAt: recorded, Source: &crm},
		{EventID: orderID, Type: "OrderPlaced", Customer: "KH202405010001", Version: 2, Position: 3,
			OccurredAt: "2024-05-02T02:00:00Z", RecordedAt: recorded, Source: &orders}, // as sent
		{Type: "InquiryReceived", Customer: "KH202405010001", Version: 3, Position: 4,
			OccurredAt: recorded, RecordedAt: recorded},
	}
	for i, w := range want {
		g := h.Events[i]
		if w.EventID == "" {
			w.EventID = g.EventID
		}
		if g.EventID != w.EventID || g.Type != w.Type || g.Customer != w.Customer || g.Version != w.Version ||
			g.Position != w.Position || g.OccurredAt != w.OccurredAt || g.RecordedAt != w.RecordedAt ||
			fmt.Sprint(deref(g.Source)) != fmt.Sprint(deref(w.Source)) || (g.Source == nil) != (w.Source == nil) {
			t.Errorf("events[%d] = %+v (source %v), want %+v (source %v)", i, g, deref(g.Source), w, deref(w.Source))
		}
	}
	reg := h.Events[0].Data
	if reg["name"] != "深圳市华强电子有限公司" || reg["industry"] != "制造业-电子元件" || reg["owner"] != "王经理" || reg["kind"] != "enterprise" {
		t.Errorf("registration data = %v", reg)
	}
	c, _ := reg["contact"].(map[string]any)
	if c["name"] != "李某" || c["phone"] != "138****5678" || c["email"] != "l***@example.com" || c["title"] != "采购经理" {
		t.Errorf("contact = %v, want masked 李某, 138****5678, l***@example.com (title 采购经理)", c)
	}
	if d := h.Events[1].Data; d["order_id"] != "SO-1" || d["amount"] != "1200000.50" || d["channel"] != "online" {
		t.Errorf("order data = %v", d)
	}
	if d := h.Events[2].Data; d["topic"] != "交期" {
		t.Errorf("inquiry data = %v", d)
	}

	// Personal data is encrypted at rest, too.
	var stored string
	if err := api.db.Pool.QueryRow(context.Background(), "SELECT string_agg(data::text, ' ') FROM events").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"李明", "13812345678", "li.ming@example.com"} {
		if strings.Contains(stored, plain) {
			t.Errorf("the events table holds the plaintext %q", plain)
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func TestCustomerHistoryErrors(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	api.post(inquiry("KH1", "x")).expect(t, http.StatusCreated)

	api.get("/v1/customers/KH2/events").expectError(t, http.StatusNotFound, "customer_not_found", "customer")
	for _, code := range []string{"a%20b", strings.Repeat("K", 65), "%E5%AE%A2%E6%88%B71", "KH1%2Fx", "a%00b"} {
		api.get("/v1/customers/"+code+"/events").expectError(t, http.StatusBadRequest, "invalid_format", "customer")
	}
	// A code of exactly 64 characters is valid (and unknown here).
	api.get("/v1/customers/"+strings.Repeat("K", 64)+"/events").expectError(t, http.StatusNotFound, "customer_not_found", "customer")

	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=x", "limit"},
		{"after_version=-1", "after_version"}, {"after_version=1.5", "after_version"}, {"after=x", "after"},
	} {
		api.get("/v1/customers/KH1/events?"+q.query).expectError(t, http.StatusBadRequest, "invalid_value", q.field)
	}
	// Paging past the end of an existing stream is an empty page, not a 404.
	h := api.get("/v1/customers/KH1/events?after_version=5").expect(t, http.StatusOK).history(t)
	if len(h.Events) != 0 || h.Next != "" {
		t.Errorf("page past the end = %+v", h)
	}
}

func TestCustomerHistoryPagination(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	var envs []string
	for i := range 5 {
		envs = append(envs, orderPlaced("KH1", fmt.Sprintf("o%d", i+1), "1"))
	}
	api.post(batch(envs)).expect(t, http.StatusCreated)

	versions := func(h historyResponse) []int64 {
		var v []int64
		for _, e := range h.Events {
			v = append(v, e.Version)
		}
		return v
	}
	p1 := api.get("/v1/customers/KH1/events?limit=2").expect(t, http.StatusOK).history(t)
	if fmt.Sprint(versions(p1)) != "[1 2]" || p1.Next != "2" {
		t.Fatalf("first page: versions %v next %q", versions(p1), p1.Next)
	}
	rest := api.get("/v1/customers/KH1/events?after_version="+p1.Next).expect(t, http.StatusOK).history(t)
	if fmt.Sprint(versions(rest)) != "[3 4 5]" || rest.Next != "" {
		t.Fatalf("the rest: versions %v next %q", versions(rest), rest.Next)
	}
	// Walking with limit=2 visits every event once.
	var all []int64
	next := "0"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		p := api.get("/v1/customers/KH1/events?limit=2&after_version="+next).expect(t, http.StatusOK).history(t)
		all = append(all, versions(p)...)
		if p.Next == "" {
			break
		}
		next = p.Next
	}
	if fmt.Sprint(all) != "[1 2 3 4 5]" {
		t.Errorf("walked versions %v", all)
	}
	// A page that ends exactly at the last event has no next.
	last := api.get("/v1/customers/KH1/events?after_version=3&limit=2").expect(t, http.StatusOK).history(t)
	if fmt.Sprint(versions(last)) != "[4 5]" || last.Next != "" {
		t.Errorf("last page: versions %v next %q", versions(last), last.Next)
	}
}

func TestHistoryOfAnErasedCustomer(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	api.post(`{"type":"CustomerRegistered","customer":"KH1","data":{"name":"华强电子","contact":{"name":"李明","title":"采购经理",`+
		`"phone":"13812345678","email":"li.ming@example.com"}}}`).expect(t, http.StatusCreated)
	api.post(orderPlaced("KH1", "o1", "10")).expect(t, http.StatusCreated)
	r := api.get("/v1/customers/KH1/events").expect(t, http.StatusOK)
	if erased, ok := r.obj["erased"].(bool); !ok || erased {
		t.Errorf("erased = %v before erasure", r.obj["erased"])
	}
	api.post(`{"type":"CustomerErased","customer":"KH1","data":{"reason":"客户要求删除个人信息"}}`).expect(t, http.StatusCreated)

	r = api.get("/v1/customers/KH1/events").expect(t, http.StatusOK)
	if erased, ok := r.obj["erased"].(bool); !ok || !erased {
		t.Errorf("erased = %v after erasure", r.obj["erased"])
	}
	h := r.history(t)
	if len(h.Events) != 3 || h.Events[2].Type != "CustomerErased" {
		t.Fatalf("history = %s", r.raw)
	}
	c, _ := h.Events[0].Data["contact"].(map[string]any)
	for _, k := range []string{"name", "phone", "email"} {
		if v, ok := c[k]; ok {
			t.Errorf("contact.%s = %v after erasure; want it gone", k, v)
		}
	}
	if c["title"] != "采购经理" || h.Events[0].Data["name"] != "华强电子" {
		t.Errorf("non-personal data after erasure = %v", h.Events[0].Data)
	}
	// Personal data cannot come back for an erased customer.
	api.post(`{"type":"CustomerProfileUpdated","customer":"KH1","data":{"contact":{"phone":"13912345678"}}}`).
		expectError(t, http.StatusConflict, "customer_erased", "data.contact")
	api.post(`{"type":"CustomerErased","customer":"KH1","data":{"reason":"again"}}`).
		expectError(t, http.StatusConflict, "already_erased", "type")
	api.expectStored(3)
}
