package eventstore_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

var plaintexts = []string{"李明", "13812345678", "li.ming@example.com"}

// rawData is the data column of one event exactly as PostgreSQL holds it.
func rawData(t *testing.T, db *testenv.DB, customer domain.CustomerCode, version int64) []byte {
	t.Helper()
	var data []byte
	if err := db.Pool.QueryRow(ctxT(t), "SELECT data::text FROM events WHERE stream_id = $1 AND version = $2",
		customer.StreamID(), version).Scan(&data); err != nil {
		t.Fatalf("raw data of %s v%d: %v", customer, version, err)
	}
	return data
}

type keyRow struct {
	wrapped     []byte
	masterKeyID string
	createdAt   time.Time
	destroyedAt *time.Time
}

func customerKey(t *testing.T, db *testenv.DB, customer domain.CustomerCode) (keyRow, bool) {
	t.Helper()
	var k keyRow
	err := db.Pool.QueryRow(ctxT(t), "SELECT wrapped_key, master_key_id, created_at, destroyed_at FROM customer_keys WHERE stream_id = $1",
		customer.StreamID()).Scan(&k.wrapped, &k.masterKeyID, &k.createdAt, &k.destroyedAt)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return k, false
		}
		t.Fatal(err)
	}
	return k, true
}

func liveKeys(t *testing.T, db *testenv.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM customer_keys WHERE wrapped_key IS NOT NULL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func contactOf(t *testing.T, ev domain.Event) *domain.Contact {
	t.Helper()
	return profileOfEvent(t, ev).Contact
}

func reveal(t *testing.T, s *eventstore.Store, e eventstore.RecordedEvent, how eventstore.Disclosure) (*domain.Contact, *eventstore.PersonalData) {
	t.Helper()
	ev, pd := revealEvent(t, s, e, how)
	return contactOf(t, ev), pd
}

// revealEvent opens the customer's personal data and reveals the event.
func revealEvent(t *testing.T, s *eventstore.Store, e eventstore.RecordedEvent, how eventstore.Disclosure) (domain.Event, *eventstore.PersonalData) {
	t.Helper()
	pd, err := s.OpenPersonalData(ctxT(t), []uuid.UUID{e.StreamID})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := pd.Reveal(e, how)
	if err != nil {
		t.Fatal(err)
	}
	return ev, pd
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func wantContact(t *testing.T, what string, c *domain.Contact, name, phone, email string) {
	t.Helper()
	if c == nil {
		t.Fatalf("%s: no contact", what)
	}
	if deref(c.Name) != name || deref(c.Phone) != phone || deref(c.Email) != email || deref(c.Title) != "采购经理" {
		t.Fatalf("%s: contact = %s / %s / %s / %s; want %s / %s / %s / 采购经理",
			what, deref(c.Name), deref(c.Phone), deref(c.Email), deref(c.Title), name, phone, email)
	}
}

func profileUpdate(customer string, contact *domain.Contact) domain.Envelope {
	return domain.Envelope{Type: domain.TypeCustomerProfileUpdated, Customer: domain.CustomerCode(customer),
		Data: &domain.CustomerProfileUpdated{Profile: domain.Profile{Contact: contact}}}
}

func TestPersonalDataIsSealedMaskedAndCryptoShredded(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(t0)
	s, db := testenv.Store(t, clock.Now)
	ctx := ctxT(t)
	const kh = domain.CustomerCode("KH202405010001")
	mustAppend(t, s, registered(string(kh), "深圳市某电子有限公司", "13812345678", "li.ming@example.com"))
	// Another customer, whose data must survive KH's erasure.
	mustAppend(t, s, registered("KHB", "广州某贸易公司", "13912345678", "li.ming@example.com"))

	// At rest: ciphertext only.
	before := rawData(t, db, kh, 1)
	for _, p := range plaintexts {
		if bytes.Contains(before, []byte(p)) {
			t.Fatalf("stored data contains the plaintext %q: %s", p, before)
		}
	}
	if bytes.Contains(bytes.ToLower(before), []byte(`\u674e`)) || bytes.Contains(before, []byte("li.ming")) {
		t.Fatalf("stored data contains part of the personal data: %s", before)
	}
	if !bytes.Contains(before, []byte(privacy.SealedPrefix)) || !bytes.Contains(before, []byte("深圳市某电子有限公司")) || !bytes.Contains(before, []byte("采购经理")) {
		t.Fatalf("stored data = %s; want sealed contact fields beside the clear company name and title", before)
	}
	var stored struct {
		Contact map[string]string `json:"contact"`
	}
	if err := json.Unmarshal(before, &stored); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"name", "phone", "email"} {
		if !privacy.IsSealed(stored.Contact[f]) {
			t.Errorf("stored contact.%s = %q, not sealed", f, stored.Contact[f])
		}
	}
	// The same phone and email of KHB are sealed under another key.
	otherRaw := rawData(t, db, "KHB", 1)
	var other struct {
		Contact map[string]string `json:"contact"`
	}
	if err := json.Unmarshal(otherRaw, &other); err != nil {
		t.Fatal(err)
	}
	if other.Contact["email"] == stored.Contact["email"] {
		t.Fatal("the same email of two customers has the same ciphertext")
	}

	// The key row.
	key, ok := customerKey(t, db, kh)
	if !ok || key.wrapped == nil || key.destroyedAt != nil || key.masterKeyID != testenv.MasterKey(t).ID() || !key.createdAt.Equal(t0) {
		t.Fatalf("customer key = %+v (found %v); want a live key wrapped by the test master key", key, ok)
	}
	if liveKeys(t, db) != 2 {
		t.Fatalf("%d live keys, want 2", liveKeys(t, db))
	}
	// That key, and only it, opens the stored ciphertext.
	dataKey, err := testenv.MasterKey(t).Unwrap(key.wrapped, kh.StreamID())
	if err != nil {
		t.Fatal(err)
	}
	c, err := privacy.NewCipher(dataKey, kh.StreamID())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Open("contact.phone", stored.Contact["phone"]); err != nil || got != "13812345678" {
		t.Fatalf("opening the stored phone with the customer's key: %q, %v", got, err)
	}

	// Reading back: masked by default, plaintext on request.
	events, err := s.ReadStream(ctx, kh, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	reg := events[0]
	masked, pd := reveal(t, s, reg, eventstore.Masked)
	wantContact(t, "masked", masked, "李某", "138****5678", "l***@example.com")
	if pd.Erased(kh.StreamID()) {
		t.Fatal("customer reported erased before erasure")
	}
	plain, _ := reveal(t, s, reg, eventstore.Plaintext)
	wantContact(t, "plaintext", plain, "李明", "13812345678", "li.ming@example.com")

	// A store with another master key cannot open the data keys.
	otherKey, err := privacy.NewMasterKey(bytes.Repeat([]byte{7}, privacy.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := eventstore.New(eventstore.Config{Pool: db.Pool, MasterKey: otherKey, Now: clock.Now, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wrong.Close)
	// Keys are unwrapped when a sealed field needs one, so the error comes
	// with the first field opened.
	wrongPD, err := wrong.OpenPersonalData(ctx, []uuid.UUID{kh.StreamID()})
	if err != nil {
		t.Fatalf("OpenPersonalData with another master key: %v", err)
	}
	if _, err := wrongPD.Reveal(reg, eventstore.Masked); !errors.Is(err, privacy.ErrUnwrap) {
		t.Fatalf("a sealed field opened with another master key: err = %v, want ErrUnwrap", err)
	}

	// A later contact change reuses the customer's key.
	mustAppend(t, s, profileUpdate(string(kh), &domain.Contact{Phone: ptr("13900001111")}))
	if upd := rawData(t, db, kh, 2); bytes.Contains(upd, []byte("13900001111")) || !bytes.Contains(upd, []byte(privacy.SealedPrefix)) {
		t.Fatalf("updated phone stored as %s", upd)
	}
	if k2, _ := customerKey(t, db, kh); !bytes.Equal(k2.wrapped, key.wrapped) {
		t.Fatal("a profile update replaced the customer's key")
	}
	updEvent := readEvent(t, s, kh, 2)
	if c, _ := reveal(t, s, updEvent, eventstore.Plaintext); deref(c.Phone) != "13900001111" || c.Name != nil {
		t.Fatalf("updated contact = %+v", c)
	}
	beforeUpd := rawData(t, db, kh, 2)
	regHashBefore := readEvent(t, s, kh, 1).Hash

	// Erasure.
	erasedAt := t0.Add(time.Hour)
	clock.Set(erasedAt)
	mustAppend(t, s, erasure(string(kh)))

	key, ok = customerKey(t, db, kh)
	if !ok || key.wrapped != nil || key.destroyedAt == nil || !key.destroyedAt.Equal(erasedAt) {
		t.Fatalf("customer key after erasure = %+v; want wrapped_key NULL and destroyed_at %v", key, erasedAt)
	}
	// The log is untouched: same bytes, same hashes.
	if after := rawData(t, db, kh, 1); !bytes.Equal(after, before) {
		t.Fatalf("erasure changed the stored event:\nbefore %s\nafter  %s", before, after)
	}
	if after := rawData(t, db, kh, 2); !bytes.Equal(after, beforeUpd) {
		t.Fatal("erasure changed the stored profile update")
	}
	if h := readEvent(t, s, kh, 1).Hash; !bytes.Equal(h, regHashBefore) {
		t.Fatal("erasure changed a stored hash")
	}
	// No row holds a key for the customer any more, nor the old wrapped key
	// anywhere; the only live key (KHB's) cannot open KH's ciphertext.
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customer_keys WHERE stream_id = $1 AND wrapped_key IS NOT NULL", kh.StreamID()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d keys of the erased customer remain (%v)", n, err)
	}
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customer_keys WHERE wrapped_key = $1", key.wrapped).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the old wrapped key is still stored (%d rows, %v)", n, err)
	}
	if liveKeys(t, db) != 1 {
		t.Fatalf("%d live keys, want 1 (KHB's)", liveKeys(t, db))
	}
	otherWrapped, _ := customerKey(t, db, "KHB")
	otherDataKey, err := testenv.MasterKey(t).Unwrap(otherWrapped.wrapped, domain.CustomerCode("KHB").StreamID())
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []uuid.UUID{kh.StreamID(), domain.CustomerCode("KHB").StreamID()} {
		oc, err := privacy.NewCipher(otherDataKey, stream)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := oc.Open("contact.phone", stored.Contact["phone"]); err == nil {
			t.Fatalf("another customer's key opened the erased phone: %q", got)
		}
	}

	// Reveal: the personal fields are gone, the rest stays.
	for _, how := range []eventstore.Disclosure{eventstore.Masked, eventstore.Plaintext} {
		c, pd := reveal(t, s, reg, how)
		if !pd.Erased(kh.StreamID()) {
			t.Fatal("customer not reported erased")
		}
		wantContact(t, "after erasure", c, "<nil>", "<nil>", "<nil>")
		ev, err := pd.Reveal(reg, how)
		if err != nil {
			t.Fatal(err)
		}
		if r := ev.(*domain.CustomerRegistered); deref(r.Name) != "深圳市某电子有限公司" || deref(r.Owner) != "王经理" {
			t.Fatalf("non-personal fields lost: %+v", r.Profile)
		}
		if c, _ := reveal(t, s, updEvent, how); c.Phone != nil {
			t.Fatalf("updated phone still revealed: %s", *c.Phone)
		}
	}
	// The other customer is unaffected.
	if c, _ := reveal(t, s, readEvent(t, s, "KHB", 1), eventstore.Plaintext); deref(c.Phone) != "13912345678" {
		t.Fatalf("KHB's phone after KH's erasure = %s", deref(c.Phone))
	}

	// New personal data for the erased customer is refused; nothing is stored.
	for _, contact := range []*domain.Contact{
		{Phone: ptr("13900002222")},
		{Name: ptr("王五")},
		{Email: ptr("wang@example.com"), Title: ptr("总监")},
	} {
		_, err := s.Append(ctx, req(profileUpdate(string(kh), contact)))
		var ee *eventstore.EventError
		if !errors.Is(err, domain.ErrCustomerErased) || !errors.As(err, &ee) || ee.Index != 0 {
			t.Fatalf("personal data after erasure: err = %v, want ErrCustomerErased at index 0", err)
		}
	}
	if v, err := s.StreamVersion(ctx, kh); err != nil || v != 3 {
		t.Fatalf("stream version %d, %v after refused updates; want 3", v, err)
	}
	if _, err := s.Append(ctx, req(erasure(string(kh)))); !errors.Is(err, domain.ErrAlreadyErased) {
		t.Fatalf("second erasure: err = %v, want ErrAlreadyErased", err)
	}
	// Everything else is still accepted, without a new key.
	mustAppend(t, s, order(string(kh), "o1", "1000000.00"), profileUpdate(string(kh), &domain.Contact{Title: ptr("总监")}))
	if liveKeys(t, db) != 1 {
		t.Fatal("a key was created for the erased customer")
	}
	if v, err := s.StreamVersion(ctx, kh); err != nil || v != 5 {
		t.Fatalf("stream version %d, %v; want 5", v, err)
	}

	// The log still verifies.
	verifyIntact(t, s, kh, "KHB")
	breaks, checked, err := s.VerifyAll(ctx)
	if err != nil || len(breaks) != 0 || checked != 6 {
		t.Fatalf("VerifyAll after erasure = %+v, %d, %v; want no breaks, 6 checked", breaks, checked, err)
	}
}

// TestErasureInTheSameRequestAsRegistration never stores a usable key.
func TestErasureInTheSameRequestAsRegistration(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	mustAppend(t, s, registered("KH1", "某公司", "13812345678", "li.ming@example.com"), erasure("KH1"))
	key, ok := customerKey(t, db, "KH1")
	if !ok || key.wrapped != nil || key.destroyedAt == nil {
		t.Fatalf("key = %+v (found %v); want a destroyed key", key, ok)
	}
	raw := rawData(t, db, "KH1", 1)
	for _, p := range plaintexts {
		if bytes.Contains(raw, []byte(p)) {
			t.Fatalf("stored data contains %q", p)
		}
	}
	events, err := s.ReadStream(ctxT(t), "KH1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := reveal(t, s, events[0], eventstore.Plaintext)
	wantContact(t, "erased in the same request", c, "<nil>", "<nil>", "<nil>")
	verifyIntact(t, s, "KH1")
}

// TestErasureOfACustomerWithoutPersonalData blocks personal data arriving
// later (a registration after the erasure of an order-only customer).
func TestErasureOfACustomerWithoutPersonalData(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, (testenv.NewClock(t0)).Now)
	ctx := ctxT(t)
	mustAppend(t, s, order("KH1", "o1", "5"))
	mustAppend(t, s, erasure("KH1"))
	if key, ok := customerKey(t, db, "KH1"); !ok || key.wrapped != nil || key.destroyedAt == nil {
		t.Fatalf("key = %+v (found %v); want a destroyed key", key, ok)
	}
	_, err := s.Append(ctx, req(registered("KH1", "某公司", "13812345678", "li.ming@example.com")))
	if !errors.Is(err, domain.ErrCustomerErased) {
		t.Fatalf("registration with contact after erasure: err = %v, want ErrCustomerErased", err)
	}
	// Without personal data the registration is fine.
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerRegistered, Customer: "KH1",
		Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptr("某公司"), Contact: &domain.Contact{Title: ptr("经理")}}}})
	if liveKeys(t, db) != 0 {
		t.Fatal("a key was created for the erased customer")
	}
	verifyIntact(t, s, "KH1")
}
