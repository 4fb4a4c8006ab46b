package domain

import (
	"errors"
	"strings"
)

// ErrInvalid is wrapped by every ValidationError: callers that only need to
// know "the input is bad" branch on it with errors.Is.
var ErrInvalid = errors.New("invalid input")

// Field error codes: stable, machine-readable names of the problem.
const (
	CodeInvalidJSON   = "invalid_json"
	CodeRequired      = "required"
	CodeUnknownField  = "unknown_field"
	CodeDuplicateKey  = "duplicate_field"
	CodeInvalidType   = "invalid_type"
	CodeInvalidValue  = "invalid_value"
	CodeInvalidEnum   = "invalid_enum"
	CodeTooLong       = "too_long"
	CodeTooMany       = "too_many"
	CodeFutureTime    = "future_time"
	CodeNotPositive   = "not_positive"
	CodePrecision     = "too_many_decimals"
	CodeOutOfRange    = "out_of_range"
	CodeEmpty         = "empty"
	CodeUnknownType   = "unknown_event_type"
	CodeInvalidFormat = "invalid_format"
)

// FieldError names one field and what is wrong with it. Field is a dotted
// path into the request, e.g. "events[2].data.amount".
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in an input; nothing of an input
// that produced one may be stored.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Errors))
	for _, fe := range e.Errors {
		parts = append(parts, fe.Field+": "+fe.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// First returns the first problem, used as the headline of an error response.
func (e *ValidationError) First() FieldError {
	if len(e.Errors) == 0 {
		return FieldError{Code: CodeInvalidValue, Message: "invalid input"}
	}
	return e.Errors[0]
}

// WithPrefix returns a copy whose field paths are prefixed, e.g. "events[3]".
func (e *ValidationError) WithPrefix(prefix string) *ValidationError {
	out := &ValidationError{Errors: make([]FieldError, len(e.Errors))}
	for i, fe := range e.Errors {
		fe.Field = joinField(prefix, fe.Field)
		out.Errors[i] = fe
	}
	return out
}

func joinField(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	default:
		return prefix + "." + field
	}
}

// collector accumulates field errors during validation.
type collector struct {
	errs []FieldError
}

func (c *collector) add(field, code, msg string) {
	c.errs = append(c.errs, FieldError{Field: field, Code: code, Message: msg})
}

func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: c.errs}
}

// Sentinel errors of the rules that need the stream's past. They are
// conflicts with the customer's recorded history, not malformed input.
var (
	ErrAlreadyRegistered  = errors.New("customer is already registered")
	ErrCustomerNotFound   = errors.New("customer does not exist")
	ErrDuplicateOrder     = errors.New("order_id already used for this customer")
	ErrUnknownOrder       = errors.New("order does not exist for this customer")
	ErrRefundExceedsOrder = errors.New("refunds would exceed the order amount")
	ErrCustomerErased     = errors.New("customer's personal data was erased")
	ErrAlreadyErased      = errors.New("customer is already erased")
	ErrCustomerTotal      = errors.New("customer's ordered total would exceed 10,000,000,000,000.00 yuan")
	ErrEventIDReused      = errors.New("event_id was already used for an event with different content (type, customer, occurred_at, source, correlation_id or data)")
)

// RuleError is a violation of a rule that depends on the stream's past.
// It wraps one of the sentinels above.
type RuleError struct {
	Field string
	Err   error
}

func (e *RuleError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// Code is the machine-readable name of the violated rule.
func (e *RuleError) Code() string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrAlreadyRegistered, "already_registered"},
		{ErrCustomerNotFound, "customer_not_found"},
		{ErrDuplicateOrder, "duplicate_order"},
		{ErrUnknownOrder, "unknown_order"},
		{ErrRefundExceedsOrder, "refund_exceeds_order"},
		{ErrCustomerErased, "customer_erased"},
		{ErrCustomerTotal, "customer_total_exceeded"},
		{ErrEventIDReused, "event_id_reused"},
		{ErrAlreadyErased, "already_erased"},
	} {
		if errors.Is(e.Err, c.err) {
			return c.code
		}
	}
	return "conflict"
}
