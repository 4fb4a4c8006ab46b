package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func order(customer, orderID, amount string) domain.Envelope {
	m, err := domain.ParseMoney(amount)
	if err != nil {
		panic(err)
	}
	return domain.Envelope{
		Type: domain.TypeOrderPlaced, Customer: domain.CustomerCode(customer),
		Data: &domain.OrderPlaced{OrderID: orderID, Amount: m, Channel: domain.ChannelOnline},
	}
}

func refund(customer, orderID, amount string) domain.Envelope {
	m, _ := domain.ParseMoney(amount)
	return domain.Envelope{
		Type: domain.TypeOrderRefunded, Customer: domain.CustomerCode(customer),
		Data: &domain.OrderRefunded{OrderID: orderID, Amount: m},
	}
}

func ptr[T any](v T) *T { return &v }

func registered(customer, name, phone, email string) domain.Envelope {
	return domain.Envelope{
		Type: domain.TypeCustomerRegistered, Customer: domain.CustomerCode(customer),
		Data: &domain.CustomerRegistered{Profile: domain.Profile{
			Name: ptr(name), Industry: ptr("制造业-电子元件"), Owner: ptr("王经理"),
			Contact: &domain.Contact{Name: ptr("李明"), Title: ptr("采购经理"), Phone: ptr(phone), Email: ptr(email)},
		}},
	}
}

func withID(e domain.Envelope, id uuid.UUID) domain.Envelope {
	e.EventID = id
	return e
}

func req(events ...domain.Envelope) domain.AppendRequest {
	return domain.AppendRequest{Events: events}
}

func countEvents(t *testing.T, s *eventstore.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppendAssignsVersionsPositionsAndRecordedAt(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(t0)
	s, _ := testenv.Store(t, clock.Now)
	ctx := ctxT(t)

	res, err := s.Append(ctx, req(order("KH1", "o1", "100"), order("KH2", "o2", "200.50"), order("KH1", "o3", "1")))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		customer          string
		version, position int64
	}{{"KH1", 1, 1}, {"KH2", 1, 2}, {"KH1", 2, 3}}
	for i, w := range want {
		r := res[i]
		if string(r.Customer) != w.customer || r.Version != w.version || r.Position != w.position || r.Duplicate {
			t.Errorf("result %d = %+v, want customer %s version %d position %d", i, r, w.customer, w.version, w.position)
		}
		if !r.RecordedAt.Equal(t0) || r.EventID == uuid.Nil {
			t.Errorf("result %d: recorded_at %v event_id %v", i, r.RecordedAt, r.EventID)
		}
	}
	events, err := s.ReadStream(ctx, "KH1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Version != 1 || events[1].Version != 2 || events[1].Position != 3 {
		t.Fatalf("stream KH1 = %+v", events)
	}
	if events[0].StreamID != domain.CustomerCode("KH1").StreamID() || !events[0].OccurredAt.Equal(t0) {
		t.Errorf("stream id %v occurred_at %v", events[0].StreamID, events[0].OccurredAt)
	}
	if string(events[0].Data) != `{"order_id":"o1","amount":"100.00","channel":"online"}` {
		t.Errorf("stored data = %s", events[0].Data)
	}
}

func TestRecordedAtNeverDecreases(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(t0)
	s, _ := testenv.Store(t, clock.Now)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, req(order("KH1", "o1", "1"))); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(-time.Hour)) // the clock steps back
	res, err := s.Append(ctx, req(order("KH1", "o2", "1")))
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].RecordedAt.Equal(t0) {
		t.Fatalf("recorded_at went back to %v; want %v", res[0].RecordedAt, t0)
	}
}

func TestResendingAnEventIDReturnsTheStoredResult(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	id := uuid.New()
	first, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id)))
		if err != nil {
			t.Fatal(err)
		}
		if !again[0].Duplicate || again[0].Position != first[0].Position || again[0].Version != first[0].Version || again[0].EventID != id {
			t.Fatalf("re-send = %+v, first = %+v", again[0], first[0])
		}
	}
	// Repeated inside one batch, with a new event beside it.
	mixed, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id), order("KH1", "o2", "5")))
	if err != nil {
		t.Fatal(err)
	}
	if !mixed[0].Duplicate || mixed[1].Duplicate || mixed[1].Version != 2 {
		t.Fatalf("mixed batch = %+v", mixed)
	}
	if n := countEvents(t, s); n != 2 {
		t.Fatalf("stored %d events, want 2", n)
	}
}

func TestDuplicateEventIDInsideOneRequestIsStoredOnce(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	id := uuid.New()
	res, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id), withID(order("KH1", "o1", "10"), id)))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].Position != res[0].Position {
		t.Fatalf("results = %+v", res)
	}
	if n := countEvents(t, s); n != 1 {
		t.Fatalf("stored %d events, want 1", n)
	}
}

func TestExpectedVersionConflictStoresNothing(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{order("KH1", "o1", "1")}, Expected: map[domain.CustomerCode]int64{"KH1": 0}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, domain.AppendRequest{
		Events:   []domain.Envelope{order("KH1", "o2", "1"), order("KH1", "o3", "1")},
		Expected: map[domain.CustomerCode]int64{"KH1": 0},
	})
	var vc *eventstore.VersionConflictError
	if !errors.As(err, &vc) || !errors.Is(err, eventstore.ErrVersionConflict) || vc.Expected != 0 || vc.Actual != 1 {
		t.Fatalf("err = %v, want version conflict 0 vs 1", err)
	}
	if n := countEvents(t, s); n != 1 {
		t.Fatalf("stored %d events, want 1", n)
	}
	if _, err := s.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{order("KH1", "o2", "1")}, Expected: map[domain.CustomerCode]int64{"KH1": 1}}); err != nil {
		t.Fatalf("append at the right version: %v", err)
	}
}

func TestRetryOfAStoredRequestWithExpectedVersionIsADuplicateNotAConflict(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	r := domain.AppendRequest{Events: []domain.Envelope{withID(order("KH1", "o1", "1"), uuid.New())}, Expected: map[domain.CustomerCode]int64{"KH1": 0}}
	if _, err := s.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, r)
	if err != nil || !res[0].Duplicate {
		t.Fatalf("retry = %+v, %v; want duplicate", res, err)
	}
}

func TestBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	_, err := s.Append(ctx, req(order("KH1", "o1", "100"), refund("KH1", "o1", "60"), order("KH2", "o9", "1"), refund("KH1", "o1", "40.01")))
	var ee *eventstore.EventError
	if !errors.As(err, &ee) || ee.Index != 3 || !errors.Is(err, domain.ErrRefundExceedsOrder) {
		t.Fatalf("err = %v, want refund_exceeds_order at index 3", err)
	}
	if n := countEvents(t, s); n != 0 {
		t.Fatalf("stored %d events of a refused batch", n)
	}
	if _, err := s.StreamVersion(ctx, "KH1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("stream of a refused batch exists: %v", err)
	}
	// The same batch without the bad refund is accepted, refunds summing to the amount.
	if _, err := s.Append(ctx, req(order("KH1", "o1", "100"), refund("KH1", "o1", "60"), refund("KH1", "o1", "40"))); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, req(refund("KH1", "o1", "0.01")))
	if !errors.Is(err, domain.ErrRefundExceedsOrder) {
		t.Fatalf("refund beyond the order across requests: %v", err)
	}
}

func TestStreamRulesAcrossRequests(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	profile := domain.Envelope{Type: domain.TypeOwnerAssigned, Customer: "KH1", Data: &domain.OwnerAssigned{Owner: "张三"}}
	if _, err := s.Append(ctx, req(profile)); !errors.Is(err, domain.ErrCustomerNotFound) {
		t.Fatalf("owner of unknown customer: %v", err)
	}
	if _, err := s.Append(ctx, req(registered("KH1", "深圳市某电子有限公司", "13812345678", "li.ming@example.com"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, req(registered("KH1", "again", "13812345678", "li.ming@example.com"))); !errors.Is(err, domain.ErrAlreadyRegistered) {
		t.Fatalf("second registration: %v", err)
	}
	if _, err := s.Append(ctx, req(profile, order("KH1", "o1", "5"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, req(order("KH1", "o1", "5"))); !errors.Is(err, domain.ErrDuplicateOrder) {
		t.Fatalf("duplicate order: %v", err)
	}
	if _, err := s.Append(ctx, req(refund("KH1", "nope", "1"))); !errors.Is(err, domain.ErrUnknownOrder) {
		t.Fatalf("refund of unknown order: %v", err)
	}
	// The same order_id is fine for another customer.
	if _, err := s.Append(ctx, req(order("KH2", "o1", "5"))); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWritersGetContiguousVersionsAndLoseNothing(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	const writers, perWriter = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Half the writers share one customer, the others have their own.
				customer := "SHARED"
				if w%2 == 1 {
					customer = fmt.Sprintf("OWN%d", w)
				}
				if _, err := s.Append(ctx, req(order(customer, fmt.Sprintf("w%d-%d", w, i), "1"))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*perWriter {
		t.Fatalf("read %d events, want %d", len(all), writers*perWriter)
	}
	versions := map[domain.CustomerCode]int64{}
	for i, e := range all {
		if i > 0 && e.Position <= all[i-1].Position {
			t.Fatalf("position %d at index %d: positions must increase", e.Position, i)
		}
		versions[e.Customer]++
		if e.Version != versions[e.Customer] {
			t.Fatalf("customer %s: version %d follows %d", e.Customer, e.Version, versions[e.Customer]-1)
		}
	}
	if versions["SHARED"] != writers/2*perWriter {
		t.Fatalf("SHARED has %d events", versions["SHARED"])
	}
}

func TestEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, req(order("KH1", "o1", "1"))); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"UPDATE events SET type = 'OrderRefunded'",
		"DELETE FROM events",
		"TRUNCATE events",
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refusal", stmt, err)
		}
	}
	if n := countEvents(t, s); n != 1 {
		t.Fatalf("events after refused changes: %d", n)
	}
}

// Small groups insert their events with the write batch and large ones by
// COPY; both paths must store the same bytes (the hash chain covers them).
func TestSmallAndLargeGroupsStoreTheSameRows(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	build := func(customer string, n int) []domain.Envelope {
		evs := []domain.Envelope{registered(customer, "深圳市华芯 'O''Brien'; --", "13812348888", "li@example.com")}
		for i := 1; i < n; i++ {
			e := order(customer, fmt.Sprintf("o-%d", i), "1234.56")
			e.OccurredAt = t0.Add(-time.Duration(i) * time.Hour)
			e.Source, e.CorrelationID = "crm", fmt.Sprintf("c-%d", i)
			evs = append(evs, e)
		}
		return evs
	}
	const n = 300 // above the COPY threshold (256 rows) in one request
	if _, err := s.Append(ctx, domain.AppendRequest{Events: build("KHBIG", n), Batch: true}); err != nil {
		t.Fatal(err)
	}
	for _, e := range build("KHSMALL", n) { // one event per group: the INSERT path
		if _, err := s.Append(ctx, req(e)); err != nil {
			t.Fatal(err)
		}
	}
	big, err := s.ReadStream(ctx, "KHBIG", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	small, err := s.ReadStream(ctx, "KHSMALL", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(big) != n || len(small) != n {
		t.Fatalf("read %d and %d events, want %d each", len(big), len(small), n)
	}
	for i := range big {
		b, sm := big[i], small[i]
		if b.Type != sm.Type || !b.OccurredAt.Equal(sm.OccurredAt) || b.Source != sm.Source || b.CorrelationID != sm.CorrelationID || b.Version != sm.Version {
			t.Fatalf("event %d differs between the paths:\n COPY   %+v\n INSERT %+v", i, b, sm)
		}
		// Personal data is sealed per customer (different keys), so only
		// orders are compared byte for byte.
		if b.Type == domain.TypeOrderPlaced && !bytes.Equal(b.Data, sm.Data) {
			t.Fatalf("event %d data differs: COPY %s, INSERT %s", i, b.Data, sm.Data)
		}
	}
	for _, c := range []domain.CustomerCode{"KHBIG", "KHSMALL"} {
		brk, err := s.VerifyStream(ctx, c)
		if err != nil || brk != nil {
			t.Fatalf("verify %s: break %+v, err %v", c, brk, err)
		}
	}
}

// nextCommitted waits for the store's next commit hint.
func nextCommitted(ctx context.Context, t *testing.T, s *eventstore.Store) []uuid.UUID {
	t.Helper()
	select {
	case streams := <-s.Committed():
		return streams
	case <-ctx.Done():
		t.Fatal("no commit hint")
		return nil
	}
}

func TestCommittedNamesEachCommitsNewStreamsOnceAfterTheCommit(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	id := uuid.New()
	if _, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id), order("KH2", "o1", "5"), order("KH1", "o2", "1"))); err != nil {
		t.Fatal(err)
	}
	got := nextCommitted(ctx, t, s)
	want := []uuid.UUID{domain.CustomerCode("KH1").StreamID(), domain.CustomerCode("KH2").StreamID()}
	if !slices.Equal(got, want) {
		t.Fatalf("hint %v, want KH1 then KH2 once each %v", got, want)
	}
	// The hint follows the commit: what it names is already readable.
	if v, err := s.StreamVersion(ctx, "KH1"); err != nil || v != 2 {
		t.Fatalf("KH1 at the hint: version %d, %v; want 2", v, err)
	}
	// A request that stores nothing new (a re-sent event, a version
	// conflict) names nothing: the writer is serial and the hints are in
	// commit order, so the next hint is the next request's.
	if res, err := s.Append(ctx, req(withID(order("KH1", "o1", "10"), id))); err != nil || !res[0].Duplicate {
		t.Fatalf("re-send: %+v, %v", res, err)
	}
	if _, err := s.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{order("KH2", "o2", "1")}, Expected: map[domain.CustomerCode]int64{"KH2": 0}}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("err = %v, want a version conflict", err)
	}
	if _, err := s.Append(ctx, req(order("KH3", "o1", "1"))); err != nil {
		t.Fatal(err)
	}
	if got := nextCommitted(ctx, t, s); !slices.Equal(got, []uuid.UUID{domain.CustomerCode("KH3").StreamID()}) {
		t.Fatalf("hint after a duplicate and a conflict: %v, want only KH3", got)
	}
}
