package projections

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
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
// randomStoredProjections calls check with n documents that fill every
// field of storedProjection with random values: texts with escapes and
// multi-byte characters, times in several zones or zero, lists and maps nil,
// empty or not.
func randomStoredProjections(t testing.TB, n int, check func(i int, sp *storedProjection)) {
	t.Helper()
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
	for i := range n {
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
		if maybe() {
			st.Recommendation = &domain.Timed[int]{Value: rng.IntN(11), At: tm()}
		}
		sp.ValueTier, sp.Activity, sp.Need, sp.Lifecycle = s(), s(), s(), s()
		if rng.IntN(3) > 0 {
			sp.Tags = []string{}
			for range rng.IntN(3) {
				sp.Tags = append(sp.Tags, s())
			}
		}
		sp.Facts = domain.Facts{NetAmount: money(), OrderCount: rng.Int64N(100), Orders3m: rng.Int64N(10), Orders6m: rng.Int64N(10),
			Inquiries3m: rng.Int64N(10), InquiryCount: rng.Int64N(10), LatestSatisfaction: rng.Int64N(6), HasSatisfaction: maybe(), ProfileMissing: uint8(rng.IntN(256)),
			AvgOrderValue: money(), FirstOrderAt: tm().UnixNano(), Sales6m: money(), SalesPrev6m: money(), OrdersPrev6m: rng.Int64N(10),
			Growth6m: rng.Int64N(400) - 100, HasGrowth6m: maybe(), RFMRecency: int8(rng.IntN(6)), RFMFrequency: int8(rng.IntN(6)),
			RFMMonetary: int8(rng.IntN(6)), LTVPredicted: money(), RecommendationScore: rng.Int64N(11), HasRecommendation: maybe()}
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
				if maybe() {
					a.AcknowledgedAt, a.SnoozedUntil, a.EscalatedAt = tm(), tm(), tm()
				}
				sp.Alerts = append(sp.Alerts, a)
			}
		}
		if maybe() {
			sp.Dims = []string{"spend_band", s(), "focus", s()}
		}
		check(i, &sp)
	}
}

// withoutEmpty is sp with its empty lists and maps made nil, as the binary
// document reads them back.
func withoutEmpty(sp storedProjection) storedProjection {
	if len(sp.State.Orders) == 0 {
		sp.State.Orders = nil
	}
	if len(sp.State.Inquiries) == 0 {
		sp.State.Inquiries = nil
	}
	if len(sp.Tags) == 0 {
		sp.Tags = nil
	}
	if len(sp.Since) == 0 {
		sp.Since = nil
	}
	if len(sp.Alerts) == 0 {
		sp.Alerts = nil
	}
	if len(sp.Dims) == 0 {
		sp.Dims = nil
	}
	return sp
}

// The binary document reads back as what was written: the same JSON (which
// names every stored field, with times and their offsets), except that
// empty lists read back as none; and writing what was read gives the same
// bytes, which is what lets a rebuild reproduce live documents byte for byte.
func TestBinaryProjectionReadsBackWhatWasWritten(t *testing.T) {
	randomStoredProjections(t, 5000, func(i int, sp *storedProjection) {
		b := appendBinaryProjection(nil, sp)
		got, err := decodeBinaryProjection(b)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		want, err := json.Marshal(withoutEmpty(*sp), json.Deterministic(true))
		if err != nil {
			t.Fatal(err)
		}
		gotJSON, err := json.Marshal(&got, json.Deterministic(true))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotJSON, want) {
			t.Fatalf("document %d read back:\n got %s\nwant %s", i, gotJSON, want)
		}
		if again := appendBinaryProjection(nil, &got); !bytes.Equal(again, b) {
			t.Fatalf("document %d: written again, %d bytes differ from the %d first written", i, len(again), len(b))
		}
		// Every proper prefix is refused, never misread.
		if i%50 == 0 {
			for n := range b {
				if _, err := decodeBinaryProjection(b[:n]); !errors.Is(err, errBadDocument) {
					t.Fatalf("document %d cut at %d of %d bytes: %v", i, n, len(b), err)
				}
			}
		}
	})
}

// storedFields lists every field path of a struct type, recursively.
func storedFields(prefix string, typ reflect.Type, out *[]string) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() {
		return
	}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		*out = append(*out, prefix+f.Name)
		storedFields(prefix+f.Name+".", f.Type, out)
	}
}

// The binary codec writes each field by hand: a field added to the stored
// document (or to the domain structs it holds) must be added to
// codec_binary.go, to randomStoredProjections, and then here.
func TestBinaryProjectionCodecKnowsEveryField(t *testing.T) {
	var got []string
	storedFields("", reflect.TypeFor[storedProjection](), &got)
	want := []string{"State", "State.Customer", "State.Version", "State.Profile", "State.Profile.Registered", "State.Profile.Name",
		"State.Profile.Kind", "State.Profile.Industry", "State.Profile.Region", "State.Profile.Employees", "State.Profile.AnnualRevenue",
		"State.Profile.SourceChannel", "State.Profile.Owner", "State.Profile.Contact", "State.Profile.Contact.Name",
		"State.Profile.Contact.Title", "State.Profile.Contact.Phone", "State.Profile.Contact.Email", "State.Profile.Erased",
		"State.Orders", "State.Orders.ID", "State.Orders.Amount", "State.Orders.Refunded", "State.Orders.At",
		"State.NetAmount", "State.LastOrderAt", "State.Inquiries", "State.Satisfaction", "State.Satisfaction.Value",
		"State.Satisfaction.At", "State.CoreNeeds", "State.CoreNeeds.Value", "State.CoreNeeds.At", "State.Preference",
		"State.Preference.Value", "State.Preference.At", "State.Sensitivity", "State.Sensitivity.Value", "State.Sensitivity.At",
		"State.LastFollowUp", "State.LastFollowUp.Value", "State.LastFollowUp.At",
		"State.Recommendation", "State.Recommendation.Value", "State.Recommendation.At",
		"ValueTier", "Activity", "Need", "Lifecycle", "Tags", "Facts", "Facts.NetAmount", "Facts.OrderCount", "Facts.Orders3m",
		"Facts.Orders6m", "Facts.Inquiries3m", "Facts.InquiryCount", "Facts.LatestSatisfaction", "Facts.HasSatisfaction",
		"Facts.ProfileMissing", "Facts.AvgOrderValue", "Facts.FirstOrderAt", "Facts.Sales6m", "Facts.SalesPrev6m",
		"Facts.OrdersPrev6m", "Facts.Growth6m", "Facts.HasGrowth6m", "Facts.RFMRecency", "Facts.RFMFrequency", "Facts.RFMMonetary",
		"Facts.LTVPredicted", "Facts.RecommendationScore", "Facts.HasRecommendation", "RuleVersion", "EvaluatedAt", "Next", "Since", "Alerts", "Alerts.ID", "Alerts.Kind", "Alerts.From",
		"Alerts.To", "Alerts.CreatedAt", "Alerts.DueAt", "Alerts.Owner", "Alerts.Status", "Alerts.ResolvedAt", "Alerts.ResolvedBy",
		"Alerts.RuleVersion", "Alerts.Escalates", "Alerts.Suppressed",
		"Alerts.AcknowledgedAt", "Alerts.SnoozedUntil", "Alerts.EscalatedAt", "Dims"}
	if !slices.Equal(got, want) {
		t.Errorf("stored fields changed; update codec_binary.go and this list:\n got %q\nwant %q", got, want)
	}
}

// Whatever the bytes, decoding returns a document or an error, never
// panics; a document it accepts, written again, reads back the same.
func FuzzDecodeBinaryProjection(f *testing.F) {
	randomStoredProjections(f, 20, func(_ int, sp *storedProjection) {
		f.Add(appendBinaryProjection(nil, sp))
	})
	f.Add([]byte{docBinaryV1})
	f.Add([]byte{docBinaryV2})
	f.Add([]byte{docBinaryV3})
	f.Add([]byte{docBinaryV4})
	f.Add([]byte{docBinaryV5})
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sp, err := decodeBinaryProjection(b)
		if err != nil {
			if !errors.Is(err, errBadDocument) {
				t.Fatalf("error %v is not errBadDocument", err)
			}
			return
		}
		again, err := decodeBinaryProjection(appendBinaryProjection(nil, &sp))
		if err != nil {
			t.Fatalf("accepted %x, but not once written again: %v", b, err)
		}
		want, err1 := json.Marshal(&sp, json.Deterministic(true))
		got, err2 := json.Marshal(&again, json.Deterministic(true))
		if err1 == nil && err2 == nil && !bytes.Equal(got, want) {
			t.Fatalf("accepted %x as %s, written again it reads %s", b, want, got)
		}
	})
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

// Documents written before alerts carried a suppression reason (format 1)
// still read: the same bytes after the format byte, no reasons.
func TestBinaryDocumentsOfFormatOneAreStillRead(t *testing.T) {
	randomStoredProjections(t, 500, func(i int, sp *storedProjection) {
		if len(sp.Alerts) > 0 {
			// Format 1 alert records lack the reason: only documents without
			// alerts have the same bytes in both formats.
			return
		}
		b := appendBinaryProjectionAs(nil, sp, docBinaryV3)
		v1 := slices.Clone(b)
		v1[0] = docBinaryV1
		got, err := decodeBinaryProjection(v1)
		if err != nil {
			t.Fatalf("document %d in format 1: %v", i, err)
		}
		want, err := decodeBinaryProjection(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("document %d: format 1 read as %+v, the current format as %+v", i, got, want)
		}
	})
}

func TestAVersion2DocumentReadsWithoutTheAlertLifecycleFields(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	sp := storedProjection{State: domain.CustomerState{Customer: "KH1", Version: 3}, RuleVersion: 1, EvaluatedAt: at,
		Alerts: []storedAlert{{ID: uuid.New(), Kind: domain.AlertChurnRisk, CreatedAt: at, DueAt: at.Add(time.Hour), Owner: "王磊", Status: domain.AlertOpen, RuleVersion: 1,
			AcknowledgedAt: at, SnoozedUntil: at, EscalatedAt: at}}}
	v3 := appendBinaryProjectionAs(nil, &sp, docBinaryV3)
	// The V2 layout is V3 without the three times at the end of each alert
	// (each an offset kind byte and two varints of zero when zero).
	sp.Alerts[0].AcknowledgedAt, sp.Alerts[0].SnoozedUntil, sp.Alerts[0].EscalatedAt = time.Time{}, time.Time{}, time.Time{}
	zero := appendBinaryProjectionAs(nil, &sp, docBinaryV3)
	var w binWriter
	for range 3 {
		w.time(time.Time{})
	}
	v2 := append([]byte{docBinaryV2}, zero[1:len(zero)-len(w.b)]...)
	got, err := decodeBinaryProjection(v2)
	if err != nil {
		t.Fatalf("V2 document: %v", err)
	}
	if !reflect.DeepEqual(withoutEmpty(got), withoutEmpty(sp)) {
		t.Errorf("V2 document read as %+v, want %+v", got, sp)
	}
	if back, err := decodeBinaryProjection(v3); err != nil || !back.Alerts[0].EscalatedAt.Equal(at) {
		t.Errorf("V3 document: %+v, %v", back.Alerts, err)
	}
}
