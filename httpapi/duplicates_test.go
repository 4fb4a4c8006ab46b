package httpapi_test

import (
	"strings"
	"testing"
	"time"
)

type dupEntry struct {
	Customer string   `json:"customer"`
	Fields   []string `json:"fields"`
}

func dupString(ds []dupEntry) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Customer+":"+strings.Join(d.Fields, "+"))
	}
	return strings.Join(parts, ",")
}

// TestPossibleDuplicatesShowOnTheCardAndInTheList: a customer registered
// with another's legal name (typed with full-width brackets and spaces) and
// phone (with +86 and dashes) shows possible_duplicate_of on its document
// and its list card, naming the other code and the fields; the first
// customer shows none; after the first is erased neither does.
func TestPossibleDuplicatesShowOnTheCardAndInTheList(t *testing.T) {
	t.Parallel()
	q := newQueryAPI(t)
	q.seedQueries()
	const dup = "KH202405010099"
	q.postAt(t0.Add(-time.Hour), dup, `{"type":"CustomerRegistered","customer":"`+dup+`","data":{"name":"深圳市 华芯电子元件（有限公司）","owner":"赵经理",`+
		`"contact":{"name":"李明","phone":"+8613812345678","email":"other@example.com"}}}`)
	q.clock.Set(t0)

	var doc struct {
		Dups []dupEntry `json:"possible_duplicate_of"`
	}
	q.get("/v1/customers/"+dup).expect(t, 200).into(t, &doc)
	if got := dupString(doc.Dups); got != qKH1+":name+phone" {
		t.Errorf("document possible_duplicate_of = %q, want %s:name+phone", got, qKH1)
	}
	first := q.get("/v1/customers/"+qKH1).expect(t, 200)
	if got, ok := first.obj["possible_duplicate_of"].([]any); !ok || len(got) != 0 {
		t.Errorf("the first customer's possible_duplicate_of = %v, want []", first.obj["possible_duplicate_of"])
	}

	var page struct {
		Customers []struct {
			Customer string     `json:"customer"`
			Dups     []dupEntry `json:"possible_duplicate_of"`
		} `json:"customers"`
	}
	q.get("/v1/customers").expect(t, 200).into(t, &page)
	seen := map[string]string{}
	for _, c := range page.Customers {
		seen[c.Customer] = dupString(c.Dups)
	}
	if seen[dup] != qKH1+":name+phone" || seen[qKH1] != "" || len(seen) != 3 {
		t.Errorf("list cards' possible_duplicate_of = %v, want %s → %s:name+phone and none elsewhere", seen, dup, qKH1)
	}

	q.postAt(t0, qKH1, `{"type":"CustomerErased","customer":"`+qKH1+`","data":{"reason":"客户要求"}}`)
	q.get("/v1/customers/"+dup).expect(t, 200).into(t, &doc)
	if len(doc.Dups) != 0 {
		t.Errorf("after the first customer's erasure possible_duplicate_of = %v, want none", doc.Dups)
	}
}
