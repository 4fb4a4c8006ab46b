package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Errors about the file as a whole; nothing of such a file is imported.
var (
	ErrNotSpreadsheet = errors.New("文件内容不是 XLSX 或 CSV 表格 / the file's content is not an XLSX workbook or a CSV table")
	ErrEncrypted      = errors.New("工作簿已加密或为旧版 .xls 格式，请在 Excel 中取消密码并另存为 .xlsx / the workbook is password-protected or a legacy .xls file: remove the password and save it as .xlsx")
	ErrNoHeader       = errors.New("未找到表头（需包含“客户编号”列）/ no header row found (a column 客户编号 is required)")
	ErrNoSheet        = errors.New("工作表不存在 / no such sheet")
	ErrDamaged        = errors.New("文件已损坏或不完整 / the file is damaged or incomplete")
)

// RowError is a problem of the file as a whole found at one of its rows
// (a damaged file, an unclosed quote): nothing of the file is imported,
// and the report names the row.
type RowError struct {
	Sheet string
	Row   int
	Err   error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("%s 第 %d 行 / %s row %d: %v", e.Sheet, e.Row, e.Sheet, e.Row, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Format is a spreadsheet file format.
type Format string

// The formats the importer reads.
const (
	FormatXLSX Format = "xlsx"
	FormatCSV  Format = "csv"
)

// RowVisitor receives one row of a sheet: its 1-based row number in the
// sheet and its cells as text.
type RowVisitor func(sheet string, row int, cells []string) error

// Sniff tells the format from the first bytes of a file, whatever its name
// says: a ZIP container is XLSX, an OLE compound file is an encrypted (or
// legacy .xls) workbook, text is CSV, anything else is refused.
func Sniff(head []byte) (Format, error) {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return FormatXLSX, nil
	case bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return "", ErrEncrypted
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return FormatCSV, nil // UTF-16 text, as Excel's "Unicode text" writes it
	case bytes.IndexByte(head, 0) >= 0:
		return "", ErrNotSpreadsheet
	}
	return FormatCSV, nil
}

// SniffFile opens path and sniffs its format.
func SniffFile(path string) (Format, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	return Sniff(head[:n])
}

// decodeText wraps r with the decoder of its encoding: UTF-8 (a BOM is
// dropped), UTF-16 with a BOM, and otherwise GB18030 (a superset of GBK,
// what Chinese Excel writes for "CSV") when the first 64 KiB are not valid
// UTF-8.
func decodeText(r io.Reader) (io.Reader, string) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64 << 10)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
		return br, "utf-8-bom"
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		dec := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder()
		return transform.NewReader(br, dec), "utf-16"
	}
	if validUTF8Prefix(head) {
		return br, "utf-8"
	}
	return transform.NewReader(br, simplifiedchinese.GB18030.NewDecoder()), "gb18030"
}

// validUTF8Prefix is utf8.Valid that forgives a rune cut at the end of the
// peeked window.
func validUTF8Prefix(b []byte) bool {
	for cut := 0; cut < utf8.UTFMax && len(b) > 0; cut++ {
		if utf8.Valid(b) {
			return true
		}
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

// maxCSVRecord bounds the bytes of one CSV record. A stray quote opens a
// field that, with lazy quotes, only the next quote closes: without a bound
// a damaged 100 MB file would become one record held in memory.
const maxCSVRecord = 4 << 20

// recordLimit counts the bytes read since the last complete record and
// fails the read beyond maxCSVRecord.
type recordLimit struct {
	r     io.Reader
	since int
}

var errRecordTooLong = fmt.Errorf("%w: 引号未闭合，其后 %d MiB 内没有行结束 / a quoted field is not closed: no row ends within %d MiB",
	ErrDamaged, maxCSVRecord>>20, maxCSVRecord>>20)

func (l *recordLimit) Read(p []byte) (int, error) {
	if l.since > maxCSVRecord {
		return 0, errRecordTooLong
	}
	n, err := l.r.Read(p)
	l.since += n
	return n, err
}

// csvReadAhead is what encoding/csv and the bufio below it may hold beyond
// the record they return.
const csvReadAhead = 128 << 10

// readCSV streams the rows of a CSV file (comma or, when the first line has
// tabs and no commas, tab separated). It returns the detected encoding.
// NUL bytes (binary content after a text beginning: a damaged or truncated
// file) refuse the whole file at the row they are in.
func readCSV(r io.Reader, sheet string, visit RowVisitor) (string, error) {
	text, enc := decodeText(r)
	limit := &recordLimit{r: text}
	br := bufio.NewReaderSize(limit, 64<<10)
	sep := ','
	if first, _ := br.Peek(4096); bytes.IndexByte(first, '\t') >= 0 && bytes.IndexByte(first, ',') < 0 {
		sep = '\t'
	}
	cr := csv.NewReader(br)
	cr.Comma = sep
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return enc, nil
		}
		if errors.Is(err, errRecordTooLong) {
			return enc, &RowError{Sheet: sheet, Row: row, Err: err}
		}
		if err != nil {
			return enc, &RowError{Sheet: sheet, Row: row, Err: fmt.Errorf("%w: CSV 无法解析 / CSV cannot be read: %w", ErrDamaged, err)}
		}
		for _, f := range rec {
			if strings.IndexByte(f, 0) >= 0 {
				return enc, &RowError{Sheet: sheet, Row: row, Err: fmt.Errorf("%w: 含有二进制数据（NUL 字节）/ binary content (NUL bytes)", ErrDamaged)}
			}
		}
		limit.since = min(limit.since, csvReadAhead)
		if err := visit(sheet, row, rec); err != nil {
			return enc, err
		}
	}
}

// openXLSX opens a workbook, turning excelize's errors about encryption and
// format into the package's.
func openXLSX(path string) (*excelize.File, error) {
	f, err := excelize.OpenFile(path)
	switch {
	case errors.Is(err, excelize.ErrWorkbookPassword):
		return nil, ErrEncrypted
	case errors.Is(err, excelize.ErrWorkbookFileFormat), err != nil && strings.Contains(err.Error(), "zip"):
		return nil, fmt.Errorf("%w: %w", ErrNotSpreadsheet, err)
	case err != nil:
		return nil, err
	}
	return f, nil
}

// readXLSXSheet streams one worksheet's rows with raw cell values: formulas
// give their cached value, dates their serial number (ParseDate reads it),
// amounts their unformatted number. Cells of a merged range all get the
// range's value.
func readXLSXSheet(f *excelize.File, path, sheet string, visit RowVisitor) error {
	merged, err := mergedRanges(path, sheet)
	if err != nil {
		return err
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for row := 1; rows.Next(); row++ {
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return &RowError{Sheet: sheet, Row: row, Err: fmt.Errorf("%w: %w", ErrDamaged, err)}
		}
		if len(merged) > 0 {
			cells = fillMergedCells(cells, row, merged)
		}
		if err := visit(sheet, row, cells); err != nil {
			return err
		}
	}
	return rows.Error()
}

// ReadFile streams every row of the file's sheets (one sheet named by
// sheet, or all of them in workbook order) to visit. A CSV file is one
// sheet, named after the file. It returns a description of the file
// ("xlsx", "csv gb18030", …).
func ReadFile(path, sheet string, visit RowVisitor) (string, error) {
	format, err := SniffFile(path)
	if err != nil {
		return "", err
	}
	if format == FormatCSV {
		fh, err := os.Open(filepath.Clean(path))
		if err != nil {
			return "", err
		}
		defer func() { _ = fh.Close() }()
		enc, err := readCSV(fh, "csv", visit)
		return "csv " + enc, err
	}
	f, err := openXLSX(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	sheets := f.GetSheetList()
	if sheet != "" {
		found := false
		for _, s := range sheets {
			found = found || s == sheet
		}
		if !found {
			return "", fmt.Errorf("%w: %q (%s)", ErrNoSheet, sheet, strings.Join(sheets, ", "))
		}
		sheets = []string{sheet}
	}
	for _, s := range sheets {
		if err := readXLSXSheet(f, path, s, visit); err != nil {
			return "xlsx", err
		}
	}
	return "xlsx " + strconv.Itoa(len(sheets)) + " sheets", nil
}
