package eventstore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

func individualRegistered(customer, name, region string) domain.Envelope {
	return domain.Envelope{
		Type: domain.TypeCustomerRegistered, Customer: domain.CustomerCode(customer),
		Data: &domain.CustomerRegistered{Profile: domain.Profile{
			Name: ptr(name), Kind: ptr(domain.KindIndividual), Region: ptr(region), Owner: ptr("王经理"),
			Contact: &domain.Contact{Phone: ptr("13812345678")},
		}},
	}
}

func profileOfEvent(t *testing.T, ev domain.Event) domain.Profile {
	t.Helper()
	switch d := ev.(type) {
	case *domain.CustomerRegistered:
		return d.Profile
	case *domain.CustomerProfileUpdated:
		return d.Profile
	}
	t.Fatalf("event %T has no profile", ev)
	return domain.Profile{}
}

func revealProfile(t *testing.T, s *eventstore.Store, e eventstore.RecordedEvent, how eventstore.Disclosure) domain.Profile {
	t.Helper()
	ev, _ := revealEvent(t, s, e, how)
	return profileOfEvent(t, ev)
}

// publishedBodies are the bus messages of a customer's recorded events.
func publishedBodies(t *testing.T, s *eventstore.Store, customer domain.CustomerCode) []string {
	t.Helper()
	events, err := s.ReadStream(ctxT(t), customer, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(ctxT(t), events, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func TestAnIndividualsNameAndRegionAreSealedMaskedAndErased(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(t0)
	s, db := testenv.Store(t, clock.Now)
	ctx := ctxT(t)
	const person, company = domain.CustomerCode("KHP"), domain.CustomerCode("KHE")
	mustAppend(t, s, individualRegistered(string(person), "张三丰", "北京市朝阳区"))
	mustAppend(t, s, registered(string(company), "深圳市某电子有限公司", "13912345678", "li.ming@example.com"))
	// A later change of the name alone: the stream knows the customer is a person.
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: person,
		Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Name: ptr("张君宝")}}})

	for v, plain := range map[int64][]string{1: {"张三丰", "北京市朝阳区", "13812345678"}, 2: {"张君宝"}} {
		raw := rawData(t, db, person, v)
		for _, p := range plain {
			if bytes.Contains(raw, []byte(p)) {
				t.Errorf("stored v%d holds %q in plaintext: %s", v, p, raw)
			}
		}
		if !bytes.Contains(raw, []byte(privacy.SealedPrefix)) {
			t.Errorf("stored v%d has nothing sealed: %s", v, raw)
		}
	}
	if raw := rawData(t, db, person, 1); !bytes.Contains(raw, []byte("王经理")) || !bytes.Contains(raw, []byte("individual")) {
		t.Errorf("stored registration lost its business fields: %s", raw)
	}
	// An enterprise's name is business data: stored as it came.
	if raw := rawData(t, db, company, 1); !bytes.Contains(raw, []byte("深圳市某电子有限公司")) {
		t.Errorf("the enterprise's name was sealed: %s", raw)
	}

	reg := readEvent(t, s, person, 1)
	masked := revealProfile(t, s, reg, eventstore.Masked)
	if deref(masked.Name) != "张某" || deref(masked.Region) != "北京****" || deref(masked.Contact.Phone) != "138****5678" {
		t.Errorf("masked = %s / %s / %s; want 张某 / 北京**** / 138****5678", deref(masked.Name), deref(masked.Region), deref(masked.Contact.Phone))
	}
	plain := revealProfile(t, s, reg, eventstore.Plaintext)
	if deref(plain.Name) != "张三丰" || deref(plain.Region) != "北京市朝阳区" {
		t.Errorf("plaintext = %s / %s", deref(plain.Name), deref(plain.Region))
	}
	if p := revealProfile(t, s, readEvent(t, s, person, 2), eventstore.Plaintext); deref(p.Name) != "张君宝" {
		t.Errorf("updated name = %s", deref(p.Name))
	}

	// Erasure: gone from every output, masked or not.
	mustAppend(t, s, erasure(string(person)))
	for _, how := range []eventstore.Disclosure{eventstore.Masked, eventstore.Plaintext} {
		p := revealProfile(t, s, reg, how)
		if p.Name != nil || p.Region != nil || p.Contact.Phone != nil {
			t.Errorf("after erasure (%v): name %s region %s phone %s", how, deref(p.Name), deref(p.Region), deref(p.Contact.Phone))
		}
		if deref(p.Owner) != "王经理" {
			t.Errorf("after erasure the owner is %s", deref(p.Owner))
		}
	}
	// No new personal data for the erased person, name included.
	_, err := s.Append(ctx, req(domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: person,
		Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Name: ptr("张三")}}}))
	var ee *eventstore.EventError
	if !errors.Is(err, domain.ErrCustomerErased) || !errors.As(err, &ee) || ee.Err.Field != "data.name" {
		t.Fatalf("a name after erasure: %v, want ErrCustomerErased on data.name", err)
	}
	verifyIntact(t, s, person, company)
}

func TestPublishedEventsCarryNoPersonalData(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	const person, company = domain.CustomerCode("KHP"), domain.CustomerCode("KHE")
	mustAppend(t, s, individualRegistered(string(person), "张三丰", "北京市朝阳区"))
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: person,
		Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Name: ptr("张君宝"), Industry: ptr("教育")}}})
	mustAppend(t, s, registered(string(company), "深圳市某电子有限公司", "13912345678", "li.ming@example.com"))

	forbidden := []string{"张", "北京", "138", "139", "5678", "li.ming", "l***", "李", privacy.SealedPrefix, `"name"`, `"region"`, `"phone"`}
	for _, body := range publishedBodies(t, s, person) {
		for _, f := range forbidden {
			if strings.Contains(body, f) {
				t.Errorf("published body of the person holds %q: %s", f, body)
			}
		}
	}
	bodies := publishedBodies(t, s, person)
	if !strings.Contains(bodies[0], `"kind":"individual"`) || !strings.Contains(bodies[0], "王经理") || !strings.Contains(bodies[1], "教育") {
		t.Errorf("business fields missing from the person's events: %s", bodies)
	}
	company1 := publishedBodies(t, s, company)[0]
	for _, f := range []string{"李明", "李某", "139", "li.ming", "l***", privacy.SealedPrefix} {
		if strings.Contains(company1, f) {
			t.Errorf("published body of the enterprise holds %q: %s", f, company1)
		}
	}
	if !strings.Contains(company1, "深圳市某电子有限公司") || !strings.Contains(company1, "采购经理") {
		t.Errorf("the enterprise's name or the contact's title is missing: %s", company1)
	}
}

// TestAPlainIndividualNameOfAnOlderLogStillReads: events recorded before
// names of individuals were sealed (or while the customer was an
// enterprise) hold the name in plaintext; they read as before, masked, and
// are hidden once the customer is erased.
func TestAPlainIndividualNameOfAnOlderLogStillReads(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, (testenv.NewClock(t0)).Now)
	const kh = domain.CustomerCode("KHL")
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerRegistered, Customer: kh,
		Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptr("王小明"), Region: ptr("上海市浦东新区")}}})
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: kh,
		Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Kind: ptr(domain.KindIndividual)}}})
	reg := readEvent(t, s, kh, 1)
	if p := revealProfile(t, s, reg, eventstore.Masked); deref(p.Name) != "王某" || deref(p.Region) != "上海****" {
		t.Errorf("masked plain name = %s / %s", deref(p.Name), deref(p.Region))
	}
	if p := revealProfile(t, s, reg, eventstore.Plaintext); deref(p.Name) != "王小明" {
		t.Errorf("plaintext = %s", deref(p.Name))
	}
	mustAppend(t, s, erasure(string(kh)))
	if p := revealProfile(t, s, reg, eventstore.Plaintext); p.Name != nil || p.Region != nil {
		t.Errorf("after erasure: %s / %s", deref(p.Name), deref(p.Region))
	}
	for _, body := range publishedBodies(t, s, kh) {
		if strings.Contains(body, "王") || strings.Contains(body, "上海") {
			t.Errorf("published: %s", body)
		}
	}
}

// TestTheMigrationMarksTheIndividualsOfAnOlderLog replays the migration that
// added streams.individual on a log written without it.
func TestTheMigrationMarksTheIndividualsOfAnOlderLog(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	mustAppend(t, s, individualRegistered("KHP", "张三丰", "北京市朝阳区"))
	mustAppend(t, s, registered("KHE", "深圳市某电子有限公司", "13912345678", "li.ming@example.com"))
	mustAppend(t, s, registered("KHC", "王小明", "13712345678", "wang@example.com"),
		domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: "KHC",
			Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Kind: ptr(domain.KindIndividual)}}})
	mustAppend(t, s, individualRegistered("KHB", "李四", "上海市"),
		domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: "KHB",
			Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Kind: ptr(domain.KindEnterprise)}}})
	files, err := filepath.Glob("migrations/*_stream_individual.sql")
	if err != nil || len(files) != 1 {
		t.Fatalf("migration file: %v %v", files, err)
	}
	migration, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "ALTER TABLE streams DROP COLUMN individual"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, string(migration)); err != nil {
		t.Fatalf("migration on an older log: %v", err)
	}
	for customer, want := range map[domain.CustomerCode]bool{"KHP": true, "KHE": false, "KHC": true, "KHB": false} {
		var got bool
		if err := db.Pool.QueryRow(ctx, "SELECT individual FROM streams WHERE stream_id = $1", customer.StreamID()).Scan(&got); err != nil || got != want {
			t.Errorf("%s: individual %v (%v), want %v", customer, got, err, want)
		}
	}
}
