// Package httpapi is the HTTP interface of Segments: event ingestion
// (POST /v1/events), the recorded history of a customer, health, readiness
// and metrics. Errors have the shape {"error": {"code", "message", "field"}}.
package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// MaxBodyBytes is the largest accepted request body (1 MiB).
const MaxBodyBytes = 1 << 20

// EventStore is what the API needs of the event store.
type EventStore interface {
	Append(ctx context.Context, req domain.AppendRequest) ([]eventstore.Result, error)
	ReadStream(ctx context.Context, customer domain.CustomerCode, afterVersion int64, limit int) ([]eventstore.RecordedEvent, error)
	OpenPersonalData(ctx context.Context, streams []uuid.UUID) (*eventstore.PersonalData, error)
}

// Metrics receives the API's measurements.
type Metrics interface {
	Rejected(transport, reason string)
	Ingested(transport string, n int)
}

// Config configures the API.
type Config struct {
	Store    EventStore
	Now      func() time.Time
	Location *time.Location
	Logger   *slog.Logger
	Metrics  Metrics
	// Ready reports whether the API should receive traffic and the state of
	// each dependency and worker by name ("database": "ok", "bus":
	// "disconnected", …), shown in the /readyz body. The states must be
	// fixed words, never error texts: /readyz answers anonymous callers.
	// nil means always ready.
	Ready func(ctx context.Context) (ready bool, checks map[string]string)
	// MetricsHandler serves /metrics when set.
	MetricsHandler http.Handler
	// Queries serves the customer document, label history and segment
	// summary; those endpoints are absent when nil.
	Queries Queries
	// Auditor serves the hash-chain verification and the disclosure log;
	// absent when nil.
	Auditor Auditor
	// Deliveries serves the deliveries shown under an alert; none when nil.
	Deliveries Deliveries
	// Imports runs spreadsheet imports (POST /v1/imports, GET
	// /v1/imports/{id}); absent when nil.
	Imports Imports
	// Tokens are the bearer tokens; empty means the API is open (and the
	// server must listen on loopback only).
	Tokens *auth.Set
	// AllowedHosts are the names the Host header may carry (ports aside);
	// empty means DefaultAllowedHosts.
	AllowedHosts []string
	// Alerts serves GET /v1/alerts/{id} and the alert actions; when nil,
	// Queries serves them if it can (projections.Queries does).
	Alerts AlertReader
	// Rules previews candidate rules files (POST /v1/rules/preview);
	// absent when nil.
	Rules RulesPreviewer
}

// Auditor is what the audit endpoints need of the event store.
type Auditor interface {
	VerifyAll(ctx context.Context) ([]eventstore.Break, int64, error)
	VerifyStream(ctx context.Context, customer domain.CustomerCode) (*eventstore.Break, error)
	RecordDisclosure(ctx context.Context, who string, customer domain.CustomerCode, endpoint string) error
	RecordDisclosures(ctx context.Context, who string, customers []domain.CustomerCode, endpoint string) error
	Disclosures(ctx context.Context, customer domain.CustomerCode, limit int) ([]eventstore.DisclosureRecord, error)
}

// Queries is what the API needs of the read side.
type Queries interface {
	Customer(ctx context.Context, code domain.CustomerCode, asOf, now time.Time, how eventstore.Disclosure) (*projections.Document, error)
	History(ctx context.Context, code domain.CustomerCode) ([]projections.HistoryEntry, error)
	Summary(ctx context.Context) (*projections.Summary, error)
	Alerts(ctx context.Context, f projections.AlertFilter) ([]projections.AlertDocument, string, error)
	RuleHistory(ctx context.Context, now time.Time) ([]projections.RuleVersionInfo, error)
	Customers(ctx context.Context, f projections.CustomerFilter, how eventstore.Disclosure) ([]projections.CustomerCard, string, error)
	EachCustomerPage(ctx context.Context, f projections.CustomerFilter, size int, how eventstore.Disclosure, fn func([]projections.CustomerCard) error) error
	Trend(ctx context.Context, label, interval string, from, to, now time.Time) (*projections.Trend, error)
	Vocabulary() map[string][]projections.CardValue
}

type api struct {
	cfg Config
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if ar, ok := cfg.Queries.(AlertReader); ok && cfg.Alerts == nil {
		cfg.Alerts = ar
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", a.guard(auth.ScopeIngest, a.postEvents))
	if cfg.Imports != nil {
		// Importing writes events: the ingest scope, like POST /v1/events.
		mux.HandleFunc("POST /v1/imports", a.guard(auth.ScopeIngest, a.postImport))
		mux.HandleFunc("GET /v1/imports/{id}", a.guard(auth.ScopeIngest, a.getImport))
	}
	mux.HandleFunc("GET /v1/customers/{code}/events", a.guard(auth.ScopeAudit, a.getCustomerEvents))
	if cfg.Queries != nil {
		// The document needs read, as_of audit (see documentScope); unmasked
		// needs admin, checked in the handler.
		mux.HandleFunc("GET /v1/customers/{code}", a.guardBy(documentScope, a.getCustomer))
		mux.HandleFunc("GET /v1/customers/{code}/labels/history", a.guard(auth.ScopeAudit, a.getLabelHistory))
		mux.HandleFunc("GET /v1/segments/summary", a.guard(auth.ScopeRead, a.getSegmentSummary))
		mux.HandleFunc("GET /v1/alerts", a.guard(auth.ScopeRead, a.getAlerts))
	}
	if cfg.Alerts != nil {
		mux.HandleFunc("GET /v1/alerts/{id}", a.guard(auth.ScopeRead, a.getAlert))
		mux.HandleFunc("POST /v1/alerts/{id}/ack", a.guard(auth.ScopeRead, a.actOn(nil, ackEvent)))
		mux.HandleFunc("POST /v1/alerts/{id}/assign", a.guard(auth.ScopeRead, a.actOn([]string{"to"}, assignEvent)))
		mux.HandleFunc("POST /v1/alerts/{id}/snooze", a.guard(auth.ScopeRead, a.actOn([]string{"until"}, snoozeEvent)))
		mux.HandleFunc("POST /v1/alerts/{id}/resolve", a.guard(auth.ScopeRead, a.actOn([]string{"note", "channel"}, resolveEvent)))
	}
	if cfg.Queries != nil {
		mux.HandleFunc("GET /v1/rules", a.guard(auth.ScopeAudit, a.getRules))
		mux.HandleFunc("GET /v1/customers", a.guard(auth.ScopeRead, a.getCustomers))
		mux.HandleFunc("GET /v1/customers.csv", a.guard(auth.ScopeRead, a.exportCustomersCSV))
		mux.HandleFunc("GET /v1/customers.xlsx", a.guard(auth.ScopeRead, a.exportCustomersXLSX))
		mux.HandleFunc("GET /v1/segments/trend", a.guard(auth.ScopeRead, a.getSegmentTrend))
		mux.HandleFunc("GET /v1/segments/vocabulary", a.guard(auth.ScopeRead, a.getVocabulary))
	}
	if cfg.Rules != nil {
		mux.HandleFunc("POST /v1/rules/preview", a.guard(auth.ScopeRules, a.postRulesPreview))
	}
	if cfg.Auditor != nil {
		mux.HandleFunc("GET /v1/audit/verify", a.guard(auth.ScopeAudit, a.getVerifyAll))
		mux.HandleFunc("GET /v1/customers/{code}/audit/verify", a.guard(auth.ScopeAudit, a.getVerifyCustomer))
		mux.HandleFunc("GET /v1/audit/disclosures", a.guard(auth.ScopeAudit, a.getDisclosures))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if cfg.MetricsHandler != nil {
		mux.Handle("GET /metrics", cfg.MetricsHandler)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return a.recoverPanics(a.checkRequests(mux, routeParameters))
}

// routeParameters are the query parameters each route takes; any other is
// refused. A route absent here takes any.
var routeParameters = map[string][]string{
	"POST /v1/events":                         {},
	"GET /v1/customers/{code}/events":         {"after_version", "after", "limit", "unmasked"},
	"GET /v1/customers/{code}":                {"as_of", "unmasked"},
	"GET /v1/customers/{code}/labels/history": {},
	"GET /v1/segments/summary":                {},
	"GET /v1/alerts":                          {"status", "owner", "kind", "customer", "cursor", "limit"},
	"GET /v1/rules":                           {},
	"GET /v1/audit/verify":                    {},
	"GET /v1/customers/{code}/audit/verify":   {},
	"GET /v1/audit/disclosures":               {"customer", "limit"},
	"GET /v1/alerts/{id}":                     {},
	"POST /v1/alerts/{id}/ack":                {},
	"POST /v1/alerts/{id}/assign":             {},
	"POST /v1/alerts/{id}/snooze":             {},
	"POST /v1/alerts/{id}/resolve":            {},
	"POST /v1/rules/preview":                  {},
}

func (a *api) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				a.cfg.Logger.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, apiError{Code: "internal", Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type apiError struct {
	Code    string              `json:"code"`
	Message string              `json:"message"`
	Field   string              `json:"field,omitempty"`
	Details []domain.FieldError `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, map[string]apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.MarshalWrite(w, v, json.Deterministic(true))
}

func (a *api) reject(w http.ResponseWriter, status int, e apiError) {
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.Rejected("http", e.Code)
	}
	writeError(w, status, e)
}

// appendedEvent is one entry of the ingest response.
type appendedEvent struct {
	EventID    uuid.UUID `json:"event_id"`
	Customer   string    `json:"customer"`
	Version    int64     `json:"version"`
	Position   int64     `json:"position"`
	RecordedAt string    `json:"recorded_at"`
	Duplicate  bool      `json:"duplicate"`
}

func (a *api) postEvents(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.reject(w, http.StatusRequestEntityTooLarge, apiError{Code: "body_too_large", Field: "body", Message: "request body exceeds 1 MiB"})
			return
		}
		a.reject(w, http.StatusBadRequest, apiError{Code: "unreadable_body", Field: "body", Message: "could not read the request body"})
		return
	}
	req, err := domain.DecodeAppendRequest(body, a.cfg.Now())
	if err != nil {
		var ve *domain.ValidationError
		if !errors.As(err, &ve) {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Message: err.Error()})
			return
		}
		first := ve.First()
		a.reject(w, http.StatusBadRequest, apiError{Code: first.Code, Field: first.Field, Message: first.Field + " " + first.Message, Details: ve.Errors})
		return
	}
	if bad := bindActor(r, &req); bad != nil {
		a.reject(w, http.StatusBadRequest, *bad)
		return
	}
	results, err := a.cfg.Store.Append(r.Context(), req)
	if err != nil {
		a.appendFailed(w, r, req, err)
		return
	}
	out := make([]appendedEvent, len(results))
	status := http.StatusOK
	stored := 0
	for i, res := range results {
		out[i] = appendedEvent{
			EventID: res.EventID, Customer: string(res.Customer), Version: res.Version,
			Position: res.Position, RecordedAt: res.RecordedAt.In(a.cfg.Location).Format(time.RFC3339Nano), Duplicate: res.Duplicate,
		}
		if !res.Duplicate {
			status = http.StatusCreated
			stored++
		}
	}
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.Ingested("http", stored)
	}
	if req.Batch {
		writeJSON(w, status, map[string]any{"events": out})
		return
	}
	// The single form answers with the event's fields at the top level, and
	// the same list as the batch form for clients that handle both alike.
	e := out[0]
	writeJSON(w, status, map[string]any{
		"event_id": e.EventID, "customer": e.Customer, "version": e.Version, "position": e.Position,
		"recorded_at": e.RecordedAt, "duplicate": e.Duplicate, "events": out,
	})
}

func (a *api) appendFailed(w http.ResponseWriter, r *http.Request, req domain.AppendRequest, err error) {
	var vc *eventstore.VersionConflictError
	var ee *eventstore.EventError
	switch {
	case errors.As(err, &vc):
		a.reject(w, http.StatusConflict, apiError{Code: "version_conflict", Field: "expected_version", Message: vc.Error()})
	case errors.As(err, &ee):
		field := ee.Err.Field
		if req.Batch {
			field = "events[" + strconv.Itoa(ee.Index) + "]." + field
		}
		a.reject(w, http.StatusConflict, apiError{Code: ee.Err.Code(), Field: field, Message: ee.Err.Err.Error()})
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrClosed):
		a.cfg.Logger.Warn("append failed: store unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "the event store is unavailable; retry with the same event_id"})
	case r.Context().Err() != nil:
		// The client went away; the events may or may not be recorded, and a
		// retry with the same event_id is answered as a duplicate.
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "cancelled", Message: "request cancelled"})
	default:
		a.cfg.Logger.Error("append failed", "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Code: "internal", Message: "internal error; retry with the same event_id"})
	}
}

// recordedEvent is one entry of a customer's history.
type recordedEvent struct {
	EventID       uuid.UUID    `json:"event_id"`
	Type          string       `json:"type"`
	Customer      string       `json:"customer"`
	Version       int64        `json:"version"`
	Position      int64        `json:"position"`
	OccurredAt    string       `json:"occurred_at"`
	RecordedAt    string       `json:"recorded_at"`
	Source        *string      `json:"source"`
	CorrelationID *string      `json:"correlation_id,omitempty"`
	Data          domain.Event `json:"data"`
}

const maxPage = 1000

func (a *api) getCustomerEvents(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	if !domain.ValidCustomerCode(code) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "customer", Message: "customer must be 1-64 characters of letters, digits, '-', '_' or '.'"})
		return
	}
	after, limit, ok := a.page(w, r)
	if !ok {
		return
	}
	customer := domain.CustomerCode(code)
	if a.hidesCustomer(w, r, customer) {
		return
	}
	events, err := a.cfg.Store.ReadStream(r.Context(), customer, after, limit+1)
	if err != nil {
		a.readFailed(w, err, customer)
		return
	}
	pd, err := a.cfg.Store.OpenPersonalData(r.Context(), []uuid.UUID{customer.StreamID()})
	if err != nil {
		a.readFailed(w, err, customer)
		return
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = strconv.FormatInt(events[len(events)-1].Version, 10)
	}
	how, ok := a.disclosure(w, r, customer)
	if !ok {
		return
	}
	out := make([]recordedEvent, len(events))
	for i, e := range events {
		data, err := pd.Reveal(e, how)
		if err != nil {
			a.readFailed(w, err, customer)
			return
		}
		out[i] = recordedEvent{
			EventID: e.EventID, Type: string(e.Type), Customer: string(e.Customer), Version: e.Version,
			Position: e.Position, OccurredAt: domain.FormatInstant(e.OccurredAt, e.OccurredOffset, a.cfg.Location),
			RecordedAt: e.RecordedAt.In(a.cfg.Location).Format(time.RFC3339Nano), Data: data,
		}
		if e.Source != "" {
			out[i].Source = &e.Source
		}
		if e.CorrelationID != "" {
			out[i].CorrelationID = &e.CorrelationID
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": code, "events": out, "next": next, "erased": pd.Erased(customer.StreamID())})
}

// page reads ?after_version= (or ?after=) and ?limit=.
func (a *api) page(w http.ResponseWriter, r *http.Request) (int64, int, bool) {
	q := r.URL.Query()
	after := int64(0)
	for _, name := range []string{"after_version", "after"} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: name, Message: name + " must be a non-negative integer"})
				return 0, 0, false
			}
			after = n
		}
	}
	limit := maxPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "limit", Message: "limit must be an integer from 1 to 1000"})
			return 0, 0, false
		}
		limit = n
	}
	return after, limit, true
}

func (a *api) readFailed(w http.ResponseWriter, err error, customer domain.CustomerCode) {
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: "customer_not_found", Field: "customer", Message: "no events recorded for customer " + string(customer)})
	case errors.Is(err, eventstore.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "the event store is unavailable"})
	default:
		a.cfg.Logger.Error("read customer events", "customer", customer, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Code: "internal", Message: "internal error"})
	}
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	if a.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		var ready bool
		if ready, checks = a.cfg.Ready(ctx); !ready {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "checks": checks})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}
