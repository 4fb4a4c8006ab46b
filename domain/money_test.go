package domain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

func TestParseMoney(t *testing.T) {
	tests := []struct {
		in      string
		want    Money
		wantErr error
	}{
		// Plain decimals.
		{in: "0", want: 0},
		{in: "0.00", want: 0},
		{in: "1", want: 100},
		{in: "0.1", want: 10},
		{in: "0.10", want: 10},
		{in: "0.01", want: 1},
		{in: "0.07", want: 7},
		{in: "0.29", want: 29},
		{in: "1.15", want: 115},
		{in: "4.35", want: 435},
		{in: "1.5", want: 150},
		{in: "1.50", want: 150},
		{in: "1200.5", want: 120050},
		{in: "1000000", want: 100000000},
		{in: "9999999999999.99", want: MaxMoney - 1},
		{in: "10000000000000", want: MaxMoney},
		{in: "10000000000000.00", want: MaxMoney},
		// Negative amounts parse, so callers can say "must be greater than 0".
		{in: "-5", want: -500},
		{in: "-0.01", want: -1},
		{in: "-0", want: 0},
		// Not canonical: one amount has one spelling.
		{in: "1e3", wantErr: ErrMoneySyntax},
		{in: "1.5e3", wantErr: ErrMoneySyntax},
		{in: "1E2", wantErr: ErrMoneySyntax},
		{in: "1e-2", wantErr: ErrMoneySyntax},
		{in: "0e10", wantErr: ErrMoneySyntax},
		{in: "+1.00", wantErr: ErrMoneySyntax},
		{in: "+1", wantErr: ErrMoneySyntax},
		{in: "01.00", wantErr: ErrMoneySyntax},
		{in: "007", wantErr: ErrMoneySyntax},
		{in: "-01", wantErr: ErrMoneySyntax},
		{in: "00", wantErr: ErrMoneySyntax},
		{in: "1.500", wantErr: ErrMoneyPrecision},
		{in: "1.5000000000", wantErr: ErrMoneyPrecision},
		// More than 2 decimals.
		{in: "0.001", wantErr: ErrMoneyPrecision},
		{in: "1.234", wantErr: ErrMoneyPrecision},
		{in: "1.2340", wantErr: ErrMoneyPrecision},
		{in: "1.005", wantErr: ErrMoneyPrecision},
		{in: "-0.001", wantErr: ErrMoneyPrecision},
		// Too large.
		{in: "10000000000000.01", wantErr: ErrMoneyRange},
		{in: "100000000000000", wantErr: ErrMoneyRange},
		{in: "99999999999999999999", wantErr: ErrMoneyRange},
		{in: strings.Repeat("9", 400), wantErr: ErrMoneyRange},
		{in: "1." + strings.Repeat("0", 400), wantErr: ErrMoneyRange},
		// Not a number.
		{in: "", wantErr: ErrMoneySyntax},
		{in: "abc", wantErr: ErrMoneySyntax},
		{in: "-", wantErr: ErrMoneySyntax},
		{in: "+", wantErr: ErrMoneySyntax},
		{in: "--1", wantErr: ErrMoneySyntax},
		{in: "+-1", wantErr: ErrMoneySyntax},
		{in: "1.", wantErr: ErrMoneySyntax},
		{in: ".5", wantErr: ErrMoneySyntax},
		{in: "1..2", wantErr: ErrMoneySyntax},
		{in: "1.2.3", wantErr: ErrMoneySyntax},
		{in: "1,000", wantErr: ErrMoneySyntax},
		{in: "1_000", wantErr: ErrMoneySyntax},
		{in: " 1", wantErr: ErrMoneySyntax},
		{in: "1 ", wantErr: ErrMoneySyntax},
		{in: "0x10", wantErr: ErrMoneySyntax},
		{in: "1e", wantErr: ErrMoneySyntax},
		{in: "1.5e", wantErr: ErrMoneySyntax},
		{in: "1E", wantErr: ErrMoneySyntax},
		{in: "1e+", wantErr: ErrMoneySyntax},
		{in: "1e-", wantErr: ErrMoneySyntax},
		{in: "1e 2", wantErr: ErrMoneySyntax},
		{in: "1e2.5", wantErr: ErrMoneySyntax},
		{in: "1e2e2", wantErr: ErrMoneySyntax},
		{in: "e5", wantErr: ErrMoneySyntax},
		{in: "NaN", wantErr: ErrMoneySyntax},
		{in: "Infinity", wantErr: ErrMoneySyntax},
		{in: "¥100", wantErr: ErrMoneySyntax},
		{in: "１００", wantErr: ErrMoneySyntax}, // full-width digits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMoney(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseMoney(%q) = %d, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMoney(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMoneyString(t *testing.T) {
	tests := []struct {
		m    Money
		want string
	}{
		{0, "0.00"},
		{1, "0.01"},
		{10, "0.10"},
		{99, "0.99"},
		{100, "1.00"},
		{120050, "1200.50"},
		{100000000, "1000000.00"},
		{MaxMoney, "10000000000000.00"},
		{-1, "-0.01"},
		{-150, "-1.50"},
		{-100000000, "-1000000.00"},
		{math.MaxInt64, "92233720368547758.07"},
		{math.MinInt64, "-92233720368547758.08"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("Money(%d).String() = %q, want %q", int64(tt.m), got, tt.want)
		}
	}
}

func TestMoneyGrouped(t *testing.T) {
	tests := []struct {
		m    Money
		want string
	}{
		{0, "0.00"},
		{5, "0.05"},
		{99999, "999.99"},
		{100000, "1,000.00"},
		{12345600, "123,456.00"},
		{120000000, "1,200,000.00"},
		{12345678901, "123,456,789.01"},
		{MaxMoney, "10,000,000,000,000.00"},
		{-100, "-1.00"},
		{-100000, "-1,000.00"},
		{-120000000, "-1,200,000.00"},
	}
	for _, tt := range tests {
		if got := tt.m.Grouped(); got != tt.want {
			t.Errorf("Money(%d).Grouped() = %q, want %q", int64(tt.m), got, tt.want)
		}
	}
}

func TestMoneyMarshalJSON(t *testing.T) {
	tests := []struct {
		m    Money
		want string
	}{
		{0, `"0.00"`},
		{10, `"0.10"`},
		{100000000, `"1000000.00"`},
		{-150, `"-1.50"`},
	}
	for _, tt := range tests {
		b, err := tt.m.MarshalJSON()
		if err != nil || string(b) != tt.want {
			t.Errorf("Money(%d).MarshalJSON() = %s, %v; want %s", int64(tt.m), b, err, tt.want)
		}
		// Through the JSON library, as a struct field and as a pointer.
		type doc struct {
			A Money  `json:"a"`
			P *Money `json:"p"`
		}
		m := tt.m
		b, err = json.Marshal(doc{A: m, P: &m})
		if want := `{"a":` + tt.want + `,"p":` + tt.want + `}`; err != nil || string(b) != want {
			t.Errorf("json.Marshal = %s, %v; want %s", b, err, want)
		}
		var back doc
		if err := json.Unmarshal(b, &back); err != nil || back.A != m || back.P == nil || *back.P != m {
			t.Errorf("json round trip of %d: %+v, %v", int64(m), back, err)
		}
	}
}

func TestMoneyUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    Money
		wantErr error
	}{
		{in: `0.1`, want: 10},
		{in: `"0.1"`, want: 10},
		{in: `1200.50`, want: 120050},
		{in: `"1200.50"`, want: 120050},
		{in: `1.5e3`, wantErr: ErrMoneySyntax},
		{in: `"1.5e3"`, wantErr: ErrMoneySyntax},
		{in: `1e3`, wantErr: ErrMoneySyntax},
		{in: `1.0E2`, wantErr: ErrMoneySyntax},
		{in: `"+1.00"`, wantErr: ErrMoneySyntax},
		{in: `"01.00"`, wantErr: ErrMoneySyntax},
		{in: `1.500`, wantErr: ErrMoneyPrecision},
		{in: `-3`, want: -300},
		{in: `"-3.00"`, want: -300},
		{in: `4.35`, want: 435},
		{in: `0.001`, wantErr: ErrMoneyPrecision},
		{in: `"1.234"`, wantErr: ErrMoneyPrecision},
		{in: strings.Repeat("1", 400), wantErr: ErrMoneyRange},
		{in: `"` + strings.Repeat("1", 400) + `"`, wantErr: ErrMoneyRange},
		{in: `null`, wantErr: ErrMoneySyntax},
		{in: `true`, wantErr: ErrMoneySyntax},
		{in: `false`, wantErr: ErrMoneySyntax},
		{in: `{}`, wantErr: ErrMoneySyntax},
		{in: `[]`, wantErr: ErrMoneySyntax},
		{in: `""`, wantErr: ErrMoneySyntax},
		{in: `" 1"`, wantErr: ErrMoneySyntax},
		{in: `"1 "`, wantErr: ErrMoneySyntax},
		{in: `"1\u0030"`, wantErr: ErrMoneySyntax},
		{in: `"abc"`, wantErr: ErrMoneySyntax},
		{in: `"1e"`, wantErr: ErrMoneySyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 20)], func(t *testing.T) {
			m := Money(-42)
			err := m.UnmarshalJSON([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("UnmarshalJSON(%s) = %d, %v; want %v", tt.in, m, err, tt.wantErr)
				}
				if m != -42 {
					t.Fatalf("UnmarshalJSON(%s) changed the value to %d on error", tt.in, m)
				}
				return
			}
			if err != nil || m != tt.want {
				t.Fatalf("UnmarshalJSON(%s) = %d, %v; want %d", tt.in, m, err, tt.want)
			}
		})
	}
}

// TestMoneyFloatTraps checks values whose float64 product by 100 is not an
// integer: any float on the path would turn them into an off-by-one fen.
func TestMoneyFloatTraps(t *testing.T) {
	for _, s := range []string{"0.29", "0.57", "1.13", "1.15", "4.35", "8.2", "9.95", "19.99", "1025.1", "9999999999999.99", "4503599627370.49"} {
		// Reference: integer arithmetic on the decimal text.
		intPart, frac, _ := strings.Cut(s, ".")
		frac = (frac + "00")[:2]
		var want Money
		for _, c := range intPart + frac {
			want = want*10 + Money(c-'0')
		}
		var m Money
		if err := json.Unmarshal([]byte(s), &m); err != nil || m != want {
			t.Errorf("JSON number %s = %d fen, %v; want %d", s, m, err, want)
		}
		if err := json.Unmarshal([]byte(`"`+s+`"`), &m); err != nil || m != want {
			t.Errorf("JSON string %q = %d fen, %v; want %d", s, m, err, want)
		}
	}
}

// TestMoneyRoundTripProperty checks, for random fen values over the whole
// accepted range, that String, MarshalJSON and Grouped all parse back to the
// same amount.
func TestMoneyRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(20240502, 1))
	values := []Money{0, 1, -1, 9, 10, 99, 100, 101, MaxMoney, -MaxMoney, MaxMoney - 1}
	for range 200_000 {
		var m Money
		switch r.IntN(3) {
		case 0: // anywhere in range
			m = Money(r.Int64N(2*int64(MaxMoney)+1)) - MaxMoney
		case 1: // small amounts, where fen formatting matters most
			m = Money(r.Int64N(20_001)) - 10_000
		default: // a random number of digits
			m = Money(r.Int64N(int64(math.Pow10(r.IntN(16)))))
		}
		values = append(values, m)
	}
	for _, m := range values {
		s := m.String()
		got, err := ParseMoney(s)
		if err != nil || got != m {
			t.Fatalf("ParseMoney(%q) = %d, %v; want %d", s, got, err, m)
		}
		if dot := strings.IndexByte(s, '.'); dot < 0 || len(s)-dot != 3 {
			t.Fatalf("String() = %q: want exactly 2 decimals", s)
		}
		b, _ := m.MarshalJSON()
		var back Money
		if err := back.UnmarshalJSON(b); err != nil || back != m {
			t.Fatalf("UnmarshalJSON(%s) = %d, %v; want %d", b, back, err, m)
		}
		if g := strings.ReplaceAll(m.Grouped(), ",", ""); g != s {
			t.Fatalf("Grouped() without commas = %q, want %q", g, s)
		}
	}
}

func TestMoneyAddChecked(t *testing.T) {
	tests := []struct {
		a, b   Money
		want   Money
		wantOK bool
	}{
		{1, 2, 3, true},
		{MaxMoney, MaxMoney, 2 * MaxMoney, true},
		{-5, 3, -2, true},
		{math.MaxInt64, 1, 0, false},
		{math.MaxInt64 - 1, 1, math.MaxInt64, true},
		{math.MinInt64, -1, 0, false},
		{math.MinInt64, 1, math.MinInt64 + 1, true},
	}
	for _, tt := range tests {
		got, ok := tt.a.AddChecked(tt.b)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%d.AddChecked(%d) = %d, %v; want %d, %v", tt.a, tt.b, got, ok, tt.want, tt.wantOK)
		}
	}
}

// The hand-written formatting must match the fmt-based one it replaced.
func TestMoneyFormattingMatchesFmt(t *testing.T) {
	ref := func(m Money) string {
		sign := ""
		u := uint64(m)
		if m < 0 {
			sign = "-"
			u = -u
		}
		return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
	}
	refGrouped := func(m Money) string {
		s := ref(m)
		sign := ""
		if strings.HasPrefix(s, "-") {
			sign, s = "-", s[1:]
		}
		dot := strings.IndexByte(s, '.')
		intPart, frac := s[:dot], s[dot:]
		var b strings.Builder
		for i, r := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(r)
		}
		return sign + b.String() + frac
	}
	vals := []Money{0, 1, -1, 5, 10, 99, 100, 101, -100, 12345, 99999, 100000, 123456789, -123456789, 100000000,
		MaxMoney, -MaxMoney, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for v := Money(1); v > 0 && v < math.MaxInt64/7; v = v*7 + 3 {
		vals = append(vals, v, -v)
	}
	for _, m := range vals {
		if got, want := m.String(), ref(m); got != want {
			t.Errorf("String(%d) = %q, want %q", int64(m), got, want)
		}
		if got, want := m.Grouped(), refGrouped(m); got != want {
			t.Errorf("Grouped(%d) = %q, want %q", int64(m), got, want)
		}
	}
}

func TestMoneyArithmeticNeverWraps(t *testing.T) {
	tests := []struct {
		name      string
		m, n      Money
		sum       Money
		sumOK     bool
		diff      Money
		diffOK    bool
		saturated Money
	}{
		{name: "small amounts", m: 300, n: 200, sum: 500, sumOK: true, diff: 100, diffOK: true, saturated: 500},
		{name: "past the top", m: math.MaxInt64 - 1, n: 2, sumOK: false, diff: math.MaxInt64 - 3, diffOK: true, saturated: math.MaxInt64},
		{name: "past the bottom", m: math.MinInt64 + 1, n: -2, sumOK: false, diff: math.MinInt64 + 3, diffOK: true, saturated: math.MinInt64},
		{name: "subtracting past the bottom", m: math.MinInt64 + 1, n: 2, sum: math.MinInt64 + 3, sumOK: true, diffOK: false, saturated: math.MinInt64 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, ok := tt.m.AddChecked(tt.n); ok != tt.sumOK || (ok && s != tt.sum) {
				t.Errorf("AddChecked = %d, %v; want %d, %v", s, ok, tt.sum, tt.sumOK)
			}
			if d, ok := tt.m.SubChecked(tt.n); ok != tt.diffOK || (ok && d != tt.diff) {
				t.Errorf("SubChecked = %d, %v; want %d, %v", d, ok, tt.diff, tt.diffOK)
			}
			if s := tt.m.AddSaturating(tt.n); s != tt.saturated {
				t.Errorf("AddSaturating = %d, want %d", s, tt.saturated)
			}
		})
	}
}

func TestParseMoneyTypedMovesThePointExactly(t *testing.T) {
	tests := []struct {
		in      string
		shift   int
		want    Money
		wantErr error
	}{
		{in: "120", shift: 4, want: 120_000_000},
		{in: "1.5", shift: 8, want: 15_000_000_000},
		{in: "8.88", shift: 4, want: 8_880_000},
		{in: "0.0001", shift: 4, want: 100},
		{in: "007.50", shift: 0, want: 750},
		{in: "1.500", shift: 0, want: 150},
		{in: "0.00001", shift: 4, want: 10},
		{in: "0.0000001", shift: 4, wantErr: ErrMoneyPrecision},
		{in: "1e3", shift: 0, wantErr: ErrMoneySyntax},
		{in: "+1", shift: 0, wantErr: ErrMoneySyntax},
		{in: "1.", shift: 0, wantErr: ErrMoneySyntax},
		{in: "1001", shift: 10, wantErr: ErrMoneyRange},
	}
	for _, tt := range tests {
		got, err := ParseMoneyTyped(tt.in, tt.shift)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseMoneyTyped(%q, %d) = %d, %v; want %v", tt.in, tt.shift, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMoneyTyped(%q, %d) = %d, %v; want %d", tt.in, tt.shift, got, err, tt.want)
		}
	}
}
