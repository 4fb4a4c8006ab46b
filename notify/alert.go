package notify

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// Alert is an alert as SEGMENTS_ALERTS carries it (the fields delivery
// uses; others are ignored).
type Alert struct {
	ID        uuid.UUID  `json:"alert_id"`
	Customer  string     `json:"customer"`
	Kind      string     `json:"kind"`
	Display   string     `json:"display"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	Reason    string     `json:"reason"`
	ReasonEN  string     `json:"reason_en"`
	CreatedAt time.Time  `json:"created_at"`
	DueAt     *time.Time `json:"due_at"`
	Owner     string     `json:"owner"`
	Status    string     `json:"status"`
	Playbook  string     `json:"playbook"`
	Escalates *uuid.UUID `json:"escalates,omitempty"`
	// DeliverySuppressed marks an alert recorded but not to be delivered
	// (an imported past, for instance): it is recorded as suppressed.
	DeliverySuppressed bool   `json:"delivery_suppressed,omitempty"`
	SuppressedReason   string `json:"delivery_suppressed_reason,omitempty"`
}

// CustomerInfo is what routing and messages need of the alert's customer.
type CustomerInfo struct {
	// MaskedName is the customer's name as masked for display (李某).
	MaskedName string   `json:"masked_name,omitempty"`
	ValueTier  string   `json:"value_tier,omitempty"`
	Tags       []string `json:"tags,omitempty"`
}

// Purposes of a delivery: the alert itself, the reminder before its due
// time, the two levels of escalation to the owner's managers, and a line
// of an owner's daily digest.
const (
	PurposeAlert       = "alert"
	PurposeReminder    = "reminder"
	PurposeEscalation  = "escalation"
	PurposeEscalation2 = "escalation2"
	PurposeDigest      = "digest"
)

// Item is one thing to tell: an alert with its customer, why it is sent
// and to whom beyond the channel's own recipients (a manager).
type Item struct {
	Alert     Alert        `json:"alert"`
	Customer  CustomerInfo `json:"customer"`
	Purpose   string       `json:"purpose"`
	Recipient string       `json:"recipient,omitempty"`
}

// Route selects channels for alerts; an empty list matches anything, tags
// match when the customer has any of them.
type Route struct {
	Name       string
	Kinds      []string
	ValueTiers []string
	Owners     []string
	Tags       []string
	Channels   []string
}

func (r *Route) matches(a *Alert, c *CustomerInfo) bool {
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, a.Kind) {
		return false
	}
	if len(r.ValueTiers) > 0 && !slices.Contains(r.ValueTiers, c.ValueTier) {
		return false
	}
	if len(r.Owners) > 0 && !slices.Contains(r.Owners, a.Owner) {
		return false
	}
	if len(r.Tags) > 0 && !slices.ContainsFunc(r.Tags, func(t string) bool { return slices.Contains(c.Tags, t) }) {
		return false
	}
	return true
}

// ChannelsFor lists, once each in route order, the channels of every route
// that matches the alert.
func (c *Config) ChannelsFor(a *Alert, info *CustomerInfo) []string {
	var out []string
	for i := range c.Routes {
		if !c.Routes[i].matches(a, info) {
			continue
		}
		for _, ch := range c.Routes[i].Channels {
			if !slices.Contains(out, ch) {
				out = append(out, ch)
			}
		}
	}
	return out
}
