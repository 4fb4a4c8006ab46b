package fixturegen

import (
	"os"
	"path/filepath"
)

// Fixture is one committed test file: its name and how it is written.
type Fixture struct {
	Name  string
	Write func(path string) error
}

// SetRows is the number of valid customer rows of the committed fixtures.
const SetRows = 20

// Set is the small fixtures committed under importer/testdata (regenerate
// them with `go test ./importer -run TestFixturesAreCurrent -update`): the
// same customers as a UTF-8 CSV, a GBK CSV and a workbook with what
// spreadsheets hold (a title row, a formula, merged cells, an empty row,
// order and follow-up sheets), plus files that are not what their name
// says. A password-protected workbook is not among them: its encryption is
// salted at random, so tests write it.
var Set = []Fixture{
	{"客户信息.csv", func(p string) error { return writeCSVFile(p, Table(SetRows, true, true), true, false) }},
	{"客户信息-gbk.csv", func(p string) error { return writeCSVFile(p, Table(SetRows, true, true), false, true) }},
	{"客户信息.xlsx", func(p string) error {
		return WriteXLSX(p, Workbook{Customers: SetRows, Bad: true, Duplicates: true, Title: true, Formulas: true,
			Merged: true, EmptyRows: true, Orders: 6, FollowUps: 4})
	}},
	// A picture renamed .xlsx, and a legacy (OLE) file renamed .xlsx.
	{"图片.xlsx", func(p string) error { return write(p, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")) }},
	{"旧版.xlsx", func(p string) error {
		return write(p, append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, make([]byte, 504)...))
	}},
	// A workbook saved under a .csv name: the content decides.
	{"其实是工作簿.csv", func(p string) error {
		// excelize saves only under a workbook's extension.
		if err := WriteXLSX(p+".xlsx", Workbook{Customers: 3}); err != nil {
			return err
		}
		return os.Rename(p+".xlsx", p)
	}},
}

// WriteSet writes every fixture of Set into dir.
func WriteSet(dir string) error {
	for _, f := range Set {
		path := filepath.Join(dir, f.Name)
		if err := f.Write(path); err != nil {
			return err
		}
		// excelize creates files executable; fixtures are plain files.
		if err := os.Chmod(path, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func write(path string, b []byte) error { return os.WriteFile(filepath.Clean(path), b, 0o600) }
