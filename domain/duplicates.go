package domain

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MatchField names what two customers were found to share (SPEC §10
// duplicates): the normalised phone, email or legal name.
type MatchField string

// The fields compared for duplicates.
const (
	MatchPhone MatchField = "phone"
	MatchEmail MatchField = "email"
	MatchName  MatchField = "name"
)

// MatchValue is one normalised value of a customer to compare with others'.
type MatchValue struct {
	Field MatchField
	Value string
}

// MatchValues returns the normalised legal name, phone and email an event
// states (CustomerRegistered and CustomerProfileUpdated, whichever of them
// it carries), in that order; values that normalise to nothing are left
// out. The values are plaintext: they are meant for a keyed blind index,
// never for storage.
func MatchValues(e Event) []MatchValue {
	p := profileOf(e)
	if p == nil {
		return nil
	}
	var out []MatchValue
	add := func(f MatchField, v *string, normalise func(string) string) {
		if v == nil {
			return
		}
		if n := normalise(*v); n != "" {
			out = append(out, MatchValue{Field: f, Value: n})
		}
	}
	add(MatchName, p.Name, NormalizeLegalName)
	if c := p.Contact; c != nil {
		add(MatchPhone, c.Phone, NormalizePhoneDigits)
		add(MatchEmail, c.Email, NormalizeEmail)
	}
	return out
}

// NormalizeEmail trims an address and lower-cases it: two spellings of one
// mailbox compare equal (the local part is case-sensitive in theory, never
// in the mail systems customers use).
func NormalizeEmail(s string) string {
	s = norm.NFKC.String(strings.ToLower(norm.NFKC.String(s)))
	return strings.TrimSpace(s)
}

// foldName folds case beyond ASCII (ß → ss, Σ/ς → σ).
var foldName = cases.Fold()

// NormalizeLegalName reduces a customer's legal name to what identifies it:
// compatibility form (NFKC: full-width letters and digits become half-width),
// case folded, whitespace and punctuation removed, so 深圳市 星河（电子）
// 有限公司 and 深圳市星河(电子)有限公司 compare equal. The steps repeat until
// nothing changes: removing a character can leave a combining mark next to
// a new base, which NFKC composes.
func NormalizeLegalName(s string) string {
	for range 4 {
		n := norm.NFKC.String(foldName.String(norm.NFKC.String(s)))
		n = strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return -1
			}
			return r
		}, n)
		if n == s {
			break
		}
		s = n
	}
	return s
}

// NormalizePhoneDigits reduces a phone number to the digits that identify
// the line: a +86/0086 country prefix is dropped (a landline then gets its
// trunk 0 back: +86 10 12345678 is 01012345678), a landline keeps its area
// code and loses its extension (0755-1234567-801 and 0755 1234567 转 802
// are 07551234567), a foreign number keeps its country code after 00. It
// accepts the forms people type (spaces, dashes, brackets, full-width
// digits), not only what ValidPhone accepts. "" when there are no digits.
func NormalizePhoneDigits(s string) string {
	s = strings.ToLower(norm.NFKC.String(s))
	for _, mark := range []string{"转", "分机", "ext", "#", "x"} {
		if i := strings.Index(s, mark); i >= 0 {
			s = s[:i]
		}
	}
	international := strings.HasPrefix(strings.TrimSpace(s), "+")
	// groups are the runs of digits as typed; their boundaries tell an
	// extension from the number.
	var groups []string
	for g := range strings.FieldsFuncSeq(s, func(r rune) bool { return r < '0' || r > '9' }) {
		groups = append(groups, g)
	}
	d := strings.Join(groups, "")
	if d == "" {
		return ""
	}
	if !international && strings.HasPrefix(d, "00") {
		international, d = true, d[2:]
		groups = dropDigits(groups, 2)
	}
	national := false
	switch {
	case international && strings.HasPrefix(d, "86"):
		national, d, groups = true, d[2:], dropDigits(groups, 2)
	case international:
		return "00" + d
	case len(d) == 13 && strings.HasPrefix(d, "861"):
		return d[2:]
	}
	if national {
		trimmed := strings.TrimLeft(d, "0")
		groups = dropDigits(groups, len(d)-len(trimmed))
		d = trimmed
		if d == "" {
			return ""
		}
		if len(d) == 11 && d[0] == '1' {
			return d
		}
		d, groups = "0"+d, append([]string{"0"}, groups...)
	}
	if d[0] != '0' {
		return d
	}
	return landlineWithoutExtension(d, groups)
}

// landlineWithoutExtension cuts a landline's digits after its local number:
// at a boundary the writer typed 7 or 8 digits after the area code, else
// after 8 (no local number is longer).
func landlineWithoutExtension(d string, groups []string) string {
	area := 4
	if len(d) > 1 && (d[1] == '1' || d[1] == '2') {
		area = 3
	}
	if len(d) <= area+7 {
		return d
	}
	at := 0
	for _, g := range groups {
		at += len(g)
		if at == area+7 || at == area+8 {
			return d[:at]
		}
	}
	return d[:min(len(d), area+8)]
}

// dropDigits removes the first n digits from the groups.
func dropDigits(groups []string, n int) []string {
	for n > 0 && len(groups) > 0 {
		if len(groups[0]) <= n {
			n -= len(groups[0])
			groups = groups[1:]
			continue
		}
		groups[0] = groups[0][n:]
		n = 0
	}
	return groups
}
