package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/httpapi"
)

// rawCall sends one request with exactly the given headers (Host among
// them) to the test server and decodes the answer.
func (e *apiEnv) rawCall(method, path string, headers map[string]string, body string) response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		r.into(e.t, &r.obj)
	}
	return r
}

func TestQueryStringsThatDoNotParseAreRefusedNamingTheParameter(t *testing.T) {
	t.Parallel()
	e := newAPI(t)
	e.post(inquiry("KH1", "x")).expect(t, http.StatusCreated)
	for _, c := range []struct {
		name, path, code, field string
	}{
		{"invalid UTF-8 in a filter", "/v1/customers/KH1/events?limit=%ff", httpapi.CodeInvalidQuery, "limit"},
		{"invalid UTF-8 in a key", "/v1/customers/KH1/events?%ff=1", httpapi.CodeInvalidQuery, "query"},
		{"semicolon, which Go drops silently", "/v1/customers/KH1/events?limit=%27;--", httpapi.CodeInvalidQuery, "limit"},
		{"semicolon as a separator", "/v1/customers/KH1/events?after=1;limit=2", httpapi.CodeInvalidQuery, "after"},
		{"bad escape", "/v1/customers/KH1/events?limit=%zz", httpapi.CodeInvalidQuery, "limit"},
		{"NUL in a value", "/v1/customers/KH1/events?unmasked=%00", httpapi.CodeInvalidQuery, "unmasked"},
		{"unknown parameter", "/v1/customers/KH1/events?limt=5", httpapi.CodeUnknownParameter, "limt"},
		{"parameter on an endpoint without any", "/v1/events?x=1", httpapi.CodeUnknownParameter, "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := http.MethodGet
			body := ""
			if strings.HasPrefix(c.path, "/v1/events") {
				method, body = http.MethodPost, inquiry("KH1", "y")
			}
			e.rawCall(method, c.path, map[string]string{"Content-Type": "application/json"}, body).
				expectError(t, http.StatusBadRequest, c.code, c.field)
		})
	}
	e.expectStored(1)
	// A query that parses is served as before.
	e.get("/v1/customers/KH1/events?limit=1&after=0").expect(t, http.StatusOK)
}

func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	e := newAPI(t)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	envelope := inquiry("KH-XS", "x")
	for _, c := range []struct {
		name    string
		method  string
		headers map[string]string
		status  int
		code    string
		field   string
	}{
		{"text/plain body", "POST", map[string]string{"Content-Type": "text/plain"}, 415, httpapi.CodeUnsupportedMedia, "Content-Type"},
		{"form body", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, httpapi.CodeUnsupportedMedia, "Content-Type"},
		{"no content type", "POST", map[string]string{}, 415, httpapi.CodeUnsupportedMedia, "Content-Type"},
		{"JSON from another origin", "POST", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, httpapi.CodeCrossOrigin, "Origin"},
		{"text/plain from another origin", "POST", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, httpapi.CodeCrossOrigin, "Origin"},
		{"origin null", "POST", map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, httpapi.CodeCrossOrigin, "Origin"},
		{"same host, other port", "POST", map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403, httpapi.CodeCrossOrigin, "Origin"},
		{"browser says cross-site", "POST", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, httpapi.CodeCrossOrigin, "Sec-Fetch-Site"},
		{"read from another origin", "GET", map[string]string{"Origin": "http://evil.example"}, 403, httpapi.CodeCrossOrigin, "Origin"},
		{"rebound DNS name", "GET", map[string]string{"Host": "evil.example:" + strings.Split(host, ":")[1]}, 421, httpapi.CodeHostNotAllowed, "Host"},
		{"rebound DNS name, write", "POST", map[string]string{"Host": "evil.example", "Content-Type": "application/json"}, 421, httpapi.CodeHostNotAllowed, "Host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, body := "/v1/customers/KH-XS/events", ""
			if c.method == "POST" {
				path, body = "/v1/events", envelope
			}
			e.rawCall(c.method, path, c.headers, body).expectError(t, c.status, c.code, c.field)
		})
	}
	e.expectStored(0)
	// The workbench's own requests pass: same origin, JSON.
	same := map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin"}
	e.rawCall("POST", "/v1/events", same, envelope).expect(t, http.StatusCreated)
	e.rawCall("GET", "/v1/customers/KH-XS/events", map[string]string{"Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin", "Host": "localhost"}, "").
		expectError(t, http.StatusForbidden, httpapi.CodeCrossOrigin, "Origin") // origin 127.0.0.1 is not localhost
	e.rawCall("GET", "/v1/customers/KH-XS/events", map[string]string{"Sec-Fetch-Site": "none", "Host": "localhost"}, "").expect(t, http.StatusOK)
	// Health probes answer whatever the Host.
	e.rawCall("GET", "/healthz", map[string]string{"Host": "10.0.0.7:8080"}, "").expect(t, http.StatusOK)
}

func TestConfiguredHostNamesAreServed(t *testing.T) {
	t.Parallel()
	e := newAPI(t, func(c *httpapi.Config) { c.AllowedHosts = []string{"segments.example.com", "127.0.0.1"} })
	e.post(inquiry("KH-H", "x")).expect(t, http.StatusCreated)
	e.rawCall("GET", "/v1/customers/KH-H/events", map[string]string{"Host": "Segments.Example.com:8443"}, "").expect(t, http.StatusOK)
	e.rawCall("GET", "/v1/customers/KH-H/events", map[string]string{"Host": "localhost"}, "").
		expectError(t, http.StatusMisdirectedRequest, httpapi.CodeHostNotAllowed, "Host")
}
