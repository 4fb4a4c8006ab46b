package domain_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"pgregory.net/rapid"

	"github.com/segments-dev/segments/domain"
)

// propertyBook is a rule history that makes the properties work hard: v2
// shortens the windows, lowers the tiers, drops a tag and adds one; v3
// moves to a zone with daylight saving time (its AddDate lands in gaps and
// folds) and restores the default windows.
var propertyBook = func() *domain.RuleBook {
	text := strings.TrimRight(string(domain.DefaultRulesYAML()), "\n") + `
  - version: 2
    effective_at: "2025-09-30T16:00:00Z"
    windows: {short_months: 2, long_months: 5}
    value_tiers:
      - {value: strategic, display: 战略客户, min_net_amount: "800000.00"}
      - {value: key,       display: 重点客户, min_net_amount: "300000"}
      - {value: potential, display: 潜力客户, min_net_amount: "0"}
    tags:
      - name: churn_warning
        display: 流失预警
        when: order_count >= 1 && orders_6m == 0 && has_satisfaction && latest_satisfaction <= 3
        reason: 近5个月订单 {orders_6m}
      - name: vip
        display: 贵宾
        when: net_amount >= yuan(50000) && latest_satisfaction >= 4 && inquiries_3m >= 1
        reason: 累计净额 {net_amount}；满意度 {latest_satisfaction}
      - name: needs_completion
        display: 待补充
        when: profile_missing_count > 0
        reason: "资料缺少：{profile_missing}"
  - version: 3
    effective_at: "2026-07-31T23:30:00+08:00"
    time_zone: America/New_York
    windows: {short_months: 3, long_months: 6}
`
	b, err := domain.ParseRules([]byte(text))
	if err != nil {
		panic(err)
	}
	return b
}()

var books = []*domain.RuleBook{domain.DefaultRuleBook(), propertyBook}

var needWords = []string{"成本控制", "性价比", "功能齐全", "技术支持", "售后", "响应速度", "定制化服务", "长期合作", "战略合作", "品牌", "交期", "其他"}

var propStart = time.Date(2025, 1, 1, 0, 0, 0, 0, shanghai)

// drawOccurredAt returns the business time of an event recorded at rec:
// often rec itself, back-dated up to two years, on a month end, a little in
// the future, or the same instant as an earlier event.
func drawOccurredAt(t *rapid.T, rec time.Time, earlier []time.Time) time.Time {
	switch rapid.IntRange(0, 5).Draw(t, "occurred kind") {
	case 0:
		return rec
	case 1: // back-dated up to two years
		return rec.Add(-time.Duration(rapid.Int64Range(0, 2*366*24*3600).Draw(t, "back s")) * time.Second)
	case 2: // a month end at some hour, in Shanghai or New York
		loc := rapid.SampledFrom([]*time.Location{shanghai, newYork}).Draw(t, "zone")
		y := rapid.IntRange(rec.Year()-2, rec.Year()).Draw(t, "year")
		m := time.Month(rapid.IntRange(1, 12).Draw(t, "month"))
		d := rapid.IntRange(28, 31).Draw(t, "day")
		h := rapid.SampledFrom([]int{0, 1, 2, 3, 10, 23}).Draw(t, "hour")
		at := time.Date(y, m, d, h, rapid.SampledFrom([]int{0, 30, 59}).Draw(t, "min"), 0, 0, loc)
		if at.After(rec.Add(domain.MaxFutureSkew)) {
			return rec
		}
		return at
	case 3: // a little in the future
		return rec.Add(time.Duration(rapid.Int64Range(0, int64(domain.MaxFutureSkew)).Draw(t, "ahead ns")))
	case 4: // the same business time as an earlier event
		if len(earlier) > 0 {
			at := rapid.SampledFrom(earlier).Draw(t, "same as")
			if !at.After(rec.Add(domain.MaxFutureSkew)) {
				return at
			}
		}
		return rec
	default: // back-dated by up to 90 days, to the nanosecond
		return rec.Add(-time.Duration(rapid.Int64Range(0, int64(90*24*time.Hour)).Draw(t, "back ns")))
	}
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// drawHistory generates a realistic event stream: versions 1…n, recorded_at
// non-decreasing (sometimes equal, sometimes exactly on a window boundary of
// an earlier event), occurred_at spread over two years before recording and
// up to 5 minutes after it; refunds never exceed what is left of an order.
func drawHistory(t *rapid.T, code domain.CustomerCode) []*domain.Recorded {
	n := rapid.IntRange(1, 40).Draw(t, "events")
	rec := propStart.Add(time.Duration(rapid.Int64Range(0, int64(400*24*time.Hour)).Draw(t, "start")))
	type orderLeft struct {
		id   string
		left domain.Money
	}
	var orders []orderLeft
	var occurred []time.Time
	out := make([]*domain.Recorded, 0, n)
	for i := range n {
		switch rapid.IntRange(0, 4).Draw(t, "step kind") {
		case 0: // same instant
		case 1: // onto a window boundary of an earlier event
			if len(occurred) > 0 {
				at := rapid.SampledFrom(occurred).Draw(t, "boundary of")
				months := rapid.SampledFrom([]int{2, 3, 5, 6}).Draw(t, "months")
				loc := rapid.SampledFrom([]*time.Location{shanghai, newYork}).Draw(t, "boundary zone")
				if b := at.In(loc).AddDate(0, months, 0); b.After(rec) {
					rec = b
				}
			}
		default:
			rec = rec.Add(time.Duration(rapid.Int64Range(1, int64(45*24*time.Hour)).Draw(t, "step")))
		}
		at := drawOccurredAt(t, rec, occurred)
		var data domain.Event
		kind := rapid.IntRange(0, 9).Draw(t, "type")
		if kind == 2 && len(orders) == 0 {
			kind = 1
		}
		switch kind {
		case 0, 1:
			id := fmt.Sprintf("SO-%d", i)
			amount := domain.Money(rapid.OneOf(
				rapid.Int64Range(1, 100_000_00),
				rapid.Int64Range(100_000_00, 1_500_000_00),
				rapid.SampledFrom([]int64{50_000_00, 99_999_99, 100_000_00, 500_000_00, 1_000_000_00, 1_000_000_01}),
			).Draw(t, "amount"))
			orders = append(orders, orderLeft{id, amount})
			data = &domain.OrderPlaced{OrderID: id, Amount: amount}
		case 2:
			j := rapid.IntRange(0, len(orders)-1).Draw(t, "refund of")
			if orders[j].left == 0 {
				data = &domain.InquiryReceived{}
				break
			}
			amount := domain.Money(rapid.Int64Range(1, int64(orders[j].left)).Draw(t, "refund"))
			orders[j].left -= amount
			data = &domain.OrderRefunded{OrderID: orders[j].id, Amount: amount}
		case 3, 4:
			data = &domain.InquiryReceived{Topic: "报价"}
		case 5:
			data = &domain.SatisfactionRated{Score: rapid.IntRange(1, 5).Draw(t, "score")}
		case 6:
			data = &domain.NeedsDeclared{CoreNeeds: rapid.SliceOfN(rapid.SampledFrom(needWords), 1, 3).Draw(t, "needs")}
		case 7:
			p := domain.Profile{}
			field := func(name string) *string {
				switch rapid.IntRange(0, 2).Draw(t, name) {
				case 0:
					return nil
				case 1:
					return strp("")
				}
				return strp(name + "-value")
			}
			p.Name, p.Industry, p.Owner = field("name"), field("industry"), field("owner")
			if rapid.Bool().Draw(t, "contact") {
				p.Contact = &domain.Contact{Name: field("contact.name"), Phone: field("phone"), Email: field("email")}
			}
			if i == 0 {
				data = &domain.CustomerRegistered{Profile: p}
			} else {
				data = &domain.CustomerProfileUpdated{Profile: p}
			}
		case 8:
			data = &domain.OwnerAssigned{Owner: rapid.SampledFrom([]string{"王磊", "李娜"}).Draw(t, "owner")}
		default:
			data = &domain.FollowUpLogged{By: "王磊"}
		}
		v := int64(i + 1)
		out = append(out, &domain.Recorded{
			EventID: eventID(code, v), Customer: code, Version: v, Type: data.EventType(),
			OccurredAt: at, RecordedAt: rec, Data: data,
		})
		occurred = append(occurred, at)
	}
	return out
}

func drawBetween(t *rapid.T, lo, hi time.Time, label string) time.Time {
	if !hi.After(lo) {
		return lo
	}
	return lo.Add(time.Duration(rapid.Int64Range(0, int64(hi.Sub(lo))).Draw(t, label)))
}

func sameChanges(t *rapid.T, what string, a, b []domain.LabelChange) {
	if len(a) != len(b) {
		t.Fatalf("%s: %d changes vs %d:\n%s\nvs\n%s", what, len(a), len(b), strings.Join(summarize(a), "\n"), strings.Join(summarize(b), "\n"))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Customer != y.Customer || x.Label != y.Label || x.From != y.From || x.To != y.To ||
			!x.At.Equal(y.At) || x.Cause != y.Cause || x.EventID != y.EventID || x.RuleVersion != y.RuleVersion ||
			x.ReasonZH != y.ReasonZH || x.ReasonEN != y.ReasonEN {
			t.Fatalf("%s: change %d differs:\n%+v\n%+v", what, i, x, y)
		}
	}
}

func sameProjection(t *rapid.T, what string, a, b *domain.Projection) {
	if a.Labels != b.Labels || a.Facts != b.Facts || a.RuleVersion != b.RuleVersion ||
		!a.EvaluatedAt.Equal(b.EvaluatedAt) || !a.Next.Equal(b.Next) || a.State.Version != b.State.Version ||
		a.State.NetAmount != b.State.NetAmount {
		t.Fatalf("%s: projections differ:\n%+v %+v v%d at %v next %v\n%+v %+v v%d at %v next %v", what,
			a.Labels, a.Facts, a.RuleVersion, a.EvaluatedAt, a.Next, b.Labels, b.Facts, b.RuleVersion, b.EvaluatedAt, b.Next)
	}
	if len(a.Since) != len(b.Since) {
		t.Fatalf("%s: Since %v vs %v", what, a.Since, b.Since)
	}
	for k, v := range a.Since {
		if w, ok := b.Since[k]; !ok || !v.Equal(w) {
			t.Fatalf("%s: Since[%s] %v vs %v", what, k, v, w)
		}
	}
}

// TestPropertyBatchingDoesNotMatter: feeding the events one Advance at a
// time, or with extra Advance(p, t, nil) calls at arbitrary instants between
// them (never beyond the next event's recorded_at), gives the same labels,
// Since, facts and the same list of changes, ids included.
func TestPropertyBatchingDoesNotMatter(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SampledFrom(books).Draw(t, "book")
		recs := drawHistory(t, testCode)
		last := recs[len(recs)-1].RecordedAt
		final := drawBetween(t, last, last.AddDate(3, 0, 0), "final")

		var plain domain.Projection
		want := advanceAll(b, &plain, recs, final)

		var p domain.Projection
		var got []domain.LabelChange
		lo := recs[0].RecordedAt.AddDate(0, -1, 0)
		extra := func(hi time.Time) {
			k := rapid.IntRange(0, 3).Draw(t, "extra advances")
			ts := make([]time.Time, 0, k+1)
			for range k {
				ts = append(ts, drawBetween(t, lo, hi, "extra at"))
			}
			// Sometimes exactly the next instant the projection announces.
			if ni := b.NextInstant(&p); !ni.IsZero() && !ni.After(hi) && rapid.Bool().Draw(t, "at next instant") {
				ts = append(ts, ni)
			}
			slices.SortFunc(ts, time.Time.Compare)
			for _, at := range ts {
				got = append(got, b.Advance(&p, at, nil)...)
			}
		}
		for _, r := range recs {
			extra(r.RecordedAt)
			got = append(got, b.Advance(&p, r.RecordedAt, r)...)
			lo = r.RecordedAt
		}
		extra(final)
		got = append(got, b.Advance(&p, final, nil)...)

		sameChanges(t, "batched", want, got)
		sameProjection(t, "batched", &plain, &p)

		// The projection advanced to final holds the labels in force at
		// final, whatever the path (the as-of query relies on it).
		rs := b.At(final)
		var fresh domain.CustomerState
		for _, r := range recs {
			fresh.Apply(r)
		}
		l, f, _ := rs.Evaluate(&fresh, final)
		if l != p.Labels || f != p.Facts || p.RuleVersion != rs.Version {
			t.Fatalf("labels at final %v: projection %+v %+v v%d, evaluation %+v %+v v%d", final, p.Labels, p.Facts, p.RuleVersion, l, f, rs.Version)
		}
		if ni := b.NextInstant(&p); !ni.IsZero() && !ni.After(final) {
			t.Fatalf("NextInstant %v not after final %v", ni, final)
		}
		// Change instants never go back, and every change records a real change.
		for i, c := range got {
			if i > 0 && c.At.Before(got[i-1].At) {
				t.Fatalf("change %d at %v before %v", i, c.At, got[i-1].At)
			}
			if c.From == c.To {
				t.Fatalf("change %d does not change: %+v", i, c)
			}
		}
	})
}

// TestPropertyFoldIndependentOfEvaluation: a state evaluated after every
// event (its window cache kept up to date incrementally) and one folded
// first and evaluated once agree at every instant, under every rule set.
func TestPropertyFoldIndependentOfEvaluation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := drawHistory(t, testCode)
		var incremental, batch domain.CustomerState
		for _, r := range recs {
			incremental.Apply(r)
			for _, rs := range propertyBook.Versions {
				if rapid.Bool().Draw(t, "evaluate now") {
					rs.Evaluate(&incremental, r.RecordedAt)
				}
			}
			batch.Apply(r)
		}
		last := recs[len(recs)-1].RecordedAt
		for range 5 {
			at := drawBetween(t, recs[0].RecordedAt.AddDate(-1, 0, 0), last.AddDate(1, 0, 0), "at")
			for _, rs := range append([]*domain.RuleSet{domain.DefaultRuleBook().Latest()}, propertyBook.Versions...) {
				l1, f1, n1 := rs.Evaluate(&incremental, at)
				l2, f2, n2 := rs.Evaluate(&batch, at)
				if l1 != l2 || f1 != f2 || !n1.Equal(n2) {
					t.Fatalf("v%d at %v: incremental %+v %+v %v; batch %+v %+v %v", rs.Version, at, l1, f1, n1, l2, f2, n2)
				}
			}
		}
	})
}

// TestPropertyEvaluationIsDeterministic: the same state at the same instant
// gives the same labels, facts, next instant and reasons, also after a JSON
// round trip of the state.
func TestPropertyEvaluationIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := drawHistory(t, testCode)
		var s domain.CustomerState
		for _, r := range recs {
			s.Apply(r)
		}
		raw, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back domain.CustomerState
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		raw2, err := json.Marshal(&back)
		if err != nil {
			t.Fatalf("marshal again: %v", err)
		}
		if !bytes.Equal(raw, raw2) {
			t.Fatalf("JSON round trip is not stable:\n%s\n%s", raw, raw2)
		}
		last := recs[len(recs)-1].RecordedAt
		for range 5 {
			at := drawBetween(t, recs[0].RecordedAt.AddDate(-1, 0, 0), last.AddDate(2, 0, 0), "at")
			for _, rs := range propertyBook.Versions {
				l1, f1, n1 := rs.Evaluate(&s, at)
				l2, f2, n2 := rs.Evaluate(&s, at)
				l3, f3, n3 := rs.Evaluate(&back, at)
				if l1 != l2 || f1 != f2 || !n1.Equal(n2) {
					t.Fatalf("v%d at %v: %+v %+v %v then %+v %+v %v", rs.Version, at, l1, f1, n1, l2, f2, n2)
				}
				if l1 != l3 || f1 != f3 || !n1.Equal(n3) {
					t.Fatalf("v%d at %v after a JSON round trip: %+v %+v %v vs %+v %+v %v\n%s", rs.Version, at, l1, f1, n1, l3, f3, n3, raw)
				}
				for _, label := range domain.Labels {
					zh1, en1 := rs.Reason(&s, label, &l1, &f1)
					zh3, en3 := rs.Reason(&back, label, &l3, &f3)
					if zh1 != zh3 || en1 != en3 {
						t.Fatalf("reason of %s: %q/%q vs %q/%q", label, zh1, en1, zh3, en3)
					}
				}
			}
		}
		// The projection of the same log is the same, run twice.
		b := rapid.SampledFrom(books).Draw(t, "book")
		var p1, p2 domain.Projection
		until := last.AddDate(1, 0, 0)
		sameChanges(t, "replay", advanceAll(b, &p1, recs, until), advanceAll(b, &p2, recs, until))
		sameProjection(t, "replay", &p1, &p2)
	})
}

// TestPropertyNoChangeBeforeNext: evaluated at T, no label (nor fact)
// changes strictly between T and the returned next instant, and at next a
// fact does change; without a next instant nothing changes ever.
func TestPropertyNoChangeBeforeNext(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := drawHistory(t, testCode)
		var s domain.CustomerState
		for _, r := range recs {
			s.Apply(r)
		}
		last := recs[len(recs)-1].RecordedAt
		rs := rapid.SampledFrom(append([]*domain.RuleSet{domain.DefaultRuleBook().Latest()}, propertyBook.Versions...)).Draw(t, "rules")
		at := drawBetween(t, recs[0].RecordedAt.AddDate(-1, 0, 0), last.AddDate(1, 0, 0), "T")
		for range 8 {
			l0, f0, next := rs.Evaluate(&s, at)
			hi := next
			if next.IsZero() {
				hi = at.AddDate(10, 0, 0)
			} else if !next.After(at) {
				t.Fatalf("next %v is not after T %v", next, at)
			}
			probes := []time.Time{at.Add(1), hi.Add(-1)}
			for range 4 {
				probes = append(probes, drawBetween(t, at.Add(1), hi.Add(-1), "probe"))
			}
			for _, pt := range probes {
				if !pt.After(at) || !pt.Before(hi) {
					continue
				}
				l, f, n := rs.Evaluate(&s, pt)
				if l != l0 || f != f0 {
					t.Fatalf("v%d: at T=%v %+v %+v; at %v (before next %v) %+v %+v", rs.Version, at, l0, f0, pt, next, l, f)
				}
				if !n.Equal(next) {
					t.Fatalf("v%d: next from T=%v is %v, from %v it is %v", rs.Version, at, next, pt, n)
				}
			}
			if next.IsZero() {
				return
			}
			if _, f, _ := rs.Evaluate(&s, next); f == f0 {
				t.Fatalf("v%d: nothing changes at next %v (facts %+v)", rs.Version, next, f)
			}
			at = next // walk the boundaries
		}
	})
}
