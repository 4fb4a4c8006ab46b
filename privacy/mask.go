package privacy

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaskName keeps the first character and replaces the rest: "李明" → "李某",
// "Li Ming" → "L***".
func MaskName(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return ""
	}
	if unicode.Is(unicode.Han, r) {
		return string(r) + "某"
	}
	return string(r) + "***"
}

// MaskPhone keeps the first three and last four digits: "13812345678" →
// "138****5678"; international numbers keep the "+" and the same ends.
func MaskPhone(s string) string {
	prefix := ""
	if strings.HasPrefix(s, "+") {
		prefix, s = "+", s[1:]
	}
	if len(s) <= 7 {
		return prefix + strings.Repeat("*", len(s))
	}
	return prefix + s[:3] + "****" + s[len(s)-4:]
}

// MaskEmail keeps the first character of the local part and the domain:
// "li.ming@example.com" → "l***@example.com".
func MaskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(s)
	return string(r) + "***" + s[at:]
}

// MaskRegion keeps the first two characters (the province or municipality
// at most) and hides the rest: "北京市朝阳区" → "北京****", "Zhejiang" →
// "Zh****"; two characters or fewer are hidden whole.
func MaskRegion(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 2 {
		return strings.Repeat("*", n)
	}
	i := 0
	for range 2 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + "****"
}
