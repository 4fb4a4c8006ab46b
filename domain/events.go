package domain

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// EventType names an event of the ingest vocabulary (version 1).
type EventType string

// The event vocabulary of SPEC §2.
const (
	TypeCustomerRegistered     EventType = "CustomerRegistered"
	TypeCustomerProfileUpdated EventType = "CustomerProfileUpdated"
	TypeOwnerAssigned          EventType = "OwnerAssigned"
	TypeOrderPlaced            EventType = "OrderPlaced"
	TypeOrderRefunded          EventType = "OrderRefunded"
	TypeInquiryReceived        EventType = "InquiryReceived"
	TypeSatisfactionRated      EventType = "SatisfactionRated"
	TypeRecommendationRated    EventType = "RecommendationRated"
	TypeNeedsDeclared          EventType = "NeedsDeclared"
	TypeFollowUpLogged         EventType = "FollowUpLogged"
	TypeCustomerErased         EventType = "CustomerErased"
	TypeAlertAcknowledged      EventType = "AlertAcknowledged"
	TypeAlertAssigned          EventType = "AlertAssigned"
	TypeAlertSnoozed           EventType = "AlertSnoozed"
)

// EventTypes lists the vocabulary in a stable order.
var EventTypes = []EventType{
	TypeCustomerRegistered, TypeCustomerProfileUpdated, TypeOwnerAssigned,
	TypeOrderPlaced, TypeOrderRefunded, TypeInquiryReceived, TypeSatisfactionRated,
	TypeNeedsDeclared, TypeFollowUpLogged, TypeCustomerErased,
	TypeAlertAcknowledged, TypeAlertAssigned, TypeAlertSnoozed,
	TypeRecommendationRated,
}

// Event is the typed data of one event.
type Event interface {
	EventType() EventType
	validate(c *collector)
}

// NewEvent returns an empty value of the data type for t, or false when t is
// not part of the vocabulary.
func NewEvent(t EventType) (Event, bool) {
	switch t {
	case TypeCustomerRegistered:
		return &CustomerRegistered{}, true
	case TypeCustomerProfileUpdated:
		return &CustomerProfileUpdated{}, true
	case TypeOwnerAssigned:
		return &OwnerAssigned{}, true
	case TypeOrderPlaced:
		return &OrderPlaced{}, true
	case TypeOrderRefunded:
		return &OrderRefunded{}, true
	case TypeInquiryReceived:
		return &InquiryReceived{}, true
	case TypeSatisfactionRated:
		return &SatisfactionRated{}, true
	case TypeRecommendationRated:
		return &RecommendationRated{}, true
	case TypeNeedsDeclared:
		return &NeedsDeclared{}, true
	case TypeFollowUpLogged:
		return &FollowUpLogged{}, true
	case TypeCustomerErased:
		return &CustomerErased{}, true
	case TypeAlertAcknowledged:
		return &AlertAcknowledged{}, true
	case TypeAlertAssigned:
		return &AlertAssigned{}, true
	case TypeAlertSnoozed:
		return &AlertSnoozed{}, true
	}
	return nil, false
}

// Enumerations of §2.
type (
	CustomerKind            string
	OrderChannel            string
	CommunicationPreference string
	PriceSensitivity        string
)

const (
	KindEnterprise CustomerKind = "enterprise"
	KindIndividual CustomerKind = "individual"

	ChannelOnline  OrderChannel = "online"
	ChannelOffline OrderChannel = "offline"

	PreferPhone   CommunicationPreference = "phone"
	PreferEmail   CommunicationPreference = "email"
	PreferOffline CommunicationPreference = "offline"

	SensitivityLow    PriceSensitivity = "low"
	SensitivityMedium PriceSensitivity = "medium"
	SensitivityHigh   PriceSensitivity = "high"
)

// Length limits of free-text fields, in characters.
const (
	maxShortText = 200
	maxLongText  = 4000
	maxOrderID   = 64
	maxNeeds     = 32
)

// Contact is the contact person of a customer. Name, Phone and Email are
// personal data: the event store encrypts them before they are stored, so in
// a stored event they hold ciphertext.
type Contact struct {
	Name  *string `json:"name,omitzero"`
	Title *string `json:"title,omitzero"`
	Phone *string `json:"phone,omitzero"`
	Email *string `json:"email,omitzero"`
}

// HasPersonalData reports whether the contact carries any personal field.
func (c *Contact) HasPersonalData() bool {
	return c != nil && (c.Name != nil || c.Phone != nil || c.Email != nil)
}

// Profile holds the profile fields of CustomerRegistered and
// CustomerProfileUpdated; nil means "not given".
type Profile struct {
	Name          *string       `json:"name,omitzero"`
	Kind          *CustomerKind `json:"kind,omitzero"`
	Industry      *string       `json:"industry,omitzero"`
	Region        *string       `json:"region,omitzero"`
	Employees     *int64        `json:"employees,omitzero"`
	AnnualRevenue *Money        `json:"annual_revenue,omitzero"`
	SourceChannel *string       `json:"source_channel,omitzero"`
	Owner         *string       `json:"owner,omitzero"`
	Contact       *Contact      `json:"contact,omitzero"`
}

// CustomerRegistered records a customer's registration; once per customer.
type CustomerRegistered struct {
	Profile
}

// CustomerProfileUpdated changes any subset of the profile fields.
type CustomerProfileUpdated struct {
	Profile
}

// OwnerAssigned gives the customer a new owner (sales or success manager).
type OwnerAssigned struct {
	Owner string `json:"owner"`
}

// OrderPlaced records an order; order_id is unique per customer.
type OrderPlaced struct {
	OrderID  string       `json:"order_id"`
	Amount   Money        `json:"amount"`
	Category string       `json:"category,omitzero"`
	Channel  OrderChannel `json:"channel,omitzero"`
}

// OrderRefunded records a (partial) refund of an earlier order.
type OrderRefunded struct {
	OrderID string `json:"order_id"`
	Amount  Money  `json:"amount"`
}

// InquiryReceived records an inquiry from the customer.
type InquiryReceived struct {
	Channel string `json:"channel,omitzero"`
	Topic   string `json:"topic,omitzero"`
}

// SatisfactionRated records a satisfaction score from 1 to 5.
type SatisfactionRated struct {
	Score    int    `json:"score"`
	Feedback string `json:"feedback,omitzero"`
}

// RecommendationRated records how likely the customer is to recommend us,
// from 0 to 10 (the NPS question, SPEC §11): 9–10 promoter, 7–8 passive,
// 0–6 detractor. Score is a pointer because 0 is a valid answer: a missing
// score must be told from a zero.
type RecommendationRated struct {
	Score    *int   `json:"score"`
	Feedback string `json:"feedback,omitzero"`
}

// NeedsDeclared records the customer's declared needs and preferences.
type NeedsDeclared struct {
	CoreNeeds               []string                `json:"core_needs,omitzero"`
	CommunicationPreference CommunicationPreference `json:"communication_preference,omitzero"`
	PriceSensitivity        PriceSensitivity        `json:"price_sensitivity,omitzero"`
}

// FollowUpLogged records a contact with the customer; it resolves alerts
// (resolution followed_up). By is who followed up: through the API with
// tokens configured it is the token's identity (httpapi sets it; a body
// that names someone else is refused), through NATS ingest the upstream
// system's statement.
type FollowUpLogged struct {
	By      string     `json:"by"`
	Channel string     `json:"channel,omitzero"`
	Summary string     `json:"summary,omitzero"`
	Outcome string     `json:"outcome,omitzero"`
	AlertID *uuid.UUID `json:"alert_id,omitzero"`
}

// CustomerErased asks for the customer's personal data to be destroyed.
type CustomerErased struct {
	Reason string `json:"reason"`
}

func (*CustomerRegistered) EventType() EventType     { return TypeCustomerRegistered }
func (*CustomerProfileUpdated) EventType() EventType { return TypeCustomerProfileUpdated }
func (*OwnerAssigned) EventType() EventType          { return TypeOwnerAssigned }
func (*OrderPlaced) EventType() EventType            { return TypeOrderPlaced }
func (*OrderRefunded) EventType() EventType          { return TypeOrderRefunded }
func (*InquiryReceived) EventType() EventType        { return TypeInquiryReceived }
func (*SatisfactionRated) EventType() EventType      { return TypeSatisfactionRated }
func (*RecommendationRated) EventType() EventType    { return TypeRecommendationRated }
func (*NeedsDeclared) EventType() EventType          { return TypeNeedsDeclared }
func (*FollowUpLogged) EventType() EventType         { return TypeFollowUpLogged }
func (*CustomerErased) EventType() EventType         { return TypeCustomerErased }

// PersonalContact returns the contact of events that carry one.
func PersonalContact(e Event) *Contact {
	switch d := e.(type) {
	case *CustomerRegistered:
		return d.Contact
	case *CustomerProfileUpdated:
		return d.Contact
	}
	return nil
}

func (e *CustomerRegistered) validate(c *collector) {
	if e.Name == nil {
		c.add("data.name", CodeRequired, "is required")
	}
	e.Profile.validate(c)
}

func (e *CustomerProfileUpdated) validate(c *collector) {
	p := e.Profile
	if p == (Profile{}) {
		c.add("data", CodeEmpty, "must contain at least one profile field")
	}
	if p.Contact != nil && *p.Contact == (Contact{}) {
		c.add("data.contact", CodeEmpty, "must contain at least one contact field")
	}
	e.Profile.validate(c)
}

func (p *Profile) validate(c *collector) {
	profileText(c, "data.name", p.Name)
	if p.Kind != nil && *p.Kind != KindEnterprise && *p.Kind != KindIndividual {
		c.add("data.kind", CodeInvalidEnum, "must be one of enterprise, individual")
	}
	profileText(c, "data.industry", p.Industry)
	profileText(c, "data.region", p.Region)
	if p.Employees != nil && (*p.Employees < 0 || *p.Employees > 100_000_000) {
		c.add("data.employees", CodeOutOfRange, "must be between 0 and 100000000")
	}
	if p.AnnualRevenue != nil && *p.AnnualRevenue < 0 {
		c.add("data.annual_revenue", CodeOutOfRange, "must not be negative")
	}
	profileText(c, "data.source_channel", p.SourceChannel)
	profileText(c, "data.owner", p.Owner)
	if ct := p.Contact; ct != nil {
		profileText(c, "data.contact.name", ct.Name)
		profileText(c, "data.contact.title", ct.Title)
		if ct.Phone != nil && !ValidPhone(*ct.Phone) {
			c.add("data.contact.phone", CodeInvalidFormat, "must be 11 digits starting with 1, a landline such as 010-12345678 or 0755-1234567-801, or + and an international number")
		}
		if ct.Email != nil && !ValidEmail(*ct.Email) {
			c.add("data.contact.email", CodeInvalidFormat, "must be a valid email address")
		}
	}
}

func (e *OwnerAssigned) validate(c *collector) {
	requiredText(c, "data.owner", e.Owner, maxShortText)
}

func (e *OrderPlaced) validate(c *collector) {
	requiredText(c, "data.order_id", e.OrderID, maxOrderID)
	positive(c, "data.amount", e.Amount)
	optionalText(c, "data.category", e.Category, maxShortText)
	if e.Channel != "" && e.Channel != ChannelOnline && e.Channel != ChannelOffline {
		c.add("data.channel", CodeInvalidEnum, "must be one of online, offline")
	}
}

func (e *OrderRefunded) validate(c *collector) {
	requiredText(c, "data.order_id", e.OrderID, maxOrderID)
	positive(c, "data.amount", e.Amount)
}

func (e *InquiryReceived) validate(c *collector) {
	optionalText(c, "data.channel", e.Channel, maxShortText)
	optionalText(c, "data.topic", e.Topic, maxLongText)
}

func (e *SatisfactionRated) validate(c *collector) {
	if e.Score < 1 || e.Score > 5 {
		c.add("data.score", CodeOutOfRange, "must be an integer from 1 to 5")
	}
	optionalText(c, "data.feedback", e.Feedback, maxLongText)
}

func (e *RecommendationRated) validate(c *collector) {
	if e.Score == nil {
		c.add("data.score", CodeRequired, "is required (an integer from 0 to 10)")
	} else if *e.Score < 0 || *e.Score > 10 {
		c.add("data.score", CodeOutOfRange, "must be an integer from 0 to 10")
	}
	optionalText(c, "data.feedback", e.Feedback, maxLongText)
}

func (e *NeedsDeclared) validate(c *collector) {
	if len(e.CoreNeeds) == 0 && e.CommunicationPreference == "" && e.PriceSensitivity == "" {
		c.add("data", CodeEmpty, "must declare core_needs, communication_preference or price_sensitivity")
	}
	if len(e.CoreNeeds) > maxNeeds {
		c.add("data.core_needs", CodeTooMany, "must have at most "+strconv.Itoa(maxNeeds)+" entries")
	}
	for i, n := range e.CoreNeeds {
		requiredText(c, "data.core_needs["+strconv.Itoa(i)+"]", n, maxShortText)
	}
	switch e.CommunicationPreference {
	case "", PreferPhone, PreferEmail, PreferOffline:
	default:
		c.add("data.communication_preference", CodeInvalidEnum, "must be one of phone, email, offline")
	}
	switch e.PriceSensitivity {
	case "", SensitivityLow, SensitivityMedium, SensitivityHigh:
	default:
		c.add("data.price_sensitivity", CodeInvalidEnum, "must be one of low, medium, high")
	}
}

func (e *FollowUpLogged) validate(c *collector) {
	requiredText(c, "data.by", e.By, maxShortText)
	optionalText(c, "data.channel", e.Channel, maxShortText)
	optionalText(c, "data.summary", e.Summary, maxLongText)
	optionalText(c, "data.outcome", e.Outcome, maxLongText)
	if e.AlertID != nil && *e.AlertID == uuid.Nil {
		c.add("data.alert_id", CodeInvalidValue, "must not be the nil UUID")
	}
}

func (e *CustomerErased) validate(c *collector) {
	requiredText(c, "data.reason", e.Reason, maxLongText)
}

func positive(c *collector, field string, m Money) {
	if m <= 0 {
		c.add(field, CodeNotPositive, "must be greater than 0")
	}
}

// profileText checks an optional short profile field that, when given,
// must not be blank.
func profileText(c *collector, field string, s *string) {
	if s != nil {
		requiredText(c, field, *s, maxShortText)
	}
}

func optionalText(c *collector, field, s string, maxLen int) {
	if s != "" {
		requiredText(c, field, s, maxLen)
	}
}

func requiredText(c *collector, field, s string, maxLen int) {
	switch {
	case strings.TrimSpace(s) == "":
		c.add(field, CodeRequired, "is required and must not be blank")
	case !utf8.ValidString(s):
		c.add(field, CodeInvalidValue, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > maxLen:
		c.add(field, CodeTooLong, "must be at most "+strconv.Itoa(maxLen)+" characters")
	case strings.ContainsFunc(s, isControl):
		c.add(field, CodeInvalidValue, "must not contain control characters")
	}
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f
}

// ValidPhone accepts a mainland mobile number (11 digits starting with 1),
// a mainland landline (ValidLandline), or an international number in E.164
// form ("+" and 8–15 digits).
func ValidPhone(s string) bool {
	if strings.HasPrefix(s, "+") {
		d := s[1:]
		return len(d) >= 8 && len(d) <= 15 && allDigits(d) && d[0] != '0'
	}
	if strings.HasPrefix(s, "0") {
		return ValidLandline(s)
	}
	return len(s) == 11 && s[0] == '1' && allDigits(s)
}

// ValidLandline accepts a mainland fixed-line number in its written form:
// area code (0 and 2–3 digits), a dash, the local number (7–8 digits not
// starting with 0), and optionally a dash and an extension of 1–6
// digits: 010-12345678, 0755-1234567-801. Customers' contacts are often
// switchboards, so the seeds' 联系电话 column holds such numbers.
func ValidLandline(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	area, local := parts[0], parts[1]
	if len(area) < 3 || len(area) > 4 || area[0] != '0' || area[1] == '0' || !allDigits(area) {
		return false
	}
	if len(local) < 7 || len(local) > 8 || local[0] == '0' || !allDigits(local) {
		return false
	}
	if len(parts) == 3 {
		ext := parts[2]
		return len(ext) >= 1 && len(ext) <= 6 && allDigits(ext)
	}
	return true
}

// ValidEmail accepts a bare address (no display name) with a dotted domain.
func ValidEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " <>\"") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// Envelope is one event as sent by an upstream system (SPEC §2).
type Envelope struct {
	// EventID is the idempotency key; uuid.Nil means "generate one".
	EventID  uuid.UUID
	Type     EventType
	Customer CustomerCode
	// OccurredAt is business time; the zero value means "the time of recording".
	OccurredAt time.Time
	// OccurredOffset is the UTC offset occurred_at was sent with ("Z",
	// "+08:00"), kept to show the instant back as sent; "" when absent.
	OccurredOffset string
	Source         string
	CorrelationID  string
	Data           Event
}

// MaxFutureSkew is how far in the future occurred_at may lie.
const MaxFutureSkew = 5 * time.Minute

// Validate checks the envelope and its data at instant now (used for the
// "not more than 5 minutes in the future" rule). It returns a *ValidationError.
func (e *Envelope) Validate(now time.Time) error {
	var c collector
	if !ValidCustomerCode(string(e.Customer)) {
		c.add("customer", CodeInvalidFormat, "must be 1-64 characters of letters, digits, '-', '_' or '.'")
	}
	if !e.OccurredAt.IsZero() && e.OccurredAt.After(now.Add(MaxFutureSkew)) {
		c.add("occurred_at", CodeFutureTime, "must not be more than 5 minutes in the future")
	}
	if !e.OccurredAt.IsZero() && e.OccurredAt.Year() < 1900 {
		c.add("occurred_at", CodeOutOfRange, "must not be before 1900")
	}
	optionalText(&c, "source", e.Source, maxShortText)
	optionalText(&c, "correlation_id", e.CorrelationID, maxShortText)
	if e.Data == nil {
		if _, ok := NewEvent(e.Type); !ok {
			c.add("type", CodeUnknownType, "must be one of "+typeList())
		} else {
			c.add("data", CodeRequired, "is required")
		}
	} else {
		if e.Data.EventType() != e.Type {
			c.add("type", CodeInvalidValue, "does not match the data")
		}
		e.Data.validate(&c)
		if s, ok := e.Data.(*AlertSnoozed); ok {
			ref := e.OccurredAt
			if ref.IsZero() {
				ref = now
			}
			s.validateUntil(&c, ref)
		}
	}
	return c.err()
}

func typeList() string {
	s := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
