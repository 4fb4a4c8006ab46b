package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/ingest"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// t0 is the tests' "now": every occurred_at the tests send lies before it.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

// ingestNamespace is the namespace of the event ids the worker derives for
// events without event_id. It is pinned here on purpose: changing it would
// make messages redelivered across an upgrade count as new events.
var ingestNamespace = uuid.MustParse("3b0c7f5e-2a61-5d8e-b1f4-9e7a6c5d4b3a")

const durable = "segments-ingest-test"

// within bounds every wait of these tests.
const within = 30 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// harness is a real event store on a fresh database and a real in-process
// JetStream server with the service's streams.
type harness struct {
	t     *testing.T
	store *eventstore.Store
	db    *testenv.DB
	js    jetstream.JetStream
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	store, db := testenv.Store(t, clock)
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	return &harness{t: t, store: store, db: db, js: js}
}

// worker is one running ingest.Worker.
type worker struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs a worker on the harness; it is stopped at the end of the test
// at the latest.
func (h *harness) start(app ingest.Appender, configure ...func(*ingest.Config)) *worker {
	h.t.Helper()
	cfg := ingest.Config{
		JS:            h.js,
		Appender:      app,
		Now:           clock,
		Logger:        testenv.Logger(h.t),
		Shards:        8,
		Durable:       durable,
		ShutdownGrace: 5 * time.Second,
		// Short, so that unknown_order rejections come quickly; still
		// retried twice.
		OrderWait: 500 * time.Millisecond,
	}
	for _, c := range configure {
		c(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- ingest.New(cfg).Run(ctx) }()
	h.t.Cleanup(func() {
		if err := w.stop(within); err != nil {
			h.t.Errorf("stop worker: %v", err)
		}
	})
	return w
}

// stop cancels the worker's context and waits at most limit for Run to
// return.
func (w *worker) stop(limit time.Duration) error {
	w.once.Do(func() {
		w.cancel()
		select {
		case w.err = <-w.done:
			if w.err != nil {
				w.err = fmt.Errorf("Run returned %w", w.err)
			}
		case <-time.After(limit):
			w.err = fmt.Errorf("Run did not return within %s of its context being cancelled", limit)
		}
	})
	return w.err
}

func (h *harness) publish(subject string, body []byte, opts ...jetstream.PublishOpt) uint64 {
	h.t.Helper()
	ack, err := h.js.Publish(ctxT(h.t), subject, body, opts...)
	if err != nil {
		h.t.Fatalf("publish to %s: %v", subject, err)
	}
	if ack.Stream != natsbus.StreamIngest || ack.Duplicate {
		h.t.Fatalf("publish to %s: ack %+v", subject, ack)
	}
	return ack.Sequence
}

func (h *harness) countEvents() int {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) awaitEvents(n int) {
	h.t.Helper()
	testenv.Eventually(h.t, within, fmt.Sprintf("%d events recorded", n), func() bool { return h.countEvents() >= n })
	if got := h.countEvents(); got != n {
		h.t.Fatalf("events recorded: %d, want %d", got, n)
	}
}

// consumerIdle reports whether the worker's consumer has nothing pending and
// nothing unacknowledged.
func (h *harness) consumerIdle() bool {
	h.t.Helper()
	ctx := ctxT(h.t)
	cons, err := h.js.Consumer(ctx, natsbus.StreamIngest, durable)
	if err != nil {
		return false
	}
	info, err := cons.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.NumAckPending == 0 && info.NumPending == 0
}

func (h *harness) awaitIdle() {
	h.t.Helper()
	testenv.Eventually(h.t, within, "every ingest message acknowledged", h.consumerIdle)
}

func (h *harness) rejectedCount() uint64 {
	h.t.Helper()
	ctx := ctxT(h.t)
	st, err := h.js.Stream(ctx, natsbus.StreamRejected)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// rejected returns the messages of SEGMENTS_REJECTED by the ingest sequence
// they reject.
func (h *harness) rejected() map[uint64]*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := ctxT(h.t)
	st, err := h.js.Stream(ctx, natsbus.StreamRejected)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[uint64]*jetstream.RawStreamMsg{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("get rejected message %d: %v", seq, err)
		}
		orig, err := strconv.ParseUint(m.Header.Get(natsbus.HeaderOrigSeq), 10, 64)
		if err != nil {
			h.t.Fatalf("rejected message %d: header %s = %q", seq, natsbus.HeaderOrigSeq, m.Header.Get(natsbus.HeaderOrigSeq))
		}
		if _, dup := out[orig]; dup {
			h.t.Errorf("ingest message %d was rejected more than once", orig)
		}
		out[orig] = m
	}
	return out
}

func (h *harness) readStream(customer string) []eventstore.RecordedEvent {
	h.t.Helper()
	events, err := h.store.ReadStream(ctxT(h.t), domain.CustomerCode(customer), 0, 1000)
	if err != nil {
		h.t.Fatalf("read stream %s: %v", customer, err)
	}
	return events
}

func (h *harness) ingestCreated() time.Time {
	h.t.Helper()
	st, err := h.js.Stream(ctxT(h.t), natsbus.StreamIngest)
	if err != nil {
		h.t.Fatal(err)
	}
	return st.CachedInfo().Created
}

// derivedBySeq is the event id the worker gives the i-th event of the ingest
// message at stream sequence seq when neither the event nor the message
// carries an id.
func derivedBySeq(created time.Time, seq uint64, i int) uuid.UUID {
	return uuid.NewSHA1(ingestNamespace, fmt.Appendf(nil, "seq/%s/%d/%d/%d", natsbus.StreamIngest, created.UnixNano(), seq, i))
}

// derivedByMsgID is the event id of the i-th event of a message published
// with header Nats-Msg-Id msgID.
func derivedByMsgID(msgID string, i int) uuid.UUID {
	return uuid.NewSHA1(ingestNamespace, []byte("msgid/"+msgID+"/"+strconv.Itoa(i)))
}

// obj is a JSON object under construction.
type obj = map[string]any

func envelope(typ, customer string, data obj, extra ...any) obj {
	e := obj{"type": typ, "customer": customer, "occurred_at": "2026-11-20T10:00:00+08:00", "data": data}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i].(string)] = extra[i+1]
	}
	return e
}

func orderPlaced(customer, orderID, amount string, extra ...any) obj {
	return envelope("OrderPlaced", customer, obj{"order_id": orderID, "amount": amount, "channel": "online"}, extra...)
}

func orderRefunded(customer, orderID, amount string, extra ...any) obj {
	return envelope("OrderRefunded", customer, obj{"order_id": orderID, "amount": amount}, extra...)
}

func inquiry(customer, topic string, extra ...any) obj {
	return envelope("InquiryReceived", customer, obj{"channel": "phone", "topic": topic}, extra...)
}

func batch(events ...obj) obj { return obj{"events": events} }

func body(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func amountOf(t *testing.T, e eventstore.RecordedEvent) string {
	t.Helper()
	data, err := domain.DecodeData(e.Type, e.Data)
	if err != nil {
		t.Fatal(err)
	}
	switch d := data.(type) {
	case *domain.OrderPlaced:
		return d.OrderID + " " + d.Amount.String()
	case *domain.OrderRefunded:
		return d.OrderID + " " + d.Amount.String()
	}
	t.Fatalf("event %d is a %s, not an order event", e.Position, e.Type)
	return ""
}

// flakyAppender stands in for a database outage in front of the real store:
// its first failures calls fail with ErrUnavailable. With commitFirst, the
// failing calls reach the store first, as when a commit succeeds but its
// acknowledgement is lost. hang makes failing calls block until their
// context ends instead (a database that does not answer).
type flakyAppender struct {
	next        ingest.Appender
	failures    int
	commitFirst bool
	hang        bool

	mu    sync.Mutex
	calls int
}

func (a *flakyAppender) Append(ctx context.Context, req domain.AppendRequest) ([]eventstore.Result, error) {
	a.mu.Lock()
	a.calls++
	fail := a.calls <= a.failures
	a.mu.Unlock()
	if !fail {
		return a.next.Append(ctx, req)
	}
	if a.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if a.commitFirst {
		if _, err := a.next.Append(ctx, req); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("append: begin: %w: connection refused (simulated)", eventstore.ErrUnavailable)
}

func (a *flakyAppender) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func TestValidMessagesAreRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store)

	givenID := uuid.MustParse("0190f0e2-8b5c-7d4e-9a1b-2c3d4e5f6a7b")
	regSeq := h.publish("ingest.crm", body(t, envelope("CustomerRegistered", "KH202405010001",
		obj{"name": "苏州精工电子有限公司", "kind": "enterprise", "industry": "制造业-电子元件"},
		"event_id", givenID.String(), "source", "crm")))
	orderSeq := h.publish("ingest.orders.eu", body(t, orderPlaced("KH202405010001", "SO-1", "1200.50", "source", "erp-eu")))
	batchSeq := h.publish("ingest.orders.eu", body(t, batch(
		orderPlaced("KH202405010002", "SO-2", "99.90"),
		orderRefunded("KH202405010002", "SO-2", "9.90"),
	)))

	h.awaitEvents(4)
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		t.Fatalf("%d messages rejected, want none", n)
	}
	created := h.ingestCreated()

	first := h.readStream("KH202405010001")
	if len(first) != 2 {
		t.Fatalf("KH202405010001 has %d events, want 2", len(first))
	}
	if e := first[0]; e.Version != 1 || e.Type != domain.TypeCustomerRegistered || e.EventID != givenID || e.Source != "crm" {
		t.Errorf("KH202405010001 v1 = version %d %s id %s source %q, want version 1 CustomerRegistered id %s (message %d) source crm",
			e.Version, e.Type, e.EventID, e.Source, givenID, regSeq)
	}
	if e := first[1]; e.Version != 2 || e.Type != domain.TypeOrderPlaced || amountOf(t, e) != "SO-1 1200.50" || e.Source != "erp-eu" ||
		e.EventID != derivedBySeq(created, orderSeq, 0) {
		t.Errorf("KH202405010001 v2 = version %d %s %s source %q id %s, want version 2 OrderPlaced SO-1 1200.50 source erp-eu id %s",
			e.Version, e.Type, amountOf(t, e), e.Source, e.EventID, derivedBySeq(created, orderSeq, 0))
	}
	if !first[0].OccurredAt.Equal(time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)) || !first[0].RecordedAt.Equal(t0) {
		t.Errorf("KH202405010001 v1 occurred_at %v recorded_at %v", first[0].OccurredAt, first[0].RecordedAt)
	}

	second := h.readStream("KH202405010002")
	if len(second) != 2 {
		t.Fatalf("KH202405010002 has %d events, want 2", len(second))
	}
	want := []struct {
		typ    domain.EventType
		amount string
	}{{domain.TypeOrderPlaced, "SO-2 99.90"}, {domain.TypeOrderRefunded, "SO-2 9.90"}}
	for i, w := range want {
		e := second[i]
		if e.Version != int64(i+1) || e.Type != w.typ || amountOf(t, e) != w.amount || e.EventID != derivedBySeq(created, batchSeq, i) {
			t.Errorf("KH202405010002 event %d = version %d %s %s id %s, want version %d %s %s id %s",
				i, e.Version, e.Type, amountOf(t, e), e.EventID, i+1, w.typ, w.amount, derivedBySeq(created, batchSeq, i))
		}
	}
	// The batch is one transaction: its events are adjacent in the log.
	if second[1].Position != second[0].Position+1 {
		t.Errorf("batch events at positions %d and %d, want adjacent", second[0].Position, second[1].Position)
	}
}

func TestCustomerOrderIsKeptAcrossShards(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store, func(c *ingest.Config) { c.Shards = 16 })

	const customer = "KH-ORDERED"
	// One order of 1225.00 and 49 refunds of 1.00 … 49.00, which add up to
	// exactly the order's amount: any refund appended before the order, or
	// out of order in a way that matters, would be rejected.
	const refunds = 49
	total := refunds * (refunds + 1) / 2
	h.publish("ingest.orders", body(t, orderPlaced(customer, "o1", strconv.Itoa(total)+".00", "correlation_id", "m00")))
	others := 0
	for i := 1; i <= refunds; i++ {
		other := fmt.Sprintf("KH-OTHER-%d", i%7)
		h.publish("ingest.crm."+strconv.Itoa(i%3), body(t, inquiry(other, "交期", "correlation_id", fmt.Sprintf("x%02d", i))))
		others++
		h.publish("ingest.orders", body(t, orderRefunded(customer, "o1", strconv.Itoa(i)+".00", "correlation_id", fmt.Sprintf("m%02d", i))))
		if i%5 == 0 {
			h.publish("ingest.orders", body(t, orderPlaced(other, fmt.Sprintf("p%d", i), "10")))
			others++
		}
	}

	h.awaitEvents(refunds + 1 + others)
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		for seq, m := range h.rejected() {
			t.Errorf("message %d rejected: %s %s: %s", seq, m.Header.Get(natsbus.HeaderErrorCode),
				m.Header.Get(natsbus.HeaderErrorField), m.Header.Get(natsbus.HeaderErrorMsg))
		}
		t.Fatalf("%d messages rejected, want none", n)
	}
	events := h.readStream(customer)
	if len(events) != refunds+1 {
		t.Fatalf("%s has %d events, want %d", customer, len(events), refunds+1)
	}
	for i, e := range events {
		wantCorr := fmt.Sprintf("m%02d", i)
		wantAmount := "o1 " + strconv.Itoa(i) + ".00"
		wantType := domain.TypeOrderRefunded
		if i == 0 {
			wantAmount, wantType = "o1 "+strconv.Itoa(total)+".00", domain.TypeOrderPlaced
		}
		if e.Version != int64(i+1) || e.CorrelationID != wantCorr || e.Type != wantType || amountOf(t, e) != wantAmount {
			t.Errorf("%s event %d = version %d %s %s (%s), want version %d %s %s (%s)",
				customer, i, e.Version, e.Type, amountOf(t, e), e.CorrelationID, i+1, wantType, wantAmount, wantCorr)
		}
	}
	// The order is now fully refunded: one more cent is too much.
	seq := h.publish("ingest.orders", body(t, orderRefunded(customer, "o1", "0.01")))
	testenv.Eventually(t, within, "the excess refund rejected", func() bool { return h.rejectedCount() == 1 })
	if m := h.rejected()[seq]; m == nil || m.Header.Get(natsbus.HeaderErrorCode) != "refund_exceeds_order" {
		t.Errorf("excess refund: rejection %+v, want code refund_exceeds_order", m)
	}
}

func TestInvalidMessagesAreRejectedAndAcknowledged(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store)

	// A valid order the rule violations below refer to.
	h.publish("ingest.orders.eu", body(t, orderPlaced("KH-R", "o9", "100")))
	h.awaitEvents(1)

	type rejection struct {
		subject string
		body    []byte
		opts    []jetstream.PublishOpt
		code    string
		field   string
		nothing string // a customer of the message that must have no stream
	}
	cases := []rejection{
		{subject: "ingest.crm", body: []byte("this is not json {"), code: domain.CodeInvalidJSON, field: "body"},
		{subject: "ingest.crm", body: body(t, envelope("CustomerShipped", "KH-U", obj{"name": "x"})),
			opts: []jetstream.PublishOpt{jetstream.WithMsgID("crm-17")},
			code: domain.CodeUnknownType, field: "type", nothing: "KH-U"},
		{subject: "ingest.orders.eu", body: body(t, orderPlaced("KH-N", "o1", "-5.00")),
			code: domain.CodeNotPositive, field: "data.amount", nothing: "KH-N"},
		{subject: "ingest.orders.eu", body: []byte(`{"type":"OrderPlaced","customer":"KH-N","data":{"order_id":"o1","amount":"1.005"}}`),
			code: domain.CodePrecision, field: "data.amount", nothing: "KH-N"},
		{subject: "ingest.orders.eu", body: body(t, orderRefunded("KH-R", "o9", "100.01")),
			code: "refund_exceeds_order", field: "data.amount"},
		{subject: "ingest.orders.cn", body: body(t, orderRefunded("KH-R", "o-missing", "1")),
			code: "unknown_order", field: "data.order_id"},
		// A batch is all or nothing: its valid first event is not stored.
		{subject: "ingest.orders.eu", body: body(t, batch(inquiry("KH-B", "价格"), orderRefunded("KH-B", "o1", "5"))),
			code: "unknown_order", field: "events[1].data.order_id", nothing: "KH-B"},
		{subject: "ingest.crm", body: body(t, batch(inquiry("KH-B", "价格"), envelope("OwnerAssigned", "KH-B", obj{"owner": " "}))),
			code: domain.CodeRequired, field: "events[1].data.owner", nothing: "KH-B"},
		// expected_version 0 on an existing stream. The message also carries
		// a publish directive for SEGMENTS_INGEST, which must not be copied
		// onto the rejection (its publish to SEGMENTS_REJECTED would fail
		// forever).
		{subject: "ingest.crm", body: body(t, obj{"type": "CustomerRegistered", "customer": "KH-R", "data": obj{"name": "Again"}, "expected_version": 0}),
			opts: []jetstream.PublishOpt{jetstream.WithExpectStream(natsbus.StreamIngest), jetstream.WithMsgID("crm-18")},
			code: "version_conflict", field: "expected_version"},
	}
	seqs := make([]uint64, len(cases))
	for i, c := range cases {
		seqs[i] = h.publish(c.subject, c.body, c.opts...)
	}

	testenv.Eventually(t, within, "every invalid message rejected", func() bool { return h.rejectedCount() >= uint64(len(cases)) })
	h.awaitIdle()
	got := h.rejected()
	if len(got) != len(cases) {
		t.Errorf("%d rejections, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		m := got[seqs[i]]
		if m == nil {
			t.Errorf("case %d (%s): message %d not rejected", i, c.code, seqs[i])
			continue
		}
		if m.Subject != natsbus.RejectedPrefix+c.subject {
			t.Errorf("case %d: rejected on %s, want %s", i, m.Subject, natsbus.RejectedPrefix+c.subject)
		}
		if code := m.Header.Get(natsbus.HeaderErrorCode); code != c.code {
			t.Errorf("case %d: %s = %q, want %q (message: %s)", i, natsbus.HeaderErrorCode, code, c.code, m.Header.Get(natsbus.HeaderErrorMsg))
		}
		if field := m.Header.Get(natsbus.HeaderErrorField); field != c.field {
			t.Errorf("case %d: %s = %q, want %q", i, natsbus.HeaderErrorField, field, c.field)
		}
		if m.Header.Get(natsbus.HeaderErrorMsg) == "" {
			t.Errorf("case %d: no %s", i, natsbus.HeaderErrorMsg)
		}
		if subj := m.Header.Get(natsbus.HeaderOrigSubj); subj != c.subject {
			t.Errorf("case %d: %s = %q, want %q", i, natsbus.HeaderOrigSubj, subj, c.subject)
		}
		if !bytes.Equal(m.Data, c.body) {
			t.Errorf("case %d: rejected body %q, want the original %q", i, m.Data, c.body)
		}
		if c.nothing != "" {
			if _, err := h.store.ReadStream(ctxT(t), domain.CustomerCode(c.nothing), 0, 10); !errors.Is(err, eventstore.ErrNotFound) {
				t.Errorf("case %d: customer %s: %v, want no stream", i, c.nothing, err)
			}
		}
	}
	if n := h.countEvents(); n != 1 {
		t.Errorf("%d events recorded, want only the valid order", n)
	}
	if events := h.readStream("KH-R"); len(events) != 1 || amountOf(t, events[0]) != "o9 100.00" {
		t.Errorf("KH-R stream: %d events, want only the order", len(events))
	}
}

func TestRedeliveredMessagesAreStoredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// A short duplicate window lets the test republish a Nats-Msg-Id below.
	// (It is set before any message id is stored: the server arms its purge
	// timer with the window in force at the time.)
	st, err := h.js.Stream(ctxT(t), natsbus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := h.js.UpdateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	// The first two appends reach the database but report a failure, so the
	// worker appends the same messages again.
	app := &flakyAppender{next: h.store, failures: 2, commitFirst: true}
	h.start(app)

	single := body(t, inquiry("KH-I", "交期"))
	singleSeq := h.publish("ingest.crm", single, jetstream.WithMsgID("crm-4711"))
	batchSeq := h.publish("ingest.orders", body(t, batch(orderPlaced("KH-J", "o1", "10"), orderRefunded("KH-J", "o1", "10"))))
	testenv.Eventually(t, within, "both messages acknowledged after retries", func() bool {
		return app.Calls() >= 3 && h.consumerIdle()
	})
	h.awaitEvents(3)
	created := h.ingestCreated()
	if e := h.readStream("KH-I"); len(e) != 1 || e[0].EventID != derivedByMsgID("crm-4711", 0) {
		t.Errorf("KH-I: %d events, want 1 with id %s derived from its Nats-Msg-Id", len(e), derivedByMsgID("crm-4711", 0))
	}
	if e := h.readStream("KH-J"); len(e) != 2 || e[0].EventID != derivedBySeq(created, batchSeq, 0) || e[1].EventID != derivedBySeq(created, batchSeq, 1) {
		t.Errorf("KH-J: %d events, want 2 with ids derived from stream sequence %d", len(e), batchSeq)
	}
	if n := h.rejectedCount(); n != 0 {
		t.Errorf("%d messages rejected, want none", n)
	}

	// Identical bodies without event_id or Nats-Msg-Id are two events.
	twinA := h.publish("ingest.crm", single)
	twinB := h.publish("ingest.crm", single)
	h.awaitEvents(5)
	h.awaitIdle()
	events := h.readStream("KH-I")
	if len(events) != 3 || events[1].EventID != derivedBySeq(created, twinA, 0) || events[2].EventID != derivedBySeq(created, twinB, 0) {
		t.Errorf("KH-I after twins: %d events, want 3 with the twins' ids derived from sequences %d and %d", len(events), twinA, twinB)
	}

	// Past JetStream's duplicate window, a message published again with the
	// same Nats-Msg-Id is a new stream message but still the same event.
	var again uint64
	ctx := ctxT(t)
	testenv.Eventually(t, within, "JetStream accepts Nats-Msg-Id crm-4711 again", func() bool {
		ack, err := h.js.Publish(ctx, "ingest.crm", single, jetstream.WithMsgID("crm-4711"))
		if err != nil {
			t.Fatal(err)
		}
		again = ack.Sequence
		return !ack.Duplicate
	})
	if again == singleSeq {
		t.Fatalf("republished message has the original sequence %d", again)
	}
	h.awaitIdle()
	if n := h.countEvents(); n != 5 {
		t.Errorf("%d events after republishing crm-4711, want still 5", n)
	}
}

func TestDatabaseFailureIsRetriedNotRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app := &flakyAppender{next: h.store, failures: 4}
	h.start(app)

	h.publish("ingest.orders", body(t, orderPlaced("KH-D", "o1", "88.80")))
	h.publish("ingest.orders", body(t, orderRefunded("KH-D", "o1", "8.80")))
	h.awaitEvents(2)
	h.awaitIdle()
	if c := app.Calls(); c < 6 {
		t.Errorf("%d append calls, want at least 4 failed and 2 successful", c)
	}
	if n := h.rejectedCount(); n != 0 {
		t.Errorf("%d messages rejected during the outage, want none", n)
	}
	events := h.readStream("KH-D")
	if len(events) != 2 || events[0].Type != domain.TypeOrderPlaced || events[1].Type != domain.TypeOrderRefunded {
		t.Errorf("KH-D: %d events, want the order then the refund", len(events))
	}
}

func TestGracefulStopLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	first := h.start(h.store)

	h.publish("ingest.crm", body(t, inquiry("KH-G0", "first")))
	h.awaitEvents(1)

	// A burst is still in flight when the worker is told to stop.
	const customers, perCustomer = 5, 6
	publishOrders := func(round string) {
		for c := range customers {
			customer := fmt.Sprintf("KH-G%d", c+1)
			h.publish("ingest.orders", body(t, orderPlaced(customer, round, "60")))
			for range perCustomer - 1 {
				h.publish("ingest.orders", body(t, orderRefunded(customer, round, "10")))
			}
		}
	}
	publishOrders("a")
	began := time.Now()
	if err := first.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("Run returned %s after its context was cancelled", time.Since(began).Round(time.Millisecond))

	// Published while no worker runs.
	publishOrders("b")

	h.start(h.store)
	h.awaitEvents(1 + 2*customers*perCustomer)
	h.awaitIdle()
	if n := h.countEvents(); n != 1+2*customers*perCustomer {
		t.Errorf("%d events recorded, want %d", n, 1+2*customers*perCustomer)
	}
	if n := h.rejectedCount(); n != 0 {
		for seq, m := range h.rejected() {
			t.Errorf("message %d rejected: %s %s", seq, m.Header.Get(natsbus.HeaderErrorCode), m.Header.Get(natsbus.HeaderErrorField))
		}
	}
	for c := range customers {
		customer := fmt.Sprintf("KH-G%d", c+1)
		events := h.readStream(customer)
		if len(events) != 2*perCustomer {
			t.Errorf("%s: %d events, want %d", customer, len(events), 2*perCustomer)
		}
	}
}

// Messages whose append is still running when the shutdown grace ends are
// not acknowledged; they must come back before newer messages of the same
// customer, which may depend on them.
func TestStopDuringOutageKeepsCustomerOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app := &flakyAppender{next: h.store, failures: 1, hang: true}
	first := h.start(app, func(c *ingest.Config) { c.ShutdownGrace = 200 * time.Millisecond })

	h.publish("ingest.orders", body(t, orderPlaced("KH-S", "o1", "100")))
	testenv.Eventually(t, within, "the order's append to hang", func() bool { return app.Calls() >= 1 })
	began := time.Now()
	if err := first.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Run took %s to return with a 200ms shutdown grace", d)
	}

	h.publish("ingest.orders", body(t, orderRefunded("KH-S", "o1", "40")))
	h.start(h.store)
	h.awaitEvents(2)
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		for seq, m := range h.rejected() {
			t.Errorf("message %d rejected: %s %s", seq, m.Header.Get(natsbus.HeaderErrorCode), m.Header.Get(natsbus.HeaderErrorField))
		}
	}
	events := h.readStream("KH-S")
	if len(events) != 2 || events[0].Type != domain.TypeOrderPlaced || events[1].Type != domain.TypeOrderRefunded {
		t.Errorf("KH-S: %d events, want the order then the refund", len(events))
	}
}
