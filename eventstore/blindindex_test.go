package eventstore_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

// dupText renders possible duplicates as "KH1:phone+email,KH2:name".
func dupText(dups []eventstore.Duplicate) string {
	var parts []string
	for _, d := range dups {
		fields := make([]string, len(d.Fields))
		for i, f := range d.Fields {
			fields[i] = string(f)
		}
		parts = append(parts, string(d.Customer)+":"+strings.Join(fields, "+"))
	}
	return strings.Join(parts, ",")
}

func possibleDuplicates(t *testing.T, s *eventstore.Store, code string) string {
	t.Helper()
	id := domain.CustomerCode(code).StreamID()
	got, err := s.PossibleDuplicates(ctxT(t), []uuid.UUID{id}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return dupText(got[id])
}

func blindRows(t *testing.T, db *testenv.DB, code string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM customer_blind_indexes WHERE stream_id = $1",
		domain.CustomerCode(code).StreamID()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestALaterCustomerSharingANormalisedPhoneEmailOrNameIsAPossibleDuplicate:
// the append that states a value another customer stated before reports it
// (registration or contact change, across requests and inside one), the
// store answers the same later, a customer restating its own value is not
// flagged, and the table holds keyed digests, no plaintext.
func TestALaterCustomerSharingANormalisedPhoneEmailOrNameIsAPossibleDuplicate(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, nil)
	cases := []struct {
		name string
		ev   domain.Envelope
		want string
	}{
		{"first", registered("KH1", "深圳市星河电子有限公司", "13812345678", "li.ming@example.com"), ""},
		{"same phone typed otherwise", registered("KH2", "广州某贸易公司", "+86 138-1234-5678", "wang@corp.cn"), "KH1:phone"},
		{"same name in full width and email in capitals", registered("KH3", "深圳市 星河（电子）有限公司", "13900001111", " LI.MING@Example.com"), "KH1:name+email"},
		{"nothing shared", registered("KH4", "北京某软件公司", "010-12345678", "zhao@soft.cn"), ""},
		{"same landline with an extension", registered("KH5", "北京某软件公司分部", "010-12345678-12", "qian@soft.cn"), "KH4:phone"},
		{"restating its own phone", profileUpdate("KH1", &domain.Contact{Phone: ptr("138 1234 5678")}), ""},
		{"a contact change to another's email", profileUpdate("KH4", &domain.Contact{Email: ptr("WANG@corp.cn")}), "KH2:email"},
	}
	for _, c := range cases {
		res := mustAppend(t, s, c.ev)
		if got := dupText(res[0].PossibleDuplicateOf); got != c.want {
			t.Errorf("%s: append reported %q, want %q", c.name, got, c.want)
		}
	}
	for code, want := range map[string]string{"KH1": "", "KH2": "KH1:phone", "KH3": "KH1:name+email", "KH4": "KH2:email", "KH5": "KH4:phone"} {
		if got := possibleDuplicates(t, s, code); got != want {
			t.Errorf("PossibleDuplicates(%s) = %q, want %q", code, got, want)
		}
	}

	// Two new customers in one request: the second is the duplicate.
	res := mustAppend(t, s, registered("KH6", "成都甲公司", "13700000001", "same@x.cn"), registered("KH7", "成都乙公司", "13700000002", "same@x.cn"))
	if got := dupText(res[0].PossibleDuplicateOf) + "|" + dupText(res[1].PossibleDuplicateOf); got != "|KH6:email" {
		t.Errorf("one request of two registrations reported %q, want %q", got, "|KH6:email")
	}
	if got := possibleDuplicates(t, s, "KH7"); got != "KH6:email" {
		t.Errorf("PossibleDuplicates(KH7) = %q, want KH6:email", got)
	}

	var text string
	if err := db.Pool.QueryRow(ctxT(t), "SELECT string_agg(encode(digest, 'escape') || customer || field, ' ') FROM customer_blind_indexes").Scan(&text); err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"13812345678", "li.ming", "星河", "深圳"} {
		if strings.Contains(text, plain) {
			t.Errorf("the blind index table holds %q", plain)
		}
	}
}

// TestErasureDeletesTheCustomersBlindIndexes: after CustomerErased no digest
// of the customer is left, the customer flagged as its duplicate no longer
// is, and a new customer with the same phone is flagged as nobody's.
func TestErasureDeletesTheCustomersBlindIndexes(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, nil)
	mustAppend(t, s, registered("KH1", "深圳市星河电子有限公司", "13812345678", "li.ming@example.com"))
	mustAppend(t, s, registered("KH2", "广州某贸易公司", "13812345678", "wang@corp.cn"))
	if got := possibleDuplicates(t, s, "KH2"); got != "KH1:phone" {
		t.Fatalf("before erasure PossibleDuplicates(KH2) = %q, want KH1:phone", got)
	}
	mustAppend(t, s, domain.Envelope{Type: domain.TypeCustomerErased, Customer: "KH1", Data: &domain.CustomerErased{Reason: "客户要求删除"}})
	if n := blindRows(t, db, "KH1"); n != 0 {
		t.Fatalf("%d blind index rows of the erased customer remain", n)
	}
	if n := blindRows(t, db, "KH2"); n != 3 {
		t.Fatalf("the other customer has %d blind index rows, want 3", n)
	}
	if got := possibleDuplicates(t, s, "KH2"); got != "" {
		t.Errorf("after erasure PossibleDuplicates(KH2) = %q, want none", got)
	}
	res := mustAppend(t, s, registered("KH3", "成都某公司", "13812345678", "li.ming@example.com"))
	if got := dupText(res[0].PossibleDuplicateOf); got != "KH2:phone" {
		t.Errorf("a new customer with the erased one's phone and email was flagged %q, want KH2:phone only", got)
	}

	// Registration and erasure in one request leave no digest either.
	mustAppend(t, s, registered("KH9", "临时公司", "13600000000", "tmp@x.cn"),
		domain.Envelope{Type: domain.TypeCustomerErased, Customer: "KH9", Data: &domain.CustomerErased{Reason: "录入错误"}})
	if n := blindRows(t, db, "KH9"); n != 0 {
		t.Fatalf("%d blind index rows of a customer erased in its registration's request", n)
	}
}

// TestConcurrentRegistrationsOfOnePhoneAllStoreTheirDigests: writers of
// different customers do not conflict on the table, and every customer but
// the first is a possible duplicate of all those before it.
func TestConcurrentRegistrationsOfOnePhoneAllStoreTheirDigests(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, nil)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.Append(ctxT(t), req(registered(fmt.Sprintf("KHC%02d", i), fmt.Sprintf("并发公司%02d", i), "13812345678", fmt.Sprintf("c%d@x.cn", i))))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	if err := db.Pool.QueryRow(ctxT(t), "SELECT count(*) FROM customer_blind_indexes WHERE field = 'phone'").Scan(&rows); err != nil || rows != n {
		t.Fatalf("%d phone digests (%v), want %d", rows, err, n)
	}
	var counts []int
	for i := range n {
		got := possibleDuplicates(t, s, fmt.Sprintf("KHC%02d", i))
		counts = append(counts, len(strings.Split(got, ","))*min(1, len(got)))
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != i {
			t.Fatalf("duplicates per customer %v; want 0, 1, …, %d", counts, n-1)
		}
	}

	// A value many customers share names at most MaxDuplicates of them.
	var many []domain.Envelope
	for i := range eventstore.MaxDuplicates + 5 {
		many = append(many, registered(fmt.Sprintf("KHM%02d", i), fmt.Sprintf("总机公司%02d", i), "010-88888888", fmt.Sprintf("m%d@x.cn", i)))
	}
	res := mustAppend(t, s, many...)
	last := res[len(res)-1].PossibleDuplicateOf
	if len(last) != eventstore.MaxDuplicates {
		t.Errorf("the last of %d customers sharing a phone names %d, want %d", len(many), len(last), eventstore.MaxDuplicates)
	}
	if got := possibleDuplicates(t, s, fmt.Sprintf("KHM%02d", len(many)-1)); len(strings.Split(got, ",")) != eventstore.MaxDuplicates {
		t.Errorf("its card names %d, want %d", len(strings.Split(got, ",")), eventstore.MaxDuplicates)
	}
}
