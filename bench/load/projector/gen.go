package projectorload

import (
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/loadkit"
)

// The generated history: a realistic mix of every event type of SPEC §2
// over a fixed set of customers, with occurred_at back-dated over two years.
//
//   - events per customer: 1 + a geometric draw (mean total/customers),
//     adjusted so the total is exact;
//   - first event: CustomerRegistered for 85% of customers (70% of them with
//     a complete profile, contact included, which the store encrypts); the
//     others start with an order or an inquiry (orders may arrive before the
//     CRM registers the customer) and half of those register later;
//   - then: orders 40%, inquiries 25%, satisfaction 10%, refunds 6% (partial,
//     of an earlier order that still has a refundable balance), needs 6%,
//     owner changes 5%, profile updates 4%, follow-ups 4%;
//   - each customer is active over a random span inside the last two years;
//     its events are spread over that span in version order, and the whole
//     log is ordered by business time (a chronological import).

var (
	categories = []string{"电子元件", "机械设备", "办公用品", "化工原料", "软件服务"}
	industries = []string{"制造业-电子元件", "制造业-机械", "零售", "信息技术", "物流", "医药"}
	regions    = []string{"华东", "华南", "华北", "西南", "华中"}
	channelsIn = []string{"phone", "web", "wechat", "email"}
	topics     = []string{"报价", "交期", "售后", "技术支持", "合同"}
	needsPool  = []string{"成本控制", "性价比", "功能齐全", "技术支持", "售后保障", "响应速度", "定制化服务", "长期合作", "战略合作", "品牌", "交付周期"}
	owners     = []string{"张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"}
)

type histOrder struct {
	id       string
	amount   domain.Money
	refunded domain.Money
}

type genCustomer struct {
	code       domain.CustomerCode
	registered bool
	orders     []histOrder
}

// generator draws events; not safe for concurrent use.
type generator struct {
	rng       *mrand.Rand
	now       time.Time
	customers []genCustomer
	orderSeq  int64
	tag       string
}

func newGenerator(prefix string, n int, seed uint64, now time.Time) *generator {
	g := &generator{
		rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), //nolint:gosec // G404: load data, not secrets
		now: now, customers: make([]genCustomer, n), tag: loadkit.RandomHex(3),
	}
	for i := range g.customers {
		g.customers[i].code = domain.CustomerCode(prefix + fmt.Sprintf("%07d", i))
	}
	return g
}

func (g *generator) orderID() string {
	g.orderSeq++
	return "SO-" + g.tag + "-" + strconv.FormatInt(g.orderSeq, 36)
}

func ptr[T any](v T) *T { return &v }

func (g *generator) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// amount draws an order amount, log-uniform from 1,000.00 to 2,000,000.00 yuan.
func (g *generator) amount() domain.Money {
	yuan := math.Pow(10, 3+g.rng.Float64()*3.3)
	return domain.Money(int64(yuan * 100))
}

func (g *generator) profile(c *genCustomer, complete bool) domain.Profile {
	i := g.rng.IntN(1_000_000)
	p := domain.Profile{
		Name:          ptr("测试客户" + string(c.code) + "有限公司"),
		Kind:          ptr(domain.KindEnterprise),
		Region:        ptr(g.pick(regions)),
		Employees:     ptr(int64(10 + g.rng.IntN(5000))),
		SourceChannel: ptr("展会"),
	}
	if complete || g.rng.IntN(2) == 0 {
		p.Industry = ptr(g.pick(industries))
	}
	if complete || g.rng.IntN(2) == 0 {
		p.Owner = ptr(g.pick(owners))
	}
	if complete {
		p.Contact = &domain.Contact{
			Name:  ptr("联系人" + strconv.Itoa(i)),
			Title: ptr("采购经理"),
			Phone: ptr(fmt.Sprintf("13%09d", i)),
			Email: ptr(fmt.Sprintf("buyer%d@example.com", i)),
		}
	}
	return p
}

// next draws a follow-on event for c (not the first one). New orders are
// remembered for later refunds when record is set.
func (g *generator) next(c *genCustomer, record bool) domain.Event {
	for {
		x := g.rng.IntN(100)
		switch {
		case x < 40:
			o := histOrder{id: g.orderID(), amount: g.amount()}
			if record {
				c.orders = append(c.orders, o)
			}
			return &domain.OrderPlaced{OrderID: o.id, Amount: o.amount, Category: g.pick(categories),
				Channel: []domain.OrderChannel{domain.ChannelOnline, domain.ChannelOffline}[g.rng.IntN(2)]}
		case x < 65:
			return &domain.InquiryReceived{Channel: g.pick(channelsIn), Topic: g.pick(topics)}
		case x < 75:
			return &domain.SatisfactionRated{Score: 1 + g.rng.IntN(5), Feedback: "回访"}
		case x < 81:
			if len(c.orders) == 0 {
				continue
			}
			o := &c.orders[g.rng.IntN(len(c.orders))]
			left := o.amount - o.refunded
			if left <= 0 {
				continue
			}
			amt := max(domain.Money(1), domain.Money(float64(left)*(0.1+0.9*g.rng.Float64())))
			o.refunded += amt
			return &domain.OrderRefunded{OrderID: o.id, Amount: amt}
		case x < 87:
			n := 1 + g.rng.IntN(3)
			needs := make([]string, n)
			for i := range needs {
				needs[i] = g.pick(needsPool)
			}
			return &domain.NeedsDeclared{CoreNeeds: needs,
				CommunicationPreference: []domain.CommunicationPreference{domain.PreferPhone, domain.PreferEmail, domain.PreferOffline}[g.rng.IntN(3)],
				PriceSensitivity:        []domain.PriceSensitivity{domain.SensitivityLow, domain.SensitivityMedium, domain.SensitivityHigh}[g.rng.IntN(3)]}
		case x < 92:
			return &domain.OwnerAssigned{Owner: g.pick(owners)}
		case x < 96:
			return &domain.CustomerProfileUpdated{Profile: domain.Profile{Region: ptr(g.pick(regions)), Employees: ptr(int64(10 + g.rng.IntN(5000)))}}
		default:
			return &domain.FollowUpLogged{By: g.pick(owners), Channel: "phone", Summary: "电话回访", Outcome: "已沟通"}
		}
	}
}

// backlog draws total events over the generator's customers, ordered by
// business time, each customer's events in version order.
func (g *generator) backlog(total int) []domain.Envelope {
	n := len(g.customers)
	counts := make([]int, n)
	sum := 0
	mean := float64(total)/float64(n) - 1
	p := 1 / (mean + 1)
	for i := range counts {
		k := 0
		if mean > 0 {
			k = int(math.Floor(math.Log(1-g.rng.Float64()) / math.Log(1-p)))
		}
		counts[i] = 1 + k
		sum += counts[i]
	}
	for sum > total {
		if i := g.rng.IntN(n); counts[i] > 1 {
			counts[i]--
			sum--
		}
	}
	for sum < total {
		counts[g.rng.IntN(n)]++
		sum++
	}
	span := 730 * 24 * time.Hour
	latest := g.now.Add(-time.Minute)
	out := make([]domain.Envelope, 0, total)
	times := make([]time.Time, 0, 64)
	for i := range g.customers {
		c := &g.customers[i]
		k := counts[i]
		start := latest.Add(-time.Duration(g.rng.Int64N(int64(span))))
		end := start.Add(time.Duration(g.rng.Int64N(int64(latest.Sub(start)) + 1)))
		times = times[:0]
		for range k {
			times = append(times, start.Add(time.Duration(g.rng.Int64N(int64(end.Sub(start))+1))).Truncate(time.Second))
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		registerAt := -1 // index of the registration event, if any
		if g.rng.IntN(100) < 85 {
			registerAt = 0
		} else if k > 1 && g.rng.IntN(2) == 0 {
			registerAt = 1 + g.rng.IntN(k-1)
		}
		complete := g.rng.IntN(100) < 70
		for j := range k {
			var d domain.Event
			switch j {
			case registerAt:
				d = &domain.CustomerRegistered{Profile: g.profile(c, complete)}
				c.registered = true
			case 0:
				if g.rng.IntN(2) == 0 {
					o := histOrder{id: g.orderID(), amount: g.amount()}
					c.orders = append(c.orders, o)
					d = &domain.OrderPlaced{OrderID: o.id, Amount: o.amount, Category: g.pick(categories), Channel: domain.ChannelOnline}
				} else {
					d = &domain.InquiryReceived{Channel: g.pick(channelsIn), Topic: g.pick(topics)}
				}
			default:
				d = g.next(c, true)
			}
			out = append(out, domain.Envelope{Type: d.EventType(), Customer: c.code, OccurredAt: times[j], Source: "segments-projector-load", Data: d})
		}
	}
	// A chronological import: the log is in business-time order; a stable
	// sort keeps each customer's version order on equal instants.
	slices.SortStableFunc(out, func(a, b domain.Envelope) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return out
}

// live draws one event for a random customer as an upstream system sends it
// now (occurred_at = time of recording). Refunds only name orders of the
// backlog, which are committed, so concurrent requests never refund an order
// that is not stored yet.
func (g *generator) live() domain.Envelope {
	c := &g.customers[g.rng.IntN(len(g.customers))]
	d := g.next(c, false)
	return domain.Envelope{Type: d.EventType(), Customer: c.code, Source: "segments-projector-load", Data: d}
}

// validate checks every envelope as the API would.
func validate(events []domain.Envelope, now time.Time) error {
	for i := range events {
		if err := events[i].Validate(now); err != nil {
			return fmt.Errorf("generated event %d (%s) is invalid: %w", i, events[i].Type, err)
		}
	}
	return nil
}
