package importer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/fixturegen"
)

// badInput is one file of the kinds people really send.
type badInput struct {
	name string
	file func(t *testing.T, dir string) string
	// err is the refusal of the whole file (nil: the file is imported).
	err error
	// report lists lines the report must have: "row code".
	report []string
	check  func(t *testing.T, b *bundle, sum importer.Summary)
}

func committed(name string) func(*testing.T, string) string {
	return func(t *testing.T, dir string) string {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
}

// Every file is imported into a store of its own: a refused file leaves it
// empty (nothing half-imported), and the report beside the input names the
// rows.
func TestBadInputIsRefusedWholeOrImportedRowByRowWithAReportThatNamesTheRows(t *testing.T) {
	for _, tc := range []badInput{
		{name: "a picture named .xlsx", file: committed("图片.xlsx"), err: importer.ErrNotSpreadsheet,
			report: []string{"0 file_refused"}},
		{name: "a legacy or encrypted (OLE) file named .xlsx", file: committed("旧版.xlsx"), err: importer.ErrEncrypted,
			report: []string{"0 file_encrypted"}},
		{name: "a password-protected workbook", file: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "加密.xlsx")
			if err := fixturegen.WriteXLSX(path, fixturegen.Workbook{Customers: 3, Password: "密码123"}); err != nil {
				t.Fatal(err)
			}
			return path
		}, err: importer.ErrEncrypted, report: []string{"0 file_encrypted"}},
		{name: "a workbook named .csv", file: committed("其实是工作簿.csv"), check: func(t *testing.T, _ *bundle, sum importer.Summary) {
			if !strings.HasPrefix(sum.Format, "xlsx") || sum.RowsImported != 3 {
				t.Errorf("read as %q: %+v", sum.Format, sum)
			}
		}},
		{name: "a CSV in GBK", file: committed("客户信息-gbk.csv"),
			report: []string{"22 required", "23 invalid_date", "24 invalid_amount", "25 invalid_phone", "26 needs_completion"},
			check: func(t *testing.T, b *bundle, sum importer.Summary) {
				if sum.Format != "csv gb18030" || sum.RowsRejected != 1 || sum.RowsImported+sum.RowsAlready != sum.RowsRead-1 {
					t.Errorf("%+v", sum)
				}
				if got := registration(t, b, fixturegen.Code(1)).Profile; *got.Name != fixturegen.CompanyName(1) || *got.Industry != "制造业-汽车零部件" {
					t.Errorf("decoded profile %s / %s", *got.Name, *got.Industry)
				}
			}},
		{name: "a workbook with a title, a formula, merged cells and an empty row", file: committed("客户信息.xlsx"),
			// Title row 1, header row 2, an empty row 5: the report counts the sheet's rows.
			report: []string{"24 required", "27 invalid_phone"},
			check: func(t *testing.T, b *bundle, sum importer.Summary) {
				if sum.RowsRead != fixturegen.SetRows+len(fixturegen.BadRows)+len(fixturegen.DuplicateRows(fixturegen.SetRows))+6+4 {
					t.Errorf("rows read %d (the empty and title rows are not rows): %+v", sum.RowsRead, sum)
				}
				if got := openingBalance(t, b, fixturegen.Code(0)); got != 120_000_000 {
					t.Errorf("the formula's opening balance is %v, want its cached value 1,200,000.00", got)
				}
				if owner := registration(t, b, fixturegen.Code(1)).Owner; owner == nil || *owner != "周经理" {
					t.Errorf("the second row's owner is %v, want 周经理 from the merged cell above", owner)
				}
			}},
		{name: "no header row", file: func(t *testing.T, dir string) string {
			return writeFile(t, dir, "笔记.csv", []byte("会议纪要,2024-05-10\n讨论了报价,下周回复\n"))
		}, err: importer.ErrNoHeader, report: []string{"0 no_header"}},
		{name: "an unclosed quote before 5 MiB of rows", file: unclosedQuote, err: importer.ErrDamaged, report: []string{"4 file_refused"}},
		{name: "100 MB damaged at its end", file: hundredMB, err: importer.ErrDamaged},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

func (tc badInput) run(t *testing.T) {
	b := setup(t)
	path := tc.file(t, b.dir)
	peak := watchHeap()
	sum, err := importer.Run(context.Background(), importer.Options{Path: path, Location: shanghai,
		Now: func() time.Time { return importNow }, Store: b.store})
	if heap := peak(); heap > 96<<20 {
		t.Errorf("heap grew to %d MiB reading a %d MiB file", heap>>20, size(t, path)>>20)
	}
	switch {
	case tc.err != nil && !errors.Is(err, tc.err):
		t.Fatalf("got %v, want %v", err, tc.err)
	case tc.err == nil && err != nil:
		t.Fatalf("refused: %v", err)
	case tc.err != nil && b.events(t) != 0:
		t.Errorf("a refused file left %d events in the store", b.events(t))
	case tc.err == nil && b.events(t) == 0:
		t.Errorf("nothing imported: %+v", sum)
	}
	lines := map[string]bool{}
	for _, r := range readReport(t, sum.ReportPath)[1:] {
		lines[r[0]+" "+r[2]] = true
	}
	for _, want := range tc.report {
		if !lines[want] {
			t.Errorf("the report has no line %q: %v", want, lines)
		}
	}
	if tc.check != nil {
		tc.check(t, b, sum)
	}
}

func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func size(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// unclosedQuote: row 4 opens a quote that no later cell closes (the rows
// below have no quotes), as a hand-edited file can.
func unclosedQuote(t *testing.T, dir string) string {
	var buf bytes.Buffer
	buf.WriteString(strings.Join(fixturegen.CustomerHeader, ",") + "\n")
	for i := range 2 {
		buf.WriteString(unquoted(i) + "\n")
	}
	buf.WriteString(`KH-QUOTE,"深圳市引号未闭合有限公司,制造业-电子元件` + "\n")
	for i := 2; buf.Len() < 5<<20; i++ {
		buf.WriteString(unquoted(i) + "\n")
	}
	return writeFile(t, dir, "引号.csv", buf.Bytes())
}

// unquoted is row i with an amount that needs no quotes.
func unquoted(i int) string {
	r := fixturegen.CustomerRow(i)
	r[8] = "35000"
	return strings.Join(r, ",")
}

// hundredMB is a 100 MB customer table whose last row is binary garbage,
// as a download cut short and padded leaves it: the checking pass refuses
// it before anything is stored, reading it as a stream.
func hundredMB(t *testing.T, dir string) string {
	path := filepath.Join(dir, "大文件.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var block bytes.Buffer
	if err := fixturegen.WriteLargeCSV(&block, 2000); err != nil {
		t.Fatal(err)
	}
	body := block.Bytes()[bytes.IndexByte(block.Bytes(), '\n')+1:]
	if _, err := f.Write(block.Bytes()); err != nil {
		t.Fatal(err)
	}
	rows := 2001
	for written := len(block.Bytes()); written < 100<<20; written += len(body) {
		if _, err := f.Write(body); err != nil {
			t.Fatal(err)
		}
		rows += 2000
	}
	if _, err := io.WriteString(f, "KH-TRUNCATED,深圳\x00\x00\x00\x00\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		rep := readReport(t, importer.DefaultReportPath(path))
		if len(rep) != 2 || rep[1][0] != strconv.Itoa(rows+1) || !strings.Contains(rep[1][3], "NUL") {
			t.Errorf("the report of the refused file: %q, want row %d named", rep, rows+1)
		}
	})
	return path
}

// watchHeap samples the heap in use until the returned function is called,
// which gives the peak.
func watchHeap() func() uint64 {
	var peak uint64
	var mu sync.Mutex
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// registration decodes a customer's stored CustomerRegistered.
func registration(t *testing.T, b *bundle, code string) domain.CustomerRegistered {
	t.Helper()
	var reg domain.CustomerRegistered
	for _, e := range b.stream(t, code) {
		if e.Type == domain.TypeCustomerRegistered {
			if err := json.Unmarshal(e.Data, &reg); err != nil {
				t.Fatal(err)
			}
		}
	}
	return reg
}

// openingBalance is a customer's stored opening-balance amount.
func openingBalance(t *testing.T, b *bundle, code string) domain.Money {
	t.Helper()
	for _, e := range b.stream(t, code) {
		var o domain.OrderPlaced
		if e.Type == domain.TypeOrderPlaced && json.Unmarshal(e.Data, &o) == nil && o.OrderID == importer.OpeningBalanceOrderID {
			return o.Amount
		}
	}
	return 0
}
