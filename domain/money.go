package domain

import (
	"errors"
	"strconv"
	"strings"
)

// Money is an exact amount of yuan held as integer fen (1 yuan = 100 fen).
// No binary floating point is used anywhere on the money path: JSON numbers
// and decimal strings are parsed digit by digit.
type Money int64

// MaxMoney bounds a single amount (10^13 yuan) so that sums over a long
// customer history stay far from int64 overflow.
const MaxMoney Money = 1_000_000_000_000_000

// maxMoneyDigits bounds the text we are willing to look at before deciding a
// number is too large; it keeps hostile 400-digit numbers cheap to refuse.
const maxMoneyDigits = 40

// Errors returned by ParseMoney; callers branch on them to build messages.
var (
	ErrMoneySyntax    = errors.New("must be a decimal number of yuan, e.g. 1200.50")
	ErrMoneyPrecision = errors.New("must have at most 2 decimal places")
	ErrMoneyRange     = errors.New("is too large")
	ErrMoneyNegative  = errors.New("must not be negative")
)

// ParseMoney parses a decimal yuan amount ("1200", "1200.5", "0.10", "1.5e3")
// exactly into fen. A leading minus sign is accepted so that callers can
// report "must be greater than 0" rather than a syntax error.
func ParseMoney(s string) (Money, error) {
	if s == "" || len(s) > maxMoneyDigits+8 {
		if len(s) > maxMoneyDigits+8 {
			return 0, ErrMoneyRange
		}
		return 0, ErrMoneySyntax
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	mantissa, exp, hasExp := s, "", false
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa, exp, hasExp = s[:i], s[i+1:], true
	}
	intPart, fracPart := mantissa, ""
	if i := strings.IndexByte(mantissa, '.'); i >= 0 {
		intPart, fracPart = mantissa[:i], mantissa[i+1:]
		if fracPart == "" {
			return 0, ErrMoneySyntax
		}
	}
	if intPart == "" || !allDigits(intPart) || !allDigits(fracPart) {
		return 0, ErrMoneySyntax
	}
	shift := 0
	if hasExp {
		e, err := strconv.Atoi(exp)
		if err != nil || exp[0] == ' ' {
			return 0, ErrMoneySyntax
		}
		if e > maxMoneyDigits || e < -maxMoneyDigits {
			return 0, ErrMoneyRange
		}
		shift = e
	}
	// digits * 10^(shift - len(fracPart)) yuan; we need it in fen: exponent + 2.
	digits := strings.TrimLeft(intPart+fracPart, "0")
	scale := shift - len(fracPart) + 2
	// Trailing zeros do not add precision ("1.500" is fine).
	for scale < 0 && strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		scale++
	}
	if digits == "" {
		return 0, nil
	}
	if scale < 0 {
		return 0, ErrMoneyPrecision
	}
	if len(digits)+scale > 19 {
		return 0, ErrMoneyRange
	}
	var v uint64
	for i := range len(digits) {
		v = v*10 + uint64(digits[i]-'0')
	}
	for ; scale > 0; scale-- {
		v *= 10
	}
	if v > uint64(MaxMoney) {
		return 0, ErrMoneyRange
	}
	m := Money(v)
	if neg {
		m = -m
	}
	return m, nil
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
func (m Money) AddChecked(n Money) (Money, bool) {
	s := m + n
	if (n > 0 && s < m) || (n < 0 && s > m) {
		return 0, false
	}
	return s, true
}
