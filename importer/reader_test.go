package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segments-dev/segments/internal/fixturegen"
)

// readAll collects a file's rows per sheet.
func readAll(t *testing.T, path, sheet string) (map[string][][]string, string) {
	t.Helper()
	out := map[string][][]string{}
	desc, err := ReadFile(path, sheet, func(s string, _ int, cells []string) error {
		out[s] = append(out[s], append([]string(nil), cells...))
		return nil
	})
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", path, err)
	}
	return out, desc
}

func TestCSVInUTF8WithOrWithoutBOMAndInGBKReadsTheSameCells(t *testing.T) {
	dir := t.TempDir()
	var first [][]string
	for _, tc := range []struct {
		name     string
		bom, gbk bool
		encoding string
	}{{"plain.csv", false, false, "csv utf-8"}, {"bom.csv", true, false, "csv utf-8-bom"}, {"gbk.csv", false, true, "csv gb18030"}} {
		path := filepath.Join(dir, tc.name)
		if err := fixturegen.WriteCSV(path, 3, tc.bom, tc.gbk); err != nil {
			t.Fatal(err)
		}
		rows, desc := readAll(t, path, "")
		if desc != tc.encoding {
			t.Errorf("%s: detected %q, want %q", tc.name, desc, tc.encoding)
		}
		got := rows["csv"]
		if got[0][0] != "客户编号" || got[1][2] != "制造业-电子元件" {
			t.Errorf("%s: first rows %q", tc.name, got[:2])
		}
		if first == nil {
			first = got
		} else if len(got) != len(first) || strings.Join(got[3], "|") != strings.Join(first[3], "|") {
			t.Errorf("%s differs from plain UTF-8: %q vs %q", tc.name, got[3], first[3])
		}
	}
}

func TestXLSXGivesCachedFormulaValuesMergedCellsAndEveryRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.xlsx")
	if err := fixturegen.WriteXLSX(path, fixturegen.Workbook{Customers: 3, Title: true, Formulas: true, Merged: true, EmptyRows: true, Orders: 2, FollowUps: 1}); err != nil {
		t.Fatal(err)
	}
	rows, _ := readAll(t, path, "")
	cust := rows["客户信息"]
	if cust[0][0] != "客户信息管理与分析表单" || cust[1][0] != "客户编号" {
		t.Fatalf("title and header: %q", cust[:2])
	}
	if got := cust[2][8]; got != "1200000" {
		t.Errorf("formula cell gave %q, want its cached value 1200000", got)
	}
	if cust[2][12] != cust[3][12] || cust[2][12] == "" {
		t.Errorf("merged 负责人: %q and %q", cust[2][12], cust[3][12])
	}
	if !IsEmpty(cust[4]) {
		t.Errorf("the empty row is missing: %q", cust[4])
	}
	if len(rows["订单记录"]) != 3 || len(rows["跟进记录"]) != 2 {
		t.Errorf("other sheets: %d orders, %d follow-ups rows", len(rows["订单记录"]), len(rows["跟进记录"]))
	}
	only, _ := readAll(t, path, "订单记录")
	if len(only) != 1 {
		t.Errorf("--sheet read %d sheets", len(only))
	}
	if _, err := ReadFile(path, "没有这个表", func(string, int, []string) error { return nil }); !errors.Is(err, ErrNoSheet) {
		t.Errorf("unknown sheet: %v", err)
	}
}

func TestFilesThatAreNotWhatTheirNameSaysAreRefusedWithAClearMessage(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked.xlsx")
	if err := fixturegen.WriteXLSX(locked, fixturegen.Workbook{Customers: 1, Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "picture.xlsx")
	if err := os.WriteFile(png, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenZip := filepath.Join(dir, "broken.xlsx")
	if err := os.WriteFile(brokenZip, []byte("PK\x03\x04 not really a zip"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]error{locked: ErrEncrypted, png: ErrNotSpreadsheet, brokenZip: ErrNotSpreadsheet} {
		_, err := ReadFile(path, "", func(string, int, []string) error { return nil })
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", filepath.Base(path), err, want)
		}
	}
	// An XLSX named .csv is still read as a workbook: content decides.
	misnamed := filepath.Join(dir, "really-a-workbook.csv")
	if err := fixturegen.WriteXLSX(misnamed+".xlsx", fixturegen.Workbook{Customers: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(misnamed+".xlsx", misnamed); err != nil {
		t.Fatal(err)
	}
	rows, desc := readAll(t, misnamed, "")
	if !strings.HasPrefix(desc, "xlsx") || rows["客户信息"][0][0] != "客户编号" {
		t.Errorf("misnamed workbook read as %q: %q", desc, rows)
	}
}

// The merged ranges are found by scanning the sheet XML in chunks: a
// reference cut by a chunk's end is still found.
func TestMergedRangesAreFoundAcrossChunkBoundaries(t *testing.T) {
	for _, pad := range []int{256<<10 - 20, 256<<10 - 5, 256<<10 + 3} {
		xml := strings.Repeat(" ", pad) + `<mergeCells count="2"><mergeCell ref="M3:M4"/><mergeCell ref="A1:C1"/></mergeCells>`
		got, err := scanMergeCells(strings.NewReader(xml))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != (mergedRange{c1: 13, r1: 3, c2: 13, r2: 4}) || got[1] != (mergedRange{c1: 1, r1: 1, c2: 3, r2: 1}) {
			t.Errorf("pad %d: %+v", pad, got)
		}
	}
}
