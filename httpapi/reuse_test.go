package httpapi_test

import (
	"net/http"
	"testing"
)

func TestEventIDResentWithOtherContentIsAConflict(t *testing.T) {
	t.Parallel()
	e := newAPI(t)
	const id = "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7b"
	const contactID = "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7c"
	const erasedID = "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7d"
	original := with(orderPlaced("KH-R", "SO-1", `"100.00"`), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"erp"`)
	contact := func(phone string) string {
		return `{"type":"CustomerRegistered","customer":"KH-C","data":{"name":"华强","kind":"enterprise","contact":{"name":"李明","phone":"` + phone + `"}}}`
	}
	e.post(withID(original, id)).expect(t, http.StatusCreated)
	e.post(withID(contact("13812345678"), contactID)).expect(t, http.StatusCreated)
	e.post(withID(inquiry("KH-E", "x"), erasedID)).expect(t, http.StatusCreated)
	e.post(withID(`{"type":"CustomerProfileUpdated","customer":"KH-E","data":{"contact":{"phone":"13900000000"}}}`, "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7e")).expect(t, http.StatusCreated)
	e.post(`{"type":"CustomerErased","customer":"KH-E","data":{"reason":"客户要求删除个人信息"}}`).expect(t, http.StatusCreated)
	stored := e.events()

	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"the same envelope again", withID(original, id), http.StatusOK, ""},
		{"the same content with members in another order", withID(`{"source":"erp","occurred_at":"2024-05-02T10:00:00+08:00","data":{"channel":"online","amount":"100.00","order_id":"SO-1"},"customer":"KH-R","type":"OrderPlaced"}`, id), http.StatusOK, ""},
		{"the same amount spelled as a number", withID(with(orderPlaced("KH-R", "SO-1", `100`), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"erp"`), id), http.StatusOK, ""},
		{"other data", withID(with(orderPlaced("KH-R", "SO-1", `"100.01"`), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"erp"`), id), http.StatusConflict, "event_id"},
		{"other customer", withID(with(orderPlaced("KH-S", "SO-1", `"100.00"`), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"erp"`), id), http.StatusConflict, "event_id"},
		{"other type", withID(with(inquiry("KH-R", "x"), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"erp"`), id), http.StatusConflict, "event_id"},
		{"other occurred_at", withID(with(orderPlaced("KH-R", "SO-1", `"100.00"`), `"occurred_at":"2024-05-02T10:00:01+08:00","source":"erp"`), id), http.StatusConflict, "event_id"},
		{"the same instant with another offset", withID(with(orderPlaced("KH-R", "SO-1", `"100.00"`), `"occurred_at":"2024-05-02T02:00:00Z","source":"erp"`), id), http.StatusConflict, "event_id"},
		{"occurred_at left out", withID(with(orderPlaced("KH-R", "SO-1", `"100.00"`), `"source":"erp"`), id), http.StatusConflict, "event_id"},
		{"the same fact from another source (provenance, not content)", withID(with(orderPlaced("KH-R", "SO-1", `"100.00"`), `"occurred_at":"2024-05-02T10:00:00+08:00","source":"crm","correlation_id":"r-1"`), id), http.StatusOK, ""},
		{"twice in one batch with other content", batch([]string{withID(inquiry("KH-B", "a"), "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a70"), withID(inquiry("KH-B", "b"), "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a70")}), http.StatusConflict, "events[1].event_id"},
		{"the same sealed contact again", withID(contact("13812345678"), contactID), http.StatusOK, ""},
		{"another phone (compared in plaintext, not ciphertext)", withID(contact("13812345679"), contactID), http.StatusConflict, "event_id"},
		{"an erased customer's event again", withID(inquiry("KH-E", "x"), erasedID), http.StatusOK, ""},
		// Erasure destroyed the key: the sealed phone cannot be compared any
		// more, the rest of the event still is.
		{"an erased customer's sealed event again", withID(`{"type":"CustomerProfileUpdated","customer":"KH-E","data":{"contact":{"phone":"13900000000"}}}`, "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7e"), http.StatusOK, ""},
		{"an erased customer's sealed event with other public content", withID(`{"type":"CustomerProfileUpdated","customer":"KH-E","data":{"region":"华东","contact":{"phone":"13900000000"}}}`, "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7e"), http.StatusConflict, "event_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.post(c.body)
			if c.status == http.StatusOK {
				if res := r.expect(t, http.StatusOK).ingest(t); !res.Duplicate && (len(res.Events) == 0 || !res.Events[0].Duplicate) {
					t.Errorf("not a duplicate: %s", r.raw)
				}
				return
			}
			r.expectError(t, c.status, "event_id_reused", c.field)
		})
	}
	e.expectStored(stored)
}
