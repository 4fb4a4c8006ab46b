package importer

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/xuri/excelize/v2"
)

// mergedRange is a merged range of a worksheet; value is its top-left
// cell's, taken when the row stream reaches it.
type mergedRange struct {
	c1, r1, c2, r2 int
	value          string
}

// mergedRanges reads a worksheet's merged ranges straight from the
// workbook's ZIP, scanning the sheet XML for <mergeCell ref="A1:B2"/>
// without decoding its rows: excelize's GetMergeCells loads the whole
// worksheet, which for a large sheet is hundreds of megabytes.
func mergedRanges(file, sheet string) ([]mergedRange, error) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = zr.Close() }()
	part, err := sheetPart(&zr.Reader, sheet)
	if err != nil {
		return nil, err
	}
	rc, err := zr.Open(part)
	if err != nil {
		return nil, fmt.Errorf("%w: worksheet %s: %w", ErrDamaged, part, err)
	}
	defer func() { _ = rc.Close() }()
	return scanMergeCells(rc)
}

// sheetPart finds the ZIP entry of the named sheet through xl/workbook.xml
// and its relationships.
func sheetPart(zr *zip.Reader, sheet string) (string, error) {
	var wb struct {
		Sheets []struct {
			Name string `xml:"name,attr"`
			RID  string `xml:"http://schemas.openxmlformats.org/officeDocument/2006/relationships id,attr"`
		} `xml:"sheets>sheet"`
	}
	var rels struct {
		Rels []struct {
			ID     string `xml:"Id,attr"`
			Target string `xml:"Target,attr"`
		} `xml:"Relationship"`
	}
	if err := unmarshalEntry(zr, "xl/workbook.xml", &wb); err != nil {
		return "", err
	}
	if err := unmarshalEntry(zr, "xl/_rels/workbook.xml.rels", &rels); err != nil {
		return "", err
	}
	for _, s := range wb.Sheets {
		if s.Name != sheet {
			continue
		}
		for _, r := range rels.Rels {
			if r.ID == s.RID {
				if strings.HasPrefix(r.Target, "/") {
					return strings.TrimPrefix(r.Target, "/"), nil
				}
				return path.Join("xl", r.Target), nil
			}
		}
	}
	return "", fmt.Errorf("%w: %q", ErrNoSheet, sheet)
}

func unmarshalEntry(zr *zip.Reader, name string, v any) error {
	f, err := zr.Open(name)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDamaged, name, err)
	}
	defer func() { _ = f.Close() }()
	if err := xml.NewDecoder(io.LimitReader(f, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDamaged, name, err)
	}
	return nil
}

// scanMergeCells finds every mergeCell ref="…" in a stream, chunk by chunk
// (a match cut by a chunk's end is found in the next, which starts with
// the previous one's tail).
func scanMergeCells(r io.Reader) ([]mergedRange, error) {
	pattern := []byte(`mergeCell ref="`)
	const keep = 64 // longer than the pattern and any range reference
	buf := make([]byte, 0, 256<<10+keep)
	var out []mergedRange
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		rest := buf
		for {
			i := bytes.Index(rest, pattern)
			if i < 0 {
				break
			}
			ref := rest[i+len(pattern):]
			end := bytes.IndexByte(ref, '"')
			if end < 0 {
				break // cut: the next chunk has it whole
			}
			if m, ok := parseRange(string(ref[:end])); ok {
				out = append(out, m)
			}
			rest = ref[end:]
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		tail := buf[max(len(buf)-keep, len(buf)-len(rest)):]
		buf = append(buf[:0], tail...)
	}
}

func parseRange(ref string) (mergedRange, bool) {
	a, b, ok := strings.Cut(ref, ":")
	if !ok {
		return mergedRange{}, false
	}
	c1, r1, err1 := excelize.CellNameToCoordinates(a)
	c2, r2, err2 := excelize.CellNameToCoordinates(b)
	if err1 != nil || err2 != nil || c2 < c1 || r2 < r1 {
		return mergedRange{}, false
	}
	return mergedRange{c1: c1, r1: r1, c2: c2, r2: r2}, true
}

// fillMergedCells gives each cell of row inside a merged range the range's
// value (the workbook stores it in the top-left cell only, which comes
// first in the row stream).
func fillMergedCells(cells []string, row int, merged []mergedRange) []string {
	for i := range merged {
		m := &merged[i]
		if row < m.r1 || row > m.r2 {
			continue
		}
		if row == m.r1 && m.c1 <= len(cells) {
			m.value = cells[m.c1-1]
		}
		for len(cells) < m.c2 {
			cells = append(cells, "")
		}
		for c := m.c1; c <= m.c2; c++ {
			cells[c-1] = m.value
		}
	}
	return cells
}
