package importer

import (
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

var shanghai = mustLoad("Asia/Shanghai")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func TestDatesAsPeopleTypeThemAreMidnightInTheRulesTimeZone(t *testing.T) {
	want := time.Date(2024, 5, 10, 0, 0, 0, 0, shanghai)
	for _, s := range []string{"2024-05-10", "2024/5/10", "2024年5月10日", "2024.5.10", " ２０２４－０５－１０ ", "2024-5-10", "45422"} {
		got, err := ParseDate(s, shanghai)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	got, err := ParseDate("2024-05-10 14:30", shanghai)
	if err != nil || !got.Equal(want.Add(14*time.Hour+30*time.Minute)) {
		t.Errorf("with a time: %v %v", got, err)
	}
	got, err = ParseDate("45422.5", shanghai)
	if err != nil || !got.Equal(want.Add(12*time.Hour)) {
		t.Errorf("serial with a fraction: %v %v", got, err)
	}
	for _, s := range []string{"", "2024-13-01", "2024-02-30", "24-5-10", "5/10/2024", "明天", "2024-05", "12345", "2024-05-10 25:00"} {
		if got, err := ParseDate(s, shanghai); err == nil {
			t.Errorf("ParseDate(%q) = %v, want an error", s, got)
		}
	}
}

func TestAmountsWithSeparatorsWanAndFullWidthDigitsAreExact(t *testing.T) {
	for s, want := range map[string]domain.Money{
		"1,200,000.00": 120_000_000, "1200000": 120_000_000, "120万": 120_000_000, "120万元": 120_000_000,
		"１２０万": 120_000_000, "¥1,200.50": 120_050, "1200.5元": 120_050, "1.5亿": 15_000_000_000,
		"8.88万": 8_880_000, "0": 0, "35000\u3000": 3_500_000,
	} {
		got, err := ParseAmount(s)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "一百万", "1,20,0", "12,34", "-5", "1.234", "1e5", "abc万", "1,200.00.00"} {
		if got, err := ParseAmount(s); err == nil {
			t.Errorf("ParseAmount(%q) = %v, want an error", s, got)
		}
	}
}

func TestPhoneNumbersAreNormalisedToWhatTheDomainAccepts(t *testing.T) {
	for s, want := range map[string]string{
		"13800138000": "13800138000", "138-0013-8000": "13800138000", "138 0013 8000": "13800138000",
		"１３８００１３８０００": "13800138000", "+86 138 0013 8000": "13800138000", "010-12345678": "010-12345678",
		"010 12345678": "010-12345678", "(010)12345678": "010-12345678", "0755-1234567-801": "0755-1234567-801",
		"0755-1234567转801": "0755-1234567-801", "01012345678": "010-12345678", "+12025550123": "+12025550123",
	} {
		got := NormalizePhone(s)
		if got != want || !domain.ValidPhone(got) {
			t.Errorf("NormalizePhone(%q) = %q (valid %v), want %q", s, got, domain.ValidPhone(got), want)
		}
	}
	for _, s := range []string{"12345", "138-0013", "电话"} {
		if got := NormalizePhone(s); domain.ValidPhone(got) {
			t.Errorf("NormalizePhone(%q) = %q is valid", s, got)
		}
	}
}

func TestScoresAndListsAreReadAsTyped(t *testing.T) {
	for s, want := range map[string]int{"4": 4, "4分": 4, "４": 4, "5.0": 5, "★★★☆☆": 3} {
		if got, ok := ParseScore(s); !ok || got != want {
			t.Errorf("ParseScore(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"0", "6", "4.5", "好"} {
		if _, ok := ParseScore(s); ok {
			t.Errorf("ParseScore(%q) accepted", s)
		}
	}
	got := SplitList("定制化服务、技术支持，成本控制; ")
	if len(got) != 3 || got[0] != "定制化服务" || got[2] != "成本控制" {
		t.Errorf("SplitList = %q", got)
	}
}

func TestHeadersOfTheSeedsAndOfAMappingFileAreRecognised(t *testing.T) {
	m := Mapping{Columns: map[string]Field{"合同金额": FieldTotalAmount}}
	h, ok := m.recognise([]string{"客户编号*", "客户名称", "累计合作金额（元）", "合同金额", "备注"})
	if !ok || h.Kind != SheetCustomers || h.Columns[FieldCustomer] != 0 || h.Columns[FieldTotalAmount] != 2 {
		t.Fatalf("recognise = %+v, %v", h, ok)
	}
	if len(h.Ignored) != 1 || h.Ignored[0] != "备注" {
		t.Errorf("ignored = %q", h.Ignored)
	}
	if h, ok := m.recognise([]string{"客户编号", "订单编号", "下单日期", "订单金额"}); !ok || h.Kind != SheetOrders {
		t.Errorf("orders: %+v %v", h, ok)
	}
	if h, ok := m.recognise([]string{"客户编号", "跟进日期", "跟进人"}); !ok || h.Kind != SheetFollowUps {
		t.Errorf("follow-ups: %+v %v", h, ok)
	}
	if _, ok := m.recognise([]string{"客户信息管理与分析表单"}); ok {
		t.Error("a title row was taken for a header")
	}
}
