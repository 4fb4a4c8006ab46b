package domain

import (
	"errors"
	"testing"
)

func TestMapPersonalCopiesAndVisitsTheFieldsOfTheCustomersKind(t *testing.T) {
	name, region, phone, title := "张三丰", "北京市朝阳区", "13812345678", "经理"
	orig := &CustomerRegistered{Profile: Profile{Name: &name, Region: &region, Contact: &Contact{Phone: &phone, Title: &title}}}
	for _, c := range []struct {
		individual bool
		want       []PersonalField
	}{
		{false, []PersonalField{PersonalContactPhone}},
		{true, []PersonalField{PersonalContactPhone, PersonalName, PersonalRegion}},
	} {
		var seen []PersonalField
		out, err := MapPersonal(orig, c.individual, func(f PersonalField, v string) (*string, error) {
			seen = append(seen, f)
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(c.want) {
			t.Fatalf("individual %v: visited %v, want %v", c.individual, seen, c.want)
		}
		for i := range seen {
			if seen[i] != c.want[i] {
				t.Fatalf("individual %v: visited %v, want %v", c.individual, seen, c.want)
			}
		}
		p := out.(*CustomerRegistered).Profile
		if p.Contact.Phone != nil || *p.Contact.Title != "经理" || (p.Name == nil) != c.individual {
			t.Errorf("individual %v: result %+v / %+v", c.individual, p, *p.Contact)
		}
	}
	if *orig.Name != "张三丰" || *orig.Contact.Phone != "13812345678" {
		t.Error("MapPersonal changed its input")
	}
	if out, _ := MapPersonal(&OrderPlaced{OrderID: "o1"}, true, nil); out.(*OrderPlaced).OrderID != "o1" {
		t.Error("an event without a profile is not returned as is")
	}
}

func TestTheStreamFollowsTheCustomersKindAndRefusesAnErasedPersonsName(t *testing.T) {
	ind, ent := KindIndividual, KindEnterprise
	name := "张三"
	s := StreamState{}
	if err := s.Apply(&Envelope{Data: &CustomerRegistered{Profile: Profile{Name: &name, Kind: &ind}}}); err != nil || !s.Individual {
		t.Fatalf("registration as a person: %v, individual %v", err, s.Individual)
	}
	if err := s.Apply(&Envelope{Data: &CustomerErased{Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	err := s.Apply(&Envelope{Data: &CustomerProfileUpdated{Profile: Profile{Name: &name}}})
	var re *RuleError
	if !errors.As(err, &re) || re.Field != "data.name" {
		t.Fatalf("a name after erasure: %v", err)
	}
	// Becoming an enterprise in the same event makes the name business data.
	if err := s.Apply(&Envelope{Data: &CustomerProfileUpdated{Profile: Profile{Name: &name, Kind: &ent}}}); err != nil || s.Individual {
		t.Fatalf("becoming an enterprise: %v, individual %v", err, s.Individual)
	}
}
