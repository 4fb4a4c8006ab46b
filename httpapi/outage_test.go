package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// outageAPI is the whole API (writes, reads, audit) on a private PostgreSQL
// cluster that the test crashes and stops.
type outageAPI struct {
	*apiEnv
	cluster *testenv.Cluster
	proj    *projections.Projector
}

func newOutageAPI(t *testing.T) *outageAPI {
	t.Helper()
	ctx := context.Background()
	cluster := testenv.StartCluster(t)
	pool, err := eventstore.Connect(ctx, cluster.URL("segments"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(t0)
	store, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: testenv.MasterKey(t), Now: clock.Now, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	proj := projections.New(projections.Config{Pool: pool, Logger: testenv.Logger(t), Now: clock.Now})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{
		Store: store, Now: clock.Now, Location: cst, Logger: testenv.Logger(t),
		Queries: projections.NewQueries(proj, store), Auditor: store,
	}))
	t.Cleanup(srv.Close)
	return &outageAPI{apiEnv: &apiEnv{t: t, srv: srv, clock: clock}, cluster: cluster, proj: proj}
}

// outageRequests are every endpoint that touches the database.
var outageRequests = []struct{ method, path, body string }{
	{http.MethodPost, "/v1/events", inquiry(qKH1, "报价")},
	{http.MethodGet, "/v1/customers/" + qKH1, ""},
	{http.MethodGet, "/v1/customers/" + qKH1 + "?as_of=2026-11-23T19:00:00%2B08:00", ""},
	{http.MethodGet, "/v1/customers/" + qKH1 + "/labels/history", ""},
	{http.MethodGet, "/v1/customers/" + qKH1 + "/events", ""},
	{http.MethodGet, "/v1/customers/" + qKH1 + "/audit/verify", ""},
	{http.MethodGet, "/v1/segments/summary", ""},
	{http.MethodGet, "/v1/alerts", ""},
	{http.MethodGet, "/v1/rules", ""},
	{http.MethodGet, "/v1/audit/verify", ""},
	{http.MethodGet, "/v1/audit/disclosures", ""},
}

// seed records a customer and projects it, and leaves connections idle in
// the pool: the first requests of an outage meet those dead connections
// (EOF mid-query), the later ones a refused connect.
func (o *outageAPI) seed() {
	o.t.Helper()
	o.post(registered(qKH1)).expect(o.t, http.StatusCreated)
	o.post(orderPlaced(qKH1, "SO-1", `"100.00"`)).expect(o.t, http.StatusCreated)
	if _, err := o.proj.Apply(context.Background(), streamIDsOf(qKH1)); err != nil {
		o.t.Fatal(err)
	}
	o.expectAll(http.StatusOK, http.StatusCreated)
}

// expectAll sends every outage request and checks its status is one of want.
func (o *outageAPI) expectAll(want ...int) {
	o.t.Helper()
	for _, req := range outageRequests {
		var body []byte
		if req.body != "" {
			body = []byte(req.body)
		}
		start := time.Now()
		r := o.do(req.method, req.path, body)
		if took := time.Since(start); took > 5*time.Second {
			o.t.Errorf("%s %s took %v", req.method, req.path, took)
		}
		ok := false
		for _, w := range want {
			ok = ok || r.status == w
		}
		if !ok {
			o.t.Errorf("%s %s: status %d, want one of %v; body %s", req.method, req.path, r.status, want, r.raw)
			continue
		}
		if r.status == http.StatusServiceUnavailable {
			if r.header.Get("Retry-After") == "" {
				o.t.Errorf("%s %s: 503 without Retry-After", req.method, req.path)
			}
			r.expectError(o.t, http.StatusServiceUnavailable, "unavailable", "")
		}
	}
}

func TestEveryEndpointAnswers503WithRetryAfterWhilePostgreSQLIsCrashed(t *testing.T) {
	t.Parallel()
	o := newOutageAPI(t)
	o.seed()
	o.cluster.Crash()
	o.expectAll(http.StatusServiceUnavailable) // dead pooled connections
	o.expectAll(http.StatusServiceUnavailable) // connection refused
	o.cluster.Start()
	o.expectAll(http.StatusOK, http.StatusCreated)
}

func TestEveryEndpointAnswers503WithRetryAfterWhilePostgreSQLShutsDown(t *testing.T) {
	t.Parallel()
	o := newOutageAPI(t)
	o.seed()
	// A fast shutdown ends every session with SQLSTATE 57P01
	// (admin_shutdown) before the server goes away.
	o.cluster.Stop()
	o.expectAll(http.StatusServiceUnavailable)
	o.expectAll(http.StatusServiceUnavailable)
	o.cluster.Start()
	o.expectAll(http.StatusOK, http.StatusCreated)
}
