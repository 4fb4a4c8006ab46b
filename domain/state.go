package domain

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// Recorded is an event as the log holds it, the input of the fold.
type Recorded struct {
	EventID    uuid.UUID
	Customer   CustomerCode
	Version    int64
	Type       EventType
	OccurredAt time.Time
	RecordedAt time.Time
	// Source is the envelope's source ("import:…" for imported history).
	Source string
	Data   Event
}

// OrderRecord is one order in a customer's state.
type OrderRecord struct {
	ID       string    `json:"id"`
	Amount   Money     `json:"amount"`
	Refunded Money     `json:"refunded,omitzero"`
	At       time.Time `json:"at"`
}

// ContactState says which contact fields are known. Personal fields hold
// ciphertext (or nothing): labelling never needs the plaintext.
type ContactState struct {
	Name  string `json:"name,omitzero"`
	Title string `json:"title,omitzero"`
	Phone string `json:"phone,omitzero"`
	Email string `json:"email,omitzero"`
}

// ProfileState is the customer's profile as the events built it.
type ProfileState struct {
	Registered    bool         `json:"registered,omitzero"`
	Name          string       `json:"name,omitzero"`
	Kind          CustomerKind `json:"kind,omitzero"`
	Industry      string       `json:"industry,omitzero"`
	Region        string       `json:"region,omitzero"`
	Employees     *int64       `json:"employees,omitzero"`
	AnnualRevenue *Money       `json:"annual_revenue,omitzero"`
	SourceChannel string       `json:"source_channel,omitzero"`
	Owner         string       `json:"owner,omitzero"`
	Contact       ContactState `json:"contact,omitzero"`
	Erased        bool         `json:"erased,omitzero"`
}

// Timed is a value with the business time it was reported for; "latest"
// means the greatest occurred_at, the later recorded one on a tie.
type Timed[T any] struct {
	Value T         `json:"value"`
	At    time.Time `json:"at"`
}

// CustomerState is everything the rules need of a customer, folded from its
// events. It is a pure function of the events (in version order).
type CustomerState struct {
	Customer     CustomerCode      `json:"customer"`
	Version      int64             `json:"version"`
	Profile      ProfileState      `json:"profile"`
	Orders       []OrderRecord     `json:"orders,omitzero"`
	NetAmount    Money             `json:"net_amount"`
	LastOrderAt  time.Time         `json:"last_order_at,omitzero"`
	Inquiries    []time.Time       `json:"inquiries,omitzero"`
	Satisfaction *Timed[int]       `json:"satisfaction,omitzero"`
	CoreNeeds    *Timed[[]string]  `json:"core_needs,omitzero"`
	Preference   *Timed[string]    `json:"communication_preference,omitzero"`
	Sensitivity  *Timed[string]    `json:"price_sensitivity,omitzero"`
	LastFollowUp *Timed[uuid.UUID] `json:"last_follow_up,omitzero"`
	// Recommendation is the latest 0–10 recommendation score (NPS).
	Recommendation *Timed[int]    `json:"recommendation,omitzero"`
	cache          *windowCache   // derived, rebuilt when needed
	orderIndex     map[string]int // derived
	_              struct{}
}

// Apply folds one recorded event into the state. Events must come in
// version order; one that is not the next version is ignored (it was
// already applied), which makes re-delivery harmless.
func (s *CustomerState) Apply(r *Recorded) bool {
	if r.Version != s.Version+1 {
		return false
	}
	s.Version = r.Version
	if s.Customer == "" {
		s.Customer = r.Customer
	}
	switch d := r.Data.(type) {
	case *CustomerRegistered:
		s.Profile.Registered = true
		s.Profile.apply(&d.Profile)
	case *CustomerProfileUpdated:
		s.Profile.apply(&d.Profile)
	case *OwnerAssigned:
		s.Profile.Owner = d.Owner
	case *OrderPlaced:
		s.Orders = append(s.Orders, OrderRecord{ID: d.OrderID, Amount: d.Amount, At: r.OccurredAt})
		if s.orderIndex != nil {
			s.orderIndex[d.OrderID] = len(s.Orders) - 1
		}
		s.NetAmount = s.NetAmount.AddSaturating(d.Amount)
		if r.OccurredAt.After(s.LastOrderAt) {
			s.LastOrderAt = r.OccurredAt
		}
		if s.cache != nil {
			s.cache.addOrder(r.OccurredAt)
		}
	case *OrderRefunded:
		if i, ok := s.order(d.OrderID); ok {
			s.Orders[i].Refunded = s.Orders[i].Refunded.AddSaturating(d.Amount)
			s.NetAmount = s.NetAmount.AddSaturating(-d.Amount)
		}
	case *InquiryReceived:
		s.Inquiries = append(s.Inquiries, r.OccurredAt)
		if s.cache != nil {
			s.cache.addInquiry(r.OccurredAt)
		}
	case *SatisfactionRated:
		setLatest(&s.Satisfaction, d.Score, r.OccurredAt)
	case *RecommendationRated:
		if d.Score != nil {
			setLatest(&s.Recommendation, *d.Score, r.OccurredAt)
		}
	case *NeedsDeclared:
		if len(d.CoreNeeds) > 0 {
			setLatest(&s.CoreNeeds, slices.Clone(d.CoreNeeds), r.OccurredAt)
			if s.cache != nil {
				s.cache.needValid = false
			}
		}
		if d.CommunicationPreference != "" {
			setLatest(&s.Preference, string(d.CommunicationPreference), r.OccurredAt)
		}
		if d.PriceSensitivity != "" {
			setLatest(&s.Sensitivity, string(d.PriceSensitivity), r.OccurredAt)
		}
	case *FollowUpLogged:
		setLatest(&s.LastFollowUp, r.EventID, r.OccurredAt)
	case *CustomerErased:
		// The sealed personal fields stay "known" for the rules: the data was
		// given, it is only unreadable now, so erasure changes no label.
		s.Profile.Erased = true
	}
	return true
}

func setLatest[T any](p **Timed[T], v T, at time.Time) {
	if *p == nil || !at.Before((*p).At) {
		*p = &Timed[T]{Value: v, At: at}
	}
}

func (s *CustomerState) order(id string) (int, bool) {
	if s.orderIndex == nil {
		s.orderIndex = make(map[string]int, len(s.Orders))
		for i, o := range s.Orders {
			s.orderIndex[o.ID] = i
		}
	}
	i, ok := s.orderIndex[id]
	return i, ok
}

func (p *ProfileState) apply(u *Profile) {
	setStr := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setStr(&p.Name, u.Name)
	if u.Kind != nil {
		p.Kind = *u.Kind
	}
	setStr(&p.Industry, u.Industry)
	setStr(&p.Region, u.Region)
	if u.Employees != nil {
		v := *u.Employees
		p.Employees = &v
	}
	if u.AnnualRevenue != nil {
		v := *u.AnnualRevenue
		p.AnnualRevenue = &v
	}
	setStr(&p.SourceChannel, u.SourceChannel)
	setStr(&p.Owner, u.Owner)
	if c := u.Contact; c != nil {
		setStr(&p.Contact.Name, c.Name)
		setStr(&p.Contact.Title, c.Title)
		setStr(&p.Contact.Phone, c.Phone)
		setStr(&p.Contact.Email, c.Email)
	}
}

// Profile fields whose absence the needs_completion tag reports, as a bit set.
const (
	MissingName = 1 << iota
	MissingIndustry
	MissingOwner
	MissingContactName
	MissingPhoneOrEmail
)

var missingNames = []struct {
	bit    uint8
	zh, en string
}{
	{MissingName, "客户名称", "name"},
	{MissingIndustry, "所属行业", "industry"},
	{MissingOwner, "负责人", "owner"},
	{MissingContactName, "联系人姓名", "contact.name"},
	{MissingPhoneOrEmail, "联系电话或邮箱", "contact.phone or contact.email"},
}

// Missing returns the bit set of missing profile fields.
func (p *ProfileState) Missing() uint8 {
	var m uint8
	if p.Name == "" {
		m |= MissingName
	}
	if p.Industry == "" {
		m |= MissingIndustry
	}
	if p.Owner == "" {
		m |= MissingOwner
	}
	if p.Contact.Name == "" {
		m |= MissingContactName
	}
	if p.Contact.Phone == "" && p.Contact.Email == "" {
		m |= MissingPhoneOrEmail
	}
	return m
}

// windowCache holds, for one rule set, the instants at which each windowed
// event stops counting (t + N calendar months in the rules' time zone), as
// sorted Unix nanoseconds, so evaluation is a binary search. t.AddDate is
// not monotonic across month ends (31 Jan + 1 month is 3 Mar, after 1 Feb
// + 1 month), so every event keeps its own expiry.
type windowCache struct {
	loc            *time.Location
	short, long    int
	shortDur       time.Duration
	longDur        time.Duration
	ordersShort    []int64
	ordersLong     []int64
	inquiriesShort []int64
	// orderWindows[i] are order i's long and double-long expiries (the
	// 6-month growth compares the last long window with the one before);
	// ordersDouble are the double-long expiries sorted.
	orderWindows    []orderWindow
	ordersDouble    []int64
	needValid       bool
	needVersion     int
	needOrientation string
	needMatchedNeed string
	needMatchedWord string
}

func expiry(t time.Time, loc *time.Location, months int, d time.Duration) int64 {
	if d > 0 {
		return t.Add(d).UnixNano()
	}
	return t.In(loc).AddDate(0, months, 0).UnixNano()
}

func insertSorted(a []int64, v int64) []int64 {
	i, _ := slices.BinarySearch(a, v)
	return slices.Insert(a, i, v)
}

// orderWindow is when an order leaves the long window and the one before.
type orderWindow struct{ long, double int64 }

func (c *windowCache) orderWindow(t time.Time) orderWindow {
	return orderWindow{long: expiry(t, c.loc, c.long, c.longDur), double: expiry(t, c.loc, 2*c.long, 2*c.longDur)}
}

func (c *windowCache) addOrder(t time.Time) {
	w := c.orderWindow(t)
	c.ordersShort = insertSorted(c.ordersShort, expiry(t, c.loc, c.short, c.shortDur))
	c.ordersLong = insertSorted(c.ordersLong, w.long)
	c.orderWindows = append(c.orderWindows, w)
	c.ordersDouble = insertSorted(c.ordersDouble, w.double)
}

func (c *windowCache) addInquiry(t time.Time) {
	c.inquiriesShort = insertSorted(c.inquiriesShort, expiry(t, c.loc, c.short, c.shortDur))
}

// windows returns the cache for rs, building it when the rule set's windows
// or time zone differ from the cached ones.
func (s *CustomerState) windows(rs *RuleSet) *windowCache {
	c := s.cache
	if c != nil && c.loc == rs.Location && c.short == rs.ShortMonths && c.long == rs.LongMonths &&
		c.shortDur == rs.ShortWindow && c.longDur == rs.LongWindow {
		return c
	}
	c = &windowCache{loc: rs.Location, short: rs.ShortMonths, long: rs.LongMonths, shortDur: rs.ShortWindow, longDur: rs.LongWindow,
		ordersShort: make([]int64, 0, len(s.Orders)), ordersLong: make([]int64, 0, len(s.Orders)),
		inquiriesShort: make([]int64, 0, len(s.Inquiries)),
		orderWindows:   make([]orderWindow, 0, len(s.Orders)), ordersDouble: make([]int64, 0, len(s.Orders))}
	for _, o := range s.Orders {
		w := c.orderWindow(o.At)
		c.ordersShort = append(c.ordersShort, expiry(o.At, c.loc, c.short, c.shortDur))
		c.ordersLong = append(c.ordersLong, w.long)
		c.orderWindows = append(c.orderWindows, w)
		c.ordersDouble = append(c.ordersDouble, w.double)
	}
	for _, t := range s.Inquiries {
		c.inquiriesShort = append(c.inquiriesShort, expiry(t, c.loc, c.short, c.shortDur))
	}
	slices.Sort(c.ordersShort)
	slices.Sort(c.ordersLong)
	slices.Sort(c.ordersDouble)
	slices.Sort(c.inquiriesShort)
	s.cache = c
	return c
}

// countAfter returns how many expiries lie strictly after t (the events
// still counting at t) and the first of them (0 when none).
func countAfter(expiries []int64, t int64) (int64, int64) {
	i, found := slices.BinarySearch(expiries, t)
	if found {
		// Skip every expiry equal to t: at its expiry an event no longer counts.
		for i < len(expiries) && expiries[i] == t {
			i++
		}
	}
	if i == len(expiries) {
		return 0, 0
	}
	return int64(len(expiries) - i), expiries[i]
}
