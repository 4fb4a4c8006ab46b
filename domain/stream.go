package domain

// OrderBalance is what the write side remembers of an order: its amount and
// what has been refunded so far.
type OrderBalance struct {
	Amount   Money
	Refunded Money
}

// StreamState is the part of a customer's past that ingestion rules need.
// The event store loads it (only the orders the pending events mention) and
// Apply checks and folds each pending event in order, so a batch that places
// and refunds the same order is judged correctly.
type StreamState struct {
	Version    int64
	Registered bool
	Erased     bool
	// Individual: the customer is a person (kind individual), so its name
	// and region are personal data too (see personalFields).
	Individual bool
	// Ordered is the sum of every order amount the customer ever placed,
	// bounded by MaxCustomerOrdered so no per-customer sum can overflow.
	Ordered Money
	// Orders holds the loaded orders by order_id; an order_id that is not a
	// key here was not loaded and is treated as unknown.
	Orders map[string]OrderBalance
	// Touched lists order_ids whose balance Apply created or changed, so the
	// store writes back only those.
	Touched []string
}

// Exists reports whether the stream has any event.
func (s *StreamState) Exists() bool { return s.Version > 0 }

// Apply checks e against the stream's past and, when it is allowed, folds it
// into the state (version included). It returns a *RuleError otherwise and
// leaves the state unchanged.
func (s *StreamState) Apply(e *Envelope) error {
	switch d := e.Data.(type) {
	case *CustomerRegistered:
		if s.Registered {
			return &RuleError{Field: "type", Err: ErrAlreadyRegistered}
		}
		if err := s.applyProfile(d); err != nil {
			return err
		}
		s.Registered = true
	case *CustomerProfileUpdated:
		if !s.Exists() {
			return &RuleError{Field: "customer", Err: ErrCustomerNotFound}
		}
		if err := s.applyProfile(d); err != nil {
			return err
		}
	case *OwnerAssigned:
		if !s.Exists() {
			return &RuleError{Field: "customer", Err: ErrCustomerNotFound}
		}
	case *OrderPlaced:
		if _, ok := s.Orders[d.OrderID]; ok {
			return &RuleError{Field: "data.order_id", Err: ErrDuplicateOrder}
		}
		ordered, ok := s.Ordered.AddChecked(d.Amount)
		if !ok || ordered > MaxCustomerOrdered {
			return &RuleError{Field: "data.amount", Err: ErrCustomerTotal}
		}
		s.Ordered = ordered
		if s.Orders == nil {
			s.Orders = map[string]OrderBalance{}
		}
		s.Orders[d.OrderID] = OrderBalance{Amount: d.Amount}
		s.Touched = append(s.Touched, d.OrderID)
	case *OrderRefunded:
		o, ok := s.Orders[d.OrderID]
		if !ok {
			return &RuleError{Field: "data.order_id", Err: ErrUnknownOrder}
		}
		refunded, ok := o.Refunded.AddChecked(d.Amount)
		if !ok || refunded > o.Amount {
			return &RuleError{Field: "data.amount", Err: ErrRefundExceedsOrder}
		}
		o.Refunded = refunded
		s.Orders[d.OrderID] = o
		s.Touched = append(s.Touched, d.OrderID)
	case *CustomerErased:
		if s.Erased {
			return &RuleError{Field: "type", Err: ErrAlreadyErased}
		}
		s.Erased = true
	}
	s.Version++
	return nil
}

// applyProfile refuses personal data for an erased customer (its key is
// destroyed, nothing could seal it) and follows the customer's kind.
func (s *StreamState) applyProfile(e Event) error {
	individual := s.Individual
	if p := profileOf(e); p != nil && p.Kind != nil {
		individual = *p.Kind == KindIndividual
	}
	if s.Erased && HasPersonalData(e, individual) {
		field := "data.contact"
		if p := profileOf(e); p.Contact == nil || !p.Contact.HasPersonalData() {
			field = "data.name"
			if p.Name == nil {
				field = "data.region"
			}
		}
		return &RuleError{Field: field, Err: ErrCustomerErased}
	}
	s.Individual = individual
	return nil
}

// OrderRefs returns the order_ids an event needs loaded to be judged.
func OrderRefs(e Event) (string, bool) {
	switch d := e.(type) {
	case *OrderPlaced:
		return d.OrderID, true
	case *OrderRefunded:
		return d.OrderID, true
	}
	return "", false
}
