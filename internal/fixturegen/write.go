package fixturegen

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Table lists the data rows of a customer table: n valid rows, then (when
// asked) BadRows and DuplicateRows.
func Table(n int, bad, duplicates bool) [][]string {
	rows := make([][]string, 0, n+len(BadRows)+4)
	for i := range n {
		rows = append(rows, CustomerRow(i))
	}
	if bad {
		for _, b := range BadRows {
			rows = append(rows, b.Cells)
		}
	}
	if duplicates {
		rows = append(rows, DuplicateRows(n)...)
	}
	return rows
}

// WriteCSV writes a customer table of n valid rows followed by BadRows and
// a repeat of the first row, as UTF-8 (with a BOM when bom) or, when gbk,
// in GB18030 as Chinese Excel saves "CSV".
func WriteCSV(path string, n int, bom, gbk bool) error {
	rows := Table(n, true, false)
	if n > 0 {
		rows = append(rows, CustomerRow(0))
	}
	return writeCSVFile(path, rows, bom, gbk)
}

func writeCSVFile(path string, rows [][]string, bom, gbk bool) error {
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
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return f.Sync()
}

// WriteLargeCSV streams a UTF-8 customer table of n valid rows to w (memory
// does not grow with n).
func WriteLargeCSV(w io.Writer, n int) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CustomerHeader); err != nil {
		return err
	}
	for i := range n {
		if err := cw.Write(CustomerRow(i)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteLargeXLSX writes a workbook of one sheet 客户信息 with n valid rows,
// BadRows and DuplicateRows through excelize's stream writer, so that a
// million rows are written in constant memory. Cells are inline strings
// (the stream writer has no shared string table), as typed.
func WriteLargeXLSX(path string, n int) error {
	f := excelize.NewFile()
	defer func() { _ = f.Close() }()
	const sheet = "客户信息"
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return err
	}
	row := 1
	write := func(cells []string) error {
		vals := make([]any, len(cells))
		for i, c := range cells {
			vals[i] = c
		}
		cell, _ := excelize.CoordinatesToCellName(1, row)
		row++
		return sw.SetRow(cell, vals)
	}
	if err := write(CustomerHeader); err != nil {
		return err
	}
	for i := range n {
		if err := write(CustomerRow(i)); err != nil {
			return err
		}
	}
	for _, r := range Table(n, true, true)[n:] {
		if err := write(r); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	return f.SaveAs(path)
}

// Workbook describes a generated workbook.
type Workbook struct {
	Customers  int // valid customer rows
	Bad        bool
	Duplicates bool
	Title      bool
	Formulas   bool // 累计合作金额 of the first row as a formula with a cached value
	Merged     bool // 负责人 merged over the first two data rows
	EmptyRows  bool
	Orders     int // order rows for the first customers
	FollowUps  int
	Password   string
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
	for i, cells := range Table(wb.Customers, wb.Bad, wb.Duplicates) {
		row++
		if wb.EmptyRows && i == 2 {
			row++ // an empty row between data rows
		}
		if err := setRow(f, sheet, row, cells); err != nil {
			return err
		}
		if wb.Formulas && i == 0 {
			if err := setFormula(f, sheet, fmt.Sprintf("I%d", row)); err != nil {
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

// setFormula makes cell a formula whose cached value is 1200000, as Excel
// saves it (excelize does not evaluate on save).
func setFormula(f *excelize.File, sheet, cell string) error {
	if err := f.SetCellValue(sheet, cell, 1200000); err != nil {
		return err
	}
	return f.SetCellFormula(sheet, cell, "1000000+200000")
}

func orderRow(i int) []string {
	return []string{Code(i % 3), fmt.Sprintf("SO-%04d", i), dates[i%len(dates)], amounts[i%len(amounts)], []string{"电子元件", "芯片", "物流服务"}[i%3], []string{"线上", "线下"}[i%2]}
}

func followUpRow(i int) []string {
	return []string{Code(i % 3), dates[i%len(dates)], owners[i%len(owners)], []string{"电话", "邮件", "上门拜访"}[i%3], "电话沟通，初步需求明确", "约定上门拜访"}
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
