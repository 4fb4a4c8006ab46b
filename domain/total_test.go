package domain

import (
	"math/big"
	"testing"
)

func TestTotalsAreExactBeyondWhatOneCustomersMoneyHolds(t *testing.T) {
	atBound := Total{}
	for range 10_000 {
		atBound = atBound.Plus(MaxCustomerOrdered)
	}
	small := Total{}.Plus(120_000_000).Plus(-50)
	for _, c := range []struct {
		name   string
		total  Total
		want   string
		fits   bool
		asJSON string
	}{
		{"zero value", Total{}, "0.00", true, `"0.00"`},
		{"a few amounts", small, "1199999.50", true, `"1199999.50"`},
		{"negative", Total{}.Plus(-105), "-1.05", true, `"-1.05"`},
		{"ten thousand customers at the bound", atBound, "100000000000000000.00", false, `"100000000000000000.00"`},
		{"negative beyond int64", TotalOfFen(new(big.Int).Neg(new(big.Int).Mul(big.NewInt(1e18), big.NewInt(100)))), "-1000000000000000000.00", false, ""},
		{"one fen past int64", TotalOfFen(new(big.Int).Add(big.NewInt(1<<62), big.NewInt(1<<62))), "92233720368547758.08", false, ""},
	} {
		if got := c.total.String(); got != c.want {
			t.Errorf("%s: String() = %s, want %s", c.name, got, c.want)
		}
		if _, fits := c.total.Money(); fits != c.fits {
			t.Errorf("%s: fits in Money = %v, want %v", c.name, fits, c.fits)
		}
		if c.asJSON != "" {
			if b, _ := c.total.MarshalJSON(); string(b) != c.asJSON {
				t.Errorf("%s: JSON %s, want %s", c.name, b, c.asJSON)
			}
		}
	}
	half := Total{}
	for range 5_000 {
		half = half.Plus(MaxCustomerOrdered)
	}
	if s := half.Share(atBound); s != 0.5 {
		t.Errorf("share of half the customers at the bound = %v, want 0.5", s)
	}
	if s := small.Share(Total{}); s != 0 {
		t.Errorf("share of a zero whole = %v, want 0", s)
	}
	if atBound.Equal(half) {
		t.Error("Equal says half equals the whole")
	}
	if !atBound.Equal(half.Add(half)) {
		t.Error("Equal says half + half is not the whole")
	}
	if !(Total{}).Equal(Total{}.Plus(0)) {
		t.Error("the zero value is not equal to a total of 0")
	}
}
