package projections_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// TestAsOfReturnsTheDocumentAsItWasShown records the documents the service
// showed as events arrived (and between events, as windows closed), then
// asks for each instant with as_of: the answers must be the same documents.
func TestAsOfReturnsTheDocumentAsItWasShown(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 2, 3, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	sc := newScript(31, "KHA", 12, start)
	rng := rand.New(rand.NewPCG(31, 5))
	type shown struct {
		code domain.CustomerCode
		at   time.Time
		doc  string
	}
	var seen []shown
	show := func(code domain.CustomerCode) {
		d, err := e.q.Customer(ctxT(t), code, time.Time{}, e.clock.Now(), eventstore.Masked)
		if errors.Is(err, projections.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, shown{code, e.clock.Now(), mustJSON(t, d)})
	}
	for i := range 60 {
		s := sc.next(1 + rng.IntN(4))
		e.record(s.at, s.events...)
		e.apply(s.customers()...)
		for _, c := range s.customers() {
			show(c)
		}
		// Between events: a while later, with windows closing meanwhile;
		// sometimes the scheduler has already passed the boundaries.
		sc.at = s.at.Add(time.Duration(1+rng.IntN(100)) * time.Hour) // the next events come later
		e.clock.Set(sc.at)
		if i%3 == 0 {
			e.catchUp(e.proj)
		}
		show(sc.customers[rng.IntN(len(sc.customers))].code)
	}
	// Long after: everything closed.
	end := sc.at.Add(400 * day)
	e.clock.Set(end)
	for _, c := range sc.customers {
		show(c.code)
	}
	e.catchUp(e.proj)
	if len(seen) < 100 {
		t.Fatalf("only %d documents shown", len(seen))
	}
	later := end.Add(30 * day)
	for _, s := range seen {
		d, err := e.q.Customer(ctxT(t), s.code, s.at, later, eventstore.Masked)
		if err != nil {
			t.Fatalf("%s as of %s: %v", s.code, s.at, err)
		}
		if got := mustJSON(t, d); got != s.doc {
			t.Fatalf("%s as of %s:\n got: %s\nshown: %s", s.code, s.at.Format(time.RFC3339), got, s.doc)
		}
	}
	// Before its first event a customer did not exist.
	first, err := e.store.ReadStream(ctxT(t), sc.customers[0].code, 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("first event: %v %v", first, err)
	}
	if _, err := e.q.Customer(ctxT(t), sc.customers[0].code, first[0].RecordedAt.Add(-time.Microsecond), later, eventstore.Masked); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("as of before the first event: %v, want ErrNotFound", err)
	}
	d, err := e.q.Customer(ctxT(t), sc.customers[0].code, first[0].RecordedAt, later, eventstore.Masked)
	if err != nil || d.Version != 1 {
		t.Fatalf("as of the first event's instant: version %v, %v", d, err)
	}
}

func TestUnknownCustomerIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	e.record(tNow, ev("KH-KNOWN", tNow, inquiry("报价")))
	e.apply("KH-KNOWN")
	for name, f := range map[string]func() error{
		"document": func() error {
			_, err := e.q.Customer(ctxT(t), "KH-UNKNOWN", time.Time{}, tNow, eventstore.Masked)
			return err
		},
		"document as of": func() error {
			_, err := e.q.Customer(ctxT(t), "KH-UNKNOWN", tNow, tNow, eventstore.Masked)
			return err
		},
		"history": func() error {
			_, err := e.q.History(ctxT(t), "KH-UNKNOWN")
			return err
		},
	} {
		if err := f(); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("%s of an unknown customer: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := e.q.History(ctxT(t), "KH-KNOWN"); err != nil {
		t.Errorf("history of a known customer: %v", err)
	}
}

func TestSummaryCountsAndSharesAddUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow.Add(-500*day))
	recordSeeds(e)
	sc := newScript(41, "KHS", 60, tNow.Add(day))
	for range 40 {
		s := sc.next(5)
		e.record(s.at, s.events...)
		e.apply(s.customers()...)
	}
	e.catchUp(e.proj) // stored labels are those of now
	codes := append(slices.Clone(seedCodes), sc.codes()...)

	// What the documents say, customer by customer.
	count := map[string]map[string]int64{}
	net := map[string]map[string]domain.Money{}
	add := func(label, value string, m domain.Money) {
		if count[label] == nil {
			count[label], net[label] = map[string]int64{}, map[string]domain.Money{}
		}
		count[label][value]++
		net[label][value] += m
	}
	var customers int64
	var total domain.Money
	for _, c := range codes {
		d, err := e.q.Customer(ctxT(t), c, time.Time{}, e.clock.Now(), eventstore.Masked)
		if errors.Is(err, projections.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		customers++
		total += d.Metrics.NetAmount
		for name, l := range d.Labels {
			add(name, l.Value, d.Metrics.NetAmount)
		}
		for _, tag := range d.Tags {
			add("tag", tag.Tag, d.Metrics.NetAmount)
		}
	}

	s, err := e.q.Summary(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Customers != customers || s.NetAmount.String() != total.String() || customers < 50 {
		t.Fatalf("summary: %d customers, net %s; documents: %d, %s", s.Customers, s.NetAmount, customers, total)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, name := range domain.Labels {
		values := s.Labels[name]
		if len(values) == 0 {
			t.Fatalf("summary has no %s", name)
		}
		var n int64
		var m domain.Money
		var share, netShare float64
		for _, v := range values {
			if v.Customers != count[name][v.Value] || v.NetAmount.String() != net[name][v.Value].String() {
				t.Errorf("%s=%s: %d customers, net %s; documents: %d, %s", name, v.Value, v.Customers, v.NetAmount, count[name][v.Value], net[name][v.Value])
			}
			if !near(v.Share, float64(v.Customers)/float64(customers)) || !near(v.NetAmountShare, float64(mustMoney(t, v.NetAmount))/float64(total)) {
				t.Errorf("%s=%s: shares %v and %v", name, v.Value, v.Share, v.NetAmountShare)
			}
			if v.Display == "" {
				t.Errorf("%s=%s has no display name", name, v.Value)
			}
			n += v.Customers
			m += mustMoney(t, v.NetAmount)
			share += v.Share
			netShare += v.NetAmountShare
		}
		if n != customers || m != total || !near(share, 1) || !near(netShare, 1) {
			t.Errorf("%s: %d customers, net %s, shares sum to %v and %v", name, n, m, share, netShare)
		}
	}
	for _, v := range s.Tags {
		if v.Customers != count["tag"][v.Value] || v.NetAmount.String() != net["tag"][v.Value].String() {
			t.Errorf("tag %s: %d customers, net %s; documents: %d, %s", v.Value, v.Customers, v.NetAmount, count["tag"][v.Value], net["tag"][v.Value])
		}
	}
	if len(s.Tags) != 4 {
		t.Errorf("summary lists %d tags, want the 4 of the rule set", len(s.Tags))
	}
	// The heat map: every value tier × activity, adding up to the whole.
	var cells int64
	var cellNet domain.Money
	if len(s.Matrix) != 4*3 {
		t.Fatalf("matrix has %d cells, want 4 tiers × 3 activities", len(s.Matrix))
	}
	for _, c := range s.Matrix {
		if c.Segment != c.ValueTier+"/"+c.Activity || c.Customers != count[domain.LabelSegment][c.Segment] || c.NetAmount.String() != net[domain.LabelSegment][c.Segment].String() || c.Display == "" {
			t.Errorf("matrix cell %+v; documents: %d, %s", c, count[domain.LabelSegment][c.Segment], net[domain.LabelSegment][c.Segment])
		}
		cells += c.Customers
		cellNet += mustMoney(t, c.NetAmount)
	}
	if cells != customers || cellNet != total {
		t.Errorf("matrix adds up to %d customers and %s, want %d and %s", cells, cellNet, customers, total)
	}
	// Amounts are exact decimal strings.
	raw := mustJSON(t, s)
	if !strings.Contains(raw, `"net_amount":"`+total.String()+`"`) || !strings.Contains(raw, `"value":"strategic"`) {
		t.Errorf("summary JSON lacks the exact total %q: %.300s", total.String(), raw)
	}
}

// TestHistoryIsOldestFirstWithCauses follows a customer whose activity
// decays after two orders: changes caused by events and by window
// boundaries, tags appearing and disappearing.
func TestHistoryIsOldestFirstWithCauses(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, cst)
	e := newEnv(t, t0)
	const c domain.CustomerCode = "KH202503010001"
	ids := map[uuid.UUID]bool{}
	at := func(d time.Duration, data domain.Event) {
		occurred := t0.Add(d)
		res := e.record(occurred.Add(time.Minute), ev(c, occurred, data))
		ids[res[0].EventID] = true
		e.apply(c)
	}
	at(0, fullProfile("上海明远贸易有限公司", "王经理", "李明", "13812345678", "li.ming@example.com"))
	at(1*day, order("SO-1", "600000"))
	at(10*day, order("SO-2", "500000"))
	at(150*day, rated(2))
	at(200*day, inquiry("续约"))

	changes, err := e.q.History(ctxT(t), c)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		label, from, to, cause string
		at                     time.Time
	}
	o1, o2 := t0.Add(day), t0.Add(10*day)
	rec := func(d time.Duration) time.Time { return t0.Add(d).Add(time.Minute) }
	wants := []want{
		{"value_tier", "", "potential", "event", rec(0)},
		{"activity", "", "low", "event", rec(0)},
		{"need_orientation", "", "unknown", "event", rec(0)},
		{"lifecycle", "", "prospect", "event", rec(0)},
		{"segment", "", "potential/low", "event", rec(0)},
		{"value_tier", "potential", "key", "event", rec(day)},
		{"activity", "low", "medium", "event", rec(day)},
		{"lifecycle", "prospect", "customer", "event", rec(day)},
		{"segment", "potential/low", "key/medium", "event", rec(day)},
		{"value_tier", "key", "strategic", "event", rec(10 * day)},
		{"activity", "medium", "high", "event", rec(10 * day)},
		{"segment", "key/medium", "strategic/high", "event", rec(10 * day)},
		{"tag:strategic_partner", "absent", "present", "event", rec(10 * day)},
		{"activity", "high", "medium", "time", o1.AddDate(0, 3, 0)},
		{"segment", "strategic/high", "strategic/medium", "time", o1.AddDate(0, 3, 0)},
		{"tag:strategic_partner", "present", "absent", "time", o1.AddDate(0, 3, 0)},
		{"activity", "medium", "low", "time", o2.AddDate(0, 3, 0)},
		{"segment", "strategic/medium", "strategic/low", "time", o2.AddDate(0, 3, 0)},
		{"lifecycle", "customer", "lost", "time", o2.AddDate(0, 6, 0)},
		{"tag:churn_warning", "absent", "present", "time", o2.AddDate(0, 6, 0)},
	}
	if len(changes) != len(wants) {
		for _, ch := range changes {
			t.Logf("%s", mustJSON(t, ch))
		}
		t.Fatalf("%d changes, want %d", len(changes), len(wants))
	}
	for i, w := range wants {
		ch := changes[i]
		from := ""
		if ch.From != nil {
			from = *ch.From
		}
		if ch.Label != w.label || from != w.from || (w.from == "" && ch.From != nil) || ch.To != w.to || ch.Cause.Kind != w.cause ||
			ch.At != ts(w.at) || ch.RuleVersion != 1 || ch.Seq != int64(i+1) || ch.Customer != string(c) || ch.Reason == "" || ch.ReasonEN == "" {
			t.Errorf("change %d = %s\nwant %+v", i, mustJSON(t, ch), w)
		}
		switch w.cause {
		case "event":
			if ch.Cause.EventID == nil || !ids[*ch.Cause.EventID] {
				t.Errorf("change %d: cause event %v is not one of the customer's events", i, ch.Cause.EventID)
			}
		default:
			if ch.Cause.EventID != nil {
				t.Errorf("change %d: a time change names event %v", i, ch.Cause.EventID)
			}
		}
		if !strings.HasSuffix(ch.At, "+08:00") {
			t.Errorf("change %d: at %s is not in the rules' time zone", i, ch.At)
		}
	}
	raw := mustJSON(t, changes[0])
	for _, member := range []string{`"from":null`, `"cause":{"kind":"event","event_id":"`, `"rule_version":1`, `"label":"value_tier"`} {
		if !strings.Contains(raw, member) {
			t.Errorf("first change %s lacks %s", raw, member)
		}
	}
	if raw := mustJSON(t, changes[13]); !strings.Contains(raw, `"cause":{"kind":"time","event_id":null}`) {
		t.Errorf("time change %s", raw)
	}
}

// mustMoney is a test total that fits in Money.
func mustMoney(t *testing.T, total domain.Total) domain.Money {
	t.Helper()
	m, ok := total.Money()
	if !ok {
		t.Fatalf("total %s does not fit in Money", total)
	}
	return m
}
