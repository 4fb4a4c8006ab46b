package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// customerCode validates the {code} path value, answering 400 when bad and
// 404 when an owner-bound token may not see the customer (hidesCustomer).
func (a *api) customerCode(w http.ResponseWriter, r *http.Request) (domain.CustomerCode, bool) {
	code := r.PathValue("code")
	if !domain.ValidCustomerCode(code) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "customer", Message: "customer must be 1-64 characters of letters, digits, '-', '_' or '.'"})
		return "", false
	}
	if a.hidesCustomer(w, r, domain.CustomerCode(code)) {
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
	var asOf time.Time
	if v := q.Get("as_of"); v != "" {
		if !a.requireScope(w, r, auth.ScopeAudit) {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "as_of", Message: "as_of must be an RFC 3339 time such as 2026-11-23T10:00:00+08:00"})
			return
		}
		asOf = t
	}
	how, ok := a.disclosure(w, r, code)
	if !ok {
		return
	}
	doc, err := a.cfg.Queries.Customer(r.Context(), code, asOf, a.cfg.Now(), how)
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

var alertKinds = []string{domain.AlertActivityDropped, domain.AlertChurnRisk, domain.AlertDataIncomplete, domain.AlertValueTierChanged, domain.AlertFollowUpOverdue}

func (a *api) getAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := projections.AlertFilter{Status: q.Get("status"), Owner: q.Get("owner"), Kind: q.Get("kind"), Cursor: q.Get("cursor"), Limit: 50}
	if f.Status != "" && !slices.Contains(domain.AlertStatuses, f.Status) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidEnum, Field: "status", Message: "status must be one of " + strings.Join(domain.AlertStatuses, ", ")})
		return
	}
	if owner := boundOwner(r); owner != "" {
		f.Owner = owner // an owner-bound token lists the alerts its owner holds
	}
	kinds := alertKinds
	if k, ok := a.cfg.Queries.(interface{ AlertKinds() []string }); ok {
		kinds = k.AlertKinds() // with the kinds of the rules' own labels and tags
	}
	if f.Kind != "" && !slices.Contains(kinds, f.Kind) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidEnum, Field: "kind", Message: "kind must be one of " + strings.Join(kinds, ", ")})
		return
	}
	if c := q.Get("customer"); c != "" {
		if !domain.ValidCustomerCode(c) {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "customer", Message: "customer must be 1-64 characters of letters, digits, '-', '_' or '.'"})
			return
		}
		f.Customer = domain.CustomerCode(c)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "limit", Message: "limit must be an integer from 1 to 500"})
			return
		}
		f.Limit = n
	}
	alerts, next, err := a.cfg.Queries.Alerts(r.Context(), f)
	if errors.Is(err, projections.ErrBadCursor) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "cursor", Message: "cursor is not valid; use the next value of a previous page"})
		return
	}
	if err != nil {
		a.readFailed(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": alerts, "next": next})
}

func (a *api) getRules(w http.ResponseWriter, r *http.Request) {
	versions, err := a.cfg.Queries.RuleHistory(r.Context(), a.cfg.Now())
	if err != nil {
		a.readFailed(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
}
