// Package fixturegen writes customer, order and follow-up sheets in the
// seeds' column layout (客户信息管理与分析表单) with realistic Chinese
// values, the tolerant formats people type, and deliberate errors and
// duplicates: the test data of the importer and its benchmark.
package fixturegen

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// CustomerHeader is the seeds' customer table header.
var CustomerHeader = []string{"客户编号", "客户名称", "所属行业", "区域", "联系人", "职位", "联系电话", "合作起始日期", "累计合作金额", "最近合作时间", "满意度评分", "核心诉求", "负责人"}

// OrderHeader and FollowUpHeader are the order and follow-up sheets'.
var (
	OrderHeader    = []string{"客户编号", "订单编号", "下单日期", "订单金额", "品类", "渠道"}
	FollowUpHeader = []string{"客户编号", "跟进日期", "跟进人", "跟进方式", "跟进内容", "跟进结果"}
)

var (
	industries = []string{"制造业-电子元件", "制造业-汽车零部件", "服务业-物流", "零售业-连锁超市", "信息技术-软件服务"}
	regions    = []string{"广东-深圳", "北京-朝阳", "上海-浦东", "浙江-杭州", "江苏-苏州"}
	needs      = []string{"定制化服务", "成本控制", "技术支持", "定制化服务、技术支持", "交付周期"}
	owners     = []string{"周经理", "王经理", "李经理", "陈经理"}
	titles     = []string{"采购部经理", "总经理", "技术总监", "采购专员"}
	phones     = []string{"13800138000", "138-0013-8001", "010-12345678", "0755-1234567-801", "１３９００１３９００２"}
	dates      = []string{"2024-05-10", "2024/5/10", "2024年5月10日", "2023-11-02", "2025/1/8"}
	amounts    = []string{"1,200,000.00", "120万", "35000", "８８,０００.５０", "2,450,000"}
)

// CustomerRow is row i (0-based) of a generated customer table: valid, in
// the formats above, with code KH2024050100NN.
func CustomerRow(i int) []string {
	return []string{
		fmt.Sprintf("KH%012d", 202405010000+i),
		fmt.Sprintf("深圳市%s科技有限公司", string(rune('甲'+i%10))+strconv.Itoa(i)),
		industries[i%len(industries)],
		regions[i%len(regions)],
		"*经理",
		titles[i%len(titles)],
		phones[i%len(phones)],
		dates[i%len(dates)],
		amounts[i%len(amounts)],
		"2025-06-01",
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

// WriteCSV writes a customer table of n valid rows followed by BadRows and
// a duplicate of the first row, as UTF-8 (with a BOM when bom) or, when gbk,
// in GB18030 as Chinese Excel saves "CSV".
func WriteCSV(path string, n int, bom, gbk bool) error {
	f, err := os.Create(filepath.Clean(path))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var w io.Writer = f
	if gbk {
		w = simplifiedchinese.GB18030.NewEncoder().Writer(f)
	} else if bom {
		if _, err := f.WriteString("\uFEFF"); err != nil {
			return err
		}
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CustomerHeader); err != nil {
		return err
	}
	for i := range n {
		if err := cw.Write(CustomerRow(i)); err != nil {
			return err
		}
	}
	for _, b := range BadRows {
		if err := cw.Write(b.Cells); err != nil {
			return err
		}
	}
	if n > 0 {
		if err := cw.Write(CustomerRow(0)); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return f.Sync()
}

// Workbook describes a generated workbook.
type Workbook struct {
	Customers int // valid customer rows
	Title     bool
	Formulas  bool // 累计合作金额 as a formula with a cached value
	Merged    bool // 负责人 merged over the first two data rows
	EmptyRows bool
	Orders    int // order rows for the first customers
	FollowUps int
	Password  string
}

// WriteXLSX writes a workbook: sheet 客户信息 (an optional title row, the
// header, the rows), 订单记录 and 跟进记录.
func WriteXLSX(path string, wb Workbook) error {
	f := excelize.NewFile()
	defer func() { _ = f.Close() }()
	const sheet = "客户信息"
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return err
	}
	row := 1
	if wb.Title {
		if err := f.SetCellValue(sheet, "A1", "客户信息管理与分析表单"); err != nil {
			return err
		}
		if err := f.MergeCell(sheet, "A1", "M1"); err != nil {
			return err
		}
		row++
	}
	if err := setRow(f, sheet, row, CustomerHeader); err != nil {
		return err
	}
	first := row + 1
	for i := range wb.Customers {
		row++
		if wb.EmptyRows && i == 2 {
			row++ // an empty row between data rows
		}
		if err := setRow(f, sheet, row, CustomerRow(i)); err != nil {
			return err
		}
		if wb.Formulas && i == 0 {
			cell := fmt.Sprintf("I%d", row)
			if err := f.SetCellFormula(sheet, cell, "1000000+200000"); err != nil {
				return err
			}
			// excelize does not evaluate on save; store the cached value as Excel would.
			if err := f.SetCellValue(sheet, cell, 1200000); err != nil {
				return err
			}
			if err := f.SetCellFormula(sheet, cell, "1000000+200000"); err != nil {
				return err
			}
		}
	}
	if wb.Merged && wb.Customers >= 2 {
		if err := f.MergeCell(sheet, fmt.Sprintf("M%d", first), fmt.Sprintf("M%d", first+1)); err != nil {
			return err
		}
	}
	if err := writeSheet(f, "订单记录", OrderHeader, wb.Orders, orderRow); err != nil {
		return err
	}
	if err := writeSheet(f, "跟进记录", FollowUpHeader, wb.FollowUps, followUpRow); err != nil {
		return err
	}
	if wb.Password != "" {
		return f.SaveAs(path, excelize.Options{Password: wb.Password})
	}
	return f.SaveAs(path)
}

func orderRow(i int) []string {
	return []string{fmt.Sprintf("KH%012d", 202405010000+i%3), fmt.Sprintf("SO-%04d", i), dates[i%len(dates)], amounts[i%len(amounts)], "芯片", []string{"线上", "线下"}[i%2]}
}

func followUpRow(i int) []string {
	return []string{fmt.Sprintf("KH%012d", 202405010000+i%3), dates[i%len(dates)], owners[i%len(owners)], "电话", "电话沟通，初步需求明确", "约定上门拜访"}
}

func writeSheet(f *excelize.File, name string, header []string, n int, gen func(int) []string) error {
	if n == 0 {
		return nil
	}
	if _, err := f.NewSheet(name); err != nil {
		return err
	}
	if err := setRow(f, name, 1, header); err != nil {
		return err
	}
	for i := range n {
		if err := setRow(f, name, i+2, gen(i)); err != nil {
			return err
		}
	}
	return nil
}

func setRow(f *excelize.File, sheet string, row int, cells []string) error {
	vals := make([]any, len(cells))
	for i, c := range cells {
		vals[i] = c
	}
	return f.SetSheetRow(sheet, fmt.Sprintf("A%d", row), &vals)
}
