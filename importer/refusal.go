package importer

import "errors"

// Report codes of a file refused as a whole (nothing of it is imported).
const (
	CodeFileRefused   = "file_refused"
	CodeFileEncrypted = "file_encrypted"
	CodeNoHeader      = "no_header"
)

// refusal is the one report line of a file refused as a whole: the row
// where the checking pass stopped (0 when it concerns the file itself).
func refusal(err error) Problem {
	p := Problem{Code: CodeFileRefused, Message: "整个文件未导入 / nothing of the file was imported: " + err.Error()}
	var re *RowError
	if errors.As(err, &re) {
		p.Sheet, p.Row = re.Sheet, re.Row
	}
	switch {
	case errors.Is(err, ErrEncrypted):
		p.Code = CodeFileEncrypted
	case errors.Is(err, ErrNoHeader):
		p.Code = CodeNoHeader
	}
	return p
}

// writeRefusal writes the report of a refused file; the refusal itself is
// what the caller returns, so a report that cannot be written is not an
// error of its own.
func writeRefusal(path string, err error) int {
	rep, rerr := newReport(path)
	if rerr != nil {
		return 0
	}
	rep.add(refusal(err))
	_ = rep.close()
	return rep.lines
}
