package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segments-dev/segments/httpapi"
)

// plainServer is the API without a store: health, readiness and routing do
// not touch it.
func plainServer(t *testing.T, cfg httpapi.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	srv := plainServer(t, httpapi.Config{
		Ready: func(ctx context.Context) (bool, map[string]string) {
			return true, map[string]string{"database": "ok", "bus": "disconnected"}
		},
		MetricsHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "segments_up 1\n")
		}),
	})
	r := doRequest(t, srv, http.MethodGet, "/healthz", nil).expect(t, http.StatusOK)
	if r.obj["status"] != "ok" {
		t.Errorf("/healthz = %s", r.raw)
	}
	r = doRequest(t, srv, http.MethodGet, "/readyz", nil).expect(t, http.StatusOK)
	if r.obj["status"] != "ready" || !strings.Contains(string(r.raw), `"bus":"disconnected"`) {
		t.Errorf("/readyz = %s", r.raw)
	}

	res, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "segments_up 1") {
		t.Errorf("/metrics = %d %s", res.StatusCode, b)
	}
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	srv := plainServer(t, httpapi.Config{Ready: func(ctx context.Context) (bool, map[string]string) {
		if _, ok := ctx.Deadline(); !ok {
			return false, map[string]string{"deadline": "missing"}
		}
		return false, map[string]string{"bus": "streams missing"}
	}})
	r := doRequest(t, srv, http.MethodGet, "/readyz", nil).expect(t, http.StatusServiceUnavailable)
	if r.obj["status"] != "not ready" || !strings.Contains(string(r.raw), `"bus":"streams missing"`) || r.header.Get("Retry-After") == "" {
		t.Errorf("/readyz = %s", r.raw)
	}
	// Liveness does not depend on readiness.
	doRequest(t, srv, http.MethodGet, "/healthz", nil).expect(t, http.StatusOK)
}

func TestUnknownPaths(t *testing.T) {
	t.Parallel()
	srv := plainServer(t, httpapi.Config{})
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v2/events"},
		{http.MethodGet, "/"},
		{http.MethodGet, "/v1/customers/KH1"},
		{http.MethodPost, "/v1/customers/KH1/events"},
		{http.MethodGet, "/metrics"}, // no MetricsHandler configured
	} {
		r := doRequest(t, srv, c.method, c.path, nil)
		r.expectError(t, http.StatusNotFound, "not_found", "")
	}
}
