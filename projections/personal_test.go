package projections_test

import (
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

func TestTheCardOfAnIndividualMasksItsNameAndRegionAndForgetsThemAtErasure(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	e := newEnv(t, start)
	const kh = domain.CustomerCode("KHP1")
	e.record(start, ev(kh, start, &domain.CustomerRegistered{Profile: domain.Profile{
		Name: ptr("张三丰"), Kind: ptr(domain.KindIndividual), Region: ptr("北京市朝阳区"), Industry: ptr("教育"), Owner: ptr("周经理"),
		Contact: &domain.Contact{Phone: ptr("13812345678")},
	}}))
	e.apply(kh)
	d := e.doc(kh)
	if deref(d.Profile.Name) != "张某" || deref(d.Profile.Region) != "北京****" || deref(d.Profile.Contact.Phone) != "138****5678" {
		t.Errorf("masked card: name %s region %s phone %s", deref(d.Profile.Name), deref(d.Profile.Region), deref(d.Profile.Contact.Phone))
	}
	plain, err := e.q.Customer(ctxT(t), kh, time.Time{}, e.clock.Now(), eventstore.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if deref(plain.Profile.Name) != "张三丰" || deref(plain.Profile.Region) != "北京市朝阳区" {
		t.Errorf("plaintext card: %s / %s", deref(plain.Profile.Name), deref(plain.Profile.Region))
	}
	// An as_of card goes through the same disclosure.
	asOf, err := e.q.Customer(ctxT(t), kh, start.Add(time.Minute), e.clock.Now(), eventstore.Masked)
	if err != nil {
		t.Fatal(err)
	}
	if deref(asOf.Profile.Name) != "张某" {
		t.Errorf("as_of card name %s", deref(asOf.Profile.Name))
	}

	e.record(start.Add(time.Hour), ev(kh, start.Add(time.Hour), &domain.CustomerErased{Reason: "客户申请注销"}))
	e.apply(kh)
	for _, how := range []eventstore.Disclosure{eventstore.Masked, eventstore.Plaintext} {
		d, err := e.q.Customer(ctxT(t), kh, time.Time{}, e.clock.Now(), how)
		if err != nil {
			t.Fatal(err)
		}
		if d.Profile.Name != nil || d.Profile.Region != nil || d.Profile.Contact.Phone != nil || !d.Profile.Erased {
			t.Errorf("after erasure: name %s region %s phone %s erased %v", deref(d.Profile.Name), deref(d.Profile.Region), deref(d.Profile.Contact.Phone), d.Profile.Erased)
		}
		if deref(d.Profile.Industry) != "教育" || deref(d.Profile.Owner) != "周经理" {
			t.Errorf("business fields after erasure: %s / %s", deref(d.Profile.Industry), deref(d.Profile.Owner))
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
