package importer

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// Appender records events; *eventstore.Store implements it.
type Appender interface {
	Append(ctx context.Context, req domain.AppendRequest) ([]eventstore.Result, error)
}

// Progress is told how many rows were handled; Total is known after the
// checking pass.
type Progress interface {
	Start(total int)
	Add(rows int)
	Finish()
}

// Options configure one import.
type Options struct {
	Path    string
	Sheet   string // one sheet of a workbook; empty: every sheet
	Mapping Mapping
	// Name is the import's identity; empty: "sha256-" and the first 16 hex
	// digits of the file's SHA-256.
	Name   string
	DryRun bool
	// Location is the rules' time zone (dates without a time are midnight there).
	Location *time.Location
	Now      func() time.Time
	Store    Appender // nil only with DryRun
	Progress Progress // nil: none
	// ReportPath is where the per-row report goes; empty: beside the input,
	// <name>.report.csv.
	ReportPath string
	// Workers is the number of concurrent appends (the store commits them
	// in shared groups); default DefaultWorkers.
	Workers int
}

// DefaultWorkers is the default number of rows being appended at once. A
// row is one small request (its events together), and the store commits
// the requests waiting at once as one group (up to 4,000 events) whose cost
// hardly depends on its size: the rate grows with the rows in flight until
// the groups are full (bench/import, docs/BENCHMARKS.md). Memory is bounded
// by the workers and their queue, not by the rows. Live appends queue
// behind at most one such group.
const DefaultWorkers = 4096

// Summary is the outcome of an import.
type Summary struct {
	ImportID        string `json:"import_id"`
	File            string `json:"file"`
	Format          string `json:"format"`
	DryRun          bool   `json:"dry_run,omitzero"`
	RowsRead        int    `json:"rows_read"`
	RowsImported    int    `json:"rows_imported"`
	RowsAlready     int    `json:"rows_already_imported"`
	RowsRejected    int    `json:"rows_rejected"`
	EventsStored    int    `json:"events_stored"`
	NeedsCompletion int    `json:"customers_needs_completion"`
	Problems        int    `json:"problems"`
	ReportPath      string `json:"report"`
}

// Identity returns the import id of a file: "sha256-" and the first 16 hex
// digits of its content hash.
func Identity(path string) (string, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// DefaultReportPath is input.report.csv beside the input.
func DefaultReportPath(input string) string {
	return strings.TrimSuffix(input, filepath.Ext(input)) + ".report.csv"
}

// Run imports a file. The file is read twice: a checking pass (format,
// header rows, row count) that stores nothing, so a file that cannot be
// read as a whole fails before anything is recorded; then the importing
// pass. Problems of single rows go to the report and never stop the others.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Store == nil && !o.DryRun {
		return Summary{}, errors.New("importer: no store to import into")
	}
	sum := Summary{File: o.Path, DryRun: o.DryRun, ImportID: o.Name}
	if sum.ImportID == "" {
		id, err := Identity(o.Path)
		if err != nil {
			return sum, err
		}
		sum.ImportID = id
	}
	if o.ReportPath == "" {
		o.ReportPath = DefaultReportPath(o.Path)
	}
	sum.ReportPath = o.ReportPath
	total, err := check(o)
	if err != nil {
		sum.Problems = writeRefusal(o.ReportPath, err)
		return sum, err
	}
	o.Workers = min(o.Workers, max(total, 1)) // no more goroutines than rows
	rep, err := newReport(o.ReportPath)
	if err != nil {
		return sum, err
	}
	if o.Progress != nil {
		o.Progress.Start(total)
		defer o.Progress.Finish()
	}
	im := &run{o: o, sum: &sum, rep: rep, conv: Converter{Location: o.Location, Source: domain.ImportSourcePrefix + sum.ImportID, Now: o.Now()},
		flagged: map[domain.CustomerCode]bool{}}
	err = im.importRows(ctx)
	if cerr := rep.close(); err == nil {
		err = cerr
	}
	sum.Problems = rep.lines
	return sum, err
}

// check reads the whole file without storing anything: every sheet with
// data must have a header row. It returns the number of rows.
func check(o Options) (int, error) {
	total := 0
	sheets := map[string]*sheetScan{}
	var order []string
	_, err := ReadFile(o.Path, o.Sheet, func(sheet string, n int, cells []string) error {
		total++
		s := sheets[sheet]
		if s == nil {
			s = &sheetScan{}
			sheets[sheet] = s
			order = append(order, sheet)
		}
		s.scan(o.Mapping, n, cells)
		return nil
	})
	if err != nil {
		return 0, err
	}
	found := false
	for _, name := range order {
		s := sheets[name]
		if s.hasData && s.header == nil && o.Sheet != "" {
			return 0, fmt.Errorf("%w: %s", ErrNoHeader, name)
		}
		found = found || s.header != nil
	}
	if !found {
		return 0, ErrNoHeader
	}
	return total, nil
}

// sheetScan finds a sheet's header row among its first rows.
type sheetScan struct {
	header  *Header
	hasData bool
}

func (s *sheetScan) scan(m Mapping, n int, cells []string) bool {
	if s.header != nil {
		return false
	}
	if IsEmpty(cells) {
		return true
	}
	s.hasData = true
	if n > headerSearchRows {
		return true
	}
	if h, ok := m.recognise(append([]string(nil), cells...)); ok {
		s.header = &h
	}
	return true
}

type run struct {
	o       Options
	sum     *Summary
	rep     *report
	conv    Converter
	mu      sync.Mutex
	flagged map[domain.CustomerCode]bool
}

func (im *run) importRows(ctx context.Context) error {
	units := make(chan Unit, im.o.Workers*4)
	var wg sync.WaitGroup
	for range im.o.Workers {
		wg.Go(func() {
			for u := range units {
				im.store(ctx, u)
			}
		})
	}
	sheets := map[string]*sheetScan{}
	format, err := ReadFile(im.o.Path, im.o.Sheet, func(sheet string, n int, cells []string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := sheets[sheet]
		if s == nil {
			s = &sheetScan{}
			sheets[sheet] = s
		}
		if s.scan(im.o.Mapping, n, cells) {
			if s.header != nil {
				im.reportIgnored(sheet, n, s.header)
			}
			im.progress()
			return nil
		}
		if IsEmpty(cells) || s.header == nil {
			im.progress()
			return nil
		}
		u := im.conv.Convert(*s.header, sheet, n, cells)
		im.account(u)
		if u.Rejected || im.o.DryRun {
			im.progress()
			return nil
		}
		units <- u
		return nil
	})
	close(units)
	wg.Wait()
	im.sum.Format = format
	return err
}

func (im *run) progress() {
	if im.o.Progress != nil {
		im.o.Progress.Add(1)
	}
}

func (im *run) reportIgnored(sheet string, n int, h *Header) {
	for _, col := range h.Ignored {
		im.rep.add(Problem{Sheet: sheet, Row: n, Column: col, Code: CodeIgnoredColumn,
			Message: "未识别的列，已忽略（可在 mapping 文件中指定）/ unknown column, ignored (name it in a mapping file)"})
	}
}

// account records a converted row's problems and, for rows that will not
// be stored (rejected, or a dry run), its outcome.
func (im *run) account(u Unit) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.sum.RowsRead++
	for _, p := range u.Problems {
		im.rep.add(p)
	}
	if len(u.Missing) > 0 && !u.Rejected && !im.flagged[u.Customer] {
		im.flagged[u.Customer] = true
		im.sum.NeedsCompletion++
		im.rep.add(Problem{Sheet: u.Sheet, Row: u.Row, Code: CodeNeedsComplete,
			Message: "待补充：" + strings.Join(u.Missing, "、") + " / needs completion: " + strings.Join(u.Missing, ", ")})
	}
	switch {
	case u.Rejected:
		im.sum.RowsRejected++
	case im.o.DryRun:
		im.sum.RowsImported++
	}
}

// store appends a unit's requests. They are first tried as one request (a
// row's events then meet the store once, which is what makes a large
// import fast); when that is refused, each is appended on its own, so that
// the ones that can be stored are, and the report names the others.
func (im *run) store(ctx context.Context, u Unit) {
	defer im.progress()
	if stored, dup, warnings, ok := im.storeTogether(ctx, u); ok {
		im.tally(stored, dup, warnings)
		return
	}
	stored, dup, problems := im.storeEach(ctx, u)
	im.tally(stored, dup, problems)
}

// storeTogether appends every event of a unit of several requests in one
// request; ok is false when the unit has one request or the store refused
// the combined one (nothing of it is stored then).
func (im *run) storeTogether(ctx context.Context, u Unit) (stored, dup int, warnings []Problem, ok bool) {
	if len(u.Requests) < 2 {
		return 0, 0, nil, false
	}
	var all domain.AppendRequest
	for _, req := range u.Requests {
		all.Events = append(all.Events, req.Events...)
	}
	res, err := im.o.Store.Append(ctx, all)
	if err != nil {
		return 0, 0, nil, false
	}
	stored, dup, warnings = countResults(u, res)
	return stored, dup, warnings, true
}

// countResults counts stored and already stored events, and turns the
// possible duplicates the store found into report lines.
func countResults(u Unit, res []eventstore.Result) (stored, dup int, warnings []Problem) {
	for _, r := range res {
		if r.Duplicate {
			dup++
		} else {
			stored++
		}
		for _, d := range r.PossibleDuplicateOf {
			warnings = append(warnings, duplicateProblem(u, d))
		}
	}
	return stored, dup, warnings
}

// storeEach appends a unit's requests one by one; each stands alone.
func (im *run) storeEach(ctx context.Context, u Unit) (stored, dup int, problems []Problem) {
	registeredElsewhere := false
	for _, req := range u.Requests {
		if registeredElsewhere && isOpeningBalance(req) {
			dup++
			problems = append(problems, Problem{Sheet: u.Sheet, Row: u.Row, Code: CodeBalanceSkipped,
				Message: "客户不是由导入登记的，其订单已在系统中，期初余额未记录 / the customer was not registered by an import: its orders are in the log, so no opening balance was recorded"})
			continue
		}
		res, err := im.o.Store.Append(ctx, req)
		switch {
		case errors.Is(err, domain.ErrAlreadyRegistered):
			registeredElsewhere = true
			dup++
			problems = append(problems, storeProblem(u, req, err))
			continue
		case errors.Is(err, domain.ErrEventIDReused) && (isRegistration(req) || isOpeningBalance(req)):
			// Imported before with other values: a snapshot does not change
			// a registration or an opening balance (docs/IMPORT.md).
			dup++
			problems = append(problems, keptProblem(u, req))
			continue
		case err != nil:
			problems = append(problems, storeProblem(u, req, err))
			continue
		}
		s, d, warnings := countResults(u, res)
		stored, dup, problems = stored+s, dup+d, append(problems, warnings...)
	}
	return stored, dup, problems
}

// tally records a stored unit's outcome and problems.
func (im *run) tally(stored, dup int, problems []Problem) {
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, p := range problems {
		im.rep.add(p)
	}
	im.sum.EventsStored += stored
	switch {
	case stored > 0:
		im.sum.RowsImported++
	case dup > 0:
		im.sum.RowsAlready++
	default:
		im.sum.RowsRejected++
	}
}

// matchNames are the matched fields as the report names them.
var matchNames = map[domain.MatchField][2]string{
	domain.MatchName: {"客户名称", "legal name"}, domain.MatchPhone: {"联系电话", "phone"}, domain.MatchEmail: {"电子邮箱", "email"},
}

// duplicateProblem warns that the row's customer shares normalised values
// with another customer (SPEC §10); the row is imported all the same.
func duplicateProblem(u Unit, d eventstore.Duplicate) Problem {
	zh, en := make([]string, len(d.Fields)), make([]string, len(d.Fields))
	for i, f := range d.Fields {
		zh[i], en[i] = matchNames[f][0], matchNames[f][1]
	}
	return Problem{Sheet: u.Sheet, Row: u.Row, Code: CodePossibleDuplicate,
		Message: fmt.Sprintf("疑似重复：与 %s 的%s相同 / possible duplicate of %s: same %s",
			d.Customer, strings.Join(zh, "、"), d.Customer, strings.Join(en, ", "))}
}

func isRegistration(req domain.AppendRequest) bool {
	return len(req.Events) == 1 && req.Events[0].Type == domain.TypeCustomerRegistered
}

func isOpeningBalance(req domain.AppendRequest) bool {
	if len(req.Events) != 1 {
		return false
	}
	o, ok := req.Events[0].Data.(*domain.OrderPlaced)
	return ok && o.OrderID == OpeningBalanceOrderID
}

// keptProblem says that a registration or opening balance imported before
// with other values was kept as it was.
func keptProblem(u Unit, req domain.AppendRequest) Problem {
	if isRegistration(req) {
		return Problem{Sheet: u.Sheet, Row: u.Row, Code: (&domain.RuleError{Err: domain.ErrAlreadyRegistered}).Code(),
			Message: "客户已登记，档案未改动 / the customer is already registered; its profile was left as it was"}
	}
	return Problem{Sheet: u.Sheet, Row: u.Row, Code: CodeBalanceKept,
		Message: "期初余额已导入，保持不变（变化请以事件发送）/ the opening balance was imported before and is kept as it was (send changes as events)"}
}

// storeProblem describes a request the store refused. A registration of a
// customer that is already registered is expected when a snapshot is
// imported over existing data: the registration stays as it was.
func storeProblem(u Unit, req domain.AppendRequest, err error) Problem {
	p := Problem{Sheet: u.Sheet, Row: u.Row, Code: CodeRejected}
	var ee *eventstore.EventError
	if errors.As(err, &ee) && ee.Err != nil {
		p.Code, p.Column = ee.Err.Code(), ee.Err.Field
		if errors.Is(err, domain.ErrAlreadyRegistered) {
			p.Column = ""
			p.Message = "客户已登记，档案未改动 / the customer is already registered; its profile was left as it was"
			return p
		}
	}
	p.Message = string(req.Events[0].Type) + ": " + err.Error()
	return p
}

// report writes the per-row report: row, column, code, message, sheet.
type report struct {
	f     *os.File
	w     *csv.Writer
	mu    sync.Mutex
	lines int
}

func newReport(path string) (*report, error) {
	f, err := os.Create(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	// A BOM makes Excel open the Chinese messages as UTF-8.
	if _, err := f.WriteString("\uFEFF"); err != nil {
		_ = f.Close()
		return nil, err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"row", "column", "code", "message", "sheet"})
	return &report{f: f, w: w}, nil
}

func (r *report) add(p Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines++
	_ = r.w.Write([]string{strconv.Itoa(p.Row), p.Column, p.Code, p.Message, p.Sheet})
}

func (r *report) close() error {
	r.w.Flush()
	err := r.w.Error()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadReport reads up to limit lines of a report written by Run.
func ReadReport(path string, limit int) ([]Problem, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 5
	var out []Problem
	for line := 0; len(out) < limit; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		if line == 0 {
			continue // the header
		}
		n, _ := strconv.Atoi(rec[0])
		out = append(out, Problem{Row: n, Column: rec[1], Code: rec[2], Message: rec[3], Sheet: rec[4]})
	}
	return out, nil
}
