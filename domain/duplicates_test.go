package domain

import (
	"testing"
	"unicode/utf8"
)

func TestPhonesNormaliseToTheDigitsThatIdentifyTheLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"13800138000", "13800138000"},
		{"138-0013-8000", "13800138000"},
		{"138 0013 8000", "13800138000"},
		{"+8613800138000", "13800138000"},
		{"+86 138 0013 8000", "13800138000"},
		{"0086 13800138000", "13800138000"},
		{"8613800138000", "13800138000"},
		{"１３８００１３８０００", "13800138000"},
		{"010-12345678", "01012345678"},
		{"(010) 1234 5678", "01012345678"},
		{"+86 10 12345678", "01012345678"},
		{"+86-010-12345678", "01012345678"},
		{"0755-1234567-801", "07551234567"},
		{"0755-1234567", "07551234567"},
		{"0755 1234567 转 802", "07551234567"},
		{"0755-1234567 ext. 9", "07551234567"},
		{"075512345678", "075512345678"},
		{"0755123456789", "075512345678"},
		{"020-87654321-12", "02087654321"},
		{"+852 2345 6789", "0085223456789"},
		{"00852 23456789", "0085223456789"},
		{"+1 (415) 555-0100", "0014155550100"},
		{"", ""},
		{"无", ""},
		{"+86", ""},
	} {
		if got := NormalizePhoneDigits(c.in); got != c.want {
			t.Errorf("NormalizePhoneDigits(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEmailsNormaliseTrimmedAndLowerCase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"li.ming@example.com", "li.ming@example.com"},
		{"  Li.Ming@Example.COM ", "li.ming@example.com"},
		{"ＬＩ@example.com", "li@example.com"},
		{"\u3000wang@corp.cn\t", "wang@corp.cn"},
		{"", ""},
	} {
		if got := NormalizeEmail(c.in); got != c.want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLegalNamesNormaliseWithoutWidthSpacesPunctuationOrCase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"深圳市星河电子有限公司", "深圳市星河电子有限公司"},
		{"深圳市 星河（电子）有限公司", "深圳市星河电子有限公司"},
		{"深圳市星河(电子)有限公司。", "深圳市星河电子有限公司"},
		{"ＡＢＣ科技 有限公司", "abc科技有限公司"},
		{"abc科技有限公司", "abc科技有限公司"},
		{"Huaxin-Tech Co., Ltd.", "huaxintechcoltd"},
		{"HUAXIN TECH CO LTD", "huaxintechcoltd"},
		{"星河\u200b电子", "星河电子"},
		{"李·明", "李明"},
		{"《》、，", ""},
	} {
		if got := NormalizeLegalName(c.in); got != c.want {
			t.Errorf("NormalizeLegalName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMatchValuesAreTheRegistrationsNormalisedNamePhoneAndEmail(t *testing.T) {
	name, phone, email := "星河 电子", "+86 138-0013-8000", " Li@Example.com"
	blank := "（）"
	got := MatchValues(&CustomerRegistered{Profile: Profile{Name: &name, Contact: &Contact{Phone: &phone, Email: &email}}})
	want := []MatchValue{{MatchName, "星河电子"}, {MatchPhone, "13800138000"}, {MatchEmail, "li@example.com"}}
	if len(got) != len(want) {
		t.Fatalf("MatchValues = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("MatchValues[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if got := MatchValues(&CustomerProfileUpdated{Profile: Profile{Name: &blank}}); len(got) != 0 {
		t.Errorf("a name of punctuation only gave %v, want nothing", got)
	}
	if got := MatchValues(&OrderPlaced{OrderID: "A", Amount: 1}); got != nil {
		t.Errorf("an order gave %v", got)
	}
}

// FuzzNormalisationIsIdempotent: a normalised value normalises to itself,
// so a value stored once and compared later always meets its own digest.
func FuzzNormalisationIsIdempotent(f *testing.F) {
	for _, s := range []string{"+86 10 12345678", "0755-1234567-801", "00852 2345", "+0086 1", "Σίσυφος Co., Ltd.",
		"ＡＢＣ（电子）", "a-\u0301b", "ß@EXAMPLE.com", "ǅ", "\u0345", "+86 00 10", "013800138000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for name, fn := range map[string]func(string) string{
			"phone": NormalizePhoneDigits, "email": NormalizeEmail, "name": NormalizeLegalName,
		} {
			once := fn(s)
			if twice := fn(once); twice != once {
				t.Fatalf("%s: %q → %q → %q", name, s, once, twice)
			}
		}
	})
}
