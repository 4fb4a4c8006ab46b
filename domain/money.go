package domain

import (
	"cmp"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Money is an exact amount of yuan held as integer fen (1 yuan = 100 fen).
// No binary floating point is used anywhere on the money path: JSON numbers
// and decimal strings are parsed digit by digit.
type Money int64

// MaxMoney bounds a single amount (10^13 yuan); MaxCustomerOrdered bounds
// the sum of a customer's amounts.
const MaxMoney Money = 1_000_000_000_000_000

// maxMoneyDigits bounds the text we are willing to look at before deciding a
// number is too large; it keeps hostile 400-digit numbers cheap to refuse.
const maxMoneyDigits = 40

// MaxCustomerOrdered bounds the sum of every amount ever ordered by one
// customer (10^13 yuan, the same as one amount): net amounts, refunds and
// per-customer sums stay ~9,000 times below int64 overflow. Sums over many
// customers (the summary, the trend) are Totals, which do not overflow.
const MaxCustomerOrdered Money = MaxMoney

// Errors returned by ParseMoney; callers branch on them to build messages.
var (
	ErrMoneySyntax    = errors.New("must be a canonical decimal number of yuan such as 1200.50 (no exponent, sign or leading zeros)")
	ErrMoneyPrecision = errors.New("must have at most 2 decimal places")
	ErrMoneyRange     = errors.New("is too large")
	ErrMoneyNegative  = errors.New("must not be negative")
)

// ParseMoney parses a canonical decimal yuan amount ("1200", "1200.5",
// "0.10") exactly into fen. Canonical means: digits without leading zeros
// ("0" itself excepted), optionally a point and one or two digits; no
// exponent, no plus sign. A leading minus sign is accepted so that callers
// can report "must be greater than 0" rather than a syntax error.
func ParseMoney(s string) (Money, error) {
	if len(s) > maxMoneyDigits {
		return 0, ErrMoneyRange
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intPart, fracPart, hasPoint := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(fracPart) || (hasPoint && fracPart == "") ||
		(len(intPart) > 1 && intPart[0] == '0') {
		return 0, ErrMoneySyntax
	}
	if len(fracPart) > 2 {
		return 0, ErrMoneyPrecision
	}
	// At most 14 integer digits fit under MaxMoney; more are out of range.
	if len(intPart) > 14 {
		return 0, ErrMoneyRange
	}
	var v uint64
	for i := range len(intPart) {
		v = v*10 + uint64(intPart[i]-'0')
	}
	fen := fracPart + "00"[len(fracPart):]
	v = v*100 + uint64(fen[0]-'0')*10 + uint64(fen[1]-'0')
	if v > uint64(MaxMoney) {
		return 0, ErrMoneyRange
	}
	m := Money(v)
	if neg {
		m = -m
	}
	return m, nil
}

// ParseMoneyTyped parses an amount as people type it in spreadsheets —
// leading zeros, zeros beyond 2 decimals — multiplied by 10^shift (万 is 4),
// exactly: the point is moved in the text and the result must be a valid
// canonical amount (at most 2 decimals that matter, within MaxMoney).
func ParseMoneyTyped(s string, shift int) (Money, error) {
	if len(s) > maxMoneyDigits {
		return 0, ErrMoneyRange
	}
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) || (hasPoint && frac == "") || shift < 0 || shift > maxMoneyDigits {
		return 0, ErrMoneySyntax
	}
	for ; shift > 0; shift-- {
		if frac == "" {
			intPart += "0"
		} else {
			intPart, frac = intPart+frac[:1], frac[1:]
		}
	}
	canonical := cmp.Or(strings.TrimLeft(intPart, "0"), "0")
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		canonical += "." + frac
	}
	return ParseMoney(sign + canonical)
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount as yuan with exactly two decimals, e.g. "1000000.00".
func (m Money) String() string {
	sign := ""
	if m < 0 {
		sign = "-"
	}
	return string(m.appendDecimal(make([]byte, 0, 24), sign, false))
}

// appendDecimal appends sign, the magnitude's integer part (with thousands
// separators when grouped) and two decimals. It is the formatting of
// fmt.Sprintf("%s%d.%02d"), without fmt: reasons format money for every
// label change.
func (m Money) appendDecimal(b []byte, sign string, grouped bool) []byte {
	u := uint64(m) //nolint:gosec // reinterpreted below as a magnitude, right for every int64
	if m < 0 {
		u = -u // two's complement: the magnitude, even for the minimum int64
	}
	b = append(b, sign...)
	var digits [20]byte
	intPart := strconv.AppendUint(digits[:0], u/100, 10)
	if grouped {
		for i, c := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b = append(b, ',')
			}
			b = append(b, c)
		}
	} else {
		b = append(b, intPart...)
	}
	frac := u % 100
	return append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
}

// Grouped formats the amount with thousands separators, e.g. "1,200,000.00",
// for reasons read by people.
func (m Money) Grouped() string {
	sign := ""
	if m < 0 {
		sign = "-"
	}
	return string(m.appendDecimal(make([]byte, 0, 32), sign, true))
}

// MarshalJSON writes money as a decimal string with two decimals: JSON
// numbers invite float parsing on the reader's side.
func (m Money) MarshalJSON() ([]byte, error) {
	return []byte(`"` + m.String() + `"`), nil
}

// UnmarshalJSON accepts a JSON number or a decimal string.
func (m *Money) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		if strings.ContainsAny(s, `\"`) || strings.TrimSpace(s) != s {
			return ErrMoneySyntax
		}
	} else if s == "null" || s == "true" || s == "false" || strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		return ErrMoneySyntax
	}
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// AddChecked adds two amounts, reporting overflow instead of wrapping.
// Every sum of amounts goes through it (or SubChecked).
func (m Money) AddChecked(n Money) (Money, bool) {
	s := m + n
	if (n > 0 && s < m) || (n < 0 && s > m) {
		return 0, false
	}
	return s, true
}

// SubChecked subtracts n from m, reporting overflow instead of wrapping.
func (m Money) SubChecked(n Money) (Money, bool) {
	s := m - n
	if (n > 0 && s > m) || (n < 0 && s < m) {
		return 0, false
	}
	return s, true
}

// AddSaturating adds two amounts, stopping at the int64 bounds instead of
// wrapping. Folds that cannot refuse (the label state of a log written before
// MaxCustomerOrdered existed) use it: a sum can stick at the bound but never
// turns negative.
func (m Money) AddSaturating(n Money) Money {
	if s, ok := m.AddChecked(n); ok {
		return s
	}
	if n > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}
