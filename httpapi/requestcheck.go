package httpapi

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultAllowedHosts are the host names served when Config.AllowedHosts is
// empty: the loopback forms a local client uses.
var DefaultAllowedHosts = []string{"localhost", "127.0.0.1", "::1"}

// Codes of the requests refused before any handler runs.
const (
	CodeInvalidQuery     = "invalid_query"
	CodeUnknownParameter = "unknown_parameter"
	CodeHostNotAllowed   = "host_not_allowed"
	CodeCrossOrigin      = "cross_origin"
	CodeUnsupportedMedia = "unsupported_media_type"
)

// checkRequests refuses, for every route, what a browser on another site or
// a rebound DNS name could send, and query strings that do not parse:
//   - a Host header that is not one of the configured names (421), so a
//     rebound name cannot read data (probes of /healthz and /readyz excepted:
//     load balancers address them by IP);
//   - a request from another origin (Origin that is not this Host, or
//     Sec-Fetch-Site cross-site/same-site) (403); same-origin requests of the
//     workbench pass;
//   - a body that is not application/json (415): HTML forms cannot send it
//     without a CORS preflight, which the API never grants;
//   - a query string with invalid escapes, invalid UTF-8 or ';' (which Go's
//     parser drops silently), or a parameter the route does not take (400,
//     naming the parameter).
func (a *api) checkRequests(mux *http.ServeMux, params map[string][]string) http.Handler {
	allowed := map[string]bool{}
	hosts := a.cfg.AllowedHosts
	if len(hosts) == 0 {
		hosts = DefaultAllowedHosts
	}
	for _, h := range hosts {
		allowed[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if !probe && !allowed[hostName(r.Host)] {
			a.reject(w, http.StatusMisdirectedRequest, apiError{Code: CodeHostNotAllowed, Field: "Host",
				Message: "Host " + r.Host + " is not served here (configure SEGMENTS_ALLOWED_HOSTS) / 此主机名不受理"})
			return
		}
		if e, ok := crossOrigin(r); !ok {
			a.reject(w, http.StatusForbidden, e)
			return
		}
		_, pattern := mux.Handler(r)
		known, declared := params[pattern]
		if declared && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				a.reject(w, http.StatusUnsupportedMediaType, apiError{Code: CodeUnsupportedMedia, Field: "Content-Type",
					Message: "Content-Type must be application/json / 请求体须为 application/json"})
				return
			}
		}
		if e, ok := checkQuery(r.URL.RawQuery, known, declared); !ok {
			a.reject(w, http.StatusBadRequest, e)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// hostName is the lower-case host of a Host header, without port or brackets.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

// crossOrigin refuses requests a browser marks as coming from elsewhere.
func crossOrigin(r *http.Request) (apiError, bool) {
	refuse := apiError{Code: CodeCrossOrigin, Field: "Origin", Message: "cross-origin requests are refused / 不接受跨站请求"}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		refuse.Field = "Sec-Fetch-Site"
		return refuse, false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return apiError{}, true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
		return refuse, false
	}
	return apiError{}, true
}

// checkQuery parses a raw query strictly. known lists the route's
// parameters when declared is true.
func checkQuery(raw string, known []string, declared bool) (apiError, bool) {
	if raw == "" {
		return apiError{}, true
	}
	for part := range strings.SplitSeq(raw, "&") {
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, kerr := url.QueryUnescape(rawKey)
		if kerr != nil || !utf8.ValidString(key) || strings.Contains(rawKey, ";") {
			field := "query"
			if kerr == nil && utf8.ValidString(key) {
				field = key
			}
			return apiError{Code: CodeInvalidQuery, Field: field,
				Message: "the query string does not parse (invalid escape, invalid UTF-8 or ';') / 查询参数无法解析"}, false
		}
		value, verr := url.QueryUnescape(rawValue)
		if verr != nil || !utf8.ValidString(value) || strings.ContainsRune(value, 0) || strings.Contains(rawValue, ";") {
			return apiError{Code: CodeInvalidQuery, Field: key,
				Message: key + " does not parse (invalid escape, invalid UTF-8, NUL or ';') / 参数无法解析"}, false
		}
		if declared && key != "" && !slices.Contains(known, key) {
			return apiError{Code: CodeUnknownParameter, Field: key,
				Message: key + " is not a parameter of this endpoint / 未知参数"}, false
		}
	}
	return apiError{}, true
}
