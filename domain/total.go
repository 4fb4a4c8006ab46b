package domain

import (
	"fmt"
	"math/big"
)

// Total is an exact sum of many customers' amounts in fen. One customer's
// amounts are bounded (MaxCustomerOrdered) so Money holds them, but a
// population's sum is not: ten thousand customers at the bound exceed int64.
// The zero value is 0.
type Total struct{ fen *big.Int }

// TotalOfFen returns the total of fen fen (not copied: the caller gives it up).
func TotalOfFen(fen *big.Int) Total { return Total{fen: fen} }

// Plus returns t + m.
func (t Total) Plus(m Money) Total {
	sum := big.NewInt(int64(m))
	if t.fen != nil {
		sum.Add(sum, t.fen)
	}
	return Total{fen: sum}
}

// Add returns t + u.
func (t Total) Add(u Total) Total {
	if u.fen == nil {
		return t
	}
	return Total{fen: new(big.Int).Add(t.cmpFen(), u.fen)}
}

// Money returns the total as Money when it fits.
func (t Total) Money() (Money, bool) {
	if t.fen == nil {
		return 0, true
	}
	if !t.fen.IsInt64() {
		return 0, false
	}
	return Money(t.fen.Int64()), true
}

// Share is t / whole as a fraction (0 when whole is 0), exact to float64.
func (t Total) Share(whole Total) float64 {
	if whole.fen == nil || whole.fen.Sign() == 0 || t.fen == nil {
		return 0
	}
	f, _ := new(big.Rat).SetFrac(t.fen, whole.fen).Float64()
	return f
}

// Equal reports whether two totals are the same amount.
func (t Total) Equal(u Total) bool { return t.cmpFen().Cmp(u.cmpFen()) == 0 }

func (t Total) cmpFen() *big.Int {
	if t.fen == nil {
		return new(big.Int)
	}
	return t.fen
}

// String formats the total as yuan with exactly two decimals, as Money does.
func (t Total) String() string {
	if m, ok := t.Money(); ok {
		return m.String()
	}
	abs := new(big.Int).Abs(t.fen)
	yuan, fen := new(big.Int).QuoRem(abs, big.NewInt(100), new(big.Int))
	sign := ""
	if t.fen.Sign() < 0 {
		sign = "-"
	}
	return fmt.Sprintf("%s%s.%02d", sign, yuan, fen.Int64())
}

// MarshalJSON writes the total as Money does: a decimal string.
func (t Total) MarshalJSON() ([]byte, error) { return []byte(`"` + t.String() + `"`), nil }
