package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// guard requires a bearer token with scope (when tokens are configured) and
// passes the token on in the request context.
func (a *api) guard(scope auth.Scope, next http.HandlerFunc) http.HandlerFunc {
	return a.guardBy(func(*http.Request) auth.Scope { return scope }, next)
}

// guardBy is guard with the scope chosen per request.
func (a *api) guardBy(scopeOf func(*http.Request) auth.Scope, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Tokens.Empty() {
			next(w, r)
			return
		}
		scope := scopeOf(r)
		tok, err := a.cfg.Tokens.Authenticate(r.Header.Get("Authorization"), scope)
		if !a.authFailed(w, err, scope) {
			next(w, r.WithContext(auth.WithToken(r.Context(), tok)))
		}
	}
}

// boundOwner is the owner the request's token is bound to, when that
// limits what it reads: "" for unbound, manage and admin tokens.
func boundOwner(r *http.Request) string {
	t := auth.FromContext(r.Context())
	if t == nil || t.Owner == "" || t.Has(auth.ScopeManage) {
		return ""
	}
	return t.Owner
}

// hidesCustomer answers 404 (and true) when an owner-bound token asks for a
// customer its owner does not own now: as for a customer that does not
// exist, so existence does not leak.
func (a *api) hidesCustomer(w http.ResponseWriter, r *http.Request, code domain.CustomerCode) bool {
	owner := boundOwner(r)
	if owner == "" || a.cfg.Alerts == nil {
		return false
	}
	current, err := a.cfg.Alerts.CustomerOwner(r.Context(), code)
	if err == nil && current == owner {
		return false
	}
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		a.readFailed(w, err, code)
		return true
	}
	writeError(w, http.StatusNotFound, apiError{Code: "customer_not_found", Field: "customer", Message: "no customer " + string(code)})
	return true
}

// documentScope is what GET /v1/customers/{code} needs: read for the live
// document, audit for ?as_of= (the past as the system knew it is an
// auditor's question; the audit scope covers as_of, so an audit token needs
// no read scope besides).
func documentScope(r *http.Request) auth.Scope {
	if r.URL.Query().Get("as_of") != "" {
		return auth.ScopeAudit
	}
	return auth.ScopeRead
}

// authFailed answers 401 or 403 for an authentication error.
func (a *api) authFailed(w http.ResponseWriter, err error, scope auth.Scope) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, auth.ErrScope):
		a.reject(w, http.StatusForbidden, apiError{Code: "forbidden", Message: "this request needs a token with scope " + string(scope)})
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="segments"`)
		a.reject(w, http.StatusUnauthorized, apiError{Code: "unauthorized", Message: err.Error()})
	}
	return true
}

// requireScope checks an extra scope inside a handler (as_of needs audit).
func (a *api) requireScope(w http.ResponseWriter, r *http.Request, scope auth.Scope) bool {
	if a.cfg.Tokens.Empty() {
		return true
	}
	_, err := a.cfg.Tokens.Authenticate(r.Header.Get("Authorization"), scope)
	return !a.authFailed(w, err, scope)
}

// disclosure decides how personal data appears: masked, or — with
// ?unmasked=true, an admin token, and the read recorded first — in
// plaintext.
func (a *api) disclosure(w http.ResponseWriter, r *http.Request, customer domain.CustomerCode) (eventstore.Disclosure, bool) {
	v := r.URL.Query().Get("unmasked")
	if v == "" || v == "false" {
		return eventstore.Masked, true
	}
	if v != "true" {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "unmasked", Message: "unmasked must be true or false"})
		return 0, false
	}
	tok := auth.FromContext(r.Context())
	if a.cfg.Tokens.Empty() || tok == nil || !tok.Has(auth.ScopeAdmin) || a.cfg.Auditor == nil {
		a.reject(w, http.StatusForbidden, apiError{Code: "forbidden", Field: "unmasked", Message: "unmasked personal data requires an admin token"})
		return 0, false
	}
	if err := a.cfg.Auditor.RecordDisclosure(r.Context(), tok.Name, customer, r.Method+" "+r.URL.Path); err != nil {
		a.readFailed(w, err, customer)
		return 0, false
	}
	return eventstore.Plaintext, true
}

func (a *api) getVerifyAll(w http.ResponseWriter, r *http.Request) {
	breaks, checked, err := a.cfg.Auditor.VerifyAll(r.Context())
	if err != nil {
		a.readFailed(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": len(breaks) == 0, "events_checked": checked, "breaks": breakDocs(breaks)})
}

func (a *api) getVerifyCustomer(w http.ResponseWriter, r *http.Request) {
	code, ok := a.customerCode(w, r)
	if !ok {
		return
	}
	b, err := a.cfg.Auditor.VerifyStream(r.Context(), code)
	if err != nil {
		a.readFailed(w, err, code)
		return
	}
	var breaks []eventstore.Break
	if b != nil {
		breaks = append(breaks, *b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": code, "ok": b == nil, "breaks": breakDocs(breaks)})
}

type breakDoc struct {
	Customer string `json:"customer"`
	Version  int64  `json:"version"`
	Position int64  `json:"position"`
	Reason   string `json:"reason"`
}

func breakDocs(bs []eventstore.Break) []breakDoc {
	out := make([]breakDoc, len(bs))
	for i, b := range bs {
		out[i] = breakDoc{Customer: string(b.Customer), Version: b.Version, Position: b.Position, Reason: b.Reason}
	}
	return out
}

func (a *api) getDisclosures(w http.ResponseWriter, r *http.Request) {
	var customer domain.CustomerCode
	if c := r.URL.Query().Get("customer"); c != "" {
		if !domain.ValidCustomerCode(c) {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: "customer", Message: "customer must be 1-64 characters of letters, digits, '-', '_' or '.'"})
			return
		}
		customer = domain.CustomerCode(c)
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "limit", Message: "limit must be an integer from 1 to 1000"})
			return
		}
		limit = n
	}
	list, err := a.cfg.Auditor.Disclosures(r.Context(), customer, limit)
	if err != nil {
		a.readFailed(w, err, customer)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"disclosures": list})
}
