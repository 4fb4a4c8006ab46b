package domain

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Tests never read the clock: every decode gets this instant as "now".
var (
	cst     = time.FixedZone("CST", 8*3600)
	testNow = time.Date(2024, 5, 2, 10, 0, 0, 0, cst)
)

const (
	testCustomer = "KH202405010001"
	testEventID  = "0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7b"
)

// envJSON builds an envelope body for customer testCustomer occurring at
// testNow. extra holds raw `"key":value` members inserted before data.
func envJSON(typ, data string, extra ...string) string {
	var b strings.Builder
	b.WriteString(`{"type":` + quote(typ) + `,"customer":"` + testCustomer + `","occurred_at":"2024-05-02T10:00:00+08:00"`)
	for _, e := range extra {
		b.WriteString("," + e)
	}
	b.WriteString(`,"data":` + data + `}`)
	return b.String()
}

// envFor is envJSON for another customer code (given as raw JSON).
func envFor(customerJSON, typ, data string) string {
	return `{"type":` + quote(typ) + `,"customer":` + customerJSON + `,"data":` + data + `}`
}

// envAt is envJSON with another occurred_at (given as raw JSON).
func envAt(occurredJSON string) string {
	return `{"type":"InquiryReceived","customer":"` + testCustomer + `","occurred_at":` + occurredJSON + `,"data":{"topic":"价格"}}`
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func batchJSON(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

const (
	validRegistered = `{"name":"深圳市华强电子有限公司","kind":"enterprise","industry":"制造业-电子元件","region":"华南",` +
		`"employees":320,"annual_revenue":"58000000.00","source_channel":"展会","owner":"王磊",` +
		`"contact":{"name":"李明","title":"采购经理","phone":"13800138000","email":"li.ming@example.com"}}`
	validOrder  = `{"order_id":"SO-1","amount":1200.5,"category":"电子元件","channel":"online"}`
	validRefund = `{"order_id":"SO-1","amount":"200.50"}`
)

func ptr[T any](v T) *T { return &v }

// firstError asserts that err is a *ValidationError whose first problem has
// the given field and code.
func firstError(t *testing.T, err error, field, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %s/%s", field, code)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	if len(ve.Errors) == 0 {
		t.Fatalf("ValidationError without errors")
	}
	got := ve.First()
	if got.Field != field || got.Code != code {
		t.Fatalf("first error = %s/%s (%q); want %s/%s\nall: %v", got.Field, got.Code, got.Message, field, code, ve.Errors)
	}
	if got.Message == "" {
		t.Errorf("first error %s/%s has no message", got.Field, got.Code)
	}
}

func TestDecodeValidEvents(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Event
	}{
		{
			name: "CustomerRegistered full",
			body: envJSON("CustomerRegistered", validRegistered),
			want: &CustomerRegistered{Profile{
				Name: ptr("深圳市华强电子有限公司"), Kind: ptr(KindEnterprise), Industry: ptr("制造业-电子元件"),
				Region: ptr("华南"), Employees: ptr(int64(320)), AnnualRevenue: ptr(Money(5_800_000_000)),
				SourceChannel: ptr("展会"), Owner: ptr("王磊"),
				Contact: &Contact{Name: ptr("李明"), Title: ptr("采购经理"), Phone: ptr("13800138000"), Email: ptr("li.ming@example.com")},
			}},
		},
		{
			name: "CustomerRegistered name only, individual",
			body: envJSON("CustomerRegistered", `{"name":"张三","kind":"individual"}`),
			want: &CustomerRegistered{Profile{Name: ptr("张三"), Kind: ptr(KindIndividual)}},
		},
		{
			name: "CustomerRegistered international phone",
			body: envJSON("CustomerRegistered", `{"name":"ACME","contact":{"phone":"+12025550123","email":"ops@acme.co.uk"}}`),
			want: &CustomerRegistered{Profile{Name: ptr("ACME"), Contact: &Contact{Phone: ptr("+12025550123"), Email: ptr("ops@acme.co.uk")}}},
		},
		{
			name: "CustomerProfileUpdated subset",
			body: envJSON("CustomerProfileUpdated", `{"region":"华东","employees":0,"contact":{"title":"总监"}}`),
			want: &CustomerProfileUpdated{Profile{Region: ptr("华东"), Employees: ptr(int64(0)), Contact: &Contact{Title: ptr("总监")}}},
		},
		{
			name: "CustomerProfileUpdated annual revenue as number",
			body: envJSON("CustomerProfileUpdated", `{"annual_revenue":1000000}`),
			want: &CustomerProfileUpdated{Profile{AnnualRevenue: ptr(Money(100_000_000))}},
		},
		{
			name: "OwnerAssigned",
			body: envJSON("OwnerAssigned", `{"owner":"赵敏"}`),
			want: &OwnerAssigned{Owner: "赵敏"},
		},
		{
			name: "OrderPlaced",
			body: envJSON("OrderPlaced", validOrder),
			want: &OrderPlaced{OrderID: "SO-1", Amount: 120050, Category: "电子元件", Channel: ChannelOnline},
		},
		{
			name: "OrderPlaced minimal offline, amount 0.1 is exactly 10 fen",
			body: envJSON("OrderPlaced", `{"order_id":"SO-2","amount":0.1,"channel":"offline"}`),
			want: &OrderPlaced{OrderID: "SO-2", Amount: 10, Channel: ChannelOffline},
		},
		{
			name: "OrderPlaced amount as decimal string",
			body: envJSON("OrderPlaced", `{"order_id":"SO-3","amount":"1000000.00"}`),
			want: &OrderPlaced{OrderID: "SO-3", Amount: 100_000_000},
		},
		{
			name: "OrderRefunded",
			body: envJSON("OrderRefunded", validRefund),
			want: &OrderRefunded{OrderID: "SO-1", Amount: 20050},
		},
		{
			name: "InquiryReceived",
			body: envJSON("InquiryReceived", `{"channel":"phone","topic":"批量采购报价"}`),
			want: &InquiryReceived{Channel: "phone", Topic: "批量采购报价"},
		},
		{
			name: "InquiryReceived empty data",
			body: envJSON("InquiryReceived", `{}`),
			want: &InquiryReceived{},
		},
		{
			name: "SatisfactionRated 1",
			body: envJSON("SatisfactionRated", `{"score":1}`),
			want: &SatisfactionRated{Score: 1},
		},
		{
			name: "SatisfactionRated 5 with feedback",
			body: envJSON("SatisfactionRated", `{"score":5,"feedback":"响应很快\n非常满意"}`),
			want: &SatisfactionRated{Score: 5, Feedback: "响应很快\n非常满意"},
		},
		{
			name: "RecommendationRated 0",
			body: envJSON("RecommendationRated", `{"score":0}`),
			want: &RecommendationRated{Score: new(0)},
		},
		{
			name: "RecommendationRated 10 with feedback",
			body: envJSON("RecommendationRated", `{"score":10,"feedback":"会推荐给同行"}`),
			want: &RecommendationRated{Score: new(10), Feedback: "会推荐给同行"},
		},
		{
			name: "NeedsDeclared",
			body: envJSON("NeedsDeclared", `{"core_needs":["成本控制","技术支持"],"communication_preference":"email","price_sensitivity":"high"}`),
			want: &NeedsDeclared{CoreNeeds: []string{"成本控制", "技术支持"}, CommunicationPreference: PreferEmail, PriceSensitivity: SensitivityHigh},
		},
		{
			name: "NeedsDeclared preference only",
			body: envJSON("NeedsDeclared", `{"communication_preference":"offline","price_sensitivity":"low"}`),
			want: &NeedsDeclared{CommunicationPreference: PreferOffline, PriceSensitivity: SensitivityLow},
		},
		{
			name: "FollowUpLogged with alert",
			body: envJSON("FollowUpLogged", `{"by":"王磊","channel":"phone","summary":"回访","outcome":"续约意向","alert_id":"`+testEventID+`"}`),
			want: &FollowUpLogged{By: "王磊", Channel: "phone", Summary: "回访", Outcome: "续约意向", AlertID: ptr(uuid.MustParse(testEventID))},
		},
		{
			name: "FollowUpLogged minimal",
			body: envJSON("FollowUpLogged", `{"by":"王磊"}`),
			want: &FollowUpLogged{By: "王磊"},
		},
		{
			name: "AlertAcknowledged",
			body: envJSON("AlertAcknowledged", `{"alert_id":"`+testEventID+`","by":"王磊"}`),
			want: &AlertAcknowledged{AlertID: uuid.MustParse(testEventID), By: "王磊"},
		},
		{
			name: "AlertAssigned",
			body: envJSON("AlertAssigned", `{"alert_id":"`+testEventID+`","to":"李娜","by":"组长"}`),
			want: &AlertAssigned{AlertID: uuid.MustParse(testEventID), To: "李娜", By: "组长"},
		},
		{
			name: "AlertSnoozed for exactly 7 days",
			body: envJSON("AlertSnoozed", `{"alert_id":"`+testEventID+`","until":"2024-05-09T10:00:00+08:00","by":"王磊"}`),
			want: &AlertSnoozed{AlertID: uuid.MustParse(testEventID), Until: time.Date(2024, 5, 9, 10, 0, 0, 0, time.FixedZone("", 8*3600)), By: "王磊"},
		},
		{
			name: "CustomerErased",
			body: envJSON("CustomerErased", `{"reason":"客户要求删除个人信息"}`),
			want: &CustomerErased{Reason: "客户要求删除个人信息"},
		},
	}
	covered := map[EventType]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			covered[tt.want.EventType()] = true
			env, err := DecodeEnvelope([]byte(tt.body), testNow)
			if err != nil {
				t.Fatalf("DecodeEnvelope: %v", err)
			}
			if env.Type != tt.want.EventType() || env.Customer != testCustomer {
				t.Errorf("envelope = %s/%s", env.Type, env.Customer)
			}
			if !env.OccurredAt.Equal(testNow) {
				t.Errorf("occurred_at = %v, want %v", env.OccurredAt, testNow)
			}
			if env.EventID != uuid.Nil {
				t.Errorf("event_id = %v, want nil (generated later)", env.EventID)
			}
			if !reflect.DeepEqual(env.Data, tt.want) {
				t.Errorf("data = %#v\nwant %#v", env.Data, tt.want)
			}
			if err := env.Validate(testNow); err != nil {
				t.Errorf("Validate after decode: %v", err)
			}

			req, err := DecodeAppendRequest([]byte(tt.body), testNow)
			if err != nil {
				t.Fatalf("DecodeAppendRequest: %v", err)
			}
			if req.Batch || len(req.Events) != 1 || req.Expected != nil {
				t.Fatalf("request = %+v", req)
			}
			if !reflect.DeepEqual(req.Events[0], env) {
				t.Errorf("DecodeAppendRequest event %#v differs from DecodeEnvelope %#v", req.Events[0], env)
			}

			// The batch form decodes the same event.
			breq, err := DecodeAppendRequest([]byte(batchJSON(tt.body)), testNow)
			if err != nil {
				t.Fatalf("batch form: %v", err)
			}
			if !breq.Batch || len(breq.Events) != 1 || !reflect.DeepEqual(breq.Events[0], env) {
				t.Errorf("batch form = %+v", breq)
			}
		})
	}
	for _, typ := range EventTypes {
		if !covered[typ] {
			t.Errorf("no valid example of %s", typ)
		}
	}
}

func TestDecodeEnvelopeOptionalFields(t *testing.T) {
	body := `{"event_id":"` + strings.ToUpper(testEventID) + `","type":"OwnerAssigned","customer":"a.B-c_9",` +
		`"occurred_at":"2024-05-01T23:59:59.123456Z","source":"crm","correlation_id":"req-77","data":{"owner":"王磊"}}`
	env, err := DecodeEnvelope([]byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := Envelope{
		EventID: uuid.MustParse(testEventID), Type: TypeOwnerAssigned, Customer: "a.B-c_9",
		OccurredAt: time.Date(2024, 5, 1, 23, 59, 59, 123456000, time.UTC), OccurredOffset: "Z",
		Source: "crm", CorrelationID: "req-77", Data: &OwnerAssigned{Owner: "王磊"},
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("got %#v\nwant %#v", env, want)
	}

	// occurred_at may be omitted: zero means "time of recording".
	env, err = DecodeEnvelope([]byte(`{"type":"OwnerAssigned","customer":"K1","data":{"owner":"王磊"}}`), testNow)
	if err != nil || !env.OccurredAt.IsZero() || env.EventID != uuid.Nil {
		t.Fatalf("minimal envelope: %+v, %v", env, err)
	}
}

// rejection is a body that must be refused, and the first problem it must report.
type rejection struct {
	name  string
	body  string
	field string
	code  string
}

func envelopeRejections() []rejection {
	long := func(n int) string { return strings.Repeat("x", n) }
	ord := func(amount string) string {
		return envJSON("OrderPlaced", `{"order_id":"SO-1","amount":`+amount+`}`)
	}
	reg := func(data string) string { return envJSON("CustomerRegistered", data) }
	phone := func(p string) string {
		return reg(`{"name":"A","contact":{"phone":` + quote(p) + `}}`)
	}
	email := func(e string) string {
		return reg(`{"name":"A","contact":{"email":` + quote(e) + `}}`)
	}
	cust := func(codeJSON string) string { return envFor(codeJSON, "OwnerAssigned", `{"owner":"x"}`) }
	score := func(s string) string { return envJSON("SatisfactionRated", `{"score":`+s+`}`) }

	return []rejection{
		// Body-level problems.
		{"empty body", ``, "body", CodeInvalidJSON},
		{"truncated", `{"type":"OrderPlaced"`, "body", CodeInvalidJSON},
		{"trailing garbage", envJSON("OwnerAssigned", `{"owner":"x"}`) + ` x`, "body", CodeInvalidJSON},
		{"two values", envJSON("OwnerAssigned", `{"owner":"x"}`) + `{}`, "body", CodeInvalidJSON},
		{"array body", `[]`, "body", CodeInvalidType},
		{"string body", `"OrderPlaced"`, "body", CodeInvalidType},
		{"number body", `42`, "body", CodeInvalidType},
		{"null body", `null`, "customer", CodeRequired},
		{"empty object", `{}`, "customer", CodeRequired},

		// Type.
		{"unknown type", envJSON("OrderCancelled", `{"order_id":"SO-1"}`), "type", CodeUnknownType},
		{"type wrong case", envJSON("orderplaced", validOrder), "type", CodeUnknownType},
		{"type empty", envJSON("", validOrder), "type", CodeUnknownType},
		{"type missing", `{"customer":"K1","data":{}}`, "type", CodeRequired},
		{"type number", `{"type":1,"customer":"K1","data":{}}`, "type", CodeInvalidType},
		{"type null", `{"type":null,"customer":"K1","data":{}}`, "type", CodeRequired},

		// Data.
		{"data missing", `{"type":"OrderPlaced","customer":"K1"}`, "data", CodeRequired},
		{"data array", envJSON("OrderPlaced", `[]`), "data", CodeInvalidType},
		{"data string", envJSON("OrderPlaced", `"x"`), "data", CodeInvalidType},
		{"data null", envJSON("OrderPlaced", `null`), "data", CodeInvalidType},

		// Unknown fields at every level.
		{"unknown top-level field", envJSON("OwnerAssigned", `{"owner":"x"}`, `"colour":"red"`), "colour", CodeUnknownField},
		{"unknown top-level field version", envJSON("OwnerAssigned", `{"owner":"x"}`, `"recorded_at":"2024-05-02T10:00:00Z"`), "recorded_at", CodeUnknownField},
		{"field name wrong case", envJSON("OwnerAssigned", `{"owner":"x"}`, `"Source":"crm"`), "Source", CodeUnknownField},
		{"unknown data field", envJSON("OrderPlaced", `{"order_id":"SO-1","amount":1,"colour":"red"}`), "data.colour", CodeUnknownField},
		{"field of another type", envJSON("OrderRefunded", `{"order_id":"SO-1","amount":1,"channel":"online"}`), "data.channel", CodeUnknownField},
		{"unknown contact field", reg(`{"name":"A","contact":{"name":"李明","fax":"010"}}`), "data.contact.fax", CodeUnknownField},
		{"data field name wrong case", envJSON("OwnerAssigned", `{"Owner":"x"}`), "data.Owner", CodeUnknownField},

		// Mistyped fields.
		{"customer number", `{"type":"OwnerAssigned","customer":123,"data":{"owner":"x"}}`, "customer", CodeInvalidType},
		{"occurred_at number", envAt(`1714615200`), "occurred_at", CodeInvalidType},
		{"event_id number", envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":1`), "event_id", CodeInvalidType},
		{"source number", envJSON("OwnerAssigned", `{"owner":"x"}`, `"source":1`), "source", CodeInvalidType},
		{"amount bool", ord(`true`), "data.amount", CodeInvalidType},
		{"amount null", ord(`null`), "data.amount", CodeInvalidType},
		{"amount object", ord(`{"yuan":1}`), "data.amount", CodeInvalidType},
		{"amount array", ord(`[1]`), "data.amount", CodeInvalidType},
		{"amount text", ord(`"abc"`), "data.amount", CodeInvalidType},
		{"amount empty string", ord(`""`), "data.amount", CodeInvalidType},
		{"amount padded string", ord(`" 12"`), "data.amount", CodeInvalidType},
		{"amount with currency", ord(`"¥12"`), "data.amount", CodeInvalidType},
		{"amount with separators", ord(`"1,200.00"`), "data.amount", CodeInvalidType},
		{"amount dangling exponent", ord(`"1e"`), "data.amount", CodeInvalidType},
		{"amount escaped string", ord(`"1\u0030"`), "data.amount", CodeInvalidType},
		{"order_id number", envJSON("OrderPlaced", `{"order_id":7,"amount":1}`), "data.order_id", CodeInvalidType},
		{"channel number", envJSON("OrderPlaced", `{"order_id":"SO-1","amount":1,"channel":1}`), "data.channel", CodeInvalidType},
		{"score string", score(`"4"`), "data.score", CodeInvalidType},
		{"score fraction", score(`4.5`), "data.score", CodeInvalidType},
		{"score 4.0", score(`4.0`), "data.score", CodeInvalidType},
		{"score exponent", score(`4e0`), "data.score", CodeInvalidType},
		{"score bool", score(`true`), "data.score", CodeInvalidType},
		{"employees string", reg(`{"name":"A","employees":"12"}`), "data.employees", CodeInvalidType},
		{"employees fraction", reg(`{"name":"A","employees":1.5}`), "data.employees", CodeInvalidType},
		{"kind number", reg(`{"name":"A","kind":1}`), "data.kind", CodeInvalidType},
		{"name number", reg(`{"name":1}`), "data.name", CodeInvalidType},
		{"contact string", reg(`{"name":"A","contact":"李明"}`), "data.contact", CodeInvalidType},
		{"phone number", reg(`{"name":"A","contact":{"phone":13800138000}}`), "data.contact.phone", CodeInvalidType},
		{"annual_revenue bool", reg(`{"name":"A","annual_revenue":true}`), "data.annual_revenue", CodeInvalidType},
		{"core_needs string", envJSON("NeedsDeclared", `{"core_needs":"成本控制"}`), "data.core_needs", CodeInvalidType},
		{"core_needs element number", envJSON("NeedsDeclared", `{"core_needs":["成本控制",2]}`), "data.core_needs[1]", CodeInvalidType},
		{"communication_preference number", envJSON("NeedsDeclared", `{"communication_preference":1}`), "data.communication_preference", CodeInvalidType},
		{"alert_id not a uuid", envJSON("FollowUpLogged", `{"by":"x","alert_id":"zz"}`), "data.alert_id", CodeInvalidType},
		{"alert_id number", envJSON("FollowUpLogged", `{"by":"x","alert_id":5}`), "data.alert_id", CodeInvalidType},
		{"owner null", envJSON("OwnerAssigned", `{"owner":null}`), "data.owner", CodeRequired},

		// Wrong enums.
		{"kind", reg(`{"name":"A","kind":"company"}`), "data.kind", CodeInvalidEnum},
		{"kind wrong case", reg(`{"name":"A","kind":"Enterprise"}`), "data.kind", CodeInvalidEnum},
		{"kind empty", reg(`{"name":"A","kind":""}`), "data.kind", CodeInvalidEnum},
		{"order channel", envJSON("OrderPlaced", `{"order_id":"SO-1","amount":1,"channel":"phone"}`), "data.channel", CodeInvalidEnum},
		{"order channel wrong case", envJSON("OrderPlaced", `{"order_id":"SO-1","amount":1,"channel":"Online"}`), "data.channel", CodeInvalidEnum},
		{"communication_preference", envJSON("NeedsDeclared", `{"communication_preference":"fax"}`), "data.communication_preference", CodeInvalidEnum},
		{"price_sensitivity", envJSON("NeedsDeclared", `{"core_needs":["功能"],"price_sensitivity":"extreme"}`), "data.price_sensitivity", CodeInvalidEnum},
		{"price_sensitivity wrong case", envJSON("NeedsDeclared", `{"price_sensitivity":"LOW"}`), "data.price_sensitivity", CodeInvalidEnum},

		// Amounts: zero, negative, precision, range.
		{"amount zero", ord(`0`), "data.amount", CodeNotPositive},
		{"amount zero decimals", ord(`0.00`), "data.amount", CodeNotPositive},
		{"amount zero string", ord(`"0"`), "data.amount", CodeNotPositive},
		{"amount minus zero", ord(`-0`), "data.amount", CodeNotPositive},
		{"amount negative", ord(`-1`), "data.amount", CodeNotPositive},
		{"amount negative fen", ord(`-0.01`), "data.amount", CodeNotPositive},
		{"amount negative string", ord(`"-1.00"`), "data.amount", CodeNotPositive},
		{"amount missing", envJSON("OrderPlaced", `{"order_id":"SO-1"}`), "data.amount", CodeNotPositive},
		{"refund zero", envJSON("OrderRefunded", `{"order_id":"SO-1","amount":0}`), "data.amount", CodeNotPositive},
		{"refund negative", envJSON("OrderRefunded", `{"order_id":"SO-1","amount":-5}`), "data.amount", CodeNotPositive},
		{"annual_revenue negative", reg(`{"name":"A","annual_revenue":-1}`), "data.annual_revenue", CodeOutOfRange},
		{"amount 3 decimals", ord(`0.001`), "data.amount", CodePrecision},
		{"amount 3 decimals string", ord(`"1.234"`), "data.amount", CodePrecision},
		{"amount in exponent form", ord(`1e3`), "data.amount", CodeInvalidType},
		{"amount string in exponent form", ord(`"125E-2"`), "data.amount", CodeInvalidType},
		{"amount with a plus sign", ord(`"+1.00"`), "data.amount", CodeInvalidType},
		{"amount with a leading zero", ord(`"01.00"`), "data.amount", CodeInvalidType},
		{"amount trailing zeros beyond 2 decimals", ord(`4.3500`), "data.amount", CodePrecision},
		{"amount many decimals", ord(`0.30000000000000004`), "data.amount", CodePrecision},
		{"refund 3 decimals", envJSON("OrderRefunded", `{"order_id":"SO-1","amount":1.005}`), "data.amount", CodePrecision},
		{"annual_revenue 3 decimals", reg(`{"name":"A","annual_revenue":"0.001"}`), "data.annual_revenue", CodePrecision},
		{"amount 400 digits", ord(strings.Repeat("9", 400)), "data.amount", CodeOutOfRange},
		{"amount 400 digits string", ord(`"` + strings.Repeat("9", 400) + `"`), "data.amount", CodeOutOfRange},
		{"amount 400 decimals", ord(`0.` + strings.Repeat("1", 400)), "data.amount", CodeOutOfRange},
		{"amount huge exponent", ord(`1e400`), "data.amount", CodeInvalidType},
		{"amount above max", ord(`10000000000000.01`), "data.amount", CodeOutOfRange},

		// Customer codes.
		{"customer missing", `{"type":"OwnerAssigned","data":{"owner":"x"}}`, "customer", CodeRequired},
		{"customer null", cust(`null`), "customer", CodeRequired},
		{"customer empty", cust(`""`), "customer", CodeInvalidFormat},
		{"customer 65 chars", cust(quote(strings.Repeat("K", 65))), "customer", CodeInvalidFormat},
		{"customer space", cust(`"KH 001"`), "customer", CodeInvalidFormat},
		{"customer leading space", cust(`" KH001"`), "customer", CodeInvalidFormat},
		{"customer slash", cust(`"KH/001"`), "customer", CodeInvalidFormat},
		{"customer backslash", cust(`"KH\\001"`), "customer", CodeInvalidFormat},
		{"customer colon", cust(`"KH:001"`), "customer", CodeInvalidFormat},
		{"customer NATS wildcard", cust(`"KH>"`), "customer", CodeInvalidFormat},
		{"customer star", cust(`"KH*"`), "customer", CodeInvalidFormat},
		{"customer chinese", cust(`"客户001"`), "customer", CodeInvalidFormat},
		{"customer accented", cust(`"KHé001"`), "customer", CodeInvalidFormat},
		{"customer fullwidth digit", cust(`"KH０01"`), "customer", CodeInvalidFormat},
		{"customer newline", cust(`"KH\n001"`), "customer", CodeInvalidFormat},
		{"customer NUL", cust(`"KH\u0000"`), "customer", CodeInvalidFormat},
		{"customer dot", cust(`"."`), "customer", CodeInvalidFormat},
		{"customer dot dot", cust(`".."`), "customer", CodeInvalidFormat},

		// occurred_at.
		{"occurred_at 5m1s ahead", envAt(`"2024-05-02T10:05:01+08:00"`), "occurred_at", CodeFutureTime},
		{"occurred_at 5m+1µs ahead", envAt(`"2024-05-02T10:05:00.000001+08:00"`), "occurred_at", CodeFutureTime},
		{"occurred_at offset +24:00", envAt(`"2024-05-02T10:00:00+24:00"`), "occurred_at", CodeInvalidValue},
		{"occurred_at offset minutes 60", envAt(`"2024-05-02T10:00:00+08:60"`), "occurred_at", CodeInvalidValue},
		{"occurred_at nanoseconds", envAt(`"2024-05-02T10:00:00.000000001+08:00"`), "occurred_at", CodeInvalidValue},
		{"occurred_at 5m1s ahead in UTC", envAt(`"2024-05-02T02:05:01Z"`), "occurred_at", CodeFutureTime},
		{"occurred_at next year", envAt(`"2025-05-02T10:00:00+08:00"`), "occurred_at", CodeFutureTime},
		{"occurred_at no zone", envAt(`"2024-05-02T10:00:00"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at space separator", envAt(`"2024-05-02 10:00:00+08:00"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at date only", envAt(`"2024-05-02"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at month 13", envAt(`"2024-13-02T10:00:00Z"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at Feb 30", envAt(`"2024-02-30T10:00:00Z"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at hour 24", envAt(`"2024-05-02T24:00:00Z"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at words", envAt(`"yesterday"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at unix text", envAt(`"1714615200"`), "occurred_at", CodeInvalidFormat},
		{"occurred_at empty", envAt(`""`), "occurred_at", CodeInvalidFormat},
		{"occurred_at before 1900", envAt(`"1899-12-31T23:59:59Z"`), "occurred_at", CodeOutOfRange},
		{"occurred_at zero instant", envAt(`"0001-01-01T00:00:00Z"`), "occurred_at", CodeOutOfRange},

		// event_id, source, correlation_id.
		{"event_id not a uuid", envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":"abc"`), "event_id", CodeInvalidFormat},
		{"event_id without dashes", envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":"`+strings.ReplaceAll(testEventID, "-", "")+`"`), "event_id", CodeInvalidFormat},
		{"event_id braces", envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":"{`+testEventID+`}"`), "event_id", CodeInvalidFormat},
		{"event_id nil uuid", envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":"00000000-0000-0000-0000-000000000000"`), "event_id", CodeInvalidFormat},
		{"source empty", envJSON("OwnerAssigned", `{"owner":"x"}`, `"source":""`), "source", CodeEmpty},
		{"source too long", envJSON("OwnerAssigned", `{"owner":"x"}`, `"source":"`+long(201)+`"`), "source", CodeTooLong},
		{"correlation_id empty", envJSON("OwnerAssigned", `{"owner":"x"}`, `"correlation_id":""`), "correlation_id", CodeEmpty},

		// Phone and email.
		{"phone 10 digits", phone("1380013800"), "data.contact.phone", CodeInvalidFormat},
		{"phone 12 digits", phone("138001380001"), "data.contact.phone", CodeInvalidFormat},
		{"phone not starting with 1", phone("23800138000"), "data.contact.phone", CodeInvalidFormat},
		{"phone with dashes", phone("138-0013-8000"), "data.contact.phone", CodeInvalidFormat},
		{"phone with spaces", phone("138 0013 8000"), "data.contact.phone", CodeInvalidFormat},
		{"phone landline without a dash", phone("01062345678"), "data.contact.phone", CodeInvalidFormat},
		{"phone letters", phone("1380013800a"), "data.contact.phone", CodeInvalidFormat},
		{"phone fullwidth", phone("１３８００１３８０００"), "data.contact.phone", CodeInvalidFormat},
		{"phone empty", phone(""), "data.contact.phone", CodeInvalidFormat},
		{"phone plus only", phone("+"), "data.contact.phone", CodeInvalidFormat},
		{"phone plus 7 digits", phone("+1234567"), "data.contact.phone", CodeInvalidFormat},
		{"phone plus 16 digits", phone("+1234567890123456"), "data.contact.phone", CodeInvalidFormat},
		{"phone plus leading zero", phone("+0123456789"), "data.contact.phone", CodeInvalidFormat},
		{"phone plus with space", phone("+86 13800138000"), "data.contact.phone", CodeInvalidFormat},
		{"phone double plus", phone("++8613800138000"), "data.contact.phone", CodeInvalidFormat},
		{"email no at", email("li.example.com"), "data.contact.email", CodeInvalidFormat},
		{"email no domain dot", email("li@example"), "data.contact.email", CodeInvalidFormat},
		{"email domain trailing dot", email("li@example.com."), "data.contact.email", CodeInvalidFormat},
		{"email domain leading dot", email("li@.example.com"), "data.contact.email", CodeInvalidFormat},
		{"email no local part", email("@example.com"), "data.contact.email", CodeInvalidFormat},
		{"email display name", email("Li Ming <li@example.com>"), "data.contact.email", CodeInvalidFormat},
		{"email angle brackets", email("<li@example.com>"), "data.contact.email", CodeInvalidFormat},
		{"email space", email("li ming@example.com"), "data.contact.email", CodeInvalidFormat},
		{"email two ats", email("li@@example.com"), "data.contact.email", CodeInvalidFormat},
		{"email empty", email(""), "data.contact.email", CodeInvalidFormat},
		{"email too long", email(long(250) + "@example.com"), "data.contact.email", CodeInvalidFormat},
		{"email phone ok, email bad", reg(`{"name":"A","contact":{"phone":"13800138000","email":"x"}}`), "data.contact.email", CodeInvalidFormat},

		// Satisfaction score.
		{"score 0", score(`0`), "data.score", CodeOutOfRange},
		{"score 6", score(`6`), "data.score", CodeOutOfRange},
		{"score -1", score(`-1`), "data.score", CodeOutOfRange},
		{"score huge", score(`99999999999`), "data.score", CodeOutOfRange},
		{"score missing", envJSON("SatisfactionRated", `{"feedback":"好"}`), "data.score", CodeOutOfRange},
		{"recommendation missing", envJSON("RecommendationRated", `{"feedback":"好"}`), "data.score", CodeRequired},
		{"recommendation above 10", envJSON("RecommendationRated", `{"score":11}`), "data.score", CodeOutOfRange},
		{"recommendation below 0", envJSON("RecommendationRated", `{"score":-1}`), "data.score", CodeOutOfRange},

		// Required and free text.
		{"registered without name", reg(`{"kind":"enterprise"}`), "data.name", CodeRequired},
		{"registered name null", reg(`{"name":null}`), "data.name", CodeRequired},
		{"registered blank name", reg(`{"name":"  "}`), "data.name", CodeRequired},
		{"registered name too long", reg(`{"name":"` + long(201) + `"}`), "data.name", CodeTooLong},
		{"registered name 201 runes", reg(`{"name":"` + strings.Repeat("华", 201) + `"}`), "data.name", CodeTooLong},
		{"registered name control char", reg(`{"name":"A\u0001B"}`), "data.name", CodeInvalidValue},
		{"registered name DEL", reg(`{"name":"A\u007fB"}`), "data.name", CodeInvalidValue},
		{"registered blank industry", reg(`{"name":"A","industry":""}`), "data.industry", CodeRequired},
		{"registered employees negative", reg(`{"name":"A","employees":-1}`), "data.employees", CodeOutOfRange},
		{"registered employees huge", reg(`{"name":"A","employees":100000001}`), "data.employees", CodeOutOfRange},
		{"registered blank contact name", reg(`{"name":"A","contact":{"name":" "}}`), "data.contact.name", CodeRequired},
		{"profile update empty", envJSON("CustomerProfileUpdated", `{}`), "data", CodeEmpty},
		{"profile update empty contact", envJSON("CustomerProfileUpdated", `{"contact":{}}`), "data.contact", CodeEmpty},
		{"profile update bad phone", envJSON("CustomerProfileUpdated", `{"contact":{"phone":"12345"}}`), "data.contact.phone", CodeInvalidFormat},
		{"owner missing", envJSON("OwnerAssigned", `{}`), "data.owner", CodeRequired},
		{"owner blank", envJSON("OwnerAssigned", `{"owner":"\t"}`), "data.owner", CodeRequired},
		{"order_id missing", envJSON("OrderPlaced", `{"amount":1}`), "data.order_id", CodeRequired},
		{"order_id 65 chars", envJSON("OrderPlaced", `{"order_id":"`+long(65)+`","amount":1}`), "data.order_id", CodeTooLong},
		{"refund order_id missing", envJSON("OrderRefunded", `{"amount":1}`), "data.order_id", CodeRequired},
		{"feedback too long", envJSON("SatisfactionRated", `{"score":3,"feedback":"`+long(4001)+`"}`), "data.feedback", CodeTooLong},
		{"needs empty", envJSON("NeedsDeclared", `{}`), "data", CodeEmpty},
		{"needs empty list", envJSON("NeedsDeclared", `{"core_needs":[]}`), "data", CodeEmpty},
		{"needs blank entry", envJSON("NeedsDeclared", `{"core_needs":["功能","  "]}`), "data.core_needs[1]", CodeRequired},
		{"needs null entry", envJSON("NeedsDeclared", `{"core_needs":["功能","售后",null]}`), "data.core_needs[2]", CodeRequired},
		{"needs too many", envJSON("NeedsDeclared", `{"core_needs":[`+strings.TrimSuffix(strings.Repeat(`"a",`, 33), ",")+`]}`), "data.core_needs", CodeTooMany},
		{"follow-up without by", envJSON("FollowUpLogged", `{"summary":"回访"}`), "data.by", CodeRequired},
		{"follow-up nil alert", envJSON("FollowUpLogged", `{"by":"x","alert_id":"00000000-0000-0000-0000-000000000000"}`), "data.alert_id", CodeInvalidValue},
		{"ack without alert", envJSON("AlertAcknowledged", `{"by":"x"}`), "data.alert_id", CodeRequired},
		{"ack without by", envJSON("AlertAcknowledged", `{"alert_id":"`+testEventID+`"}`), "data.by", CodeRequired},
		{"ack with an unknown field", envJSON("AlertAcknowledged", `{"alert_id":"`+testEventID+`","by":"x","note":"y"}`), "data.note", CodeUnknownField},
		{"assign without to", envJSON("AlertAssigned", `{"alert_id":"`+testEventID+`","by":"x"}`), "data.to", CodeRequired},
		{"snooze without until", envJSON("AlertSnoozed", `{"alert_id":"`+testEventID+`","by":"x"}`), "data.until", CodeRequired},
		{"snooze until not a time", envJSON("AlertSnoozed", `{"alert_id":"`+testEventID+`","until":"tomorrow","by":"x"}`), "data.until", CodeInvalidType},
		{"snooze into the past", envJSON("AlertSnoozed", `{"alert_id":"`+testEventID+`","until":"2024-05-02T09:59:59+08:00","by":"x"}`), "data.until", CodeOutOfRange},
		{"snooze over 7 days", envJSON("AlertSnoozed", `{"alert_id":"`+testEventID+`","until":"2024-05-09T10:00:01+08:00","by":"x"}`), "data.until", CodeOutOfRange},
		{"erased without reason", envJSON("CustomerErased", `{}`), "data.reason", CodeRequired},

		// Duplicate keys.
		{"duplicate top-level key", `{"type":"OwnerAssigned","type":"OrderPlaced","customer":"K1","data":{"owner":"x"}}`, "type", CodeDuplicateKey},
		{"duplicate customer", `{"type":"OwnerAssigned","customer":"K1","customer":"K2","data":{"owner":"x"}}`, "customer", CodeDuplicateKey},
		{"duplicate data key", ord(`1,"amount":2`), "data.amount", CodeDuplicateKey},
		{"duplicate contact key", reg(`{"name":"A","contact":{"phone":"13800138000","phone":"13900139000"}}`), "data.contact.phone", CodeDuplicateKey},
		{"duplicate escaped key", envJSON("OwnerAssigned", `{"owner":"x","\u006fwner":"y"}`), "data.owner", CodeDuplicateKey},

		// Invalid UTF-8.
		{"invalid UTF-8 in customer", "{\"type\":\"OwnerAssigned\",\"customer\":\"K\xff\",\"data\":{\"owner\":\"x\"}}", "customer", CodeInvalidJSON},
		{"invalid UTF-8 in data", envJSON("OwnerAssigned", "{\"owner\":\"\xc3\x28\"}"), "data.owner", CodeInvalidJSON},
		{"invalid UTF-8 in contact", reg("{\"name\":\"A\",\"contact\":{\"name\":\"\xed\xa0\x80\"}}"), "data.contact.name", CodeInvalidJSON},
		{"lone surrogate escape", envJSON("OwnerAssigned", `{"owner":"\ud800"}`), "data.owner", CodeInvalidJSON},
	}
}

func TestDecodeRejections(t *testing.T) {
	for _, tt := range envelopeRejections() {
		t.Run(tt.name, func(t *testing.T) {
			env, err := DecodeAppendRequest([]byte(tt.body), testNow)
			if err == nil {
				t.Fatalf("DecodeAppendRequest accepted %s: %+v", tt.body, env)
			}
			firstError(t, err, tt.field, tt.code)

			_, err = DecodeEnvelope([]byte(tt.body), testNow)
			firstError(t, err, tt.field, tt.code)

			// Inside a batch, the same problem is reported under events[1].
			if tt.field == "body" {
				return
			}
			ok := envJSON("OwnerAssigned", `{"owner":"x"}`)
			_, err = DecodeAppendRequest([]byte(batchJSON(ok, tt.body, ok)), testNow)
			firstError(t, err, joinField("events[1]", tt.field), tt.code)
		})
	}
}

func TestDecodeFutureBoundary(t *testing.T) {
	for _, at := range []string{
		`"2024-05-02T10:05:00+08:00"`,        // exactly 5 minutes ahead
		`"2024-05-02T02:05:00Z"`,             // the same instant in UTC
		`"2024-05-02T10:04:59.999999+08:00"`, // just inside
		`"2024-05-02T10:00:00+08:00"`,        // now
		`"1900-01-01T00:00:00Z"`,             // far past
		`"2024-05-02T10:00:00.5+08:00"`,      // fractional seconds
	} {
		env, err := DecodeEnvelope([]byte(envAt(at)), testNow)
		if err != nil {
			t.Errorf("occurred_at %s refused: %v", at, err)
			continue
		}
		if err := env.Validate(testNow); err != nil {
			t.Errorf("Validate(%s): %v", at, err)
		}
	}
	// The rule depends only on the now passed in.
	env, err := DecodeEnvelope([]byte(envAt(`"2024-05-02T10:05:01+08:00"`)), testNow.Add(time.Second))
	if err != nil {
		t.Errorf("5 minutes after a later now: %v", err)
	}
	firstError(t, env.Validate(testNow), "occurred_at", CodeFutureTime)
}

func TestEnvelopeValidate(t *testing.T) {
	valid := func() Envelope {
		return Envelope{Type: TypeOwnerAssigned, Customer: testCustomer, OccurredAt: testNow, Data: &OwnerAssigned{Owner: "x"}}
	}
	tests := []struct {
		name   string
		modify func(*Envelope)
		field  string
		code   string
	}{
		{"exactly 5 minutes ahead", func(e *Envelope) { e.OccurredAt = testNow.Add(MaxFutureSkew) }, "", ""},
		{"5 minutes and 1ns ahead", func(e *Envelope) { e.OccurredAt = testNow.Add(MaxFutureSkew + time.Nanosecond) }, "occurred_at", CodeFutureTime},
		{"zero occurred_at", func(e *Envelope) { e.OccurredAt = time.Time{} }, "", ""},
		{"before 1900", func(e *Envelope) { e.OccurredAt = time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC) }, "occurred_at", CodeOutOfRange},
		{"64-char code", func(e *Envelope) { e.Customer = CustomerCode(strings.Repeat("a", 64)) }, "", ""},
		{"65-char code", func(e *Envelope) { e.Customer = CustomerCode(strings.Repeat("a", 65)) }, "customer", CodeInvalidFormat},
		{"type does not match data", func(e *Envelope) { e.Type = TypeOrderPlaced }, "type", CodeInvalidValue},
		{"no data, known type", func(e *Envelope) { e.Data = nil }, "data", CodeRequired},
		{"no data, unknown type", func(e *Envelope) { e.Data, e.Type = nil, "Nope" }, "type", CodeUnknownType},
		{"invalid UTF-8 source", func(e *Envelope) { e.Source = "crm\xff" }, "source", CodeInvalidValue},
		{"control char in correlation id", func(e *Envelope) { e.CorrelationID = "a\x00" }, "correlation_id", CodeInvalidValue},
		{"invalid data", func(e *Envelope) { e.Data = &OwnerAssigned{} }, "data.owner", CodeRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.modify(&e)
			err := e.Validate(testNow)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			firstError(t, err, tt.field, tt.code)
		})
	}
}

func TestValidationErrorReportsEveryProblem(t *testing.T) {
	body := `{"type":"OrderPlaced","customer":"bad code","occurred_at":"2030-01-01T00:00:00Z",` +
		`"data":{"order_id":"","amount":-1,"channel":"fax"}}`
	_, err := DecodeEnvelope([]byte(body), testNow)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, fe := range ve.Errors {
		got = append(got, fe.Field+"/"+fe.Code)
	}
	want := []string{"customer/invalid_format", "occurred_at/future_time", "data.order_id/required", "data.amount/not_positive", "data.channel/invalid_enum"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors = %v\nwant %v", got, want)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid input: customer: ") || !strings.Contains(msg, "; data.amount: must be greater than 0") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestValidationErrorHelpers(t *testing.T) {
	empty := &ValidationError{}
	if fe := empty.First(); fe.Code != CodeInvalidValue || fe.Message == "" {
		t.Errorf("First() of empty = %+v", fe)
	}
	ve := &ValidationError{Errors: []FieldError{{Field: "data.amount"}, {Field: "[2]"}, {Field: ""}}}
	p := ve.WithPrefix("events[3]")
	var got []string
	for _, fe := range p.Errors {
		got = append(got, fe.Field)
	}
	if want := []string{"events[3].data.amount", "events[3][2]", "events[3]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WithPrefix = %v, want %v", got, want)
	}
	if ve.Errors[0].Field != "data.amount" {
		t.Errorf("WithPrefix modified the original")
	}
	if same := ve.WithPrefix(""); same.Errors[0].Field != "data.amount" {
		t.Errorf("WithPrefix(\"\") = %v", same.Errors)
	}
}

func TestPointerToField(t *testing.T) {
	tests := map[string]string{
		"":                    "",
		"/data":               "data",
		"/data/amount":        "data.amount",
		"/data/core_needs/1":  "data.core_needs[1]",
		"/events/2/data/name": "events[2].data.name",
		"/data/contact/phone": "data.contact.phone",
		"/a~1b/c~0d":          "a/b.c~d",
	}
	for in, want := range tests {
		if got := pointerToField(in); got != want {
			t.Errorf("pointerToField(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidCustomerCode(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"KH202405010001", true},
		{"a", true},
		{"A-b_c.9", true},
		{"...", true},
		{"-", true},
		{strings.Repeat("z", 64), true},
		{strings.Repeat("z", 65), false},
		{"", false},
		{".", false},
		{"..", false},
		{"KH 1", false},
		{"KH/1", false},
		{"KH\\1", false},
		{"KH?1", false},
		{"KH#1", false},
		{"KH%201", false},
		{"KH+1", false},
		{"KH>", false},
		{"KH*", false},
		{"客户", false},
		{"Kä", false},
		{"KH\x00", false},
		{"KH\xff", false},
	}
	for _, tt := range tests {
		if got := ValidCustomerCode(tt.code); got != tt.want {
			t.Errorf("ValidCustomerCode(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestCustomerStreamID(t *testing.T) {
	// The namespace must never change: stored events are keyed by these ids.
	golden := map[CustomerCode]string{
		"KH202405010001": "57d630bb-12c0-5d32-ba33-c53aadde50a5",
		"kh202405010001": "3b127d40-b2d4-5ac3-8456-d43e8bfc3fdb",
	}
	for code, want := range golden {
		id := code.StreamID()
		if id.String() != want {
			t.Errorf("StreamID(%s) = %s, want %s", code, id, want)
		}
		if id.Version() != 5 || id.Variant() != uuid.RFC4122 {
			t.Errorf("StreamID(%s) is version %d variant %v; want UUIDv5", code, id.Version(), id.Variant())
		}
		if again := code.StreamID(); again != id {
			t.Errorf("StreamID is not deterministic")
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	body := batchJSON(
		envJSON("CustomerRegistered", `{"name":"A"}`),
		envFor(`"K2"`, "OrderPlaced", `{"order_id":"SO-1","amount":0.1}`),
		envJSON("OrderPlaced", validOrder),
		envJSON("OrderRefunded", validRefund),
	)
	req, err := DecodeAppendRequest([]byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !req.Batch || len(req.Events) != 4 || req.Expected != nil {
		t.Fatalf("request = %+v", req)
	}
	wantTypes := []EventType{TypeCustomerRegistered, TypeOrderPlaced, TypeOrderPlaced, TypeOrderRefunded}
	wantCustomers := []CustomerCode{testCustomer, "K2", testCustomer, testCustomer}
	for i, e := range req.Events {
		if e.Type != wantTypes[i] || e.Customer != wantCustomers[i] {
			t.Errorf("event %d = %s/%s, want %s/%s", i, e.Type, e.Customer, wantTypes[i], wantCustomers[i])
		}
	}
	if a := req.Events[1].Data.(*OrderPlaced).Amount; a != 10 {
		t.Errorf("0.1 decoded as %d fen", a)
	}
}

func TestDecodeBatchSize(t *testing.T) {
	ev := envJSON("InquiryReceived", `{"topic":"报价"}`)
	many := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = ev
		}
		return batchJSON(evs...)
	}
	req, err := DecodeAppendRequest([]byte(many(MaxBatchEvents)), testNow)
	if err != nil || len(req.Events) != MaxBatchEvents {
		t.Fatalf("1000 events: %d, %v", len(req.Events), err)
	}
	_, err = DecodeAppendRequest([]byte(many(MaxBatchEvents+1)), testNow)
	firstError(t, err, "events", CodeTooMany)
	_, err = DecodeAppendRequest([]byte(many(1)), testNow)
	if err != nil {
		t.Fatalf("1 event: %v", err)
	}
}

func TestDecodeBatchRejections(t *testing.T) {
	ok := envJSON("OwnerAssigned", `{"owner":"x"}`)
	negative := envJSON("OrderPlaced", `{"order_id":"SO-1","amount":-1}`)
	tests := []rejection{
		{"empty", `{"events":[]}`, "events", CodeEmpty},
		{"null", `{"events":null}`, "events", CodeEmpty},
		{"events object", `{"events":{}}`, "events", CodeInvalidType},
		{"events string", `{"events":"x"}`, "events", CodeInvalidType},
		{"event not an object", `{"events":[1]}`, "events[0]", CodeInvalidType},
		{"event null", batchJSON(ok, `null`), "events[1].customer", CodeRequired},
		{"field path of the third event", batchJSON(ok, ok, negative), "events[2].data.amount", CodeNotPositive},
		{"unknown type in batch", batchJSON(ok, envJSON("Nope", `{}`)), "events[1].type", CodeUnknownType},
		{"unknown field beside events", `{"events":[` + ok + `],"customer":"K1"}`, "customer", CodeUnknownField},
		{"unknown field in event", batchJSON(ok, envJSON("OwnerAssigned", `{"owner":"x"}`, `"colour":"red"`)), "events[1].colour", CodeUnknownField},
		{"unknown field in event data", batchJSON(envJSON("OwnerAssigned", `{"owner":"x","y":1}`)), "events[0].data.y", CodeUnknownField},
		{"unknown contact field in event", batchJSON(ok, ok, ok, envJSON("CustomerRegistered", `{"name":"A","contact":{"x":1}}`)), "events[3].data.contact.x", CodeUnknownField},
		{"expected_version inside an event", batchJSON(envJSON("OwnerAssigned", `{"owner":"x"}`, `"expected_version":1`)), "events[0].expected_version", CodeUnknownField},
		{"core_needs path", batchJSON(ok, envJSON("NeedsDeclared", `{"core_needs":["a",""]}`)), "events[1].data.core_needs[1]", CodeRequired},
		{"phone path", batchJSON(ok, ok, envJSON("CustomerRegistered", `{"name":"A","contact":{"phone":"1"}}`)), "events[2].data.contact.phone", CodeInvalidFormat},
		{"duplicate events key", `{"events":[` + ok + `],"events":[` + ok + `]}`, "events", CodeDuplicateKey},
		{"duplicate key in event data", batchJSON(ok, ok, envJSON("OrderPlaced", `{"order_id":"a","amount":1,"amount":2}`)), "events[2].data.amount", CodeDuplicateKey},
		{"invalid UTF-8 in event", batchJSON(ok, envJSON("OwnerAssigned", "{\"owner\":\"\xff\"}")), "events[1].data.owner", CodeInvalidJSON},
		{"truncated", `{"events":[` + ok, "events", CodeInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeAppendRequest([]byte(tt.body), testNow)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			firstError(t, err, tt.field, tt.code)
			if len(req.Events) != 0 {
				t.Errorf("a refused batch returned events: %+v", req.Events)
			}
		})
	}

	// Every bad event is reported, not only the first.
	_, err := DecodeAppendRequest([]byte(batchJSON(ok, negative, ok, `{}`, envJSON("X", `{}`))), testNow)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, fe := range ve.Errors {
		got = append(got, fe.Field+"/"+fe.Code)
	}
	want := []string{"events[1].data.amount/not_positive", "events[3].customer/required", "events[3].type/required", "events[4].type/unknown_event_type"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %v\nwant %v", got, want)
	}

	// The single-envelope decoder refuses the batch form.
	_, err = DecodeEnvelope([]byte(batchJSON(ok)), testNow)
	firstError(t, err, "events", CodeUnknownField)
}

func TestDecodeExpectedVersion(t *testing.T) {
	one := envJSON("OwnerAssigned", `{"owner":"x"}`)
	single := func(ev string) string {
		return strings.TrimSuffix(one, "}") + `,"expected_version":` + ev + `}`
	}
	two := `{"events":[` + one + `,` + envFor(`"K2"`, "OwnerAssigned", `{"owner":"y"}`) + `]`
	batch := func(ev string) string { return two + `,"expected_version":` + ev + `}` }
	tests := []struct {
		name string
		body string
		want map[CustomerCode]int64
	}{
		{"absent", one, nil},
		{"single number", single(`3`), map[CustomerCode]int64{testCustomer: 3}},
		{"single zero", single(`0`), map[CustomerCode]int64{testCustomer: 0}},
		{"single object", single(`{"` + testCustomer + `":7}`), map[CustomerCode]int64{testCustomer: 7}},
		{"batch number applies to every customer", batch(`5`), map[CustomerCode]int64{testCustomer: 5, "K2": 5}},
		{"batch object", batch(`{"K2":1,"` + testCustomer + `":0}`), map[CustomerCode]int64{testCustomer: 0, "K2": 1}},
		{"batch object naming one customer", batch(`{"K2":9}`), map[CustomerCode]int64{"K2": 9}},
		{"batch empty object", batch(`{}`), map[CustomerCode]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeAppendRequest([]byte(tt.body), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req.Expected, tt.want) {
				t.Fatalf("Expected = %v, want %v", req.Expected, tt.want)
			}
		})
	}

	bad := []rejection{
		{"negative number", single(`-1`), "expected_version", CodeInvalidValue},
		{"fraction", single(`1.5`), "expected_version", CodeInvalidValue},
		{"too large", single(`1e30`), "expected_version", CodeInvalidValue},
		{"string", single(`"3"`), "expected_version", CodeInvalidValue},
		{"null", single(`null`), "expected_version", CodeInvalidValue},
		{"bool", single(`true`), "expected_version", CodeInvalidValue},
		{"array", single(`[1]`), "expected_version", CodeInvalidValue},
		{"object naming another customer", single(`{"K9":1}`), "expected_version", CodeInvalidValue},
		{"batch object naming a customer not in the batch", batch(`{"K2":1,"K3":0}`), "expected_version", CodeInvalidValue},
		{"batch negative number", batch(`-2`), "expected_version", CodeInvalidValue},
		{"object negative", batch(`{"K2":-1}`), "expected_version", CodeInvalidValue},
		{"object string value", batch(`{"K2":"1"}`), "expected_version", CodeInvalidValue},
		{"object fraction value", batch(`{"K2":1.5}`), "expected_version", CodeInvalidValue},
		{"object duplicate key", batch(`{"K2":1,"K2":2}`), "expected_version.K2", CodeDuplicateKey},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeAppendRequest([]byte(tt.body), testNow)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			firstError(t, err, tt.field, tt.code)
			if req.Events != nil || req.Expected != nil {
				t.Errorf("a refused request returned %+v", req)
			}
		})
	}

	// The NATS envelope decoder has no expected_version.
	_, err := DecodeEnvelope([]byte(single(`1`)), testNow)
	firstError(t, err, "expected_version", CodeUnknownField)
}

// TestEncodeDataGolden pins the stored form of every event type: it is what
// the hash chain covers, so it must be deterministic and stable.
func TestEncodeDataGolden(t *testing.T) {
	alert := uuid.MustParse(testEventID)
	tests := []struct {
		event Event
		want  string
	}{
		{
			&CustomerRegistered{Profile{
				Name: ptr("华强"), Kind: ptr(KindEnterprise), Industry: ptr("制造业"), Region: ptr("华南"),
				Employees: ptr(int64(0)), AnnualRevenue: ptr(Money(100_000_000)), SourceChannel: ptr("展会"), Owner: ptr("王磊"),
				Contact: &Contact{Name: ptr("李明"), Title: ptr("经理"), Phone: ptr("13800138000"), Email: ptr("l@example.com")},
			}},
			`{"name":"华强","kind":"enterprise","industry":"制造业","region":"华南","employees":0,"annual_revenue":"1000000.00",` +
				`"source_channel":"展会","owner":"王磊","contact":{"name":"李明","title":"经理","phone":"13800138000","email":"l@example.com"}}`,
		},
		{&CustomerProfileUpdated{Profile{Region: ptr("华东")}}, `{"region":"华东"}`},
		{&OwnerAssigned{Owner: "赵敏"}, `{"owner":"赵敏"}`},
		{&OrderPlaced{OrderID: "SO-1", Amount: 10}, `{"order_id":"SO-1","amount":"0.10"}`},
		{&OrderPlaced{OrderID: "SO-1", Amount: 120050, Category: "元件", Channel: ChannelOffline}, `{"order_id":"SO-1","amount":"1200.50","category":"元件","channel":"offline"}`},
		{&OrderRefunded{OrderID: "SO-1", Amount: 100_000_000}, `{"order_id":"SO-1","amount":"1000000.00"}`},
		{&InquiryReceived{}, `{}`},
		{&InquiryReceived{Channel: "phone", Topic: "<报价> & \"折扣\""}, `{"channel":"phone","topic":"<报价> & \"折扣\""}`},
		{&SatisfactionRated{Score: 4, Feedback: "好\n很好"}, `{"score":4,"feedback":"好\n很好"}`},
		{&NeedsDeclared{CoreNeeds: []string{"功能", "售后"}, PriceSensitivity: SensitivityMedium}, `{"core_needs":["功能","售后"],"price_sensitivity":"medium"}`},
		{&FollowUpLogged{By: "王磊", AlertID: &alert}, `{"by":"王磊","alert_id":"` + testEventID + `"}`},
		{&CustomerErased{Reason: "要求删除"}, `{"reason":"要求删除"}`},
	}
	for _, tt := range tests {
		t.Run(string(tt.event.EventType()), func(t *testing.T) {
			b, err := EncodeData(tt.event)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("EncodeData = %s\nwant        %s", b, tt.want)
			}
			for range 20 {
				again, _ := EncodeData(tt.event)
				if !bytes.Equal(again, b) {
					t.Fatalf("EncodeData is not deterministic: %s vs %s", again, b)
				}
			}
			back, err := DecodeData(tt.event.EventType(), b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.event) {
				t.Errorf("DecodeData = %#v\nwant %#v", back, tt.event)
			}
			if again, _ := EncodeData(back); !bytes.Equal(again, b) {
				t.Errorf("re-encoded %s, want %s", again, b)
			}
		})
	}
}

// TestEncodeDecodedRequest: what ingestion accepts is stored with money as
// 2-decimal strings, number or string.
func TestEncodeDecodedRequest(t *testing.T) {
	tests := []struct{ amount, want string }{
		{`0.1`, `"0.10"`},
		{`"0.1"`, `"0.10"`},
		{`1000000`, `"1000000.00"`},
		{`"1000000.0"`, `"1000000.00"`},
		{`12.5`, `"12.50"`},
	}
	for _, tt := range tests {
		body := envJSON("OrderPlaced", `{"order_id":"SO-1","amount":`+tt.amount+`}`)
		env, err := DecodeEnvelope([]byte(body), testNow)
		if err != nil {
			t.Fatalf("%s: %v", tt.amount, err)
		}
		b, _ := EncodeData(env.Data)
		if want := `{"order_id":"SO-1","amount":` + tt.want + `}`; string(b) != want {
			t.Errorf("amount %s stored as %s, want %s", tt.amount, b, want)
		}
	}
}

func TestDecodeData(t *testing.T) {
	// Stored data is not validated again: personal fields hold ciphertext.
	raw := []byte(`{"name":"A","contact":{"phone":"enc:v1:AAAA","email":"enc:v1:BBBB"}}`)
	e, err := DecodeData(TypeCustomerRegistered, raw)
	if err != nil {
		t.Fatal(err)
	}
	if c := PersonalContact(e); c == nil || *c.Phone != "enc:v1:AAAA" || *c.Email != "enc:v1:BBBB" {
		t.Errorf("contact = %+v", c)
	}
	if _, err := DecodeData("Nope", []byte(`{}`)); err == nil {
		t.Error("DecodeData accepted an unknown type")
	}
	if _, err := DecodeData(TypeOrderPlaced, []byte(`{"amount":"x"}`)); err == nil {
		t.Error("DecodeData accepted a bad amount")
	}
	if _, err := DecodeData(TypeOrderPlaced, []byte(`{`)); err == nil {
		t.Error("DecodeData accepted bad JSON")
	}
}

func TestNewEventAndPersonalContact(t *testing.T) {
	for _, typ := range EventTypes {
		e, ok := NewEvent(typ)
		if !ok || e.EventType() != typ {
			t.Errorf("NewEvent(%s) = %T, %v", typ, e, ok)
		}
	}
	if _, ok := NewEvent("CustomerDeleted"); ok {
		t.Error("NewEvent accepted an unknown type")
	}
	c := &Contact{Title: ptr("经理")}
	if c.HasPersonalData() {
		t.Error("title alone is not personal data")
	}
	for _, pc := range []*Contact{{Name: ptr("李")}, {Phone: ptr("1")}, {Email: ptr("e")}} {
		if !pc.HasPersonalData() {
			t.Errorf("%+v has personal data", pc)
		}
	}
	var nilContact *Contact
	if nilContact.HasPersonalData() {
		t.Error("nil contact has personal data")
	}
	if PersonalContact(&CustomerProfileUpdated{Profile{Contact: c}}) != c || PersonalContact(&OrderPlaced{}) != nil {
		t.Error("PersonalContact")
	}
}

func TestValidPhoneAndEmail(t *testing.T) {
	for _, p := range []string{"13800138000", "19912345678", "10000000000", "+8613800138000", "+12025550123", "+12345678", "+123456789012345", "010-12345678", "0755-1234567-801", "021-62345678", "0571-8765432"} {
		if !ValidPhone(p) {
			t.Errorf("ValidPhone(%q) = false", p)
		}
	}
	for _, p := range []string{"12345678", "010-012345678", "01-12345678", "0755-1234567-", "0755-1234567-1234567", "010 12345678", "01012345678", "0755-1234567-801-2", "+0123456789"} {
		if ValidPhone(p) {
			t.Errorf("ValidPhone(%q) = true", p)
		}
	}
	for _, e := range []string{"li@example.com", "li.ming+crm@example.com.cn", "a_b-c@sub.example.org", "x@y.io"} {
		if !ValidEmail(e) {
			t.Errorf("ValidEmail(%q) = false", e)
		}
	}
}
