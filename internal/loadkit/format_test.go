package loadkit

import "testing"

func TestGrouped(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {12345.6, "12,346"}, {1234567, "1,234,567"},
		{-123, "-123"}, {-1234, "-1,234"}, {-123456, "-123,456"},
	} {
		if got := Grouped(c.in); got != c.want {
			t.Errorf("Grouped(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
