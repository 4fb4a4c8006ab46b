package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/httpapi"
)

// register builds a CustomerRegistered envelope around raw data members.
func register(data string) string {
	return `{"type":"CustomerRegistered","customer":"KH1","data":{"name":"华强电子",` + data + `}}`
}

func contact(members string) string {
	return register(`"contact":{"name":"李明",` + members + `}`)
}

func order(amount string) string { return orderPlaced("KH1", "o1", amount) }

func rated(score string) string {
	return `{"type":"SatisfactionRated","customer":"KH1","data":{"score":` + score + `}}`
}

func needs(data string) string {
	return `{"type":"NeedsDeclared","customer":"KH1","data":{` + data + `}}`
}

// TestRejectedRequests covers every rejection of SPEC §2: a 400 naming the
// field and the problem, and nothing of the request stored.
func TestRejectedRequests(t *testing.T) {
	t.Parallel()
	metrics := &countingMetrics{}
	api := newAPI(t, func(c *httpapi.Config) { c.Metrics = metrics })

	good := func(i int) string { return orderPlaced("KH-B", fmt.Sprintf("o%d", i), "10") }
	batchWithBad := func(bad string) string {
		return batch([]string{good(0), good(1), inquiry("KH-C", "x"), bad, good(4)})
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = inquiry("KH1", "x")
	}
	future := t0.Add(5*time.Minute + time.Second).In(cst).Format(time.RFC3339)

	cases := []struct {
		name, body, field, code string
	}{
		// The envelope.
		{"unknown type", `{"type":"OrderShipped","customer":"KH1","data":{}}`, "type", "unknown_event_type"},
		{"type missing", `{"customer":"KH1","data":{}}`, "type", "required"},
		{"type mistyped", `{"type":7,"customer":"KH1","data":{}}`, "type", "invalid_type"},
		{"unknown top-level field", with(order("1"), `"colour":"red"`), "colour", "unknown_field"},
		{"customer missing", `{"type":"InquiryReceived","data":{"topic":"x"}}`, "customer", "required"},
		{"customer mistyped", `{"type":"InquiryReceived","customer":42,"data":{"topic":"x"}}`, "customer", "invalid_type"},
		{"customer with a space", inquiry("a b", "x"), "customer", "invalid_format"},
		{"customer empty", inquiry("", "x"), "customer", "invalid_format"},
		{"customer of 65 characters", inquiry(strings.Repeat("K", 65), "x"), "customer", "invalid_format"},
		{"customer with non-ASCII letters", inquiry("客户1", "x"), "customer", "invalid_format"},
		{"customer with a slash", inquiry("KH/1", "x"), "customer", "invalid_format"},
		{"event_id not a UUID", withID(order("1"), "order-1"), "event_id", "invalid_format"},
		{"occurred_at not RFC 3339", with(order("1"), `"occurred_at":"2024-05-02 10:00"`), "occurred_at", "invalid_format"},
		{"occurred_at mistyped", with(order("1"), `"occurred_at":1714615200`), "occurred_at", "invalid_type"},
		{"occurred_at in the future", with(order("1"), `"occurred_at":"`+future+`"`), "occurred_at", "future_time"},
		{"source mistyped", with(order("1"), `"source":["crm"]`), "source", "invalid_type"},
		{"data missing", `{"type":"OrderPlaced","customer":"KH1"}`, "data", "required"},
		{"data not an object", `{"type":"OrderPlaced","customer":"KH1","data":[1]}`, "data", "invalid_type"},
		{"expected_version negative", with(order("1"), `"expected_version":-1`), "expected_version", "invalid_value"},
		{"expected_version mistyped", with(order("1"), `"expected_version":"0"`), "expected_version", "invalid_value"},
		{"expected_version fractional", with(order("1"), `"expected_version":1.5`), "expected_version", "invalid_value"},

		// Unknown and mistyped data fields.
		{"unknown field in data", `{"type":"OrderPlaced","customer":"KH1","data":{"order_id":"o1","amount":1,"discount":2}}`, "data.discount", "unknown_field"},
		{"unknown field in data.contact", contact(`"wechat":"liming"`), "data.contact.wechat", "unknown_field"},
		{"order_id mistyped", `{"type":"OrderPlaced","customer":"KH1","data":{"order_id":5,"amount":1}}`, "data.order_id", "invalid_type"},
		{"order_id missing", `{"type":"OrderPlaced","customer":"KH1","data":{"amount":1}}`, "data.order_id", "required"},
		{"amount mistyped", order("true"), "data.amount", "invalid_type"},
		{"amount not a number", order(`"12元"`), "data.amount", "invalid_type"},
		{"employees mistyped", register(`"employees":"many"`), "data.employees", "invalid_type"},
		{"employees fractional", register(`"employees":10.5`), "data.employees", "invalid_type"},
		{"contact mistyped", register(`"contact":"李明"`), "data.contact", "invalid_type"},
		{"contact.phone mistyped", contact(`"phone":13812345678`), "data.contact.phone", "invalid_type"},
		{"core_needs mistyped", needs(`"core_needs":"成本控制"`), "data.core_needs", "invalid_type"},
		{"core_needs entry mistyped", needs(`"core_needs":["成本控制",3]`), "data.core_needs[1]", "invalid_type"},
		{"name missing", `{"type":"CustomerRegistered","customer":"KH1","data":{"kind":"enterprise"}}`, "data.name", "required"},
		{"owner blank", ownerAssigned("KH1", "  "), "data.owner", "required"},
		{"profile update with no field", `{"type":"CustomerProfileUpdated","customer":"KH1","data":{}}`, "data", "empty"},

		// Wrong enums.
		{"kind", register(`"kind":"government"`), "data.kind", "invalid_enum"},
		{"channel", `{"type":"OrderPlaced","customer":"KH1","data":{"order_id":"o1","amount":1,"channel":"phone"}}`, "data.channel", "invalid_enum"},
		{"communication_preference", needs(`"communication_preference":"fax"`), "data.communication_preference", "invalid_enum"},
		{"price_sensitivity", needs(`"price_sensitivity":"extreme"`), "data.price_sensitivity", "invalid_enum"},
		{"enum in another case", register(`"kind":"Enterprise"`), "data.kind", "invalid_enum"},

		// Amounts.
		{"amount negative", order("-5"), "data.amount", "not_positive"},
		{"amount negative string", order(`"-0.01"`), "data.amount", "not_positive"},
		{"amount zero", order("0"), "data.amount", "not_positive"},
		{"amount zero string", order(`"0.00"`), "data.amount", "not_positive"},
		{"refund amount zero", orderRefunded("KH1", "o1", "0"), "data.amount", "not_positive"},
		{"amount with 3 decimals (string)", order(`"0.001"`), "data.amount", "too_many_decimals"},
		{"amount with 3 decimals (number)", order("1.234"), "data.amount", "too_many_decimals"},
		{"amount in exponent form", order("1234e-3"), "data.amount", "invalid_type"},
		{"refund amount with 3 decimals", orderRefunded("KH1", "o1", "0.005"), "data.amount", "too_many_decimals"},
		{"annual_revenue with 3 decimals", register(`"annual_revenue":"1.001"`), "data.annual_revenue", "too_many_decimals"},
		{"amount too large", order("1000000000000000000000000000000"), "data.amount", "out_of_range"},

		// Phone, email, score.
		{"phone too short", contact(`"phone":"12345"`), "data.contact.phone", "invalid_format"},
		{"phone not starting with 1", contact(`"phone":"23812345678"`), "data.contact.phone", "invalid_format"},
		{"phone with a letter", contact(`"phone":"1381234567a"`), "data.contact.phone", "invalid_format"},
		{"phone with separators", contact(`"phone":"138-1234-5678"`), "data.contact.phone", "invalid_format"},
		{"email without domain", contact(`"email":"li.ming"`), "data.contact.email", "invalid_format"},
		{"email with a space", contact(`"email":"li ming@example.com"`), "data.contact.email", "invalid_format"},
		{"email with a display name", contact(`"email":"Li <li@example.com>"`), "data.contact.email", "invalid_format"},
		{"email without a dotted domain", contact(`"email":"li@localhost"`), "data.contact.email", "invalid_format"},
		{"score 0", rated("0"), "data.score", "out_of_range"},
		{"score 6", rated("6"), "data.score", "out_of_range"},
		{"score 4.5", rated("4.5"), "data.score", "invalid_type"},
		{"score as a string", rated(`"5"`), "data.score", "invalid_type"},
		{"score missing", `{"type":"SatisfactionRated","customer":"KH1","data":{"feedback":"好"}}`, "data.score", "out_of_range"},
		{"recommendation 11", `{"type":"RecommendationRated","customer":"KH1","data":{"score":11}}`, "data.score", "out_of_range"},
		{"recommendation -1", `{"type":"RecommendationRated","customer":"KH1","data":{"score":-1}}`, "data.score", "out_of_range"},
		{"recommendation 9.5", `{"type":"RecommendationRated","customer":"KH1","data":{"score":9.5}}`, "data.score", "invalid_type"},
		{"recommendation missing", `{"type":"RecommendationRated","customer":"KH1","data":{}}`, "data.score", "required"},
		{"recommendation unknown field", `{"type":"RecommendationRated","customer":"KH1","data":{"score":9,"nps":9}}`, "data.nps", "unknown_field"},

		// Malformed JSON.
		{"duplicated key at top level", `{"type":"InquiryReceived","customer":"KH1","customer":"KH2","data":{"topic":"x"}}`, "customer", "duplicate_field"},
		{"duplicated key in data", `{"type":"OrderPlaced","customer":"KH1","data":{"order_id":"o1","amount":1,"amount":1000}}`, "data.amount", "duplicate_field"},
		{"duplicated key in a batch event", batch([]string{good(0), `{"type":"InquiryReceived","customer":"KH1","type":"InquiryReceived","data":{}}`}), "events[1].type", "duplicate_field"},
		{"invalid UTF-8", "{\"type\":\"InquiryReceived\",\"customer\":\"KH1\",\"data\":{\"topic\":\"\xff\xfe\"}}", "data.topic", "invalid_json"},
		{"invalid JSON", `{"type":"InquiryReceived","customer":"KH1",`, "body", "invalid_json"},
		{"trailing garbage", inquiry("KH1", "x") + `x`, "body", "invalid_json"},
		{"two documents", inquiry("KH1", "x") + inquiry("KH1", "y"), "body", "invalid_json"},
		{"empty body", ``, "body", "invalid_json"},
		{"not an object", `[` + inquiry("KH1", "x") + `]`, "body", "invalid_type"},

		// Batches.
		{"batch with events[3] of negative amount", batchWithBad(orderPlaced("KH-B", "o3", "-1")), "events[3].data.amount", "not_positive"},
		{"batch with events[3] of unknown type", batchWithBad(`{"type":"Nope","customer":"KH-B","data":{}}`), "events[3].type", "unknown_event_type"},
		{"batch with events[3] of unknown field", batchWithBad(with(good(3), `"x":1`)), "events[3].x", "unknown_field"},
		{"batch with events[3] of bad email", batchWithBad(strings.Replace(contact(`"email":"nope"`), `"KH1"`, `"KH-B"`, 1)), "events[3].data.contact.email", "invalid_format"},
		{"batch with events[3] not an object", batchWithBad(`"OrderPlaced"`), "events[3]", "invalid_type"},
		{"batch of 1001 events", batch(many), "events", "too_many"},
		{"empty batch", `{"events":[]}`, "events", "empty"},
		{"null batch", `{"events":null}`, "events", "empty"},
		{"batch not a list", `{"events":{}}`, "events", "invalid_type"},
		{"batch with an unknown member", batch([]string{good(0)}, `"customer":"KH1"`), "customer", "unknown_field"},
		{"batch with expected_version of a customer not in it", batch([]string{good(0)}, `"expected_version":{"KH9":0}`), "expected_version", "invalid_value"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			api.post(c.body).expectError(t, http.StatusBadRequest, c.code, c.field)
			api.expectStored(0)
		})
	}
	if n := api.count("streams"); n != 0 {
		t.Errorf("streams table holds %d rows after rejected requests", n)
	}
	metrics.mu.Lock()
	rejected := 0
	for _, n := range metrics.rejected {
		rejected += n
	}
	metrics.mu.Unlock()
	if rejected != len(cases) || metrics.ingested.Load() != 0 {
		t.Errorf("metrics counted %d rejected and %d ingested, want %d and 0", rejected, metrics.ingested.Load(), len(cases))
	}

	// The valid parts of those requests are accepted on their own, so the
	// rejections above were about the named field alone.
	api.post(batch([]string{good(0), good(1), inquiry("KH-C", "x"), good(3), good(4)})).expect(t, http.StatusCreated)
	api.post(batch(many[:1000])).expect(t, http.StatusCreated)
	api.post(contact(`"phone":"+8613812345678","email":"li.ming@example.com"`)).expect(t, http.StatusCreated)
	api.post(rated("5")).expect(t, http.StatusCreated)
	api.post(order(`"0.01"`)).expect(t, http.StatusCreated)
	api.expectStored(1008)
}

// TestErrorListsEveryProblem checks that a request with several problems is
// answered with the first as the headline and all of them in details.
func TestErrorListsEveryProblem(t *testing.T) {
	t.Parallel()
	api := newAPI(t)
	r := api.post(batch([]string{
		orderPlaced("KH1", "o1", "0"),
		orderPlaced("KH1", "o2", "1"),
		orderPlaced("bad code", "o3", "1.001"),
	}))
	r.expectError(t, http.StatusBadRequest, "not_positive", "events[0].data.amount")
	var body struct {
		Error struct {
			Details []struct{ Field, Code string } `json:"details"`
		} `json:"error"`
	}
	r.into(t, &body)
	var fields []string
	for _, d := range body.Error.Details {
		fields = append(fields, d.Field)
	}
	if got, want := strings.Join(fields, " "), "events[0].data.amount events[2].data.amount"; got != want {
		t.Errorf("details fields = %q, want %q", got, want)
	}
	api.expectStored(0)
}
