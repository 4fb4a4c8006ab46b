package projections_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// The seed templates' example customers (客户信息管理工具·客户关系细分分析版).
const (
	kh1 domain.CustomerCode = "KH202405010001" // strategic, high activity: ★★★战略伙伴
	kh2 domain.CustomerCode = "KH202405010002" // quiet, unhappy: 流失预警
	kh3 domain.CustomerCode = "KH202405010003" // many inquiries, no order: 待转化
	kh4 domain.CustomerCode = "KH202405010004" // an order before registration: 待补充
)

var seedCodes = []domain.CustomerCode{kh1, kh2, kh3, kh4}

// recordSeeds records the seed customers: KH1 as its events happen (each
// recorded a minute after it occurred, projected at once), the others
// imported at tNow with back-dated occurred_at.
func recordSeeds(e *env) {
	live := func(d time.Duration, data domain.Event) {
		at := tNow.Add(-d)
		e.record(at.Add(time.Minute), ev(kh1, at, data))
		e.apply(kh1)
	}
	live(400*day, fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com"))
	live(300*day, needs("定制化服务", "长期合作"))
	live(45*day, order("SO-2026-0815", "650000.00"))
	live(10*day, order("SO-2026-1102", "550000.00"))
	live(9*day, rated(5))

	ago := func(d time.Duration) time.Time { return tNow.Add(-d) }
	e.record(tNow,
		ev(kh2, ago(500*day), fullProfile("杭州云帆软件科技有限公司", "赵经理", "王芳", "13987654321", "wang.fang@example.com")),
		ev(kh2, ago(240*day), order("SO-2026-0301", "120000")),
		ev(kh2, ago(230*day), refund("SO-2026-0301", "20000")),
		ev(kh2, ago(200*day), rated(2)),
		ev(kh2, ago(190*day), needs("响应速度", "技术支持")),
		ev(kh3, ago(70*day), fullProfile("苏州恒远机械制造有限公司", "孙经理", "陈刚", "13700001111", "chen.gang@example.com")),
		ev(kh3, ago(60*day), inquiry("产品报价")),
		ev(kh3, ago(50*day), inquiry("交期咨询")),
		ev(kh3, ago(40*day), inquiry("样品申请")),
		ev(kh3, ago(30*day), inquiry("技术参数")),
		ev(kh3, ago(20*day), inquiry("批量折扣")),
		ev(kh3, ago(5*day), needs("性价比", "功能")),
		ev(kh4, ago(3*day), order("SO-2026-1120", "3000")),
	)
	e.apply(kh2, kh3, kh4)
}

func ts(t time.Time) string { return t.In(cst).Format(time.RFC3339Nano) }

type wantLabel struct{ value, display, reason, since string }

func checkDoc(t *testing.T, d *projections.Document, version int64, labels map[string]wantLabel, tags map[string]wantLabel, next string) {
	t.Helper()
	if d.Version != version {
		t.Errorf("%s: version %d, want %d", d.Customer, d.Version, version)
	}
	if len(d.Labels) != len(domain.Labels) {
		t.Errorf("%s: labels %v, want the %d labels %v", d.Customer, d.Labels, len(domain.Labels), domain.Labels)
	}
	for name, w := range labels {
		got, ok := d.Labels[name]
		if !ok {
			t.Errorf("%s: label %s missing", d.Customer, name)
			continue
		}
		if got.Value != w.value || got.Display != w.display || (w.reason != "" && got.Reason != w.reason) || got.Since != w.since || got.RuleVersion != 1 || got.ReasonEN == "" {
			t.Errorf("%s: label %s = %+v, want %+v (rule version 1)", d.Customer, name, got, w)
		}
	}
	var gotTags []string
	for _, tag := range d.Tags {
		gotTags = append(gotTags, tag.Tag)
		w, ok := tags[tag.Tag]
		if !ok {
			continue
		}
		if tag.Display != w.display || (w.reason != "" && tag.Reason != w.reason) || tag.Since != w.since || tag.RuleVersion != 1 {
			t.Errorf("%s: tag %s = %+v, want %+v", d.Customer, tag.Tag, tag, w)
		}
	}
	var wantTags []string
	for name := range tags {
		wantTags = append(wantTags, name)
	}
	slices.Sort(gotTags)
	slices.Sort(wantTags)
	if !slices.Equal(gotTags, wantTags) {
		t.Errorf("%s: tags %v, want %v", d.Customer, gotTags, wantTags)
	}
	gotNext := ""
	if d.NextAt != nil {
		gotNext = *d.NextAt
	}
	if next != "*" && gotNext != next {
		t.Errorf("%s: next_change_at %q, want %q", d.Customer, gotNext, next)
	}
}

func TestApplyLabelsTheSeedCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow.Add(-500*day))
	recordSeeds(e)

	// KH1: 1,200,000.00 net from two orders within 3 months.
	sinceStrategic := ts(tNow.Add(-10*day + time.Minute))
	firstOrder := tNow.Add(-45 * day)
	d := e.doc(kh1)
	checkDoc(t, d, 5, map[string]wantLabel{
		domain.LabelValueTier:       {"strategic", "战略客户", "累计净额 1,200,000.00 ≥ 1,000,000.00", sinceStrategic},
		domain.LabelActivity:        {"high", "高活跃", "近3个月订单 2 ≥ 2", sinceStrategic},
		domain.LabelNeedOrientation: {"partnership", "合作导向型", "最新核心诉求「定制化服务」含关键词「定制化服务」", ts(tNow.Add(-300*day + time.Minute))},
		domain.LabelLifecycle:       {"customer", "成交客户", "近6个月订单 2", ts(firstOrder.Add(time.Minute))},
		domain.LabelSegment:         {"strategic/high", "战略高活跃客户", "", sinceStrategic},
	}, map[string]wantLabel{
		"strategic_partner": {"", "★★★战略伙伴", "累计净额 1,200,000.00 ≥ 1,000,000.00；近3个月订单 2 ≥ 2", sinceStrategic},
	}, ts(firstOrder.AddDate(0, 3, 0)))
	if d.Metrics.NetAmount.String() != "1200000.00" || d.Metrics.OrderCount != 2 || d.Metrics.Orders3m != 2 || d.Metrics.Inquiries3m != 0 ||
		d.Metrics.LastOrderAt == nil || *d.Metrics.LastOrderAt != ts(tNow.Add(-10*day)) || d.Metrics.LatestSatisfaction == nil || *d.Metrics.LatestSatisfaction != 5 {
		t.Errorf("KH1 metrics = %s", mustJSON(t, d.Metrics))
	}
	p := d.Profile
	if p.Name == nil || *p.Name != "深圳市华芯电子元件有限公司" || p.Owner == nil || *p.Owner != "王经理" || p.Kind == nil || *p.Kind != "enterprise" || p.Erased ||
		p.Contact.Name == nil || *p.Contact.Name != "李某" || p.Contact.Phone == nil || *p.Contact.Phone != "138****5678" ||
		p.Contact.Email == nil || *p.Contact.Email != "l***@example.com" || p.Contact.Title == nil || *p.Contact.Title != "采购经理" {
		t.Errorf("KH1 profile = %s", mustJSON(t, p))
	}
	if d.AsOf != ts(tNow) || d.Customer != string(kh1) {
		t.Errorf("KH1 as_of %s customer %s", d.AsOf, d.Customer)
	}

	// KH2: net 100,000.00 after a refund, last order 240 days ago, score 2.
	imported := ts(tNow)
	d = e.doc(kh2)
	checkDoc(t, d, 5, map[string]wantLabel{
		domain.LabelValueTier:       {"regular", "普通客户", "累计净额 100,000.00 ≥ 100,000.00 且 < 500,000.00", imported},
		domain.LabelActivity:        {"low", "低活跃", "近3个月订单 0 < 1", imported},
		domain.LabelNeedOrientation: {"service", "服务导向型", "", imported},
		domain.LabelLifecycle:       {"lost", "流失客户", "累计订单 1 笔，近6个月无订单", imported},
		domain.LabelSegment:         {"regular/low", "普通低活跃客户", "", imported},
	}, map[string]wantLabel{
		"churn_warning": {"", "流失预警", "累计订单 1 笔，近6个月订单 0；最近满意度 2 ≤ 3", imported},
	}, "*") // no window boundary left; alert deadlines are boundaries too
	if d.Metrics.NetAmount.String() != "100000.00" || d.Metrics.LatestSatisfaction == nil || *d.Metrics.LatestSatisfaction != 2 {
		t.Errorf("KH2 metrics = %s", mustJSON(t, d.Metrics))
	}

	// KH3: five inquiries within 3 months and no order.
	d = e.doc(kh3)
	checkDoc(t, d, 7, map[string]wantLabel{
		domain.LabelValueTier:       {"potential", "潜力客户", "累计净额 0.00 < 100,000.00", imported},
		domain.LabelActivity:        {"low", "低活跃", "", imported},
		domain.LabelNeedOrientation: {"product", "产品导向型", "最新核心诉求「性价比」含关键词「性价比」", imported},
		domain.LabelLifecycle:       {"intent", "意向客户", "咨询 5 次，无订单", imported},
		domain.LabelSegment:         {"potential/low", "潜力低活跃客户", "", imported},
	}, map[string]wantLabel{
		"to_convert": {"", "待转化", "近3个月咨询 5 ≥ 5；近3个月订单 0", imported},
	}, ts(tNow.Add(-60*day).AddDate(0, 3, 0)))
	if d.Metrics.Inquiries3m != 5 || d.Metrics.LastOrderAt != nil || d.Metrics.LatestSatisfaction != nil {
		t.Errorf("KH3 metrics = %s", mustJSON(t, d.Metrics))
	}

	// KH4: the order system reported an order before the CRM registered it.
	d = e.doc(kh4)
	checkDoc(t, d, 1, map[string]wantLabel{
		domain.LabelValueTier:       {"potential", "潜力客户", "", imported},
		domain.LabelActivity:        {"medium", "中活跃", "近3个月订单 1 ≥ 1 且 < 2", imported},
		domain.LabelNeedOrientation: {"unknown", "未知", "未声明核心诉求", imported},
		domain.LabelLifecycle:       {"customer", "成交客户", "", imported},
		domain.LabelSegment:         {"potential/medium", "潜力中活跃客户", "", imported},
	}, map[string]wantLabel{
		"needs_completion": {"", "待补充", "资料缺少：客户名称、所属行业、负责人、联系人姓名、联系电话或邮箱", imported},
	}, "*")
	if d.NextAt == nil || *d.NextAt > ts(tNow.Add(-3*day).AddDate(0, 3, 0)) {
		t.Errorf("KH4: next_change_at %v, want at the latest the order's 3-month boundary", d.NextAt)
	}
	if d.Profile.Name != nil || d.Profile.Registered || d.Profile.Contact.Phone != nil {
		t.Errorf("KH4 profile = %s", mustJSON(t, d.Profile))
	}

	// The stored next boundary is the document's next_change_at, and the
	// denormalised columns agree with the document.
	for _, code := range seedCodes {
		d := e.doc(code)
		var next *time.Time
		var tier, activity string
		var tags []string
		var net int64
		if err := e.db.Pool.QueryRow(ctxT(t), "SELECT next_at, value_tier, activity, tags, net_amount FROM customer_projections WHERE customer = $1", string(code)).
			Scan(&next, &tier, &activity, &tags, &net); err != nil {
			t.Fatal(err)
		}
		switch {
		case next == nil && d.NextAt != nil, next != nil && (d.NextAt == nil || ts(*next) != *d.NextAt):
			t.Errorf("%s: next_at column %v, document next_change_at %v", code, next, d.NextAt)
		}
		var docTags []string
		for _, tag := range d.Tags {
			docTags = append(docTags, tag.Tag)
		}
		if tier != d.Labels[domain.LabelValueTier].Value || activity != d.Labels[domain.LabelActivity].Value ||
			!slices.Equal(tags, docTags) || net != int64(d.Metrics.NetAmount) {
			t.Errorf("%s: columns %s %s %v %d disagree with the document", code, tier, activity, tags, net)
		}
	}

	// Applying again changes nothing.
	before := e.snapshot()
	changes, outbox := e.count("label_changes"), e.count("outbox")
	if n := e.apply(seedCodes...); n != 0 {
		t.Errorf("second apply applied %d events", n)
	}
	sameSnapshot(t, e.snapshot(), before)
	if e.count("label_changes") != changes || e.count("outbox") != outbox || e.changesQueued() != changes {
		t.Errorf("label changes %d -> %d, outbox %d -> %d, %d changes queued", changes, e.count("label_changes"), outbox, e.count("outbox"), e.changesQueued())
	}
	// KH1's 14 changes: 5 first values, need, then 4 at each order, the tag.
	var kh1Changes int
	_ = e.db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM label_changes WHERE customer = $1", string(kh1)).Scan(&kh1Changes)
	if kh1Changes != 14 {
		t.Errorf("KH1 has %d label changes, want 14", kh1Changes)
	}
}

func TestApplyUnknownAndEmptyCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, tNow)
	if n := e.apply(); n != 0 {
		t.Fatalf("apply of nobody: %d", n)
	}
	if n := e.apply("KH-NOBODY"); n != 0 {
		t.Fatalf("apply of a customer without events: %d", n)
	}
	if e.count("customer_projections") != 0 || e.count("label_changes") != 0 {
		t.Fatal("a customer without events got a projection")
	}
	if _, err := e.q.Customer(ctxT(t), "KH-NOBODY", time.Time{}, tNow, eventstore.Masked); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("document of an unknown customer: %v, want ErrNotFound", err)
	}
}

// outboxRows is the outbox as a sorted list of msg_id and payload.
func (e *env) outboxRows() []string {
	e.t.Helper()
	rows, err := e.db.Pool.Query(ctxT(e.t), "SELECT stream || ' ' || subject || ' ' || msg_id || ' ' || encode(payload, 'escape') FROM outbox ORDER BY msg_id")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestBatchingDoesNotChangeTheResult(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 6, 9, 0, 0, 0, cst)
	sc := newScript(11, "KHB", 80, start)
	steps := sc.steps(120, 8)

	// One call per customer after every step, in a random order.
	e := newEnv(t, start)
	rng := rand.New(rand.NewPCG(11, 1))
	for _, s := range steps {
		e.record(s.at, s.events...)
		touched := s.customers()
		rng.Shuffle(len(touched), func(i, j int) { touched[i], touched[j] = touched[j], touched[i] })
		for _, c := range touched {
			e.apply(c)
		}
	}
	small, smallOutbox := e.snapshot(), e.outboxRows()
	if len(small.projections) == 0 || len(small.changes) < len(small.projections)*5 {
		t.Fatalf("%d projections and %d changes: the script produced too little", len(small.projections), len(small.changes))
	}
	// The same log projected in one call for everything.
	e.reproject(sc.codes())
	sameSnapshot(t, small, e.snapshot())
	sameRows(t, "outbox", smallOutbox, e.outboxRows())
	t.Logf("%d events, %d customers, %d label changes", e.count("events"), len(small.projections), len(small.changes))
}

func TestConcurrentProjectorsDoNotDoubleProcess(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 6, 9, 0, 0, 0, cst)
	sc := newScript(12, "KHC", 80, start)
	steps := sc.steps(120, 8)
	codes := sc.codes()

	e := newEnv(t, start)
	ctx := ctxT(t)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // events keep arriving
		defer wg.Done()
		defer close(done)
		for _, s := range steps {
			e.clock.Set(s.at)
			if _, err := e.store.Append(ctx, domain.AppendRequest{Events: s.events, Batch: true}); err != nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	}()
	// Two projectors work on overlapping customers, in opposite orders.
	project := func(seed uint64, set []domain.CustomerCode) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 2))
		for {
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			for _, c := range chunks(rng, set, 12) {
				if _, err := e.proj.Apply(ctx, streamIDs(c...)); err != nil {
					t.Errorf("concurrent apply: %v", err)
					return
				}
			}
			if finished {
				return
			}
		}
	}
	go project(1, codes[:60])
	rev := slices.Clone(codes[20:])
	slices.Reverse(rev)
	go project(2, rev)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	e.apply(codes...)

	var dups int
	if err := e.db.Pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT stream_id, seq FROM label_changes GROUP BY 1, 2 HAVING count(*) > 1) d").Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Fatalf("%d duplicated (customer, seq) label changes", dups)
	}
	concurrent, queued := e.snapshot(), e.changesQueued()
	if queued != len(concurrent.changes) {
		t.Fatalf("%d label changes but %d queued for publication", len(concurrent.changes), queued)
	}
	// A single projector making one pass over the same log agrees.
	e.reproject(codes)
	if got := e.count("label_changes"); got != len(concurrent.changes) {
		t.Fatalf("concurrent projectors made %d label changes, a single one %d", len(concurrent.changes), got)
	}
	sameSnapshot(t, concurrent, e.snapshot())
}

func TestConsumeProjectsPublishedEvents(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 3, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	ctx := ctxT(t)
	js, stop := e.publishAndConsume(e.proj, "projector-test")

	sc := newScript(21, "KHN", 40, start)
	for range 30 {
		s := sc.next(6)
		e.record(s.at, s.events...)
	}
	codes := sc.codes()
	for _, c := range codes {
		want, err := e.store.StreamVersion(ctx, c)
		if err != nil {
			continue // never got an event
		}
		testenv.Eventually(t, time.Minute, string(c)+" projected up to its last event", func() bool {
			d, err := e.q.Customer(ctx, c, time.Time{}, e.clock.Now(), eventstore.Masked)
			return err == nil && d.Version == want
		})
	}
	// The seed customers arrive last and are queryable once projected.
	recordSeedsNoApply(e)
	for _, c := range seedCodes {
		want, _ := e.store.StreamVersion(ctx, c)
		testenv.Eventually(t, time.Minute, string(c)+" projected", func() bool {
			d, err := e.q.Customer(ctx, c, time.Time{}, e.clock.Now(), eventstore.Masked)
			return err == nil && d.Version == want
		})
	}
	if d := e.doc(kh1); d.Labels[domain.LabelSegment].Value != "strategic/high" || len(d.Tags) != 1 || d.Tags[0].Tag != "strategic_partner" {
		t.Errorf("KH1 through the consumer: %s", mustJSON(t, d))
	}
	// next_at is the document's next_change_at at the last evaluation.
	rows, err := e.db.Pool.Query(ctx, "SELECT customer, evaluated_at, next_at FROM customer_projections")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		code      string
		evaluated time.Time
		next      *time.Time
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.code, &r.evaluated, &r.next); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	if len(all) < 30 {
		t.Fatalf("only %d customers projected", len(all))
	}
	withNext := 0
	for _, r := range all {
		d, err := e.q.Customer(ctx, domain.CustomerCode(r.code), time.Time{}, r.evaluated, eventstore.Masked)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.next == nil && d.NextAt != nil, r.next != nil && (d.NextAt == nil || ts(*r.next) != *d.NextAt):
			t.Errorf("%s: next_at %v, next_change_at %v", r.code, r.next, d.NextAt)
		case r.next != nil:
			withNext++
		}
	}
	if withNext == 0 {
		t.Error("no customer has a next boundary; the check proved nothing")
	}
	// Every message is acknowledged once its transaction is on disk (the
	// projector commits asynchronously and acknowledges after the flush).
	cons, err := js.Consumer(ctx, "SEGMENTS_EVENTS", "projector-test")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "every message acknowledged", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream > 0
	})
	// What the consumer (and the scheduler) built is what a replay of the
	// log builds.
	stop()
	e.catchUp(e.proj)
	live := e.snapshot()
	if _, err := e.proj.Rebuild(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, e.snapshot(), live)
}

// recordSeedsNoApply records the seed customers without projecting them.
func recordSeedsNoApply(e *env) {
	at := func(d time.Duration) time.Time { return tNow.Add(-d) }
	e.record(tNow,
		ev(kh1, at(400*day), fullProfile("深圳市华芯电子元件有限公司", "王经理", "李明", "13812345678", "li.ming@example.com")),
		ev(kh1, at(300*day), needs("定制化服务", "长期合作")),
		ev(kh1, at(45*day), order("SO-2026-0815", "650000.00")),
		ev(kh1, at(10*day), order("SO-2026-1102", "550000.00")),
		ev(kh2, at(240*day), order("SO-2026-0301", "120000")),
		ev(kh2, at(200*day), rated(2)),
		ev(kh3, at(20*day), inquiry("批量折扣")),
		ev(kh4, at(3*day), order("SO-2026-1120", "3000")),
	)
}
