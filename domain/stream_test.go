package domain

import (
	"errors"
	"reflect"
	"testing"
)

func ev(data Event) *Envelope {
	return &Envelope{Type: data.EventType(), Customer: testCustomer, OccurredAt: testNow, Data: data}
}

func registered() *Envelope { return ev(&CustomerRegistered{Profile{Name: ptr("华强")}}) }

func registeredWith(c *Contact) *Envelope {
	return ev(&CustomerRegistered{Profile{Name: ptr("华强"), Contact: c}})
}

func updated(p Profile) *Envelope { return ev(&CustomerProfileUpdated{p}) }

func placed(id string, fen Money) *Envelope {
	return ev(&OrderPlaced{OrderID: id, Amount: fen, Channel: ChannelOnline})
}

func refunded(id string, fen Money) *Envelope { return ev(&OrderRefunded{OrderID: id, Amount: fen}) }

func erased() *Envelope { return ev(&CustomerErased{Reason: "客户要求"}) }

// cloneState deep-copies a state so a refused Apply can be compared with it.
func cloneState(s StreamState) StreamState {
	c := s
	if s.Orders != nil {
		c.Orders = make(map[string]OrderBalance, len(s.Orders))
		for k, v := range s.Orders {
			c.Orders[k] = v
		}
	}
	if s.Touched != nil {
		c.Touched = append([]string(nil), s.Touched...)
	}
	return c
}

// applyAll applies events in order; it fails the test on any refusal.
func applyAll(t *testing.T, s *StreamState, evs ...*Envelope) {
	t.Helper()
	for i, e := range evs {
		if err := s.Apply(e); err != nil {
			t.Fatalf("setup event %d (%s): %v", i, e.Type, err)
		}
	}
}

func TestStreamApplyRules(t *testing.T) {
	tests := []struct {
		name    string
		past    []*Envelope // applied first; must all be accepted
		loaded  map[string]OrderBalance
		event   *Envelope
		wantErr error
		field   string
		code    string
	}{
		// Registration.
		{name: "register a new customer", event: registered()},
		{name: "register after an order opened the stream", past: []*Envelope{placed("SO-1", 100)}, event: registered()},
		{name: "second registration", past: []*Envelope{registered()}, event: registered(),
			wantErr: ErrAlreadyRegistered, field: "type", code: "already_registered"},
		{name: "second registration after other events", past: []*Envelope{registered(), placed("SO-1", 100), ev(&OwnerAssigned{Owner: "x"})}, event: registered(),
			wantErr: ErrAlreadyRegistered, field: "type", code: "already_registered"},

		// Profile and owner need an existing stream.
		{name: "profile update on a new stream", event: updated(Profile{Region: ptr("华南")}),
			wantErr: ErrCustomerNotFound, field: "customer", code: "customer_not_found"},
		{name: "profile update after registration", past: []*Envelope{registered()}, event: updated(Profile{Region: ptr("华南")})},
		{name: "profile update after an order only", past: []*Envelope{placed("SO-1", 100)}, event: updated(Profile{Name: ptr("华强")})},
		{name: "owner on a new stream", event: ev(&OwnerAssigned{Owner: "王磊"}),
			wantErr: ErrCustomerNotFound, field: "customer", code: "customer_not_found"},
		{name: "owner after an inquiry", past: []*Envelope{ev(&InquiryReceived{Topic: "价格"})}, event: ev(&OwnerAssigned{Owner: "王磊"})},

		// Events that open a stream.
		{name: "inquiry opens a stream", event: ev(&InquiryReceived{})},
		{name: "rating opens a stream", event: ev(&SatisfactionRated{Score: 3})},
		{name: "needs open a stream", event: ev(&NeedsDeclared{PriceSensitivity: SensitivityLow})},
		{name: "follow-up opens a stream", event: ev(&FollowUpLogged{By: "x"})},
		{name: "order opens a stream", event: placed("SO-1", 100)},

		// Orders.
		{name: "second order id", past: []*Envelope{placed("SO-1", 100)}, event: placed("SO-2", 100)},
		{name: "duplicate order id", past: []*Envelope{placed("SO-1", 100)}, event: placed("SO-1", 100),
			wantErr: ErrDuplicateOrder, field: "data.order_id", code: "duplicate_order"},
		{name: "duplicate of a loaded order", loaded: map[string]OrderBalance{"SO-1": {Amount: 5}}, event: placed("SO-1", 100),
			wantErr: ErrDuplicateOrder, field: "data.order_id", code: "duplicate_order"},
		{name: "order id reused after full refund", past: []*Envelope{placed("SO-1", 100), refunded("SO-1", 100)}, event: placed("SO-1", 100),
			wantErr: ErrDuplicateOrder, field: "data.order_id", code: "duplicate_order"},
		{name: "order ids are case sensitive", past: []*Envelope{placed("SO-1", 100)}, event: placed("so-1", 100)},

		// Refunds.
		{name: "refund of an unknown order", event: refunded("SO-1", 1),
			wantErr: ErrUnknownOrder, field: "data.order_id", code: "unknown_order"},
		{name: "refund of another order", past: []*Envelope{placed("SO-1", 100)}, event: refunded("SO-2", 1),
			wantErr: ErrUnknownOrder, field: "data.order_id", code: "unknown_order"},
		{name: "partial refund", past: []*Envelope{placed("SO-1", 100)}, event: refunded("SO-1", 40)},
		{name: "full refund", past: []*Envelope{placed("SO-1", 100)}, event: refunded("SO-1", 100)},
		{name: "refund one fen over the amount", past: []*Envelope{placed("SO-1", 100)}, event: refunded("SO-1", 101),
			wantErr: ErrRefundExceedsOrder, field: "data.amount", code: "refund_exceeds_order"},
		{name: "partial refunds summing exactly to the amount", past: []*Envelope{placed("SO-1", 100), refunded("SO-1", 30), refunded("SO-1", 30)}, event: refunded("SO-1", 40)},
		{name: "partial refunds one fen over", past: []*Envelope{placed("SO-1", 100), refunded("SO-1", 30), refunded("SO-1", 30)}, event: refunded("SO-1", 41),
			wantErr: ErrRefundExceedsOrder, field: "data.amount", code: "refund_exceeds_order"},
		{name: "refund after full refund", past: []*Envelope{placed("SO-1", 100), refunded("SO-1", 100)}, event: refunded("SO-1", 1),
			wantErr: ErrRefundExceedsOrder, field: "data.amount", code: "refund_exceeds_order"},
		{name: "refund of a loaded order", loaded: map[string]OrderBalance{"SO-1": {Amount: 100, Refunded: 60}}, event: refunded("SO-1", 40)},
		{name: "refund over a loaded order's balance", loaded: map[string]OrderBalance{"SO-1": {Amount: 100, Refunded: 60}}, event: refunded("SO-1", 41),
			wantErr: ErrRefundExceedsOrder, field: "data.amount", code: "refund_exceeds_order"},
		{name: "refund that would overflow", loaded: map[string]OrderBalance{"SO-1": {Amount: MaxMoney, Refunded: MaxMoney}}, event: refunded("SO-1", 1<<62+(1<<62-1)),
			wantErr: ErrRefundExceedsOrder, field: "data.amount", code: "refund_exceeds_order"},
		// The customer's ordered total is bounded, so no sum of theirs can overflow.
		{name: "orders up to the customer's bound", past: []*Envelope{placed("SO-1", MaxCustomerOrdered-100)}, event: placed("SO-2", 100)},
		{name: "an order one fen over the customer's bound", past: []*Envelope{placed("SO-1", MaxCustomerOrdered-100)}, event: placed("SO-2", 101),
			wantErr: ErrCustomerTotal, field: "data.amount", code: "customer_total_exceeded"},
		{name: "refunds do not make room under the customer's bound", past: []*Envelope{placed("SO-1", MaxCustomerOrdered), refunded("SO-1", MaxCustomerOrdered)}, event: placed("SO-2", 1),
			wantErr: ErrCustomerTotal, field: "data.amount", code: "customer_total_exceeded"},
		{name: "refunds are per order", past: []*Envelope{placed("SO-1", 100), placed("SO-2", 50), refunded("SO-1", 100)}, event: refunded("SO-2", 50)},

		// Erasure.
		{name: "erase", past: []*Envelope{registered()}, event: erased()},
		{name: "erase a stream opened by an order", past: []*Envelope{placed("SO-1", 1)}, event: erased()},
		{name: "erase twice", past: []*Envelope{registered(), erased()}, event: erased(),
			wantErr: ErrAlreadyErased, field: "type", code: "already_erased"},
		{name: "contact name after erasure", past: []*Envelope{registered(), erased()}, event: updated(Profile{Contact: &Contact{Name: ptr("李明")}}),
			wantErr: ErrCustomerErased, field: "data.contact", code: "customer_erased"},
		{name: "contact phone after erasure", past: []*Envelope{registered(), erased()}, event: updated(Profile{Contact: &Contact{Phone: ptr("13800138000")}}),
			wantErr: ErrCustomerErased, field: "data.contact", code: "customer_erased"},
		{name: "contact email after erasure", past: []*Envelope{registered(), erased()}, event: updated(Profile{Contact: &Contact{Email: ptr("l@example.com")}}),
			wantErr: ErrCustomerErased, field: "data.contact", code: "customer_erased"},
		{name: "registration with contact after erasure", past: []*Envelope{placed("SO-1", 1), erased()}, event: registeredWith(&Contact{Phone: ptr("13800138000")}),
			wantErr: ErrCustomerErased, field: "data.contact", code: "customer_erased"},
		{name: "registration without contact after erasure", past: []*Envelope{placed("SO-1", 1), erased()}, event: registered()},
		{name: "contact title after erasure", past: []*Envelope{registered(), erased()}, event: updated(Profile{Contact: &Contact{Title: ptr("经理")}})},
		{name: "profile without contact after erasure", past: []*Envelope{registered(), erased()}, event: updated(Profile{Industry: ptr("制造业")})},
		{name: "orders after erasure", past: []*Envelope{registered(), erased()}, event: placed("SO-9", 100)},
		{name: "owner after erasure", past: []*Envelope{registered(), erased()}, event: ev(&OwnerAssigned{Owner: "x"})},
		{name: "rating after erasure", past: []*Envelope{registered(), erased()}, event: ev(&SatisfactionRated{Score: 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s StreamState
			if tt.loaded != nil {
				// As the store would load it: an existing stream with its orders.
				s = StreamState{Version: 3, Registered: true, Orders: tt.loaded}
			}
			applyAll(t, &s, tt.past...)
			before := cloneState(s)
			err := s.Apply(tt.event)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if s.Version != before.Version+1 {
					t.Errorf("version %d -> %d, want +1", before.Version, s.Version)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply = %v, want %v", err, tt.wantErr)
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RuleError", err)
			}
			if re.Field != tt.field || re.Code() != tt.code {
				t.Errorf("RuleError = %s/%s, want %s/%s", re.Field, re.Code(), tt.field, tt.code)
			}
			if errors.Is(err, ErrInvalid) {
				t.Errorf("a rule error must not look like malformed input")
			}
			if re.Error() == "" || re.Error() != re.Field+": "+tt.wantErr.Error() {
				t.Errorf("Error() = %q", re.Error())
			}
			// A refused event leaves the state exactly as it was.
			if !reflect.DeepEqual(s, before) {
				t.Errorf("refused event changed the state:\n%+v\nwas %+v", s, before)
			}
		})
	}
}

func TestStreamBatchPlaceThenRefund(t *testing.T) {
	var s StreamState
	batch := []*Envelope{
		placed("SO-1", 120050),
		refunded("SO-1", 20000),
		placed("SO-2", 500),
		refunded("SO-1", 100050),
		refunded("SO-2", 1),
	}
	applyAll(t, &s, batch...)
	if s.Version != 5 || s.Registered || s.Erased || !s.Exists() {
		t.Errorf("state = %+v", s)
	}
	want := map[string]OrderBalance{"SO-1": {Amount: 120050, Refunded: 120050}, "SO-2": {Amount: 500, Refunded: 1}}
	if !reflect.DeepEqual(s.Orders, want) {
		t.Errorf("orders = %v, want %v", s.Orders, want)
	}
	if wantTouched := []string{"SO-1", "SO-1", "SO-2", "SO-1", "SO-2"}; !reflect.DeepEqual(s.Touched, wantTouched) {
		t.Errorf("touched = %v, want %v", s.Touched, wantTouched)
	}
	// The order is fully refunded now: one more fen is refused.
	err := s.Apply(refunded("SO-1", 1))
	if !errors.Is(err, ErrRefundExceedsOrder) {
		t.Errorf("refund beyond the amount: %v", err)
	}
	// Refund before place in the same batch is refused.
	var s2 StreamState
	if err := s2.Apply(refunded("SO-3", 1)); !errors.Is(err, ErrUnknownOrder) {
		t.Errorf("refund before place: %v", err)
	}
	applyAll(t, &s2, placed("SO-3", 1), refunded("SO-3", 1))
}

func TestStreamRefusedEventLeavesStateUnchanged(t *testing.T) {
	var s StreamState
	applyAll(t, &s, registered(), placed("SO-1", 100), refunded("SO-1", 50), erased())
	refusals := []*Envelope{
		registered(),
		placed("SO-1", 1),
		refunded("SO-1", 51),
		refunded("SO-404", 1),
		erased(),
		updated(Profile{Contact: &Contact{Name: ptr("李")}}),
	}
	for _, e := range refusals {
		before := cloneState(s)
		if err := s.Apply(e); err == nil {
			t.Fatalf("%s accepted", e.Type)
		}
		if !reflect.DeepEqual(s, before) {
			t.Fatalf("refused %s changed the state:\n%+v\nwas %+v", e.Type, s, before)
		}
	}
	if s.Version != 4 || s.Orders["SO-1"] != (OrderBalance{Amount: 100, Refunded: 50}) || len(s.Touched) != 2 {
		t.Errorf("state = %+v", s)
	}
	// The stream still accepts what is allowed.
	applyAll(t, &s, refunded("SO-1", 50))
	if s.Version != 5 {
		t.Errorf("version = %d, want 5", s.Version)
	}
}

func TestStreamStateFlags(t *testing.T) {
	var s StreamState
	if s.Exists() {
		t.Error("empty stream exists")
	}
	applyAll(t, &s, ev(&InquiryReceived{}))
	if !s.Exists() || s.Registered || s.Version != 1 {
		t.Errorf("after inquiry: %+v", s)
	}
	applyAll(t, &s, registered())
	if !s.Registered || s.Erased {
		t.Errorf("after registration: %+v", s)
	}
	applyAll(t, &s, erased())
	if !s.Erased || !s.Registered || s.Version != 3 {
		t.Errorf("after erasure: %+v", s)
	}
	if s.Orders != nil || s.Touched != nil {
		t.Errorf("orders touched without orders: %+v", s)
	}
}

func TestRuleErrorCode(t *testing.T) {
	tests := map[error]string{
		ErrAlreadyRegistered:  "already_registered",
		ErrCustomerNotFound:   "customer_not_found",
		ErrDuplicateOrder:     "duplicate_order",
		ErrUnknownOrder:       "unknown_order",
		ErrRefundExceedsOrder: "refund_exceeds_order",
		ErrCustomerErased:     "customer_erased",
		ErrAlreadyErased:      "already_erased",
		errors.New("other"):   "conflict",
	}
	for err, want := range tests {
		re := &RuleError{Field: "f", Err: err}
		if re.Code() != want || !errors.Is(re, err) {
			t.Errorf("RuleError{%v}.Code() = %q, want %q", err, re.Code(), want)
		}
	}
}

func TestOrderRefs(t *testing.T) {
	tests := []struct {
		e      Event
		want   string
		wantOK bool
	}{
		{&OrderPlaced{OrderID: "A"}, "A", true},
		{&OrderRefunded{OrderID: "B"}, "B", true},
		{&InquiryReceived{}, "", false},
		{&CustomerRegistered{}, "", false},
	}
	for _, tt := range tests {
		got, ok := OrderRefs(tt.e)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("OrderRefs(%T) = %q, %v", tt.e, got, ok)
		}
	}
}
