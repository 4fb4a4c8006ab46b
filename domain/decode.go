package domain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// MaxBatchEvents is the largest number of events in one request.
const MaxBatchEvents = 1000

// strict rejects unknown members; duplicate names and invalid UTF-8 are
// rejected by default in this JSON implementation.
var strict = json.JoinOptions(json.RejectUnknownMembers(true))

// wireEnvelope is the JSON form of an envelope. Pointers distinguish
// "absent" from "wrong type"; data stays raw until its type is known.
type wireEnvelope struct {
	EventID       *string        `json:"event_id,omitzero"`
	Type          *string        `json:"type"`
	Customer      *string        `json:"customer"`
	OccurredAt    *string        `json:"occurred_at,omitzero"`
	Source        *string        `json:"source,omitzero"`
	CorrelationID *string        `json:"correlation_id,omitzero"`
	Data          jsontext.Value `json:"data,omitzero"`
}

type wireSingle struct {
	wireEnvelope
	ExpectedVersion jsontext.Value `json:"expected_version,omitzero"`
}

type wireBatch struct {
	Events          []jsontext.Value `json:"events"`
	ExpectedVersion jsontext.Value   `json:"expected_version,omitzero"`
}

// AppendRequest is a decoded, validated ingest request: one envelope or a
// batch, with optional optimistic-concurrency expectations per customer.
type AppendRequest struct {
	Events []Envelope
	// Expected maps a customer to the stream version it must have before the
	// request's events are appended (0: the stream must not exist yet).
	Expected map[CustomerCode]int64
	// Batch reports whether the {"events": [...]} form was used.
	Batch bool
}

// DecodeEnvelope decodes and validates one envelope (the body of an
// ingest.> NATS message). Errors are *ValidationError.
func DecodeEnvelope(raw []byte, now time.Time) (Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(raw, &w, strict); err != nil {
		return Envelope{}, jsonError(err, "")
	}
	env, err := w.envelope("")
	if err != nil {
		return Envelope{}, err
	}
	if err := env.Validate(now); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// DecodeAppendRequest decodes and validates an HTTP ingest body: either one
// envelope (optionally with expected_version) or {"events": [...]} with an
// optional expected_version beside it. Errors are *ValidationError.
func DecodeAppendRequest(raw []byte, now time.Time) (AppendRequest, error) {
	var top map[string]jsontext.Value
	if err := json.Unmarshal(raw, &top); err != nil {
		return AppendRequest{}, jsonError(err, "")
	}
	if _, ok := top["events"]; ok {
		return decodeBatch(raw, now)
	}
	var w wireSingle
	if err := json.Unmarshal(raw, &w, strict); err != nil {
		return AppendRequest{}, jsonError(err, "")
	}
	env, err := w.envelope("")
	if err != nil {
		return AppendRequest{}, err
	}
	if err := env.Validate(now); err != nil {
		return AppendRequest{}, err
	}
	req := AppendRequest{Events: []Envelope{env}}
	if req.Expected, err = decodeExpected(w.ExpectedVersion, req.Events); err != nil {
		return AppendRequest{}, err
	}
	return req, nil
}

func decodeBatch(raw []byte, now time.Time) (AppendRequest, error) {
	var w wireBatch
	if err := json.Unmarshal(raw, &w, strict); err != nil {
		return AppendRequest{}, jsonError(err, "")
	}
	var c collector
	switch {
	case len(w.Events) == 0:
		c.add("events", CodeEmpty, "must contain at least one event")
	case len(w.Events) > MaxBatchEvents:
		c.add("events", CodeTooMany, "must contain at most "+strconv.Itoa(MaxBatchEvents)+" events")
	}
	if err := c.err(); err != nil {
		return AppendRequest{}, err
	}
	req := AppendRequest{Events: make([]Envelope, 0, len(w.Events)), Batch: true}
	var all []FieldError
	for i, rawEnv := range w.Events {
		prefix := "events[" + strconv.Itoa(i) + "]"
		var we wireEnvelope
		if err := json.Unmarshal(rawEnv, &we, strict); err != nil {
			all = append(all, jsonError(err, prefix).Errors...)
			continue
		}
		env, err := we.envelope(prefix)
		if err == nil {
			err = env.Validate(now)
			var ve *ValidationError
			if errors.As(err, &ve) {
				err = ve.WithPrefix(prefix)
			}
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				return AppendRequest{}, err
			}
			all = append(all, ve.Errors...)
			continue
		}
		req.Events = append(req.Events, env)
	}
	if len(all) > 0 {
		return AppendRequest{}, &ValidationError{Errors: all}
	}
	var err error
	if req.Expected, err = decodeExpected(w.ExpectedVersion, req.Events); err != nil {
		return AppendRequest{}, err
	}
	return req, nil
}

// decodeExpected reads expected_version: a number (for every customer of the
// request, normally one) or an object of customer code → version.
func decodeExpected(raw jsontext.Value, events []Envelope) (map[CustomerCode]int64, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	bad := func(msg string) error {
		return &ValidationError{Errors: []FieldError{{Field: "expected_version", Code: CodeInvalidValue, Message: msg}}}
	}
	out := map[CustomerCode]int64{}
	switch raw.Kind() {
	case '0':
		var v int64
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 {
			return nil, bad("must be a non-negative integer or an object of customer code to non-negative integer")
		}
		for _, e := range events {
			out[e.Customer] = v
		}
	case '{':
		var m map[string]int64
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, bad("must be a non-negative integer or an object of customer code to non-negative integer")
		}
		inRequest := map[CustomerCode]bool{}
		for _, e := range events {
			inRequest[e.Customer] = true
		}
		for k, v := range m {
			if v < 0 {
				return nil, bad("versions must not be negative")
			}
			if !inRequest[CustomerCode(k)] {
				return nil, bad(fmt.Sprintf("names customer %q, which has no event in this request", k))
			}
			out[CustomerCode(k)] = v
		}
	default:
		return nil, bad("must be a non-negative integer or an object of customer code to non-negative integer")
	}
	return out, nil
}

func (w *wireEnvelope) envelope(prefix string) (Envelope, error) {
	var c collector
	var env Envelope
	if w.EventID != nil {
		id, err := uuid.Parse(*w.EventID)
		if err != nil || len(*w.EventID) != 36 || id == uuid.Nil {
			c.add("event_id", CodeInvalidFormat, "must be a UUID such as 0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7b")
		} else {
			env.EventID = id
		}
	}
	if w.Customer == nil {
		c.add("customer", CodeRequired, "is required")
	} else {
		env.Customer = CustomerCode(*w.Customer)
	}
	if w.OccurredAt != nil {
		at, err := ParseInstant(*w.OccurredAt)
		switch {
		case errors.Is(err, ErrInstantSyntax):
			c.add("occurred_at", CodeInvalidFormat, err.Error())
		case err != nil:
			c.add("occurred_at", CodeInvalidValue, err.Error())
		case at.Time.IsZero():
			// The zero instant would read as "absent" (time of recording).
			c.add("occurred_at", CodeOutOfRange, "must not be before 1900")
		default:
			env.OccurredAt, env.OccurredOffset = at.Time, at.Offset
		}
	}
	if w.Source != nil {
		env.Source = *w.Source
		if env.Source == "" {
			c.add("source", CodeEmpty, "must not be empty (omit it instead)")
		}
	}
	if w.CorrelationID != nil {
		env.CorrelationID = *w.CorrelationID
		if env.CorrelationID == "" {
			c.add("correlation_id", CodeEmpty, "must not be empty (omit it instead)")
		}
	}
	if w.Type == nil {
		c.add("type", CodeRequired, "is required")
	} else {
		env.Type = EventType(*w.Type)
		data, ok := NewEvent(env.Type)
		switch {
		case !ok:
			c.add("type", CodeUnknownType, "must be one of "+typeList())
		case len(w.Data) == 0:
			c.add("data", CodeRequired, "is required")
		case w.Data.Kind() != '{':
			c.add("data", CodeInvalidType, "must be a JSON object")
		default:
			if err := json.Unmarshal(w.Data, data, strict); err != nil {
				c.errs = append(c.errs, jsonError(err, "data").Errors...)
			} else {
				env.Data = data
			}
		}
	}
	if len(c.errs) > 0 {
		return Envelope{}, (&ValidationError{Errors: c.errs}).WithPrefix(prefix)
	}
	return env, nil
}

// DecodeData decodes stored event data of type t without validating it:
// stored data was validated at ingestion and its personal fields now hold
// ciphertext, which would not pass the phone and email formats.
func DecodeData(t EventType, raw []byte) (Event, error) {
	data, ok := NewEvent(t)
	if !ok {
		return nil, fmt.Errorf("decode %s: unknown event type", t)
	}
	if err := json.Unmarshal(raw, data); err != nil {
		return nil, fmt.Errorf("decode %s data: %w", t, err)
	}
	return data, nil
}

// EncodeData encodes event data in its stored form (money as decimal strings,
// absent fields omitted). The bytes are what the hash chain covers.
func EncodeData(e Event) ([]byte, error) {
	b, err := json.Marshal(e, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("encode %s data: %w", e.EventType(), err)
	}
	return b, nil
}

// jsonError turns a JSON decoding error into a ValidationError naming the
// field (from the error's JSON pointer) and the problem.
func jsonError(err error, prefix string) *ValidationError {
	var synErr *jsontext.SyntacticError
	var semErr *json.SemanticError
	fe := FieldError{Code: CodeInvalidJSON, Message: "is not valid JSON"}
	switch {
	case errors.As(err, &synErr):
		fe.Field = pointerToField(string(synErr.JSONPointer))
		switch {
		case errors.Is(synErr.Err, jsontext.ErrDuplicateName):
			fe.Code, fe.Message = CodeDuplicateKey, "appears more than once"
		default:
			fe.Message = "is not valid JSON: " + syntaxReason(synErr.Err)
		}
	case errors.As(err, &semErr):
		fe.Field = pointerToField(string(semErr.JSONPointer))
		switch {
		case errors.Is(semErr.Err, json.ErrUnknownName):
			fe.Code, fe.Message = CodeUnknownField, "is not a known field"
		case errors.Is(semErr.Err, ErrMoneyPrecision):
			fe.Code, fe.Message = CodePrecision, ErrMoneyPrecision.Error()
		case errors.Is(semErr.Err, ErrMoneyRange):
			fe.Code, fe.Message = CodeOutOfRange, ErrMoneyRange.Error()
		case errors.Is(semErr.Err, ErrMoneySyntax):
			fe.Code, fe.Message = CodeInvalidType, ErrMoneySyntax.Error()
		default:
			fe.Code, fe.Message = CodeInvalidType, typeReason(semErr)
		}
	}
	if fe.Field == "" && prefix == "" {
		fe.Field = "body"
	}
	return (&ValidationError{Errors: []FieldError{fe}}).WithPrefix(prefix)
}

func syntaxReason(err error) string {
	if err == nil {
		return "syntax error"
	}
	msg := err.Error()
	if strings.Contains(msg, "UTF-8") {
		return "invalid UTF-8"
	}
	return msg
}

func typeReason(e *json.SemanticError) string {
	switch e.GoType.String() {
	case "string", "*string", "domain.CustomerKind", "*domain.CustomerKind", "domain.OrderChannel",
		"domain.CommunicationPreference", "domain.PriceSensitivity":
		return "must be a string"
	case "int", "int64", "*int64":
		return "must be an integer"
	case "[]string":
		return "must be a list of strings"
	case "*uuid.UUID", "uuid.UUID":
		return "must be a UUID string"
	}
	if e.JSONKind != 0 {
		return "has the wrong type (" + e.JSONKind.String() + ")"
	}
	return "has the wrong type"
}

// pointerToField turns "/data/core_needs/0" into "data.core_needs[0]".
func pointerToField(ptr string) string {
	if ptr == "" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if tok != "" && allDigits(tok) && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}
