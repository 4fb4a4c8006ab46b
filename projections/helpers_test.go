package projections_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// cst is the rules' time zone (Asia/Shanghai has no DST).
var cst = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// tNow is "now" of the seed scenarios.
var tNow = time.Date(2026, 11, 23, 10, 0, 0, 0, cst)

const day = 24 * time.Hour

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is an event store on a fresh database with a projector and queries.
type env struct {
	t     testing.TB
	clock *testenv.Clock
	store *eventstore.Store
	db    *testenv.DB
	proj  *projections.Projector
	q     *projections.Queries
}

func newEnv(t testing.TB, start time.Time) *env {
	t.Helper()
	clock := testenv.NewClock(start)
	store, db := testenv.Store(t, clock.Now)
	proj := projections.New(projections.Config{Pool: db.Pool, Logger: testenv.Logger(t), Now: clock.Now})
	return &env{t: t, clock: clock, store: store, db: db, proj: proj, q: projections.NewQueries(proj, store)}
}

// withRules returns a projector and queries on the same database with
// another rule book.
func (e *env) withRules(book *domain.RuleBook) (*projections.Projector, *projections.Queries) {
	p := projections.New(projections.Config{Pool: e.db.Pool, Rules: book, Logger: testenv.Logger(e.t), Now: e.clock.Now})
	return p, projections.NewQueries(p, e.store)
}

// record appends the events as one request recorded at instant at.
func (e *env) record(at time.Time, events ...domain.Envelope) []eventstore.Result {
	e.t.Helper()
	e.clock.Set(at)
	res, err := e.store.Append(ctxT(e.t), domain.AppendRequest{Events: events, Batch: true})
	if err != nil {
		e.t.Fatalf("append at %s: %v", at, err)
	}
	for _, r := range res {
		if !r.RecordedAt.Equal(at) {
			e.t.Fatalf("event %s recorded at %s, want %s", r.EventID, r.RecordedAt, at)
		}
	}
	return res
}

// apply catches the customers up and returns the number of events applied.
func (e *env) apply(codes ...domain.CustomerCode) int {
	e.t.Helper()
	n, err := e.proj.Apply(ctxT(e.t), streamIDs(codes...))
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return n
}

func streamIDs(codes ...domain.CustomerCode) []uuid.UUID {
	ids := make([]uuid.UUID, len(codes))
	for i, c := range codes {
		ids[i] = c.StreamID()
	}
	return ids
}

// catchUp runs the boundary scheduler at the clock's instant until no
// customer is due, as the live service does between events, and returns how
// many customers it advanced.
func (e *env) catchUp(p *projections.Projector) int {
	e.t.Helper()
	s := projections.NewScheduler(p, e.clock.Now, testenv.Logger(e.t), nil)
	total := 0
	for {
		n, err := s.RunDue(ctxT(e.t), e.clock.Now())
		if err != nil {
			e.t.Fatalf("scheduler: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// doc is the customer's current document at the clock's instant.
func (e *env) doc(code domain.CustomerCode) *projections.Document {
	e.t.Helper()
	d, err := e.q.Customer(ctxT(e.t), code, time.Time{}, e.clock.Now(), eventstore.Masked)
	if err != nil {
		e.t.Fatalf("document of %s: %v", code, err)
	}
	return d
}

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// snapshot is every read model row as text: customer_projections (all
// columns) by stream, label_changes (all columns) by stream and seq.
type snapshot struct {
	projections []string
	documents   []string // the stored documents' bytes, in hex: compared byte for byte
	changes     []string
	alerts      []string // when the alerts read model exists
}

// hasTable reports whether a table exists in the test database.
func (e *env) hasTable(name string) bool {
	e.t.Helper()
	var ok bool
	if err := e.db.Pool.QueryRow(ctxT(e.t), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// changesQueued counts the label changes waiting in the outbox.
func (e *env) changesQueued() int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(ctxT(e.t), "SELECT count(*) FROM outbox WHERE stream = $1", projections.StreamChanges).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// reproject drops the read models and the outbox and projects every
// customer again in one Apply call.
func (e *env) reproject(codes []domain.CustomerCode) {
	e.t.Helper()
	tables := "customer_projections, label_changes, outbox"
	if e.hasTable("alerts") {
		tables += ", alerts"
	}
	if _, err := e.db.Pool.Exec(ctxT(e.t), "TRUNCATE "+tables); err != nil {
		e.t.Fatal(err)
	}
	e.apply(codes...)
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	ctx := ctxT(e.t)
	var s snapshot
	queries := []struct {
		sql string
		dst *[]string
	}{
		{"SELECT (l.*)::text FROM label_changes l ORDER BY stream_id, seq", &s.changes},
	}
	// Projections with their binary documents as JSON, so that they read
	// (and their ciphertexts can be told apart for normalising).
	rows, err := e.db.Pool.Query(ctx, "SELECT (to_jsonb(c) - 'projection')::text, projection FROM customer_projections c ORDER BY stream_id")
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var cols string
		var raw []byte
		if err := rows.Scan(&cols, &raw); err != nil {
			e.t.Fatal(err)
		}
		doc, err := projections.DocumentJSON(raw)
		if err != nil {
			e.t.Fatal(err)
		}
		s.projections = append(s.projections, cols+" "+string(doc))
		s.documents = append(s.documents, hex.EncodeToString(raw))
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	if e.hasTable("alerts") {
		queries = append(queries, struct {
			sql string
			dst *[]string
		}{"SELECT (a.*)::text FROM alerts a ORDER BY alert_id", &s.alerts})
	}
	for _, q := range queries {
		rows, err := e.db.Pool.Query(ctx, q.sql)
		if err != nil {
			e.t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				e.t.Fatal(err)
			}
			*q.dst = append(*q.dst, v)
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
	}
	return s
}

// sameRows fails the test at the first row where got and want differ.
func sameRows(t testing.TB, what string, got, want []string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s differ at row %d of %d:\n got: %s\nwant: %s", what, i, len(want), got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
}

func sameSnapshot(t testing.TB, got, want snapshot) {
	t.Helper()
	sameRows(t, "customer_projections", got.projections, want.projections)
	sameRows(t, "customer_projections.projection", got.documents, want.documents)
	sameRows(t, "label_changes", got.changes, want.changes)
	sameRows(t, "alerts", got.alerts, want.alerts)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v, json.Deterministic(true))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Envelope builders.

func ptr[T any](v T) *T { return &v }

func money(s string) domain.Money {
	m, err := domain.ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ev(code domain.CustomerCode, at time.Time, data domain.Event) domain.Envelope {
	return domain.Envelope{Type: data.EventType(), Customer: code, OccurredAt: at, Source: "test", Data: data}
}

func fullProfile(name, owner, contact, phone, email string) *domain.CustomerRegistered {
	return &domain.CustomerRegistered{Profile: domain.Profile{
		Name: ptr(name), Kind: ptr(domain.KindEnterprise), Industry: ptr("制造业-电子元件"), Region: ptr("广东-深圳"),
		Employees: ptr(int64(320)), AnnualRevenue: ptr(money("80000000")), SourceChannel: ptr("展会"), Owner: ptr(owner),
		Contact: &domain.Contact{Name: ptr(contact), Title: ptr("采购经理"), Phone: ptr(phone), Email: ptr(email)},
	}}
}

func order(id, amount string) *domain.OrderPlaced {
	return &domain.OrderPlaced{OrderID: id, Amount: money(amount), Category: "定制芯片模组", Channel: domain.ChannelOffline}
}

func refund(id, amount string) *domain.OrderRefunded {
	return &domain.OrderRefunded{OrderID: id, Amount: money(amount)}
}

func inquiry(topic string) *domain.InquiryReceived {
	return &domain.InquiryReceived{Channel: "电话", Topic: topic}
}

func rated(score int) *domain.SatisfactionRated {
	return &domain.SatisfactionRated{Score: score, Feedback: "回访"}
}

func recommended(score int) *domain.RecommendationRated {
	return &domain.RecommendationRated{Score: &score}
}

func needs(core ...string) *domain.NeedsDeclared {
	return &domain.NeedsDeclared{CoreNeeds: core, CommunicationPreference: domain.PreferPhone, PriceSensitivity: domain.SensitivityMedium}
}

// Random scripts: customers built from random, back-dated events recorded at
// advancing instants, reproducible from a seed.

var scriptNamespace = uuid.MustParse("0e7b1f7c-3d55-4c1e-9a61-5b0f6a2d9c11")

// step is one request recorded at one instant.
type step struct {
	at     time.Time
	events []domain.Envelope
}

func (s step) customers() []domain.CustomerCode {
	var out []domain.CustomerCode
	for _, e := range s.events {
		if !slices.Contains(out, e.Customer) {
			out = append(out, e.Customer)
		}
	}
	return out
}

type genOrder struct {
	id   string
	left domain.Money
}

type genCustomer struct {
	code       domain.CustomerCode
	events     int
	registered bool
	orders     []*genOrder
	net        domain.Money
}

// script generates steps of random events for customers codes
// prefix000000…; every step is an hour-aligned instant after the previous
// one, every occurred_at lies up to 400 days before its recording.
type script struct {
	rng       *rand.Rand
	customers []*genCustomer
	at        time.Time
}

func newScript(seed uint64, prefix string, customers int, start time.Time) *script {
	s := &script{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: start}
	for i := range customers {
		s.customers = append(s.customers, &genCustomer{code: domain.CustomerCode(fmt.Sprintf("%s%06d", prefix, i))})
	}
	return s
}

func (s *script) yuan(lo, hi int) string {
	fen := lo*100 + s.rng.IntN((hi-lo)*100+1)
	return fmt.Sprintf("%d.%02d", fen/100, fen%100)
}

var (
	coreNeeds  = []string{"成本控制", "性价比", "功能完善", "技术支持", "售后保障", "响应速度", "定制化服务", "长期合作", "战略合作", "品牌", "交期"}
	ownerNames = []string{"王经理", "赵经理", "孙经理", "周经理", "吴经理"}
)

// event returns a valid next event of c recorded at s.at.
func (s *script) event(c *genCustomer) domain.Envelope {
	r := s.rng
	back := time.Duration(r.IntN(120*24)) * time.Hour
	if r.IntN(10) == 0 {
		back = time.Duration(r.IntN(400*24)) * time.Hour
	}
	occurred := s.at.Add(-back).Add(-time.Duration(r.IntN(3600)) * time.Second)
	var data domain.Event
	k := r.IntN(100)
	switch {
	case c.events == 0 && k < 70, c.events > 0 && !c.registered && k < 8:
		p := fullProfile("客户"+string(c.code), ownerNames[r.IntN(len(ownerNames))], "李明", "138"+fmt.Sprintf("%08d", r.IntN(1e8)), "li.ming@example.com")
		switch r.IntN(4) { // some profiles lack fields: needs_completion
		case 0:
			p.Industry = nil
		case 1:
			p.Contact = &domain.Contact{Title: ptr("经理")}
		}
		data = p
		c.registered = true
	case c.events == 0 && k < 85, c.events > 0 && k < 40:
		id := "O" + strconv.Itoa(len(c.orders)+1)
		amount := s.yuan(1000, 600000)
		data = order(id, amount)
		c.orders = append(c.orders, &genOrder{id: id, left: money(amount)})
		c.net += money(amount)
	case c.events == 0, k < 60:
		data = inquiry("产品报价")
	case k < 68:
		var open []*genOrder
		for _, o := range c.orders {
			if o.left > 0 {
				open = append(open, o)
			}
		}
		if len(open) == 0 {
			data = rated(1 + r.IntN(5))
			break
		}
		o := open[r.IntN(len(open))]
		amount := domain.Money(1 + r.Int64N(int64(o.left)))
		if r.IntN(3) == 0 {
			amount = o.left
		}
		o.left -= amount
		c.net -= amount
		data = &domain.OrderRefunded{OrderID: o.id, Amount: amount}
	case k < 76:
		data = rated(1 + r.IntN(5))
	case k < 80:
		data = recommended(r.IntN(11))
	case k < 87:
		n := 1 + r.IntN(3)
		var core []string
		for range n {
			core = append(core, coreNeeds[r.IntN(len(coreNeeds))])
		}
		data = needs(core...)
	case k < 92:
		data = &domain.OwnerAssigned{Owner: ownerNames[r.IntN(len(ownerNames))]}
	case k < 96:
		data = &domain.CustomerProfileUpdated{Profile: domain.Profile{Industry: ptr("信息技术-软件"),
			Contact: &domain.Contact{Name: ptr("王芳"), Email: ptr("wang.fang@example.com")}}}
	default:
		data = &domain.FollowUpLogged{By: "王经理", Channel: "电话", Summary: "回访", Outcome: "继续跟进"}
	}
	c.events++
	e := ev(c.code, occurred, data)
	e.EventID = uuid.NewSHA1(scriptNamespace, []byte(string(c.code)+"/"+strconv.Itoa(c.events)))
	return e
}

// next advances the clock by 1 hour to 5 days (whole hours) and returns a
// step of n events of random customers.
func (s *script) next(n int) step {
	s.at = s.at.Add(time.Duration(1+s.rng.IntN(120)) * time.Hour)
	st := step{at: s.at}
	for range n {
		st.events = append(st.events, s.event(s.customers[s.rng.IntN(len(s.customers))]))
	}
	return st
}

// steps generates count steps of about perStep events each.
func (s *script) steps(count, perStep int) []step {
	out := make([]step, count)
	for i := range out {
		out[i] = s.next(1 + s.rng.IntN(2*perStep))
	}
	return out
}

func (s *script) codes() []domain.CustomerCode {
	out := make([]domain.CustomerCode, len(s.customers))
	for i, c := range s.customers {
		out[i] = c.code
	}
	return out
}

// chunks splits codes into random chunks of 1 to maxSize customers.
func chunks(rng *rand.Rand, codes []domain.CustomerCode, maxSize int) [][]domain.CustomerCode {
	var out [][]domain.CustomerCode
	for len(codes) > 0 {
		n := min(len(codes), 1+rng.IntN(maxSize))
		out = append(out, codes[:n])
		codes = codes[n:]
	}
	return out
}

// publishAndConsume runs the store's publisher onto an in-process JetStream
// and proj.Consume on it with the durable consumer durable, until stop is
// called or the test ends; it returns that JetStream.
func (e *env) publishAndConsume(proj *projections.Projector, durable string) (js jetstream.JetStream, stop func()) {
	e.t.Helper()
	n := testenv.StartNATS(e.t)
	nc, js := n.Connect(e.t)
	ctx, cancel := context.WithCancel(ctxT(e.t))
	pub := eventstore.NewPublisher(eventstore.PublisherConfig{Store: e.store, Sink: natsbus.NewEventSink(nc, js), Location: cst,
		Logger: testenv.Logger(e.t), IdleWake: 20 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := pub.Run(ctx); err != nil {
			e.t.Errorf("publisher: %v", err)
		}
	})
	wg.Go(func() {
		if err := proj.Consume(ctx, js, durable); err != nil {
			e.t.Errorf("consume: %v", err)
		}
	})
	stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	e.t.Cleanup(stop)
	return js, stop
}
