package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// customerCode validates the {code} path value, answering 400 when bad.
func (a *api) customerCode(w http.ResponseWriter, r *http.Request) (domain.CustomerCode, bool) {
	code := r.PathValue("code")
	if !domain.ValidCustomerCode(code) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "customer", Message: "customer must be 1-64 characters of letters, digits, '-', '_' or '.'"})
		return "", false
	}
	return domain.CustomerCode(code), true
}

func (a *api) getCustomer(w http.ResponseWriter, r *http.Request) {
	code, ok := a.customerCode(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if v := q.Get("unmasked"); v != "" && v != "false" {
		// Plaintext personal data is for admin tokens only; none is configured.
		writeError(w, http.StatusForbidden, apiError{Code: "forbidden", Field: "unmasked", Message: "unmasked personal data requires an admin token"})
		return
	}
	var asOf time.Time
	if v := q.Get("as_of"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "as_of", Message: "as_of must be an RFC 3339 time such as 2026-11-23T10:00:00+08:00"})
			return
		}
		asOf = t
	}
	doc, err := a.cfg.Queries.Customer(r.Context(), code, asOf, a.cfg.Now(), eventstore.Masked)
	if err != nil {
		a.queryFailed(w, err, code)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (a *api) getLabelHistory(w http.ResponseWriter, r *http.Request) {
	code, ok := a.customerCode(w, r)
	if !ok {
		return
	}
	changes, err := a.cfg.Queries.History(r.Context(), code)
	if err != nil {
		a.queryFailed(w, err, code)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": code, "changes": changes})
}

func (a *api) getSegmentSummary(w http.ResponseWriter, r *http.Request) {
	s, err := a.cfg.Queries.Summary(r.Context())
	if err != nil {
		a.queryFailed(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) queryFailed(w http.ResponseWriter, err error, code domain.CustomerCode) {
	if errors.Is(err, projections.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "customer_not_found", Field: "customer", Message: "no customer " + string(code)})
		return
	}
	a.readFailed(w, err, code)
}
