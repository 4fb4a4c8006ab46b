// Package fixturegen writes customer, order and follow-up sheets in the
// seeds' column layout (客户信息管理与分析表单) with realistic Chinese
// values, the tolerant formats people type, and deliberate errors and
// duplicates: the test data of the importer and its benchmark.
//
// Everything is a function of the row index, so a file is the same bytes
// whenever it is generated (the committed fixtures are checked against a
// fresh generation) and a large file can be written as a stream.
package fixturegen

import (
	"fmt"
	"strconv"
	"strings"
)

// CustomerHeader is the seeds' customer table header.
var CustomerHeader = []string{"客户编号", "客户名称", "所属行业", "区域", "联系人", "职位", "联系电话", "合作起始日期", "累计合作金额", "最近合作时间", "满意度评分", "核心诉求", "负责人"}

// OrderHeader and FollowUpHeader are the order and follow-up sheets'.
var (
	OrderHeader    = []string{"客户编号", "订单编号", "下单日期", "订单金额", "品类", "渠道"}
	FollowUpHeader = []string{"客户编号", "跟进日期", "跟进人", "跟进方式", "跟进内容", "跟进结果"}
)

// The vocabularies of seeds 000–003 (industries as "大类-细分", regions as
// "省-市", needs and titles as the seeds' examples give them).
var (
	industries = []string{"制造业-电子元件", "制造业-汽车零部件", "服务业-物流", "零售业-连锁超市", "信息技术-软件服务", "制造业-精密机械", "金融业-融资租赁"}
	regions    = []string{"广东-深圳", "北京-朝阳", "上海-浦东", "浙江-杭州", "江苏-苏州", "四川-成都"}
	cities     = []string{"深圳市", "北京", "上海", "杭州", "苏州", "成都"}
	brands     = []string{"华创", "鼎盛", "瑞达", "恒信", "宏图", "嘉禾", "佳讯", "远航", "博远", "金桥", "天成", "锐思"}
	trades     = []string{"电子科技", "汽车配件", "物流", "商贸", "软件", "精密机械", "融资租赁"}
	surnames   = []string{"李", "王", "张", "刘", "陈", "杨", "赵", "黄"}
	needs      = []string{"定制化服务", "成本控制", "技术支持", "定制化服务、技术支持", "交付周期", "成本控制、售后响应"}
	owners     = []string{"周经理", "王经理", "李经理", "陈经理", "销售主管赵某"}
	titles     = []string{"采购部经理", "总经理", "技术总监", "采购专员", "财务经理"}
	dates      = []string{"2024-05-10", "2024/5/10", "2024年5月10日", "2023-11-02", "2025/1/8", "2024.3.15"}
	lastDates  = []string{"2025-06-01", "2025/5/20", "2025年4月8日", "2024-12-30"}
	amounts    = []string{"1,200,000.00", "120万", "35000", "８８,０００.５０", "2,450,000", "¥36,800.00", "1.5亿"}
)

// Code is the customer code of generated row i: KH, the date of the seeds'
// example (20240501) and a serial, as seed 001 numbers them.
func Code(i int) string { return fmt.Sprintf("KH20240501%07d", i) }

// CompanyName is a legal name unique to i, its trade matching the row's
// industry (a branch number once the vocabulary's combinations are used up).
func CompanyName(i int) string {
	n := len(cities) * len(trades) * len(brands) // city and trade vary with i, the brand with i/42
	name := cities[i%len(cities)] + brands[(i/(len(cities)*len(trades)))%len(brands)] + trades[i%len(trades)] + "有限公司"
	if i >= n {
		name += "第" + strconv.Itoa(i/n) + "分公司"
	}
	return name
}

// Phone is a number unique to i in one of the forms people type: a
// mobile, a dashed mobile, a Beijing landline, a Shenzhen switchboard with
// an extension, full-width digits.
func Phone(i int) string {
	switch i % 5 {
	case 0:
		return fmt.Sprintf("138%08d", i)
	case 1:
		s := fmt.Sprintf("%08d", i)
		return "139-" + s[:4] + "-" + s[4:]
	case 2:
		return fmt.Sprintf("010-6%07d", i%10_000_000)
	case 3:
		return fmt.Sprintf("0755-2%06d-801", i%1_000_000)
	}
	return fullWidth(fmt.Sprintf("137%08d", i))
}

func fullWidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r - '0' + '０'
		}
		return r
	}, s)
}

// Contact is a masked contact name as the seeds write them (李某, *经理).
func Contact(i int) string {
	if i%3 == 2 {
		return "*经理"
	}
	return surnames[i%len(surnames)] + "某"
}

// CustomerRow is row i (0-based) of a generated customer table: valid, in
// the formats above, unique in code, name and phone.
func CustomerRow(i int) []string {
	return []string{
		Code(i),
		CompanyName(i),
		industries[i%len(industries)],
		regions[i%len(regions)],
		Contact(i),
		titles[i%len(titles)],
		Phone(i),
		dates[i%len(dates)],
		amounts[i%len(amounts)],
		lastDates[i%len(lastDates)],
		strconv.Itoa(1 + i%5),
		needs[i%len(needs)],
		owners[i%len(owners)],
	}
}

// BadRows are customer rows with one deliberate error each, and what the
// importer must say about them (the report code).
var BadRows = []struct {
	Cells []string
	Code  string
}{
	{[]string{"", "无编号公司", "制造业", "广东-深圳", "*经理", "经理", "13800138000", "2024-05-10", "1000", "2024-06-01", "4", "成本控制", "周经理"}, "required"},
	{[]string{"KH-BAD-DATE", "日期错误公司", "制造业", "广东-深圳", "*经理", "经理", "13800138000", "2024-13-45", "1000", "2024-06-01", "4", "成本控制", "周经理"}, "invalid_date"},
	{[]string{"KH-BAD-AMOUNT", "金额错误公司", "制造业", "广东-深圳", "*经理", "经理", "13800138000", "2024-05-10", "一百万", "2024-06-01", "4", "成本控制", "周经理"}, "invalid_amount"},
	{[]string{"KH-BAD-PHONE", "电话错误公司", "制造业", "广东-深圳", "*经理", "经理", "12345", "2024-05-10", "1000", "2024-06-01", "4", "成本控制", "周经理"}, "invalid_phone"},
	{[]string{"KH-MISSING", "资料不全公司", "", "广东-深圳", "", "", "", "2024-05-10", "", "", "", "", ""}, "needs_completion"},
}

// DuplicateRows are rows that repeat a customer of the first n valid rows
// (n ≥ 3): the same row again (same code: already imported), and the
// cases a person would call duplicates under a new code — the same legal
// name and phone with another owner (the case of issue 19), and the same
// phone written another way, and row 2's legal name written another way
// (spaces, full-width brackets).
func DuplicateRows(n int) [][]string {
	if n < 3 {
		return nil
	}
	again := CustomerRow(0)
	sameName := CustomerRow(1)
	sameName[0], sameName[12] = Code(n+1000), "陈经理"
	samePhone := CustomerRow(n + 1001)
	samePhone[6] = "+86 138 0000 0000" // row 0's 13800000000
	nameOtherwise := CustomerRow(n + 1002)
	nameOtherwise[1] = " " + strings.Replace(CompanyName(2), "有限公司", " （有限公司）", 1)
	return [][]string{again, sameName, samePhone, nameOtherwise}
}
