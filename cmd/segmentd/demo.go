package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// demoNamespace makes demo event ids deterministic, so running the demo
// again records nothing twice.
var demoNamespace = uuid.MustParse("9d4f5c1e-7b2a-5e3f-8c6d-1a2b3c4d5e6f")

func ptr[T any](v T) *T { return &v }

func money(s string) domain.Money {
	m, err := domain.ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// demoEvents builds a handful of customers from the seed templates'
// examples (客户信息管理工具·客户关系细分分析版): a strategic customer with two
// recent orders, a quiet customer with a low satisfaction score, a prospect
// with many inquiries, an order reported before its customer was
// registered, and a key customer whose activity drops a minute after now.
func demoEvents(now time.Time) []domain.Envelope { return demoEventsDropping(now, time.Minute) }

// demoEventsDropping is demoEvents with the key customer's activity
// dropping after dropAfter.
func demoEventsDropping(now time.Time, dropAfter time.Duration) []domain.Envelope {
	day := 24 * time.Hour
	ago := func(d time.Duration) time.Time { return now.Add(-d).Truncate(time.Second) }
	var out []domain.Envelope
	add := func(customer string, at time.Time, data domain.Event) {
		out = append(out, domain.Envelope{
			EventID: uuid.NewSHA1(demoNamespace, []byte(customer+"/"+strconv.Itoa(len(out)))), Type: data.EventType(),
			Customer: domain.CustomerCode(customer), OccurredAt: at, Source: "demo", Data: data,
		})
	}
	profile := func(name, industry, region, owner, contact, title, phone, email string, employees int64, revenue string) *domain.CustomerRegistered {
		return &domain.CustomerRegistered{Profile: domain.Profile{
			Name: ptr(name), Kind: ptr(domain.KindEnterprise), Industry: ptr(industry), Region: ptr(region),
			Employees: ptr(employees), AnnualRevenue: ptr(money(revenue)), SourceChannel: ptr("展会"), Owner: ptr(owner),
			Contact: &domain.Contact{Name: ptr(contact), Title: ptr(title), Phone: ptr(phone), Email: ptr(email)},
		}}
	}

	c1 := "KH202405010001"
	add(c1, ago(400*day), profile("深圳市华芯电子元件有限公司", "制造业-电子元件", "广东-深圳", "王经理", "李明", "采购经理", "13812345678", "li.ming@example.com", 320, "80000000"))
	add(c1, ago(300*day), &domain.NeedsDeclared{CoreNeeds: []string{"定制化服务", "长期合作"}, CommunicationPreference: domain.PreferOffline, PriceSensitivity: domain.SensitivityLow})
	add(c1, ago(45*day), &domain.OrderPlaced{OrderID: "SO-2026-0815", Amount: money("650000.00"), Category: "定制芯片模组", Channel: domain.ChannelOffline})
	add(c1, ago(10*day), &domain.OrderPlaced{OrderID: "SO-2026-1102", Amount: money("550000.00"), Category: "定制芯片模组", Channel: domain.ChannelOffline})
	add(c1, ago(9*day), &domain.SatisfactionRated{Score: 5, Feedback: "一对一专属服务响应及时"})

	c2 := "KH202405010002"
	add(c2, ago(500*day), profile("杭州云帆软件科技有限公司", "信息技术-软件", "浙江-杭州", "赵经理", "王芳", "IT主管", "13987654321", "wang.fang@example.com", 85, "12000000"))
	add(c2, ago(240*day), &domain.OrderPlaced{OrderID: "SO-2026-0301", Amount: money("120000"), Category: "年度维保", Channel: domain.ChannelOnline})
	add(c2, ago(230*day), &domain.OrderRefunded{OrderID: "SO-2026-0301", Amount: money("20000")})
	add(c2, ago(200*day), &domain.SatisfactionRated{Score: 2, Feedback: "售后响应速度慢"})
	add(c2, ago(190*day), &domain.NeedsDeclared{CoreNeeds: []string{"响应速度", "技术支持"}, CommunicationPreference: domain.PreferEmail, PriceSensitivity: domain.SensitivityMedium})

	c3 := "KH202405010003"
	add(c3, ago(70*day), profile("苏州恒远机械制造有限公司", "制造业-通用设备", "江苏-苏州", "孙经理", "陈刚", "设备部经理", "13700001111", "chen.gang@example.com", 150, "30000000"))
	for i, topic := range []string{"产品报价", "交期咨询", "样品申请", "技术参数", "批量折扣"} {
		add(c3, ago(time.Duration(60-10*i)*day), &domain.InquiryReceived{Channel: "电话", Topic: topic})
	}
	add(c3, ago(5*day), &domain.NeedsDeclared{CoreNeeds: []string{"性价比", "功能"}, CommunicationPreference: domain.PreferPhone, PriceSensitivity: domain.SensitivityHigh})

	// The order system reports an order before the CRM registers the customer.
	c4 := "KH202405010004"
	add(c4, ago(3*day), &domain.OrderPlaced{OrderID: "SO-2026-1120", Amount: money("3000"), Category: "配件", Channel: domain.ChannelOnline})

	c5 := "KH202405010005"
	add(c5, ago(200*day), profile("成都天府食品有限公司", "食品制造", "四川-成都", "周经理", "刘洋", "总经理助理", "+8613600002222", "liu.yang@example.com", 600, "150000000"))
	add(c5, ago(100*day), &domain.FollowUpLogged{By: "周经理", Channel: "线下拜访", Summary: "季度回访", Outcome: "计划追加订单"})
	// Its only recent order leaves the 3-month window dropAfter the demo
	// starts: activity drops from medium to low at that instant and an
	// activity_dropped alert (due in 24 h) is raised, published and delivered.
	add(c5, threeMonthsBefore(now.Add(dropAfter)), &domain.OrderPlaced{OrderID: "SO-2026-0905", Amount: money("600000"), Category: "包装设备", Channel: domain.ChannelOffline})
	return out
}

// threeMonthsBefore returns an instant that, plus 3 calendar months in
// Asia/Shanghai, is at or just after target (month ends make AddDate uneven).
func threeMonthsBefore(target time.Time) time.Time {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	t := target.In(loc).AddDate(0, -3, 0)
	for t.AddDate(0, 3, 0).Before(target) {
		t = t.Add(time.Hour)
	}
	return t.Truncate(time.Second)
}

// demo records the demo data set through the store (the same path as
// POST /v1/events) and prints the events as JetStream delivers them.
func (a *app) demo(ctx context.Context) error {
	dropAfter := a.demoAlertAfter
	if dropAfter == 0 {
		dropAfter = time.Minute
	}
	a.howToWatchAlerts()
	events := demoEventsDropping(time.Now(), dropAfter)
	customers := map[string]bool{}
	for _, e := range events {
		customers[string(e.Customer)] = true
	}
	cons, err := a.JS.OrderedConsumer(ctx, natsbus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{natsbus.SubjectEvents}})
	if err != nil {
		return fmt.Errorf("demo: subscribe: %w", err)
	}
	// One request per customer, as an upstream CRM would send them.
	stored, dup := 0, 0
	for i := 0; i < len(events); {
		j := i
		for j < len(events) && events[j].Customer == events[i].Customer {
			j++
		}
		res, err := a.Store.Append(ctx, domain.AppendRequest{Events: events[i:j], Batch: true})
		if err != nil {
			return fmt.Errorf("demo: record %s: %w", events[i].Customer, err)
		}
		for _, r := range res {
			if r.Duplicate {
				dup++
			} else {
				stored++
			}
		}
		i = j
	}
	a.Log.Info("demo: recorded the seed customers", "new_events", stored, "already_recorded", dup, "customers", len(customers))
	if addr := a.Listening(); addr != "" {
		a.Log.Info("demo: look at a customer's history", "try", "curl -s http://"+addr+"/v1/customers/KH202405010001/events")
	}
	if !a.cfg.has("publisher") {
		return nil
	}
	seen := 0
	for seen < len(events) {
		msgs, err := cons.Fetch(64, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return fmt.Errorf("demo: fetch: %w", err)
		}
		for m := range msgs.Messages() {
			h := m.Headers()
			if customers[h.Get(natsbus.HeaderCustomer)] {
				seen++
				a.Log.Info("demo: published", "subject", m.Subject(), "customer", h.Get(natsbus.HeaderCustomer),
					"version", h.Get(natsbus.HeaderVersion), "position", h.Get(natsbus.HeaderPosition), "msg_id", h.Get(jetstream.MsgIDHeader))
			}
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("demo: fetch: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	a.Log.Info("demo: every demo event is on JetStream", "stream", natsbus.StreamEvents, "events", seen)
	if a.cfg.has("projector") {
		if err := a.demoLabels(ctx, customers); err != nil {
			return err
		}
		if a.cfg.has("scheduler") {
			return a.demoAlert(ctx)
		}
	}
	return nil
}

// demoLabels waits for the projector to label the demo customers and prints
// each one's segment and tags with their reasons.
func (a *app) demoLabels(ctx context.Context, customers map[string]bool) error {
	q := projections.NewQueries(a.Projector, a.Store)
	codes := make([]string, 0, len(customers))
	for c := range customers {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, code := range codes {
		var doc *projections.Document
		for doc == nil {
			d, err := q.Customer(ctx, domain.CustomerCode(code), time.Time{}, time.Now(), eventstore.Masked)
			switch {
			case err == nil && d.Version >= lastVersion(code):
				doc = d
			case err != nil && !errors.Is(err, projections.ErrNotFound):
				return fmt.Errorf("demo: read %s: %w", code, err)
			default:
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		seg := doc.Labels[domain.LabelSegment]
		tags := make([]string, 0, len(doc.Tags))
		for _, t := range doc.Tags {
			tags = append(tags, t.Display+"（"+t.Reason+"）")
		}
		a.Log.Info("demo: labelled", "customer", code, "segment", seg.Display,
			"value_tier", doc.Labels[domain.LabelValueTier].Reason, "activity", doc.Labels[domain.LabelActivity].Reason,
			"lifecycle", doc.Labels[domain.LabelLifecycle].Display, "tags", strings.Join(tags, "；"))
	}
	if addr := a.Listening(); addr != "" {
		a.Log.Info("demo: see a customer's document and label history", "try",
			"curl -s http://"+addr+"/v1/customers/KH202405010001 ; curl -s http://"+addr+"/v1/customers/KH202405010001/labels/history ; curl -s http://"+addr+"/v1/segments/summary")
	}
	return nil
}

// lastVersion is the stream version of a demo customer once all its demo
// events are recorded.
func lastVersion(code string) int64 {
	var n int64
	for _, e := range demoEvents(time.Now()) {
		if string(e.Customer) == code {
			n++
		}
	}
	return n
}

// demoAlert waits for the activity_dropped alert of the demo customer whose
// order leaves the 3-month window a minute after start, as an upstream
// subscriber of alerts.> would see it.
func (a *app) demoAlert(ctx context.Context) error {
	const customer = "KH202405010005"
	q := projections.NewQueries(a.Projector, a.Store)
	doc, err := q.Customer(ctx, customer, time.Time{}, time.Now(), eventstore.Masked)
	if err != nil {
		return fmt.Errorf("demo: read %s: %w", customer, err)
	}
	if doc.NextAt != nil {
		a.Log.Info("demo: waiting for a boundary: the customer's last order leaves the 3-month window",
			"customer", customer, "at", *doc.NextAt, "watch", "nats -s "+a.NATSClientURL()+" sub 'alerts.>'")
	}
	cons, err := a.JS.OrderedConsumer(ctx, natsbus.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"alerts." + domain.AlertActivityDropped + ".>"}})
	if err != nil {
		return fmt.Errorf("demo: subscribe to alerts: %w", err)
	}
	for {
		msgs, err := cons.Fetch(16, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("demo: fetch alerts: %w", err)
		}
		for m := range msgs.Messages() {
			var alert projections.AlertDocument
			if err := json.Unmarshal(m.Data(), &alert); err != nil || alert.Customer != customer {
				continue
			}
			due := ""
			if alert.DueAt != nil {
				due = *alert.DueAt
			}
			a.Log.Info("demo: alert received", "subject", m.Subject(), "customer", alert.Customer, "from", alert.From, "to", alert.To,
				"created_at", alert.CreatedAt, "due_at", due, "owner", alert.Owner, "reason", alert.Reason, "playbook", alert.Playbook)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// howToWatchAlerts prints where the demo's alerts are delivered and how to
// watch them arrive.
func (a *app) howToWatchAlerts() {
	switch box := a.mailbox.Load(); {
	case box != nil:
		a.Log.Info("demo: alerts are mailed to the demo's embedded mailbox: each mail is printed here and kept as an .eml file",
			"smtp", box.addr, "dir", box.dir, "routes", filepath.Join(box.dir, "notify-demo.yaml"))
		a.Log.Info("demo: to watch them in Mailpit's web UI instead",
			"try", "docker compose up -d mailpit && SEGMENTS_NOTIFY=deploy/notify-local.yaml go run ./cmd/segmentd serve --demo ; open http://127.0.0.1:8025")
	case a.Notify != nil:
		a.Log.Info("demo: the notifier delivers each alert as routed by SEGMENTS_NOTIFY",
			"file", a.cfg.NotifyFile, "channels", len(a.Notify.Channels), "mailpit", "http://127.0.0.1:8025 (deploy/notify-local.yaml)")
	default:
		a.Log.Info("demo: alerts are not delivered to people (no notifier role)")
	}
	if addr := a.Listening(); addr != "" {
		a.Log.Info("demo: the alert, its deliveries and the actions on it",
			"try", "curl -s 'http://"+addr+"/v1/alerts?status=open' ; curl -s http://"+addr+"/v1/alerts/<alert_id>")
	}
}
