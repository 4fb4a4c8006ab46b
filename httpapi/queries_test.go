package httpapi_test

import (
	"bytes"
	"context"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// queryAPI is the API with the read side on a fresh database; events are
// posted at chosen instants and projected at once.
type queryAPI struct {
	*apiEnv
	proj *projections.Projector
}

func newQueryAPI(t *testing.T) *queryAPI {
	t.Helper()
	q := &queryAPI{}
	q.apiEnv = newAPI(t, func(cfg *httpapi.Config) {
		store, ok := cfg.Store.(*eventstore.Store)
		if !ok {
			t.Fatalf("test store is a %T", cfg.Store)
		}
		q.proj = projections.New(projections.Config{Pool: store.Pool(), Logger: testenv.Logger(t), Now: cfg.Now})
		cfg.Queries = projections.NewQueries(q.proj, store)
	})
	return q
}

// postAt records one envelope with occurred_at = at, the clock a minute
// later, projects the customer and returns the event id.
func (q *queryAPI) postAt(at time.Time, customer, envelope string) string {
	q.t.Helper()
	q.clock.Set(at.Add(time.Minute))
	envelope = with(envelope, `"occurred_at":"`+at.Format(time.RFC3339)+`"`)
	res := q.post(envelope).expect(q.t, 201).ingest(q.t)
	if _, err := q.proj.Apply(context.Background(), streamIDsOf(customer)); err != nil {
		q.t.Fatal(err)
	}
	return res.EventID
}

func streamIDsOf(codes ...string) []uuid.UUID {
	out := make([]uuid.UUID, len(codes))
	for i, c := range codes {
		out[i] = domain.CustomerCode(c).StreamID()
	}
	return out
}

func fullRegistration(customer string) string {
	return `{"type":"CustomerRegistered","customer":"` + customer + `","data":{"name":"深圳市华芯电子元件有限公司","kind":"enterprise",` +
		`"industry":"制造业-电子元件","region":"广东-深圳","owner":"王经理","source_channel":"展会",` +
		`"contact":{"name":"李明","title":"采购经理","phone":"13812345678","email":"li.ming@example.com"}}}`
}

const (
	qKH1 = "KH202405010001"
	qKH4 = "KH202405010004"
)

// seedQueries records a strategic, highly active customer (★★★战略伙伴) and
// one reported only by an order; the clock ends at t0.
func (q *queryAPI) seedQueries() (registered string) {
	q.t.Helper()
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	registered = q.postAt(ago(400*24*time.Hour), qKH1, fullRegistration(qKH1))
	q.postAt(ago(45*24*time.Hour), qKH1, orderPlaced(qKH1, "SO-2026-0815", `"650000.00"`))
	q.postAt(ago(10*24*time.Hour), qKH1, orderPlaced(qKH1, "SO-2026-1102", `"550000.00"`))
	q.postAt(ago(9*24*time.Hour), qKH1, `{"type":"SatisfactionRated","customer":"`+qKH1+`","data":{"score":5}}`)
	q.postAt(ago(3*24*time.Hour), qKH4, orderPlaced(qKH4, "SO-2026-1120", "3000"))
	q.clock.Set(t0)
	return registered
}

func obj(t testing.TB, v any, path string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object: %v", path, v)
	}
	return m
}

// labelShape checks a label or tag entry of the document.
func labelShape(t testing.TB, path string, v any, keys ...string) map[string]any {
	t.Helper()
	m := obj(t, v, path)
	for _, k := range append(keys, "display", "reason", "since") {
		s, ok := m[k].(string)
		if !ok || s == "" {
			t.Errorf("%s.%s = %v, want a non-empty string", path, k, m[k])
		}
	}
	if since, _ := m["since"].(string); !strings.HasSuffix(since, "+08:00") {
		t.Errorf("%s.since = %v, want RFC 3339 in the rules' time zone", path, m["since"])
	}
	if m["rule_version"] != 1.0 {
		t.Errorf("%s.rule_version = %v, want 1", path, m["rule_version"])
	}
	return m
}

func TestCustomerDocumentShape(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedQueries()

	d := q.get("/v1/customers/"+qKH1).expect(t, 200).obj
	if d["customer"] != qKH1 || d["version"] != 4.0 || d["as_of"] != "2026-11-23T18:00:00+08:00" {
		t.Errorf("customer %v version %v as_of %v", d["customer"], d["version"], d["as_of"])
	}
	p := obj(t, d["profile"], "profile")
	for k, want := range map[string]any{"name": "深圳市华芯电子元件有限公司", "kind": "enterprise", "industry": "制造业-电子元件",
		"region": "广东-深圳", "owner": "王经理", "erased": false} {
		if p[k] != want {
			t.Errorf("profile.%s = %v, want %v", k, p[k], want)
		}
	}
	c := obj(t, p["contact"], "profile.contact")
	for k, want := range map[string]any{"name": "李某", "title": "采购经理", "phone": "138****5678", "email": "l***@example.com"} {
		if c[k] != want {
			t.Errorf("profile.contact.%s = %v, want %v (masked)", k, c[k], want)
		}
	}
	if strings.Contains(string(q.get("/v1/customers/"+qKH1).raw), "13812345678") {
		t.Error("the document shows the phone number in plaintext")
	}
	m := obj(t, d["metrics"], "metrics")
	for k, want := range map[string]any{"net_amount": "1200000.00", "order_count": 2.0, "orders_3m": 2.0, "inquiries_3m": 0.0,
		"last_order_at": t0.Add(-10 * 24 * time.Hour).In(cst).Format(time.RFC3339), "latest_satisfaction": 5.0} {
		if m[k] != want {
			t.Errorf("metrics.%s = %#v, want %#v", k, m[k], want)
		}
	}
	labels := obj(t, d["labels"], "labels")
	want := map[string][2]string{
		"value_tier": {"strategic", "战略客户"}, "activity": {"high", "高活跃"}, "need_orientation": {"unknown", "未知"},
		"lifecycle": {"customer", "成交客户"}, "segment": {"strategic/high", "战略高活跃客户"},
	}
	for name, w := range want {
		l := labelShape(t, "labels."+name, labels[name], "value")
		if l["value"] != w[0] || l["display"] != w[1] {
			t.Errorf("labels.%s = %v, want %v", name, l, w)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("labels %v, want %d", labels, len(want))
	}
	if r := obj(t, labels["value_tier"], "")["reason"]; r != "累计净额 1,200,000.00 ≥ 1,000,000.00" {
		t.Errorf("value_tier reason %v", r)
	}
	if s := obj(t, labels["value_tier"], "")["since"]; s != t0.Add(-10*24*time.Hour+time.Minute).In(cst).Format(time.RFC3339) {
		t.Errorf("value_tier since %v, want the second order's recording", s)
	}
	tags, ok := d["tags"].([]any)
	if !ok || len(tags) != 1 {
		t.Fatalf("tags = %v, want [strategic_partner]", d["tags"])
	}
	tag := labelShape(t, "tags[0]", tags[0], "tag")
	if tag["tag"] != "strategic_partner" || tag["display"] != "★★★战略伙伴" || tag["reason"] != "累计净额 1,200,000.00 ≥ 1,000,000.00；近3个月订单 2 ≥ 2" {
		t.Errorf("tags[0] = %v", tag)
	}

	// The order-only customer: no profile yet, tagged needs_completion.
	d = q.get("/v1/customers/"+qKH4).expect(t, 200).obj
	p = obj(t, d["profile"], "profile")
	if p["name"] != nil || p["owner"] != nil || obj(t, p["contact"], "profile.contact")["phone"] != nil {
		t.Errorf("KH4 profile = %v", p)
	}
	if tags, _ := d["tags"].([]any); len(tags) != 1 || obj(t, tags[0], "tags[0]")["tag"] != "needs_completion" {
		t.Errorf("KH4 tags = %v", d["tags"])
	}
	if m := obj(t, d["metrics"], "metrics"); m["net_amount"] != "3000.00" || m["latest_satisfaction"] != nil || m["orders_3m"] != 1.0 {
		t.Errorf("KH4 metrics = %v", m)
	}
}

func TestCustomerDocumentAsOf(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedQueries()
	asOf := t0.Add(-20 * 24 * time.Hour).In(cst).Format(time.RFC3339)
	d := q.get("/v1/customers/"+qKH1+"?as_of="+url.QueryEscape(asOf)).expect(t, 200).obj
	if d["as_of"] != asOf || d["version"] != 2.0 {
		t.Errorf("as_of %v version %v, want %s and 2", d["as_of"], d["version"], asOf)
	}
	labels := obj(t, d["labels"], "labels")
	if v := obj(t, labels["value_tier"], "labels.value_tier")["value"]; v != "key" {
		t.Errorf("value tier as of %s: %v, want key (one order of 650,000.00)", asOf, v)
	}
	if m := obj(t, d["metrics"], "metrics"); m["net_amount"] != "650000.00" || m["orders_3m"] != 1.0 {
		t.Errorf("metrics as of %s: %v", asOf, m)
	}
	if tags, _ := d["tags"].([]any); len(tags) != 0 {
		t.Errorf("tags as of %s: %v, want none", asOf, tags)
	}
	// as_of of now is the live document; UTC input is answered in +08:00.
	live := q.get("/v1/customers/"+qKH1).expect(t, 200)
	now := q.get("/v1/customers/"+qKH1+"?as_of="+url.QueryEscape(t0.UTC().Format(time.RFC3339))).expect(t, 200)
	if !bytes.Equal(now.raw, live.raw) {
		t.Errorf("as_of now:\n%s\nlive:\n%s", now.raw, live.raw)
	}

	for _, bad := range []string{"yesterday", "2026-11-23", "2026-11-23T10:00:00", "2026-13-01T00:00:00Z"} {
		q.get("/v1/customers/"+qKH1+"?as_of="+url.QueryEscape(bad)).expectError(t, 400, domain.CodeInvalidFormat, "as_of")
	}
	// Before the customer's first event it did not exist.
	before := t0.Add(-500 * 24 * time.Hour).Format(time.RFC3339)
	q.get("/v1/customers/"+qKH1+"?as_of="+url.QueryEscape(before)).expectError(t, 404, "customer_not_found", "customer")
}

func TestCustomerQueriesErrors(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedQueries()
	q.get("/v1/customers/KH-NOBODY").expectError(t, 404, "customer_not_found", "customer")
	q.get("/v1/customers/KH-NOBODY/labels/history").expectError(t, 404, "customer_not_found", "customer")
	q.get("/v1/customers/bad%20code").expectError(t, 400, domain.CodeInvalidFormat, "customer")
	q.get("/v1/customers/"+qKH1+"?unmasked=true").expectError(t, 403, "forbidden", "unmasked")
	q.get("/v1/customers/"+qKH1+"?unmasked=false").expect(t, 200)
}

func TestLabelHistoryShape(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	registered := q.seedQueries()
	r := q.get("/v1/customers/"+qKH1+"/labels/history").expect(t, 200)
	changes, ok := r.obj["changes"].([]any)
	if !ok || len(changes) != 13 {
		t.Fatalf("changes = %s, want 13 (5 first values, 4 at each order, the tag)", r.raw)
	}
	prevAt := ""
	for i, v := range changes {
		c := obj(t, v, "changes[]")
		for _, k := range []string{"label", "to", "at"} {
			if s, _ := c[k].(string); s == "" {
				t.Errorf("change %d: %s = %v", i, k, c[k])
			}
		}
		if _, ok := c["from"]; !ok {
			t.Errorf("change %d has no from", i)
		}
		at := c["at"].(string)
		if at < prevAt || !strings.HasSuffix(at, "+08:00") {
			t.Errorf("change %d at %s after %s: not oldest first in +08:00", i, at, prevAt)
		}
		prevAt = at
		cause := obj(t, c["cause"], "cause")
		if cause["kind"] != "event" || cause["event_id"] == nil || c["rule_version"] != 1.0 {
			t.Errorf("change %d: cause %v rule_version %v", i, cause, c["rule_version"])
		}
		if i < 5 {
			if c["from"] != nil || cause["event_id"] != registered {
				t.Errorf("first value %d: from %v, cause %v; want null from the registration %s", i, c["from"], cause, registered)
			}
		}
	}
	last := obj(t, changes[12], "changes[12]")
	if last["label"] != "tag:strategic_partner" || last["from"] != "absent" || last["to"] != "present" {
		t.Errorf("last change %v, want tag:strategic_partner absent → present", last)
	}
	if first := obj(t, changes[0], "changes[0]"); first["label"] != "value_tier" || first["to"] != "potential" {
		t.Errorf("first change %v", first)
	}
}

func TestSegmentSummaryShape(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedQueries()
	s := q.get("/v1/segments/summary").expect(t, 200).obj
	if s["customers"] != 2.0 || s["net_amount"] != "1203000.00" {
		t.Errorf("customers %v net %v, want 2 and 1203000.00", s["customers"], s["net_amount"])
	}
	labels := obj(t, s["labels"], "labels")
	for _, name := range domain.Labels {
		values, ok := labels[name].([]any)
		if !ok || len(values) == 0 {
			t.Fatalf("labels.%s = %v", name, labels[name])
		}
		var customers, share, netShare float64
		for _, v := range values {
			e := obj(t, v, "labels."+name+"[]")
			if _, ok := e["value"].(string); !ok {
				t.Errorf("labels.%s entry %v has no value", name, e)
			}
			if _, ok := e["net_amount"].(string); !ok {
				t.Errorf("labels.%s entry %v: net_amount is not a decimal string", name, e)
			}
			customers += e["customers"].(float64)
			share += e["share"].(float64)
			netShare += e["net_amount_share"].(float64)
		}
		if customers != 2 || math.Abs(share-1) > 1e-9 || math.Abs(netShare-1) > 1e-9 {
			t.Errorf("labels.%s: %v customers, shares %v and %v", name, customers, share, netShare)
		}
	}
	for _, v := range labels["value_tier"].([]any) {
		e := obj(t, v, "value_tier[]")
		if e["value"] == "strategic" && (e["customers"] != 1.0 || e["net_amount"] != "1200000.00" || e["display"] != "战略客户") {
			t.Errorf("strategic: %v", e)
		}
	}
	matrix, ok := s["matrix"].([]any)
	if !ok || len(matrix) != 12 {
		t.Fatalf("matrix = %v, want 12 cells", s["matrix"])
	}
	var cells float64
	for _, v := range matrix {
		c := obj(t, v, "matrix[]")
		cells += c["customers"].(float64)
		if c["segment"] == "strategic/high" && (c["customers"] != 1.0 || c["net_amount"] != "1200000.00" || c["display"] != "战略高活跃客户") {
			t.Errorf("strategic/high cell %v", c)
		}
	}
	if cells != 2 {
		t.Errorf("matrix holds %v customers", cells)
	}
	if tags, _ := s["tags"].([]any); len(tags) != 4 {
		t.Errorf("tags = %v, want the 4 tags of the rule set", s["tags"])
	}
}
