package domain

// PersonalField names a profile field that holds personal data (SPEC §6).
type PersonalField string

// The personal fields. Contact fields are personal for every customer; the
// customer's own name and region only when the customer is a person
// (kind individual): an enterprise's name and region are business data.
const (
	PersonalContactName  PersonalField = "contact.name"
	PersonalContactPhone PersonalField = "contact.phone"
	PersonalContactEmail PersonalField = "contact.email"
	PersonalName         PersonalField = "name"
	PersonalRegion       PersonalField = "region"
)

// personalFields is the one list of personal data. Sealing in the log,
// masking in the API, leaving it out of published events and erasure all go
// through it (via MapPersonal and ProfileState.Personal).
var personalFields = []struct {
	field          PersonalField
	individualOnly bool
	inEvent        func(*Profile) **string // nil when the event has no contact
	inState        func(*ProfileState) *string
}{
	{PersonalContactName, false, contactField(func(c *Contact) **string { return &c.Name }), func(s *ProfileState) *string { return &s.Contact.Name }},
	{PersonalContactPhone, false, contactField(func(c *Contact) **string { return &c.Phone }), func(s *ProfileState) *string { return &s.Contact.Phone }},
	{PersonalContactEmail, false, contactField(func(c *Contact) **string { return &c.Email }), func(s *ProfileState) *string { return &s.Contact.Email }},
	{PersonalName, true, func(p *Profile) **string { return &p.Name }, func(s *ProfileState) *string { return &s.Name }},
	{PersonalRegion, true, func(p *Profile) **string { return &p.Region }, func(s *ProfileState) *string { return &s.Region }},
}

func contactField(f func(*Contact) **string) func(*Profile) **string {
	return func(p *Profile) **string {
		if p.Contact == nil {
			return nil
		}
		return f(p.Contact)
	}
}

// PersonalFields lists every personal field (of an individual: the superset).
func PersonalFields() []PersonalField {
	out := make([]PersonalField, len(personalFields))
	for i, f := range personalFields {
		out[i] = f.field
	}
	return out
}

// IsPersonal reports whether field holds personal data for a customer that
// is (or is not) an individual.
func IsPersonal(field PersonalField, individual bool) bool {
	for _, f := range personalFields {
		if f.field == field {
			return individual || !f.individualOnly
		}
	}
	return false
}

// profileOf returns the profile of the events that carry one.
func profileOf(e Event) *Profile {
	switch d := e.(type) {
	case *CustomerRegistered:
		return &d.Profile
	case *CustomerProfileUpdated:
		return &d.Profile
	}
	return nil
}

// DeclaresIndividual reports whether an event states that the customer is a
// person (kind individual).
func DeclaresIndividual(e Event) bool {
	p := profileOf(e)
	return p != nil && p.Kind != nil && *p.Kind == KindIndividual
}

// HasPersonalData reports whether an event carries a personal field of a
// customer that is (or is not) an individual.
func HasPersonalData(e Event, individual bool) bool {
	p := profileOf(e)
	if p == nil {
		return false
	}
	for _, f := range personalFields {
		if f.individualOnly && !individual {
			continue
		}
		if v := f.inEvent(p); v != nil && *v != nil {
			return true
		}
	}
	return false
}

// MapPersonal returns a copy of e whose personal fields (those of an
// individual when individual is true) are replaced by what fn returns for
// them; nil removes the field. e itself is not modified, and comes back
// unchanged when it has no personal field.
func MapPersonal(e Event, individual bool, fn func(field PersonalField, value string) (*string, error)) (Event, error) {
	if !HasPersonalData(e, individual) {
		return e, nil
	}
	profile := *profileOf(e)
	if profile.Contact != nil {
		contact := *profile.Contact
		profile.Contact = &contact
	}
	for _, f := range personalFields {
		if f.individualOnly && !individual {
			continue
		}
		v := f.inEvent(&profile)
		if v == nil || *v == nil {
			continue
		}
		out, err := fn(f.field, **v)
		if err != nil {
			return nil, err
		}
		*v = out
	}
	if _, ok := e.(*CustomerRegistered); ok {
		return &CustomerRegistered{Profile: profile}, nil
	}
	return &CustomerProfileUpdated{Profile: profile}, nil
}

// Personal returns pointers to the profile's personal fields that hold a
// value (the name and region only for an individual), in the table's order.
func (p *ProfileState) Personal() map[PersonalField]*string {
	out := map[PersonalField]*string{}
	for _, f := range personalFields {
		if f.individualOnly && p.Kind != KindIndividual {
			continue
		}
		if v := f.inState(p); *v != "" {
			out[f.field] = v
		}
	}
	return out
}
