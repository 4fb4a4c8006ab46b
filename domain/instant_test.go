package domain

import (
	"errors"
	"testing"
	"time"
)

func TestParseInstantRefusesWhatIsNotCanonicalRFC3339(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error
		offset  string
	}{
		{in: "2024-05-02T10:00:00+08:00", offset: "+08:00"},
		{in: "2024-05-02T02:00:00Z", offset: "Z"},
		{in: "2024-05-02T10:00:00.123456+08:00", offset: "+08:00"},
		{in: "2024-05-02T10:00:00.123456000+08:00", offset: "+08:00"},
		{in: "2024-05-01T22:00:00-04:00", offset: "-04:00"},
		{in: "2024-05-02T10:00:00+23:59", offset: "+23:59"},
		{in: "1900-01-01T00:00:00+08:00", offset: "+08:00"},
		{in: "2024-05-02T10:00:00+24:00", wantErr: ErrInstantOffset},
		{in: "2024-05-02T10:00:00-24:00", wantErr: ErrInstantOffset},
		{in: "2024-05-02T10:00:00+08:60", wantErr: ErrInstantOffset},
		{in: "2024-05-02T10:00:00.1234567+08:00", wantErr: ErrInstantPrecision},
		{in: "2024-05-02T10:00:00.123456789Z", wantErr: ErrInstantPrecision},
		{in: "2024-05-02 10:00:00+08:00", wantErr: ErrInstantSyntax},
		{in: "2024-05-02T10:00:00", wantErr: ErrInstantSyntax},
		{in: "2024-05-02", wantErr: ErrInstantSyntax},
		{in: "", wantErr: ErrInstantSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseInstant(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseInstant(%q) = %v, %v; want %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Offset != tt.offset {
				t.Fatalf("ParseInstant(%q) = %+v, %v; want offset %q", tt.in, got, err, tt.offset)
			}
		})
	}
}

func TestFormatInstantShowsTheOffsetThatWasSent(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		"1900-01-01T00:00:00+08:00", // Asia/Shanghai was LMT +08:05:43 then
		"2024-05-02T10:00:00.5-04:00",
		"2024-05-02T02:00:00Z",
		"2024-05-02T10:00:00.123456+05:45",
	} {
		at, err := ParseInstant(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatInstant(at.Time, at.Offset, shanghai); got != in {
			t.Errorf("FormatInstant(ParseInstant(%q)) = %q", in, got)
		}
	}
	at := time.Date(2024, 5, 2, 2, 0, 0, 0, time.UTC)
	if got, want := FormatInstant(at, "", shanghai), "2024-05-02T10:00:00+08:00"; got != want {
		t.Errorf("without a sent offset: %q, want %q", got, want)
	}
}
