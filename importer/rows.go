package importer

import (
	"strconv"
	"strings"
	"time"

	"github.com/segments-dev/segments/domain"
)

// customerRow turns a snapshot row of the customer table into events (the
// contract is docs/IMPORT.md, "What a customer row becomes"):
//
//  1. CustomerRegistered with the profile, occurred_at = 合作起始日期 (else
//     最近合作时间, else the time of recording). Its own request: a customer
//     already registered elsewhere keeps its registration and still gets 2–4.
//  2. NeedsDeclared (核心诉求, 沟通偏好, 价格敏感度) and 3. SatisfactionRated
//     (满意度评分), both as of the row's latest date (最近合作时间, else
//     合作起始日期, else recording).
//  4. The opening balance: 累计合作金额 > 0 becomes ONE OrderPlaced with order
//     id 期初余额 and the whole amount, dated 最近合作时间 — the one day the
//     row says an order happened (else 合作起始日期, the first one). No other
//     order is invented: the row cannot say how many orders fell into which
//     window, so activity counts see one order at the last cooperation date
//     (never more than really happened) while the value tier sees the full
//     amount. Without any date the amount cannot be placed in time and is
//     reported (undated_amount), not stored. Its own request: a customer
//     that already has its opening balance (or was registered other than by
//     an import, so that its orders are in the log) keeps what it has.
func (c *Converter) customerRow(r *row) [][]domain.Envelope {
	code := r.unit.Customer
	since, hasSince := r.date(FieldSince, c.Location)
	last, hasLast := r.date(FieldLastAt, c.Location)
	registeredAt, factsAt := since, last
	if !hasSince {
		registeredAt = last
	}
	if !hasLast {
		factsAt = since
	}
	profile := c.profile(r)
	var out [][]domain.Envelope
	if profile.Name == nil {
		r.problem(FieldName, domain.CodeRequired, "客户名称不能为空，未登记客户 / the customer name is required to register the customer")
	} else {
		out = append(out, []domain.Envelope{c.envelope(factID(code, "registered"), domain.TypeCustomerRegistered,
			code, registeredAt, &domain.CustomerRegistered{Profile: profile})})
	}
	var facts, balance []domain.Envelope
	if needs := c.needs(r); needs != nil {
		key := strings.Join(needs.CoreNeeds, "、") + "|" + string(needs.CommunicationPreference) + "|" + string(needs.PriceSensitivity)
		facts = append(facts, c.envelope(factID(code, "needs", key), domain.TypeNeedsDeclared, code, factsAt, needs))
	}
	if s := r.text(FieldSatisfaction); s != "" {
		if score, ok := ParseScore(s); ok {
			facts = append(facts, c.envelope(factID(code, "satisfaction", strconv.Itoa(score), stamp(factsAt)),
				domain.TypeSatisfactionRated, code, factsAt, &domain.SatisfactionRated{Score: score, Feedback: r.text(FieldFeedback)}))
		} else {
			r.problem(FieldSatisfaction, CodeBadScore, "满意度评分应为 1–5 的整数 / the satisfaction score must be an integer from 1 to 5: "+strconv.Quote(s))
		}
	}
	if amount, ok := r.amount(FieldTotalAmount); ok && amount > 0 {
		at := last
		if !hasLast {
			at = since
		}
		if at.IsZero() {
			r.problem(FieldTotalAmount, CodeUndatedAmount, "累计合作金额没有日期（最近合作时间或合作起始日期），未记录 / the total amount has no date (最近合作时间 or 合作起始日期) and was not recorded")
		} else {
			balance = []domain.Envelope{c.envelope(factID(code, "opening-balance"), domain.TypeOrderPlaced, code, at,
				&domain.OrderPlaced{OrderID: OpeningBalanceOrderID, Amount: amount, Category: OpeningBalanceOrderID})}
		}
	}
	if len(facts) > 0 {
		out = append(out, facts)
	}
	if balance != nil {
		out = append(out, balance)
	}
	r.unit.Missing = missingProfile(r, profile)
	return out
}

// stamp formats an instant for an id key ("" for none).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func (c *Converter) profile(r *row) domain.Profile {
	p := domain.Profile{
		Name:          optional(r.text(FieldName)),
		Industry:      optional(r.text(FieldIndustry)),
		Region:        optional(r.text(FieldRegion)),
		SourceChannel: optional(r.text(FieldSourceChannel)),
		Owner:         optional(r.text(FieldOwner)),
	}
	if s := r.text(FieldEmployees); s != "" {
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSuffix(s, "人"), "名"), 10, 64); err == nil && n >= 0 {
			p.Employees = &n
		} else {
			r.problem(FieldEmployees, CodeBadValue, "员工人数应为整数 / the number of employees must be an integer: "+strconv.Quote(s))
		}
	}
	ct := domain.Contact{Name: optional(r.text(FieldContactName)), Title: optional(r.text(FieldContactTitle))}
	if s := r.text(FieldPhone); s != "" {
		if phone := NormalizePhone(s); domain.ValidPhone(phone) {
			ct.Phone = &phone
		} else {
			r.problem(FieldPhone, CodeBadPhone, "电话号码无法识别（手机 13800138000、座机 010-12345678 或 0755-1234567-801）/ not a phone number (mobile 13800138000, landline 010-12345678 or 0755-1234567-801)")
		}
	}
	if s := r.text(FieldEmail); s != "" {
		if domain.ValidEmail(s) {
			ct.Email = &s
		} else {
			r.problem(FieldEmail, CodeBadEmail, "电子邮箱格式不正确 / not an email address")
		}
	}
	if ct != (domain.Contact{}) {
		p.Contact = &ct
	}
	return p
}

var (
	preferences   = map[string]domain.CommunicationPreference{"电话": domain.PreferPhone, "phone": domain.PreferPhone, "邮件": domain.PreferEmail, "email": domain.PreferEmail, "线下": domain.PreferOffline, "offline": domain.PreferOffline}
	sensitivities = map[string]domain.PriceSensitivity{"低": domain.SensitivityLow, "low": domain.SensitivityLow, "中": domain.SensitivityMedium, "medium": domain.SensitivityMedium, "高": domain.SensitivityHigh, "high": domain.SensitivityHigh}
)

func (c *Converter) needs(r *row) *domain.NeedsDeclared {
	n := domain.NeedsDeclared{CoreNeeds: SplitList(r.text(FieldNeeds))}
	if s := r.text(FieldPreference); s != "" {
		if p, ok := preferences[strings.ToLower(s)]; ok {
			n.CommunicationPreference = p
		} else {
			r.problem(FieldPreference, CodeBadValue, "沟通偏好应为 电话/邮件/线下 / must be 电话, 邮件 or 线下")
		}
	}
	if s := r.text(FieldSensitivity); s != "" {
		if p, ok := sensitivities[strings.ToLower(s)]; ok {
			n.PriceSensitivity = p
		} else {
			r.problem(FieldSensitivity, CodeBadValue, "价格敏感度应为 低/中/高 / must be 低, 中 or 高")
		}
	}
	if len(n.CoreNeeds) == 0 && n.CommunicationPreference == "" && n.PriceSensitivity == "" {
		return nil
	}
	return &n
}

// missingProfile lists what the needs_completion tag (待补充) will report
// for the customer registered from this row.
func missingProfile(r *row, p domain.Profile) []string {
	var out []string
	if p.Name == nil {
		out = append(out, r.column(FieldName))
	}
	if p.Industry == nil {
		out = append(out, r.column(FieldIndustry))
	}
	if p.Owner == nil {
		out = append(out, r.column(FieldOwner))
	}
	if p.Contact == nil || p.Contact.Name == nil {
		out = append(out, r.column(FieldContactName))
	}
	if p.Contact == nil || (p.Contact.Phone == nil && p.Contact.Email == nil) {
		out = append(out, r.column(FieldPhone))
	}
	return out
}

// orderRow: one row of an order sheet is one OrderPlaced, dated by its own
// date column (required: an order without a date cannot be placed in the
// activity windows).
func (c *Converter) orderRow(r *row) [][]domain.Envelope {
	code := r.unit.Customer
	id := r.text(FieldOrderID)
	at, hasDate := r.date(FieldOrderDate, c.Location)
	amount, hasAmount := r.amount(FieldOrderAmount)
	if !hasDate {
		if r.text(FieldOrderDate) == "" {
			r.problem(FieldOrderDate, CodeRequired, "订单日期不能为空 / the order date is required")
		}
		return nil
	}
	if !hasAmount {
		if r.text(FieldOrderAmount) == "" {
			r.problem(FieldOrderAmount, CodeRequired, "订单金额不能为空 / the order amount is required")
		}
		return nil
	}
	if id == "" {
		// Without an order id the row itself identifies the order.
		id = "R" + stamp(at) + "-" + amount.String()
	}
	o := &domain.OrderPlaced{OrderID: id, Amount: amount, Category: r.text(FieldCategory)}
	switch ch := strings.ToLower(r.text(FieldChannel)); ch {
	case "":
	case "线上", "online", "网店", "电商":
		o.Channel = domain.ChannelOnline
	case "线下", "offline", "门店":
		o.Channel = domain.ChannelOffline
	default:
		r.problem(FieldChannel, CodeBadValue, "渠道应为 线上/线下，已忽略 / the channel must be 线上 or 线下 and was ignored")
	}
	return [][]domain.Envelope{{c.envelope(factID(code, "order", id), domain.TypeOrderPlaced, code, at, o)}}
}

// followUpRow: one row of a follow-up sheet is one FollowUpLogged at its date.
func (c *Converter) followUpRow(r *row) [][]domain.Envelope {
	code := r.unit.Customer
	at, ok := r.date(FieldFollowUpDate, c.Location)
	if !ok {
		if r.text(FieldFollowUpDate) == "" {
			r.problem(FieldFollowUpDate, CodeRequired, "跟进日期不能为空 / the follow-up date is required")
		}
		return nil
	}
	f := &domain.FollowUpLogged{By: r.text(FieldFollowUpBy), Channel: r.text(FieldFollowUpMethod), Summary: r.text(FieldSummary), Outcome: r.text(FieldOutcome)}
	id := factID(code, "followup", stamp(at), f.By, f.Channel, f.Summary, f.Outcome)
	return [][]domain.Envelope{{c.envelope(id, domain.TypeFollowUpLogged, code, at, f)}}
}
