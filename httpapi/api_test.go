package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/httpapi"
)

func TestPostSingleEnvelope(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	id := "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7b"

	r := api.post(withID(orderPlaced("KH202405010001", "SO-1", "100"), id)).expect(t, http.StatusCreated)
	for _, m := range []string{"event_id", "customer", "version", "position", "recorded_at", "duplicate", "events"} {
		if _, ok := r.obj[m]; !ok {
			t.Errorf("response lacks top-level %q: %s", m, r.raw)
		}
	}
	if d, ok := r.obj["duplicate"].(bool); !ok || d {
		t.Errorf("duplicate = %v, want false: %s", r.obj["duplicate"], r.raw)
	}
	got := r.ingest(t)
	want := appended{EventID: id, Customer: "KH202405010001", Version: 1, Position: 1, RecordedAt: "2026-11-23T18:00:00+08:00"}
	if got.appended != want {
		t.Errorf("top level = %+v, want %+v", got.appended, want)
	}
	if len(got.Events) != 1 || got.Events[0] != want {
		t.Errorf("events = %+v, want [%+v]", got.Events, want)
	}

	// Without an event_id the server generates one; versions and positions go on.
	r = api.post(orderPlaced("KH202405010001", "SO-2", "5")).expect(t, http.StatusCreated)
	got = r.ingest(t)
	if _, err := uuid.Parse(got.EventID); err != nil || got.EventID == id {
		t.Errorf("generated event_id %q", got.EventID)
	}
	if got.Version != 2 || got.Position != 2 || got.Duplicate || len(got.Events) != 1 || got.Events[0] != got.appended {
		t.Errorf("second event = %s", r.raw)
	}
	api.expectStored(2)
}

func TestPostBatchKeepsOrder(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	api.post(orderPlaced("KH-A", "o0", "1")).expect(t, http.StatusCreated)

	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	r := api.post(batch([]string{
		withID(orderPlaced("KH-B", "o1", "10"), ids[0]),
		withID(orderPlaced("KH-A", "o2", "20"), ids[1]),
		withID(inquiry("KH-B", "价格"), ids[2]),
		withID(registered("KH-A"), ids[3]),
	})).expect(t, http.StatusCreated)
	if _, ok := r.obj["event_id"]; ok {
		t.Errorf("batch response has a top-level event_id: %s", r.raw)
	}
	got := r.ingest(t)
	want := []appended{
		{EventID: ids[0], Customer: "KH-B", Version: 1, Position: 2},
		{EventID: ids[1], Customer: "KH-A", Version: 2, Position: 3},
		{EventID: ids[2], Customer: "KH-B", Version: 2, Position: 4},
		{EventID: ids[3], Customer: "KH-A", Version: 3, Position: 5},
	}
	if len(got.Events) != len(want) {
		t.Fatalf("events = %s", r.raw)
	}
	for i, w := range want {
		w.RecordedAt = "2026-11-23T18:00:00+08:00"
		if got.Events[i] != w {
			t.Errorf("events[%d] = %+v, want %+v", i, got.Events[i], w)
		}
	}
	api.expectStored(5)

	// Re-sending the whole batch is answered from the log: 200, all duplicates.
	r = api.post(batch([]string{
		withID(orderPlaced("KH-B", "o1", "10"), ids[0]),
		withID(orderPlaced("KH-A", "o2", "20"), ids[1]),
		withID(inquiry("KH-B", "价格"), ids[2]),
		withID(registered("KH-A"), ids[3]),
	})).expect(t, http.StatusOK)
	again := r.ingest(t)
	for i, w := range want {
		w.RecordedAt, w.Duplicate = "2026-11-23T18:00:00+08:00", true
		if i >= len(again.Events) || again.Events[i] != w {
			t.Errorf("re-sent events[%d] = %s, want %+v", i, r.raw, w)
		}
	}
	api.expectStored(5)
}

func TestResendingEventIDIsIdempotent(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	id := uuid.NewString()
	body := withID(orderPlaced("KH1", "o1", "99.90"), id)
	first := api.post(body).expect(t, http.StatusCreated).ingest(t)
	api.post(inquiry("KH1", "交期")).expect(t, http.StatusCreated)
	api.expectStored(2)

	r := api.post(body).expect(t, http.StatusOK)
	if d, ok := r.obj["duplicate"].(bool); !ok || !d {
		t.Errorf("duplicate = %v, want true: %s", r.obj["duplicate"], r.raw)
	}
	again := r.ingest(t)
	want := first.appended
	want.Duplicate = true
	if again.appended != want || len(again.Events) != 1 || again.Events[0] != want {
		t.Errorf("re-sent = %s, want %+v", r.raw, want)
	}
	api.expectStored(2)

	// A re-sent id with other content is a client bug, not a retry:
	// refused, and nothing is stored.
	api.post(withID(orderPlaced("KH1", "o1", "1"), id)).expectError(t, http.StatusConflict, "event_id_reused", "event_id")
	api.expectStored(2)

	// A batch mixing a stored event and a new one stores only the new one.
	r = api.post(batch([]string{body, orderPlaced("KH1", "o9", "1")})).expect(t, http.StatusCreated)
	mixed := r.ingest(t)
	if len(mixed.Events) != 2 || mixed.Events[0] != want || mixed.Events[1].Duplicate || mixed.Events[1].Version != 3 || mixed.Events[1].Position != 3 {
		t.Errorf("mixed batch = %s", r.raw)
	}
	api.expectStored(3)
}

func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	api := newAPI(t)

	// Single form.
	api.post(with(registered("KH1"), `"expected_version":0`)).expect(t, http.StatusCreated)
	api.post(with(orderPlaced("KH1", "o1", "1"), `"expected_version":0`)).
		expectError(t, http.StatusConflict, "version_conflict", "expected_version")
	api.expectStored(1)
	api.post(with(orderPlaced("KH1", "o1", "1"), `"expected_version":1`)).expect(t, http.StatusCreated)
	api.post(with(orderPlaced("KH1", "o2", "1"), `"expected_version":5`)).
		expectError(t, http.StatusConflict, "version_conflict", "expected_version")
	api.expectStored(2)

	// A retry of a request that succeeded is a duplicate, not a conflict.
	id := uuid.NewString()
	retry := with(withID(inquiry("KH1", "交期"), id), `"expected_version":2`)
	api.post(retry).expect(t, http.StatusCreated)
	r := api.post(retry).expect(t, http.StatusOK).ingest(t)
	if !r.Duplicate || r.Version != 3 {
		t.Errorf("retry = %+v", r)
	}
	api.expectStored(3)

	// Batch form, a number for every customer of the batch.
	api.post(batch([]string{orderPlaced("KH2", "o1", "1"), orderPlaced("KH2", "o2", "1")}, `"expected_version":0`)).
		expect(t, http.StatusCreated)
	api.post(batch([]string{orderPlaced("KH2", "o3", "1")}, `"expected_version":0`)).
		expectError(t, http.StatusConflict, "version_conflict", "expected_version")
	api.expectStored(5)
	api.post(batch([]string{orderPlaced("KH2", "o3", "1")}, `"expected_version":2`)).expect(t, http.StatusCreated)
	api.expectStored(6)

	// Batch form, per customer: KH1 is at 3, KH3 is new.
	api.post(batch([]string{inquiry("KH1", "a"), inquiry("KH3", "b"), inquiry("KH4", "c")}, `"expected_version":{"KH1":2,"KH3":0}`)).
		expectError(t, http.StatusConflict, "version_conflict", "expected_version")
	api.expectStored(6)
	r2 := api.post(batch([]string{inquiry("KH1", "a"), inquiry("KH3", "b"), inquiry("KH4", "c")}, `"expected_version":{"KH1":3,"KH3":0}`)).
		expect(t, http.StatusCreated).ingest(t)
	if len(r2.Events) != 3 || r2.Events[0].Version != 4 || r2.Events[1].Version != 1 || r2.Events[2].Version != 1 {
		t.Errorf("per-customer batch = %+v", r2.Events)
	}
	api.expectStored(9)
	api.post(batch([]string{inquiry("KH1", "a"), inquiry("KH3", "b")}, `"expected_version":{"KH1":4,"KH3":0}`)).
		expectError(t, http.StatusConflict, "version_conflict", "expected_version")
	api.expectStored(9)
}

func TestRulesOfTheStreamsPast(t *testing.T) {
	t.Parallel()
	api := newAPI(t)

	// An event for a customer never seen opens its stream.
	api.post(orderPlaced("KH1", "o1", "100.00")).expect(t, http.StatusCreated)
	api.post(ownerAssigned("KH1", "王经理")).expect(t, http.StatusCreated)
	api.post(registered("KH1")).expect(t, http.StatusCreated)
	api.post(`{"type":"CustomerProfileUpdated","customer":"KH1","data":{"region":"华南"}}`).expect(t, http.StatusCreated)
	api.post(orderRefunded("KH1", "o1", "60")).expect(t, http.StatusCreated)
	const stored = 5
	api.expectStored(stored)
	streams := api.count("streams")

	cases := []struct {
		name, body, code, field string
	}{
		{"second registration", registered("KH1"), "already_registered", "type"},
		{"refund exceeding the order", orderRefunded("KH1", "o1", "40.01"), "refund_exceeds_order", "data.amount"},
		{"refund of an unknown order", orderRefunded("KH1", "o2", "1"), "unknown_order", "data.order_id"},
		{"refund for a customer never seen", orderRefunded("KH-NEW-1", "o1", "1"), "unknown_order", "data.order_id"},
		{"duplicate order_id", orderPlaced("KH1", "o1", "1"), "duplicate_order", "data.order_id"},
		{"profile update of a customer never seen", `{"type":"CustomerProfileUpdated","customer":"KH-NEW-2","data":{"region":"华南"}}`, "customer_not_found", "customer"},
		{"owner of a customer never seen", ownerAssigned("KH-NEW-3", "王经理"), "customer_not_found", "customer"},
		{"batch: second registration", batch([]string{inquiry("KH1", "x"), registered("KH1")}), "already_registered", "events[1].type"},
		{"batch: refund exceeding within the batch", batch([]string{
			orderPlaced("KH2", "o1", "100"), orderRefunded("KH2", "o1", "70"), orderRefunded("KH2", "o1", "30.01"),
		}), "refund_exceeds_order", "events[2].data.amount"},
		{"batch: refund exceeding a stored order", batch([]string{inquiry("KH1", "退款"), orderRefunded("KH1", "o1", "41")}), "refund_exceeds_order", "events[1].data.amount"},
		{"batch: duplicate order_id within the batch", batch([]string{orderPlaced("KH3", "o1", "1"), orderPlaced("KH3", "o1", "2")}), "duplicate_order", "events[1].data.order_id"},
		{"batch: unknown order", batch([]string{orderPlaced("KH4", "o1", "1"), orderRefunded("KH4", "o2", "1")}), "unknown_order", "events[1].data.order_id"},
		{"batch: owner of a customer never seen", batch([]string{inquiry("KH5", "x"), ownerAssigned("KH-NEW-4", "王经理")}), "customer_not_found", "events[1].customer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api.post(c.body).expectError(t, http.StatusConflict, c.code, c.field)
			api.expectStored(stored)
			if n := api.count("streams"); n != streams {
				t.Errorf("streams table holds %d rows, want %d", n, streams)
			}
			if n := api.count("stream_orders"); n != 1 {
				t.Errorf("stream_orders holds %d rows, want 1", n)
			}
		})
	}
	// The rejected requests left no trace in the write model either: the
	// order of the rejected batch does not exist, and the refunded amount of
	// o1 is still 60 (40 more may be refunded, exactly).
	for _, code := range []string{"KH2", "KH3", "KH4", "KH5", "KH-NEW-1", "KH-NEW-2", "KH-NEW-3", "KH-NEW-4"} {
		api.get("/v1/customers/"+code+"/events").expectError(t, http.StatusNotFound, "customer_not_found", "customer")
	}
	api.post(orderRefunded("KH2", "o1", "1")).expectError(t, http.StatusConflict, "unknown_order", "data.order_id")
	api.post(orderRefunded("KH1", "o1", "40")).expect(t, http.StatusCreated)
	api.post(orderRefunded("KH1", "o1", "0.01")).expectError(t, http.StatusConflict, "refund_exceeds_order", "data.amount")

	// A batch may open a customer and then use it.
	api.post(batch([]string{orderPlaced("KH6", "o1", "1"), ownerAssigned("KH6", "李经理"), orderRefunded("KH6", "o1", "1")})).
		expect(t, http.StatusCreated)
	api.expectStored(stored + 4)
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	// A well-formed batch just over 1 MiB: the size alone decides.
	var envs []string
	size := 0
	for i := 0; size <= httpapi.MaxBodyBytes; i++ {
		e := with(inquiry("KH1", strings.Repeat("询", 100)), fmt.Sprintf(`"source":"s%d"`, i))
		envs = append(envs, e)
		size += len(e) + 1
	}
	body := batch(envs)
	if len(body) <= httpapi.MaxBodyBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	api.post(body).expectError(t, http.StatusRequestEntityTooLarge, "body_too_large", "body")
	api.expectStored(0)

	// Exactly 1 MiB is accepted; one byte more is not.
	exact := inquiry("KH1", "x")
	exact += strings.Repeat(" ", httpapi.MaxBodyBytes-len(exact))
	api.post(exact+" ").expectError(t, http.StatusRequestEntityTooLarge, "body_too_large", "body")
	api.expectStored(0)
	api.post(exact).expect(t, http.StatusCreated)
	api.expectStored(1)

	// Much larger bodies too, and the server keeps serving.
	api.post(`{"events":[`+strings.Repeat(inquiry("KH1", "x")+",", 40_000)+inquiry("KH1", "x")+`]}`).
		expectError(t, http.StatusRequestEntityTooLarge, "body_too_large", "body")
	api.expectStored(1)
	api.post(inquiry("KH1", "x")).expect(t, http.StatusCreated)
}

func TestMoneyIsExact(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	for i, c := range []struct{ amount, want string }{
		{`0.1`, "0.10"},
		{`"1000000.00"`, "1000000.00"},
		{`"0.10"`, "0.10"},
		{`100`, "100.00"},
		{`1500`, "1500.00"},
		{`"12345678901.99"`, "12345678901.99"},
		{`0.30`, "0.30"},
		{`1.5`, "1.50"},
	} {
		api.post(orderPlaced("KH1", fmt.Sprintf("o%d", i), c.amount)).expect(t, http.StatusCreated)
	}
	h := api.get("/v1/customers/KH1/events").expect(t, http.StatusOK).history(t)
	want := []string{"0.10", "1000000.00", "0.10", "100.00", "1500.00", "12345678901.99", "0.30", "1.50"}
	if len(h.Events) != len(want) {
		t.Fatalf("history has %d events, want %d", len(h.Events), len(want))
	}
	for i, w := range want {
		if a, ok := h.Events[i].Data["amount"].(string); !ok || a != w {
			t.Errorf("event %d amount = %#v, want %q", i+1, h.Events[i].Data["amount"], w)
		}
	}
	var stored []string
	rows, err := api.db.Pool.Query(t.Context(), "SELECT data->>'amount' FROM events ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, want) {
		t.Errorf("stored amounts = %v, want %v", stored, want)
	}

	// 0.1 + 0.2 refunds exactly 0.30 (in binary floating point it would not).
	api.post(orderRefunded("KH1", "o6", "0.1")).expect(t, http.StatusCreated)
	api.post(orderRefunded("KH1", "o6", "0.2")).expect(t, http.StatusCreated)
	api.post(orderRefunded("KH1", "o6", "0.01")).expectError(t, http.StatusConflict, "refund_exceeds_order", "data.amount")
}

func TestOccurredAtFutureLimitUsesTheClock(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	at := func(d time.Duration) string {
		return with(inquiry("KH1", "x"), `"occurred_at":"`+t0.Add(d).In(cst).Format(time.RFC3339)+`"`)
	}
	api.post(at(5*time.Minute)).expect(t, http.StatusCreated)
	api.post(at(5*time.Minute+time.Second)).expectError(t, http.StatusBadRequest, "future_time", "occurred_at")
	api.post(at(-365*24*time.Hour)).expect(t, http.StatusCreated)
	api.expectStored(2)
}

// countingMetrics records the API's measurements.
type countingMetrics struct {
	ingested atomic.Int64
	mu       sync.Mutex
	rejected map[string]int
}

func (m *countingMetrics) Ingested(_ string, n int) { m.ingested.Add(int64(n)) }
func (m *countingMetrics) Rejected(_, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rejected == nil {
		m.rejected = map[string]int{}
	}
	m.rejected[reason]++
}

func TestConcurrentIngestion(t *testing.T) {
	t.Parallel()
	metrics := &countingMetrics{}
	api := newAPI(t, func(c *httpapi.Config) { c.Metrics = metrics })
	const clients, perClient = 64, 10
	var (
		mu        sync.Mutex
		positions []int64
		wg        sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			customer := fmt.Sprintf("KH-%03d", c)
			for i := range perClient {
				r := doRequest(t, api.srv, http.MethodPost, "/v1/events", []byte(orderPlaced(customer, fmt.Sprintf("o%d", i), "1.00")))
				if r.status != http.StatusCreated {
					t.Errorf("%s event %d: status %d: %s", customer, i, r.status, r.raw)
					return
				}
				var got ingestResponse
				r.into(t, &got)
				if got.Customer != customer || got.Version != int64(i+1) || got.Duplicate {
					t.Errorf("%s event %d: %s", customer, i, r.raw)
				}
				mu.Lock()
				positions = append(positions, got.Position)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.Sort(positions)
	for i, p := range positions {
		if p != int64(i+1) {
			t.Fatalf("positions are not distinct and contiguous from 1: sorted[%d] = %d", i, p)
		}
	}
	if len(positions) != clients*perClient {
		t.Fatalf("%d positions, want %d", len(positions), clients*perClient)
	}
	api.expectStored(clients * perClient)
	if n := metrics.ingested.Load(); n != clients*perClient {
		t.Errorf("metrics counted %d ingested events, want %d", n, clients*perClient)
	}
}
