package domain

import (
	"bytes"
	"errors"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// fuzzSeeds are valid and invalid bodies: every table case of the decode
// tests plus a few hand-made ones.
func fuzzSeeds() []string {
	seeds := []string{
		envJSON("CustomerRegistered", validRegistered),
		envJSON("CustomerRegistered", `{"name":"A","kind":"individual","annual_revenue":0.1,"contact":{"phone":"+8613800138000"}}`),
		envJSON("CustomerProfileUpdated", `{"annual_revenue":"1.5e3","contact":{"title":"经理"}}`),
		envJSON("OwnerAssigned", `{"owner":"王磊"}`),
		envJSON("OrderPlaced", validOrder),
		envJSON("OrderPlaced", `{"order_id":"SO-2","amount":0.1}`),
		envJSON("OrderPlaced", `{"order_id":"SO-3","amount":"1000000.00","channel":"offline"}`),
		envJSON("OrderPlaced", `{"order_id":"SO-4","amount":12.50e-1}`),
		envJSON("OrderPlaced", `{"order_id":"SO-5","amount":"+007.10"}`),
		envJSON("OrderRefunded", validRefund),
		envJSON("InquiryReceived", `{}`),
		envJSON("SatisfactionRated", `{"score":5,"feedback":"很好"}`),
		envJSON("NeedsDeclared", `{"core_needs":["成本控制"],"communication_preference":"phone","price_sensitivity":"medium"}`),
		envJSON("FollowUpLogged", `{"by":"x","alert_id":"`+testEventID+`"}`),
		envJSON("CustomerErased", `{"reason":"r"}`),
		envJSON("OwnerAssigned", `{"owner":"x"}`, `"event_id":"`+testEventID+`"`, `"source":"crm"`, `"correlation_id":"c"`),
		strings.TrimSuffix(envJSON("OwnerAssigned", `{"owner":"x"}`), "}") + `,"expected_version":2}`,
		strings.TrimSuffix(envJSON("OwnerAssigned", `{"owner":"x"}`), "}") + `,"expected_version":{"` + testCustomer + `":0}}`,
		batchJSON(envJSON("OrderPlaced", validOrder), envJSON("OrderRefunded", validRefund), envFor(`"K2"`, "OrderPlaced", `{"order_id":"a","amount":"3"}`)),
		`{"events":[` + envJSON("OwnerAssigned", `{"owner":"x"}`) + `],"expected_version":{"` + testCustomer + `":4}}`,
		`{"events":[]}`,
		`{}`, `[]`, `null`, ``, `{"events":[1]}`, `"x"`,
	}
	for _, r := range envelopeRejections() {
		if len(r.body) < 2000 {
			seeds = append(seeds, r.body)
		}
	}
	return seeds
}

var knownCodes = map[string]bool{
	CodeInvalidJSON: true, CodeRequired: true, CodeUnknownField: true, CodeDuplicateKey: true,
	CodeInvalidType: true, CodeInvalidValue: true, CodeInvalidEnum: true, CodeTooLong: true,
	CodeTooMany: true, CodeFutureTime: true, CodeNotPositive: true, CodePrecision: true,
	CodeOutOfRange: true, CodeEmpty: true, CodeUnknownType: true, CodeInvalidFormat: true,
}

// checkRefusal: a refusal is a *ValidationError whose every problem names a
// field, a known code and a message.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	if len(ve.Errors) == 0 {
		t.Fatalf("ValidationError without errors")
	}
	for _, fe := range ve.Errors {
		if fe.Field == "" || !knownCodes[fe.Code] || fe.Message == "" {
			t.Fatalf("bad field error %+v", fe)
		}
	}
}

var storedMoney = regexp.MustCompile(`^"-?(0|[1-9]\d*)\.\d{2}"$`)

// checkAccepted checks the invariants of an accepted request: every event
// validates, its stored form is stable, and money was parsed exactly.
func checkAccepted(t *testing.T, body []byte, req AppendRequest) {
	t.Helper()
	if len(req.Events) == 0 || len(req.Events) > MaxBatchEvents {
		t.Fatalf("accepted %d events", len(req.Events))
	}
	raws := rawEventData(t, body, req.Batch)
	if len(raws) != len(req.Events) {
		t.Fatalf("%d raw events, %d decoded", len(raws), len(req.Events))
	}
	customers := map[CustomerCode]bool{}
	for i, env := range req.Events {
		customers[env.Customer] = true
		checkEnvelope(t, env, raws[i])
	}
	for c, v := range req.Expected {
		if !customers[c] || v < 0 {
			t.Fatalf("expected_version %s=%d", c, v)
		}
	}
}

func checkEnvelope(t *testing.T, env Envelope, rawData map[string]jsontext.Value) {
	t.Helper()
	if err := env.Validate(testNow); err != nil {
		t.Fatalf("accepted event fails Validate: %v", err)
	}
	if env.Data == nil || env.Data.EventType() != env.Type {
		t.Fatalf("data %T for type %s", env.Data, env.Type)
	}

	// Stability of the stored form.
	b1, err := EncodeData(env.Data)
	if err != nil {
		t.Fatalf("EncodeData: %v", err)
	}
	back, err := DecodeData(env.Type, b1)
	if err != nil {
		t.Fatalf("DecodeData(%s): %v", b1, err)
	}
	b2, err := EncodeData(back)
	if err != nil {
		t.Fatalf("EncodeData again: %v", err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("stored form is not stable:\n%s\n%s", b1, b2)
	}
	if !reflect.DeepEqual(back, env.Data) {
		t.Fatalf("DecodeData(EncodeData(x)) = %#v, want %#v", back, env.Data)
	}
	if b3, _ := EncodeData(env.Data); !bytes.Equal(b1, b3) {
		t.Fatalf("EncodeData is not deterministic")
	}

	// Money: exact against a big.Rat reading of the request text, and
	// stored as a 2-decimal string.
	var stored map[string]jsontext.Value
	if err := json.Unmarshal(b1, &stored); err != nil {
		t.Fatalf("stored form %s: %v", b1, err)
	}
	for field, m := range moneyFields(env.Data) {
		if got, err := ParseMoney(m.String()); err != nil || got != m {
			t.Fatalf("%s: ParseMoney(%q) = %d, %v; want %d", field, m.String(), got, err, m)
		}
		raw, ok := rawData[field]
		if !ok {
			if m != 0 {
				t.Fatalf("%s = %d without being sent", field, m)
			}
			continue
		}
		if want := exactFen(t, raw); want.Cmp(big.NewInt(int64(m))) != 0 {
			t.Fatalf("%s %s decoded as %d fen, want %v", field, raw, m, want)
		}
		if s := stored[field]; !storedMoney.Match(s) {
			t.Fatalf("%s stored as %s", field, s)
		}
	}
}

// moneyFields lists the money of an event by JSON field name.
func moneyFields(e Event) map[string]Money {
	switch d := e.(type) {
	case *OrderPlaced:
		return map[string]Money{"amount": d.Amount}
	case *OrderRefunded:
		return map[string]Money{"amount": d.Amount}
	case *CustomerRegistered:
		if d.AnnualRevenue != nil {
			return map[string]Money{"annual_revenue": *d.AnnualRevenue}
		}
	case *CustomerProfileUpdated:
		if d.AnnualRevenue != nil {
			return map[string]Money{"annual_revenue": *d.AnnualRevenue}
		}
	}
	return nil
}

// rawEventData returns the data object of each event of an accepted body.
func rawEventData(t *testing.T, body []byte, batch bool) []map[string]jsontext.Value {
	t.Helper()
	var top map[string]jsontext.Value
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("accepted body does not parse: %v", err)
	}
	envs := []jsontext.Value{body}
	if batch {
		envs = nil
		if err := json.Unmarshal(top["events"], &envs); err != nil {
			t.Fatalf("events: %v", err)
		}
	}
	out := make([]map[string]jsontext.Value, len(envs))
	for i, e := range envs {
		var env map[string]jsontext.Value
		if err := json.Unmarshal(e, &env); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if err := json.Unmarshal(env["data"], &out[i]); err != nil {
			t.Fatalf("event %d data: %v", i, err)
		}
	}
	return out
}

// exactFen reads a JSON number or decimal string with math/big (no float)
// and returns its value in fen, which must be an integer.
func exactFen(t *testing.T, raw jsontext.Value) *big.Int {
	t.Helper()
	s := string(raw)
	if raw.Kind() == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("amount %s: %v", raw, err)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("accepted amount %s is not a decimal number", raw)
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() {
		t.Fatalf("accepted amount %s has more than 2 decimals", raw)
	}
	return r.Num()
}

func FuzzDecodeAppendRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeAppendRequest(body, testNow)
		if err != nil {
			checkRefusal(t, err)
			if req.Events != nil || req.Expected != nil {
				t.Fatalf("refused request returned %+v", req)
			}
			return
		}
		checkAccepted(t, body, req)
		if !req.Batch && req.Expected == nil {
			// The single form without expected_version is exactly what the
			// NATS decoder takes.
			env, err := DecodeEnvelope(body, testNow)
			if err != nil {
				t.Fatalf("DecodeAppendRequest accepted what DecodeEnvelope refuses: %v", err)
			}
			if !reflect.DeepEqual(env, req.Events[0]) {
				t.Fatalf("decoders disagree:\n%#v\n%#v", env, req.Events[0])
			}
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := DecodeEnvelope(body, testNow)
		if err != nil {
			checkRefusal(t, err)
			if env.Data != nil {
				t.Fatalf("refused envelope returned data")
			}
			return
		}
		checkAccepted(t, body, AppendRequest{Events: []Envelope{env}})
		req, err := DecodeAppendRequest(body, testNow)
		if err != nil {
			t.Fatalf("DecodeEnvelope accepted what DecodeAppendRequest refuses: %v", err)
		}
		if req.Batch || len(req.Events) != 1 || req.Expected != nil || !reflect.DeepEqual(req.Events[0], env) {
			t.Fatalf("decoders disagree:\n%#v\n%#v", env, req)
		}
	})
}

// FuzzParseMoney: whatever ParseMoney accepts is what math/big reads, and
// formats back to itself.
func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"0", "0.1", "1.5e3", "-5", "1.234", "1e", "007", "+1", "1e-2", "10000000000000", strings.Repeat("9", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			if !errors.Is(err, ErrMoneySyntax) && !errors.Is(err, ErrMoneyPrecision) && !errors.Is(err, ErrMoneyRange) {
				t.Fatalf("ParseMoney(%q): unexpected error %v", s, err)
			}
			return
		}
		if m > MaxMoney || m < -MaxMoney {
			t.Fatalf("ParseMoney(%q) = %d beyond MaxMoney", s, m)
		}
		if want := exactFen(t, jsontext.Value(s)); want.Cmp(big.NewInt(int64(m))) != 0 {
			t.Fatalf("ParseMoney(%q) = %d, want %v", s, m, want)
		}
		if got, err := ParseMoney(m.String()); err != nil || got != m {
			t.Fatalf("ParseMoney(%q) = %d, %v; want %d", m.String(), got, err, m)
		}
	})
}
