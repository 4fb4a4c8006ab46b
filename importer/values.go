package importer

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/segments-dev/segments/domain"
)

// Codes of the per-row report (column "code"). They name what was wrong with
// one cell or row; the message beside them says it in Chinese and English.
const (
	CodeRequired       = "required"
	CodeBadDate        = "invalid_date"
	CodeBadAmount      = "invalid_amount"
	CodeBadPhone       = "invalid_phone"
	CodeBadEmail       = "invalid_email"
	CodeBadScore       = "invalid_score"
	CodeBadCode        = "invalid_customer_code"
	CodeBadValue       = "invalid_value"
	CodeUndatedAmount  = "undated_amount"
	CodeRejected       = "rejected_by_store"
	CodeIgnoredColumn  = "ignored_column"
	CodeNeedsComplete  = "needs_completion"
	CodeDuplicateInput = "duplicate_row"
	// CodePossibleDuplicate: the row's customer shares its normalised
	// phone, email or legal name with another customer (a warning; the row
	// is imported).
	CodePossibleDuplicate = "possible_duplicate"
	// CodeBalanceKept: the customer's opening balance was imported before
	// with another amount or date and is kept.
	CodeBalanceKept = "opening_balance_kept"
	// CodeBalanceSkipped: the customer was registered other than by an
	// import; its orders are in the log, so no opening balance is added.
	CodeBalanceSkipped = "opening_balance_skipped"
)

// Normalize turns what spreadsheet users type into plain text: full-width
// ASCII letters, digits and punctuation become their ASCII forms (Chinese
// punctuation such as 、 and 。 stays) (１２０万 → 120万,
// ２０２４／５／１０ → 2024/5/10), non-breaking and ideographic spaces become
// spaces, and the result is trimmed.
func Normalize(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= '！' && r <= '～': // U+FF01–U+FF5E: full-width ASCII
			return r - 0xFEE0
		case r == '\u00a0' || r == '\u3000':
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

var errDate = errors.New("date")

// ParseDate reads a date as typed in the seeds' sheets: 2024-05-10,
// 2024/5/10, 2024.5.10, 2024年5月10日, optionally followed by a time
// (2024-05-10 14:30[:05]); a date without a time is midnight in loc.
// Excel serial numbers (45422) are accepted too: the XLSX reader hands
// over formatted text, but a CSV saved from a sheet without date formatting
// carries the serial.
func ParseDate(raw string, loc *time.Location) (time.Time, error) {
	s := Normalize(raw)
	if s == "" {
		return time.Time{}, errDate
	}
	if t, ok := excelSerial(s, loc); ok {
		return t, nil
	}
	s = strings.NewReplacer("年", "-", "月", "-", "日", " ", "号", " ", "/", "-", ".", "-", "T", " ").Replace(s)
	s = strings.Join(strings.Fields(s), " ")
	datePart, timePart, _ := strings.Cut(s, " ")
	parts := strings.Split(strings.TrimSuffix(datePart, "-"), "-")
	if len(parts) != 3 {
		return time.Time{}, errDate
	}
	y, errY := strconv.Atoi(parts[0])
	m, errM := strconv.Atoi(parts[1])
	d, errD := strconv.Atoi(parts[2])
	if errY != nil || errM != nil || errD != nil || len(parts[0]) != 4 || y < 1900 || m < 1 || m > 12 || d < 1 || d > 31 {
		return time.Time{}, errDate
	}
	h, mi, sec := 0, 0, 0
	if timePart != "" {
		tp := strings.Split(timePart, ":")
		if len(tp) < 2 || len(tp) > 3 {
			return time.Time{}, errDate
		}
		var err1, err2, err3 error
		h, err1 = strconv.Atoi(tp[0])
		mi, err2 = strconv.Atoi(tp[1])
		if len(tp) == 3 {
			sec, err3 = strconv.Atoi(tp[2])
		}
		if err1 != nil || err2 != nil || err3 != nil || h > 23 || mi > 59 || sec > 59 || h < 0 || mi < 0 || sec < 0 {
			return time.Time{}, errDate
		}
	}
	t := time.Date(y, time.Month(m), d, h, mi, sec, 0, loc)
	if t.Day() != d { // 2024-02-30 normalises into March
		return time.Time{}, errDate
	}
	return t, nil
}

// excelSerial reads an Excel date serial (days since 1899-12-30) between
// 1990 and 2100; other numbers are not dates.
func excelSerial(s string, loc *time.Location) (time.Time, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if len(whole) != 5 || !isDigits(whole) || (hasFrac && !isDigits(frac)) {
		return time.Time{}, false
	}
	n, _ := strconv.Atoi(whole)
	if n < 32874 || n > 73415 {
		return time.Time{}, false
	}
	t := time.Date(1899, 12, 30, 0, 0, 0, 0, loc).AddDate(0, 0, n)
	if hasFrac {
		f, err := strconv.ParseFloat("0."+frac, 64)
		if err != nil {
			return time.Time{}, false
		}
		// Excel stores a time of day as a fraction of 24 h; round to the second.
		t = t.Add(time.Duration(f*86400+0.5) * time.Second)
	}
	return t, true
}

var (
	errAmount      = errors.New("amount")
	errAmountRange = errors.New("amount range")
)

// ParseAmount reads an amount of yuan as typed: 1,200,000.00, 1200000,
// ¥1,200.50, 1200元, 120万 (×10,000), 1.5亿 (×100,000,000), full-width
// digits. The result is exact (no floating point).
func ParseAmount(raw string) (domain.Money, error) {
	s := Normalize(raw)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "¥"), "￥")
	s = strings.TrimSpace(strings.TrimPrefix(s, "RMB"))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "人民币"), "元")
	exp := 0
	switch {
	case strings.HasSuffix(s, "万元"), strings.HasSuffix(s, "万"):
		s, exp = strings.TrimSuffix(strings.TrimSuffix(s, "元"), "万"), 4
	case strings.HasSuffix(s, "亿元"), strings.HasSuffix(s, "亿"):
		s, exp = strings.TrimSuffix(strings.TrimSuffix(s, "元"), "亿"), 8
	}
	s = strings.TrimSpace(s)
	if !validGrouping(s) {
		return 0, errAmount
	}
	s = strings.ReplaceAll(s, ",", "")
	if s == "" || strings.ContainsAny(s, "eE+") {
		return 0, errAmount
	}
	m, err := domain.ParseMoneyTyped(s, exp)
	switch {
	case errors.Is(err, domain.ErrMoneyRange):
		return 0, errAmountRange
	case err != nil:
		return 0, errAmount
	case m < 0:
		return 0, errAmountRange
	}
	return m, nil
}

// validGrouping accepts digits with no separators, or thousands groups of
// exactly three digits (1,200,000.50), and refuses 1,20,0.
func validGrouping(s string) bool {
	intPart, _, _ := strings.Cut(s, ".")
	if !strings.Contains(intPart, ",") {
		return true
	}
	groups := strings.Split(intPart, ",")
	if len(groups[0]) < 1 || len(groups[0]) > 3 {
		return false
	}
	for _, g := range groups[1:] {
		if len(g) != 3 {
			return false
		}
	}
	return true
}

// NormalizePhone turns a typed phone number into the form the domain
// validates: mobiles lose spaces and dashes (138-8888-8888 → 13888888888),
// a +86/0086 prefix of a mobile is dropped, landlines keep one dash between
// area code, number and extension (010 1234 5678 → 010-12345678,
// 0755-1234567转801 → 0755-1234567-801). It does not validate.
func NormalizePhone(raw string) string {
	s := Normalize(raw)
	s = strings.NewReplacer("转", "-", "ext.", "-", "ext", "-", "(", "", ")", "-", "（", "", "）", "-", "—", "-", "–", "-").Replace(s)
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '-' }), "-")
	digits := strings.ReplaceAll(s, "-", "")
	switch {
	case strings.HasPrefix(digits, "+86") && len(digits) == 14 && digits[3] == '1':
		return digits[3:]
	case strings.HasPrefix(digits, "0086") && len(digits) == 15 && digits[4] == '1':
		return digits[4:]
	case strings.HasPrefix(digits, "+"):
		return digits
	case len(digits) == 11 && digits[0] == '1':
		return digits
	}
	if strings.HasPrefix(digits, "0") && !strings.Contains(s, "-") && (len(digits) == 11 || len(digits) == 12) {
		// 01012345678 / 075512345678: area code then number, undashed.
		area := 3
		if digits[1] != '1' && digits[1] != '2' {
			area = 4
		}
		return digits[:area] + "-" + digits[area:]
	}
	return s
}

// ParseScore reads a satisfaction score from 1 to 5: "4", "4分", "4.0",
// or stars ("★★★★☆" → 4).
func ParseScore(raw string) (int, bool) {
	s := Normalize(raw)
	if n := strings.Count(s, "★"); n > 0 && strings.Trim(s, "★☆ ") == "" {
		return n, n >= 1 && n <= 5
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "分"), ".0")
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= 5
}

// SplitList splits a list cell (核心诉求: 定制化服务、技术支持) at the
// separators people use, dropping empty items.
func SplitList(raw string) []string {
	s := Normalize(raw)
	items := strings.FieldsFunc(s, func(r rune) bool {
		return strings.ContainsRune("、,，;；/|\n", r)
	})
	out := items[:0]
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
