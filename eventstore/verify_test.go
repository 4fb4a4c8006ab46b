package eventstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

// tamper changes recorded events behind the store's back, the way someone
// with superuser access to the database could: it switches the append-only
// trigger off, runs stmt (which must change some row) and switches the
// trigger on again, all in one transaction.
func tamper(t *testing.T, db *testenv.DB, stmt string, args ...any) {
	t.Helper()
	ctx := ctxT(t)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER TABLE events DISABLE TRIGGER events_append_only"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, stmt, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s changed no row", stmt)
		}
		_, err = tx.Exec(ctx, "ALTER TABLE events ENABLE TRIGGER events_append_only")
		return err
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func mustAppend(t *testing.T, s *eventstore.Store, events ...domain.Envelope) []eventstore.Result {
	t.Helper()
	res, err := s.Append(ctxT(t), req(events...))
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func inquiry(customer, topic string) domain.Envelope {
	return domain.Envelope{Type: domain.TypeInquiryReceived, Customer: domain.CustomerCode(customer),
		Data: &domain.InquiryReceived{Channel: "phone", Topic: topic}}
}

func erasure(customer string) domain.Envelope {
	return domain.Envelope{Type: domain.TypeCustomerErased, Customer: domain.CustomerCode(customer),
		Data: &domain.CustomerErased{Reason: "客户要求删除个人信息"}}
}

// mixedHistory appends a varied history for several customers, some events
// in multi-customer batches, and returns the number of events.
func mixedHistory(t *testing.T, s *eventstore.Store) int {
	t.Helper()
	withMeta := func(e domain.Envelope, source, corr string, occurred time.Time) domain.Envelope {
		e.Source, e.CorrelationID, e.OccurredAt = source, corr, occurred
		return e
	}
	n := 0
	for _, batch := range [][]domain.Envelope{
		{registered("KHX", "深圳市某电子有限公司", "13812345678", "li.ming@example.com"), order("KHY", "y1", "50")},
		{order("KHX", "x1", "200"), order("KHX", "x2", "1000000.00"), registered("KHZ", "广州某贸易公司", "13900001111", "zhang@example.cn")},
		{withMeta(refund("KHX", "x1", "20.50"), "erp", "corr-1", t0.Add(-48*time.Hour)), inquiry("KHY", "报价")},
		{{Type: domain.TypeOwnerAssigned, Customer: "KHZ", Data: &domain.OwnerAssigned{Owner: "张三"}}},
		{{Type: domain.TypeSatisfactionRated, Customer: "KHX", Data: &domain.SatisfactionRated{Score: 4, Feedback: "不错"}}},
		{{Type: domain.TypeNeedsDeclared, Customer: "KHY", Data: &domain.NeedsDeclared{
			CoreNeeds: []string{"交期", "价格"}, CommunicationPreference: domain.PreferEmail, PriceSensitivity: domain.SensitivityHigh,
		}}},
		{{Type: domain.TypeFollowUpLogged, Customer: "KHZ", Data: &domain.FollowUpLogged{By: "张三", Channel: "phone", Summary: "回访", Outcome: "满意"}}},
		{erasure("KHZ"), order("KHZ", "z1", "9.99"), order("KHY", "y2", "0.01")},
	} {
		mustAppend(t, s, batch...)
		n += len(batch)
	}
	return n
}

func verifyIntact(t *testing.T, s *eventstore.Store, customers ...domain.CustomerCode) {
	t.Helper()
	ctx := ctxT(t)
	for _, c := range customers {
		b, err := s.VerifyStream(ctx, c)
		if err != nil {
			t.Fatalf("VerifyStream(%s): %v", c, err)
		}
		if b != nil {
			t.Fatalf("VerifyStream(%s) = %+v, want an intact chain", c, *b)
		}
	}
}

func TestVerifyIntactLog(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	n := mixedHistory(t, s)
	verifyIntact(t, s, "KHX", "KHY", "KHZ")
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(breaks) != 0 || checked != int64(n) {
		t.Fatalf("VerifyAll = %+v, %d checked; want no breaks and %d checked", breaks, checked, n)
	}
	if _, err := s.VerifyStream(ctx, "NOBODY"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("VerifyStream of an unknown customer: err = %v, want ErrNotFound", err)
	}
}

func TestVerifyAllOnAnEmptyLog(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	breaks, checked, err := s.VerifyAll(ctxT(t))
	if err != nil || len(breaks) != 0 || checked != 0 {
		t.Fatalf("VerifyAll of an empty log = %+v, %d, %v", breaks, checked, err)
	}
}

func readEvent(t *testing.T, s *eventstore.Store, customer domain.CustomerCode, version int64) eventstore.RecordedEvent {
	t.Helper()
	events, err := s.ReadStream(ctxT(t), customer, version-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Version != version {
		t.Fatalf("customer %s has no version %d: %+v", customer, version, events)
	}
	return events[0]
}

func wantBreak(t *testing.T, what string, b *eventstore.Break, e eventstore.RecordedEvent) {
	t.Helper()
	if b == nil {
		t.Fatalf("%s: no break reported; want one at customer %s version %d", what, e.Customer, e.Version)
	}
	if b.Customer != e.Customer || b.StreamID != e.Customer.StreamID() || b.Version != e.Version || b.Position != e.Position || b.Reason == "" {
		t.Fatalf("%s: break = %+v; want customer %s version %d position %d with a reason", what, *b, e.Customer, e.Version, e.Position)
	}
}

func TestVerifyFindsATamperedEvent(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	n := mixedHistory(t, s)
	verifyIntact(t, s, "KHX", "KHY", "KHZ")

	// KHX's version 2 is the order x1 of 200.00: make it 2.00.
	x2 := readEvent(t, s, "KHX", 2)
	if x2.Type != domain.TypeOrderPlaced || !strings.Contains(string(x2.Data), `"amount":"200.00"`) {
		t.Fatalf("KHX version 2 = %s %s", x2.Type, x2.Data)
	}
	tamper(t, db, `UPDATE events SET data = replace(data::text, '"amount":"200.00"', '"amount":"2.00"')::json
		WHERE stream_id = $1 AND version = 2`, x2.StreamID)
	if got := readEvent(t, s, "KHX", 2); !strings.Contains(string(got.Data), `"amount":"2.00"`) || !bytes.Equal(got.Hash, x2.Hash) {
		t.Fatalf("tampering did not take: %s", got.Data)
	}
	// The trigger is back on.
	if _, err := db.Pool.Exec(ctx, "UPDATE events SET type = type WHERE position = 1"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("append-only trigger not re-enabled: %v", err)
	}

	b, err := s.VerifyStream(ctx, "KHX")
	if err != nil {
		t.Fatal(err)
	}
	wantBreak(t, "VerifyStream(KHX)", b, x2)
	verifyIntact(t, s, "KHY", "KHZ")
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if checked != int64(n) || len(breaks) != 1 {
		t.Fatalf("VerifyAll = %+v, %d checked; want exactly one break, %d checked", breaks, checked, n)
	}
	wantBreak(t, "VerifyAll", &breaks[0], x2)

	// Later appends to the broken stream do not hide the break.
	mustAppend(t, s, order("KHX", "x9", "1"))
	b, err = s.VerifyStream(ctx, "KHX")
	if err != nil {
		t.Fatal(err)
	}
	wantBreak(t, "VerifyStream(KHX) after another append", b, x2)

	// Now the hash of KHY's first event: the break is at version 1.
	y1 := readEvent(t, s, "KHY", 1)
	tamper(t, db, `UPDATE events SET hash = sha256('forged'::bytea) WHERE stream_id = $1 AND version = 1`, y1.StreamID)
	b, err = s.VerifyStream(ctx, "KHY")
	if err != nil {
		t.Fatal(err)
	}
	wantBreak(t, "VerifyStream(KHY)", b, y1)
	verifyIntact(t, s, "KHZ")
	breaks, checked, err = s.VerifyAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if checked != int64(n+1) || len(breaks) != 2 {
		t.Fatalf("VerifyAll = %+v, %d checked; want two breaks, %d checked", breaks, checked, n+1)
	}
	// Breaks come in position order.
	first, second := x2, y1
	if y1.Position < x2.Position {
		first, second = y1, x2
	}
	wantBreak(t, "VerifyAll first break", &breaks[0], first)
	wantBreak(t, "VerifyAll second break", &breaks[1], second)
}

// TestVerifyCoversEveryStoredColumn changes one column of one event per
// customer and expects each change to be found at that event.
func TestVerifyCoversEveryStoredColumn(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	cases := []struct {
		name string
		set  string
	}{
		{"data amount", `data = replace(data::text, '"amount":"2.00"', '"amount":"3.00"')::json`},
		{"data whitespace", `data = replace(data::text, '{', '{ ')::json`},
		{"data order id", `data = replace(data::text, '"o2"', '"o7"')::json`},
		{"type", `type = 'OrderRefunded'`},
		{"event id", `event_id = gen_random_uuid()`},
		{"occurred at", `occurred_at = occurred_at - interval '1 day'`},
		{"occurred at by one microsecond", `occurred_at = occurred_at + interval '1 microsecond'`},
		{"recorded at", `recorded_at = recorded_at + interval '1 hour'`},
		{"metadata source", `metadata = '{"source":"forged"}'::json`},
		{"metadata correlation id", `metadata = '{"source":"erp","correlation_id":"other"}'::json`},
		{"metadata whitespace", `metadata = '{"source": "erp","correlation_id":"c2"}'::json`},
		{"metadata extra member", `metadata = '{"source":"erp","correlation_id":"c2","note":"forged"}'::json`},
		{"customer", `customer = customer || 'X'`},
		{"hash", `hash = sha256('forged'::bytea)`},
		{"hash of another event", `hash = (SELECT e.hash FROM events e WHERE e.stream_id = events.stream_id AND e.version = 1)`},
	}
	for i := range cases {
		c := domain.CustomerCode(fmt.Sprintf("KH%02d", i))
		e := func(v domain.Envelope) domain.Envelope {
			v.Source, v.CorrelationID = "erp", fmt.Sprintf("c%d", v.Data.(*domain.OrderPlaced).Amount/100)
			return v
		}
		mustAppend(t, s, e(order(string(c), "o1", "1")), e(order(string(c), "o2", "2")), e(order(string(c), "o3", "3")))
	}
	if breaks, _, err := s.VerifyAll(ctx); err != nil || len(breaks) != 0 {
		t.Fatalf("before tampering: %+v, %v", breaks, err)
	}
	want := map[domain.CustomerCode]eventstore.RecordedEvent{}
	for i, tc := range cases {
		c := domain.CustomerCode(fmt.Sprintf("KH%02d", i))
		v2 := readEvent(t, s, c, 2)
		tamper(t, db, "UPDATE events SET "+tc.set+" WHERE stream_id = $1 AND version = 2", c.StreamID())
		b, err := s.VerifyStream(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if b == nil || b.Version != 2 || b.StreamID != c.StreamID() || b.Position != v2.Position {
			t.Errorf("%s: VerifyStream = %+v; want a break at version 2", tc.name, b)
		}
		want[c] = v2
	}
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if checked != int64(3*len(cases)) || len(breaks) != len(cases) {
		t.Fatalf("VerifyAll: %d breaks, %d checked; want %d breaks, %d checked", len(breaks), checked, len(cases), 3*len(cases))
	}
	for i, b := range breaks {
		w, ok := want[domain.CustomerCode(fmt.Sprintf("KH%02d", i))]
		if !ok || b.StreamID != w.StreamID || b.Version != 2 || b.Position != w.Position {
			t.Errorf("VerifyAll break %d (%s) = %+v; want version 2 at position %d", i, cases[i].name, b, w.Position)
		}
	}
}

// TestVerifyAcrossPages makes streams longer than one read page of
// VerifyStream and a log longer than one page of VerifyAll, so the chain must
// be carried across page boundaries.
func TestVerifyAcrossPages(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	appendOrders := func(customer string, n int) {
		for start := 0; start < n; start += 1000 {
			var batch []domain.Envelope
			for i := start; i < min(n, start+1000); i++ {
				batch = append(batch, order(customer, fmt.Sprintf("o%d", i), "1"))
			}
			mustAppend(t, s, batch...)
		}
	}
	appendOrders("BIG", 2500)
	appendOrders("SMALL", 2600)
	verifyIntact(t, s, "BIG", "SMALL")
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil || len(breaks) != 0 || checked != 5100 {
		t.Fatalf("VerifyAll = %+v, %d, %v; want no breaks, 5100 checked", breaks, checked, err)
	}
	big := readEvent(t, s, "BIG", 2001)     // third page of VerifyStream
	small := readEvent(t, s, "SMALL", 2550) // second page of VerifyAll
	if small.Position <= 5000 {
		t.Fatalf("SMALL version 2550 is at position %d", small.Position)
	}
	for _, e := range []eventstore.RecordedEvent{big, small} {
		tamper(t, db, `UPDATE events SET data = replace(data::text, '"amount":"1.00"', '"amount":"1.01"')::json
			WHERE stream_id = $1 AND version = $2`, e.StreamID, e.Version)
		b, err := s.VerifyStream(ctx, e.Customer)
		if err != nil {
			t.Fatal(err)
		}
		wantBreak(t, "VerifyStream("+string(e.Customer)+")", b, e)
	}
	breaks, checked, err = s.VerifyAll(ctx)
	if err != nil || len(breaks) != 2 || checked != 5100 {
		t.Fatalf("VerifyAll = %+v, %d, %v; want 2 breaks, 5100 checked", breaks, checked, err)
	}
	wantBreak(t, "VerifyAll first break", &breaks[0], big)
	wantBreak(t, "VerifyAll second break", &breaks[1], small)
}

func TestHashesChainAndDiffer(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	n := mixedHistory(t, s)
	// Identical events for two customers, and the same event twice for one.
	mustAppend(t, s, inquiry("TWIN-A", "报价"), inquiry("TWIN-B", "报价"))
	mustAppend(t, s, inquiry("TWIN-A", "报价"), inquiry("TWIN-B", "报价"))
	n += 4

	all, err := s.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("read %d events, want %d", len(all), n)
	}
	seen := map[string]eventstore.RecordedEvent{}
	last := map[domain.CustomerCode][]byte{}
	for _, e := range all {
		if len(e.Hash) != eventstore.HashSize || bytes.Equal(e.Hash, make([]byte, eventstore.HashSize)) {
			t.Fatalf("event %d: hash %x", e.Position, e.Hash)
		}
		if prev, ok := last[e.Customer]; ok && bytes.Equal(prev, e.Hash) {
			t.Fatalf("event %d (%s v%d) has the hash of the previous event", e.Position, e.Customer, e.Version)
		}
		if other, ok := seen[string(e.Hash)]; ok {
			t.Fatalf("events %d and %d share a hash", other.Position, e.Position)
		}
		seen[string(e.Hash)] = e
		last[e.Customer] = e.Hash
	}
	a, b := readEvent(t, s, "TWIN-A", 1), readEvent(t, s, "TWIN-B", 1)
	if !bytes.Equal(a.Data, b.Data) || a.Type != b.Type || !a.OccurredAt.Equal(b.OccurredAt) || !a.RecordedAt.Equal(b.RecordedAt) {
		t.Fatalf("twin events differ in content: %s / %s", a.Data, b.Data)
	}
	if bytes.Equal(a.Hash, b.Hash) {
		t.Fatal("identical events of different customers have the same hash")
	}
	if a2 := readEvent(t, s, "TWIN-A", 2); bytes.Equal(a2.Hash, a.Hash) || !bytes.Equal(a2.Data, a.Data) {
		t.Fatal("the same event twice in one stream has the same hash")
	}
	// The write model's last_hash is the hash of each stream's last event.
	rows, err := db.Pool.Query(ctx, "SELECT customer, version, last_hash FROM streams")
	if err != nil {
		t.Fatal(err)
	}
	type head struct {
		customer domain.CustomerCode
		version  int64
		hash     []byte
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (head, error) {
		var h head
		return h, r.Scan(&h.customer, &h.version, &h.hash)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(last) {
		t.Fatalf("%d streams, %d customers in the log", len(heads), len(last))
	}
	for _, h := range heads {
		if !bytes.Equal(h.hash, last[h.customer]) {
			t.Errorf("stream %s: last_hash differs from its last event's hash", h.customer)
		}
	}
	verifyIntact(t, s, slices.Sorted(maps.Keys(last))...)
}

// TestVerifyFindsMissingEvents deletes events at the end of a stream, where
// no later link would notice, and the whole of a stream: the stream heads
// recorded by the store say how far each chain must reach.
func TestVerifyFindsMissingEvents(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	for _, c := range []string{"TAIL", "GONE", "MID", "HEAD", "NOHEAD", "OK"} {
		mustAppend(t, s, order(c, "o1", "1"), order(c, "o2", "2"), order(c, "o3", "3"))
	}
	tail3, mid2, head3 := readEvent(t, s, "TAIL", 3), readEvent(t, s, "MID", 2), readEvent(t, s, "HEAD", 3)
	tamper(t, db, "DELETE FROM events WHERE stream_id = $1 AND version = 3", tail3.StreamID)
	tamper(t, db, "DELETE FROM events WHERE stream_id = $1", domain.CustomerCode("GONE").StreamID())
	tamper(t, db, "DELETE FROM events WHERE stream_id = $1 AND version = 2", mid2.StreamID)
	// The log is intact but the head recorded by the store disagrees with
	// it, or is gone.
	if _, err := db.Pool.Exec(ctx, "UPDATE streams SET last_hash = sha256('forged'::bytea) WHERE stream_id = $1", head3.StreamID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "DELETE FROM streams WHERE stream_id = $1", domain.CustomerCode("NOHEAD").StreamID()); err != nil {
		t.Fatal(err)
	}

	type want struct {
		customer domain.CustomerCode
		version  int64
	}
	wants := []want{{"TAIL", 3}, {"GONE", 1}, {"MID", 3}, {"HEAD", 3}, {"NOHEAD", 1}}
	for _, w := range wants {
		b, err := s.VerifyStream(ctx, w.customer)
		if err != nil {
			t.Fatalf("VerifyStream(%s): %v", w.customer, err)
		}
		if b == nil || b.Customer != w.customer || b.StreamID != w.customer.StreamID() || b.Version != w.version || b.Reason == "" {
			t.Errorf("VerifyStream(%s) = %+v; want a break at version %d", w.customer, b, w.version)
		}
	}
	verifyIntact(t, s, "OK")
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if checked != 18-1-3-1 || len(breaks) != len(wants) {
		t.Fatalf("VerifyAll = %+v, %d checked; want %d breaks, %d checked", breaks, checked, len(wants), 18-1-3-1)
	}
	got := map[domain.CustomerCode]int64{}
	for _, b := range breaks {
		got[b.Customer] = b.Version
	}
	for _, w := range wants {
		if v, ok := got[w.customer]; !ok || v != w.version {
			t.Errorf("VerifyAll: break of %s at version %d (found %v); want version %d", w.customer, v, ok, w.version)
		}
	}
}

// TestVerifyWhileAppendingReportsNoFalseBreaks verifies over and over while
// writers append to existing streams and open new ones: a chain that grows
// during verification, or a stream created meanwhile, is not a break.
func TestVerifyWhileAppendingReportsNoFalseBreaks(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	ctx := ctxT(t)
	mustAppend(t, s, order("OLD", "o0", "1"))
	const writers, perWriter = 4, 40
	done := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				batch := []domain.Envelope{order("OLD", fmt.Sprintf("w%d-%d", w, i), "1"), order(fmt.Sprintf("NEW%d-%d", w, i), "o", "1")}
				if _, err := s.Append(ctx, req(batch...)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	rounds := 0
	for finished := false; !finished; rounds++ {
		select {
		case <-done:
			finished = true // one more round over the final log
		default:
		}
		breaks, _, err := s.VerifyAll(ctx)
		if err != nil || len(breaks) != 0 {
			t.Fatalf("round %d: VerifyAll = %+v, %v", rounds, breaks, err)
		}
		for _, c := range []domain.CustomerCode{"OLD", domain.CustomerCode(fmt.Sprintf("NEW%d-%d", rounds%writers, rounds%perWriter))} {
			b, err := s.VerifyStream(ctx, c)
			if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
				t.Fatalf("round %d: VerifyStream(%s): %v", rounds, c, err)
			}
			if b != nil {
				t.Fatalf("round %d: VerifyStream(%s) = %+v", rounds, c, *b)
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, checked, err := s.VerifyAll(ctx)
	if err != nil || checked != 1+2*writers*perWriter {
		t.Fatalf("final VerifyAll: %d checked, %v", checked, err)
	}
	t.Logf("%d verification rounds during the appends", rounds)
}
