package projections

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// marshalHistoryEntry must produce exactly json.Marshal's bytes: the outbox
// payloads are published and compared byte for byte by rebuilds.
func TestMarshalHistoryEntryMatchesJSON(t *testing.T) {
	pieces := []string{"", "a", "价值层级", "\"", "\\", "\n", "\t", "\r", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f",
		"<", ">", "&", "\u2028", "\u2029", "/", "'", "😀", "é", " ", "tag:vip", "\ufeff", "\ufffd"}
	rng := rand.New(rand.NewPCG(1, 2))
	s := func() string {
		var b []byte
		for range rng.IntN(6) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	for i := range 20000 {
		e := HistoryEntry{
			ID: uuid.New(), Customer: s(), Label: s(), To: s(), At: s(),
			Cause:       causeJSON{Kind: s()},
			RuleVersion: rng.IntN(1000) - 500, Reason: s(), ReasonEN: s(), Seq: rng.Int64() - rng.Int64(),
		}
		if i%3 == 0 {
			f := s()
			e.From = &f
		}
		if i%2 == 0 {
			ev := uuid.New()
			e.Cause.EventID = &ev
		}
		if i%5 == 0 {
			e.Display = s()
		}
		want, err := json.Marshal(&e, json.Deterministic(true))
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalHistoryEntry(&e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("entry %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Invalid UTF-8: the result (an error) is json.Marshal's.
	e := HistoryEntry{Reason: "\xff"}
	_, wantErr := json.Marshal(&e, json.Deterministic(true))
	got, err := marshalHistoryEntry(&e)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("invalid UTF-8: got %q, %v; json.Marshal: %v", got, err, wantErr)
	}
}

func TestHexUUID(t *testing.T) {
	for range 1000 {
		u := uuid.New()
		var b [36]byte
		hexUUID(&b, &u)
		if string(b[:]) != u.String() {
			t.Fatalf("%s != %s", b[:], u)
		}
	}
}

// The hand-written projection encoder must write json.Marshal's bytes.
func TestEncodeProjectionMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "客户", "\"", "\\", "\n", "\x01", "<&>", "\u2028", "😀", "enc:v1:ab+/=", "孙经理", "tag:高潜"}
	s := func() string {
		var b []byte
		for range rng.IntN(4) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	locs := []*time.Location{time.UTC, shanghai, time.FixedZone("", -5*3600-30*60), time.Local}
	tm := func() time.Time {
		if rng.IntN(8) == 0 {
			return time.Time{}
		}
		ns := int64(0)
		if rng.IntN(2) == 0 {
			ns = rng.Int64N(1e9)
		}
		return time.Unix(rng.Int64N(2e9), ns).In(locs[rng.IntN(len(locs))])
	}
	money := func() domain.Money {
		if rng.IntN(4) == 0 {
			return 0
		}
		return domain.Money(rng.Int64N(2e12) - 1e11)
	}
	u := func() uuid.UUID {
		if rng.IntN(4) == 0 {
			return uuid.Nil
		}
		return uuid.New()
	}
	maybe := func() bool { return rng.IntN(2) == 0 }
	for i := range 5000 {
		var sp storedProjection
		st := &sp.State
		st.Customer, st.Version = domain.CustomerCode(s()), rng.Int64N(1e6)
		pr := &st.Profile
		pr.Registered, pr.Erased = maybe(), rng.IntN(5) == 0
		pr.Name, pr.Kind, pr.Industry, pr.Region, pr.SourceChannel, pr.Owner = s(), domain.CustomerKind(s()), s(), s(), s(), s()
		if maybe() {
			n := rng.Int64N(1e6) - 10
			pr.Employees = &n
		}
		if maybe() {
			m := money()
			pr.AnnualRevenue = &m
		}
		if maybe() {
			pr.Contact = domain.ContactState{Name: s(), Title: s(), Phone: s(), Email: s()}
		}
		if rng.IntN(3) > 0 {
			st.Orders = []domain.OrderRecord{}
			for range rng.IntN(5) {
				st.Orders = append(st.Orders, domain.OrderRecord{ID: s(), Amount: money(), Refunded: money(), At: tm()})
			}
		}
		st.NetAmount, st.LastOrderAt = money(), tm()
		if rng.IntN(3) > 0 {
			st.Inquiries = []time.Time{}
			for range rng.IntN(4) {
				st.Inquiries = append(st.Inquiries, tm())
			}
		}
		if maybe() {
			st.Satisfaction = &domain.Timed[int]{Value: rng.IntN(11) - 5, At: tm()}
		}
		if maybe() {
			var v []string
			if maybe() {
				v = []string{}
				for range rng.IntN(3) {
					v = append(v, s())
				}
			}
			st.CoreNeeds = &domain.Timed[[]string]{Value: v, At: tm()}
		}
		if maybe() {
			st.Preference = &domain.Timed[string]{Value: s(), At: tm()}
		}
		if maybe() {
			st.Sensitivity = &domain.Timed[string]{Value: s(), At: tm()}
		}
		if maybe() {
			st.LastFollowUp = &domain.Timed[uuid.UUID]{Value: u(), At: tm()}
		}
		sp.ValueTier, sp.Activity, sp.Need, sp.Lifecycle = s(), s(), s(), s()
		if rng.IntN(3) > 0 {
			sp.Tags = []string{}
			for range rng.IntN(3) {
				sp.Tags = append(sp.Tags, s())
			}
		}
		sp.Facts = domain.Facts{NetAmount: money(), OrderCount: rng.Int64N(100), Orders3m: rng.Int64N(10), Orders6m: rng.Int64N(10),
			Inquiries3m: rng.Int64N(10), InquiryCount: rng.Int64N(10), LatestSatisfaction: rng.Int64N(6), HasSatisfaction: maybe(), ProfileMissing: uint8(rng.IntN(256))}
		sp.RuleVersion, sp.EvaluatedAt, sp.Next = rng.IntN(5), tm(), tm()
		if rng.IntN(3) > 0 {
			sp.Since = map[string]time.Time{}
			for _, k := range []string{"value_tier", "activity", "segment", "tag:vip", "tag:b", "lifecycle", "need_orientation", "tag:高潜"} {
				if maybe() {
					sp.Since[k] = tm()
				}
			}
		}
		if rng.IntN(3) > 0 {
			sp.Alerts = []storedAlert{}
			for range rng.IntN(3) {
				a := storedAlert{ID: u(), Kind: s(), From: s(), To: s(), CreatedAt: tm(), Owner: s(), Status: s(), RuleVersion: rng.IntN(4)}
				if maybe() {
					a.DueAt, a.ResolvedAt, a.ResolvedBy, a.Escalates = tm(), tm(), u(), u()
				}
				sp.Alerts = append(sp.Alerts, a)
			}
		}
		want, wantErr := json.Marshal(&sp, json.Deterministic(true))
		got, err := appendStoredProjection(nil, &sp)
		if err != nil {
			if !errors.Is(err, errFastEncode) {
				t.Fatalf("document %d: %v", i, err)
			}
			continue // falls back to json.Marshal
		}
		if wantErr != nil {
			t.Fatalf("document %d: fast encoding succeeded, json.Marshal: %v", i, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("document %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Out-of-range years make the fast path give up.
	sp := storedProjection{EvaluatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := appendStoredProjection(nil, &sp); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

// Consume's workers split the customers between them: each code has one
// worker, and the split is even enough that neither idles.
func TestCustomerShardSplitsCustomersEvenly(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		counts := make([]int, n)
		for i := range 20_000 {
			code := fmt.Sprintf("KH%06d", i)
			s := customerShard(code, n)
			if s < 0 || s >= n || customerShard(code, n) != s {
				t.Fatalf("customerShard(%q, %d) = %d, not one stable shard in [0, %d)", code, n, s, n)
			}
			counts[s]++
		}
		for s, c := range counts {
			if want := 20_000 / n; c < want*9/10 || c > want*11/10 {
				t.Fatalf("%d workers: worker %d has %d of 20,000 customers (%v)", n, s, c, counts)
			}
		}
	}
}
