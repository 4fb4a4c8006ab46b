package httpapi

import (
	"bufio"
	"encoding/csv"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// exportPage is how many customers an export reads (and writes) at a
// time: each page opens its customers' personal data in two round trips.
// Three pages are in flight (read, opened, written): 5,000-row pages grew
// the RSS by 41 MB (of the 50 MB allowed), 1,000-row pages by 6–14 MB.
const exportPage = 2000

// customerFilter reads the list's query parameters.
func (a *api) customerFilter(w http.ResponseWriter, r *http.Request) (projections.CustomerFilter, bool) {
	q := r.URL.Query()
	f := projections.CustomerFilter{
		ValueTier: q.Get("value_tier"), Activity: q.Get("activity"), Lifecycle: q.Get("lifecycle"),
		NeedOrientation: q.Get("need_orientation"), Segment: q.Get("segment"), Tag: q.Get("tag"),
		Owner: q.Get("owner"), Query: strings.TrimSpace(q.Get("q")), Cursor: q.Get("cursor"), Limit: 50,
	}
	if owner := boundOwner(r); owner != "" {
		f.Owner = owner // an owner-bound token lists its owner's customers, whatever ?owner= says
	}
	// The rules' own labels filter like the built-in ones (?spend_band=high).
	if d, ok := a.cfg.Queries.(interface{ IsDimension(string) bool }); ok {
		for name, values := range q {
			if len(values) > 0 && d.IsDimension(name) {
				if f.Dims == nil {
					f.Dims = map[string]string{}
				}
				f.Dims[name] = values[0]
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "limit", Message: "limit must be an integer from 1 to 500"})
			return f, false
		}
		f.Limit = n
	}
	return f, true
}

// listFailed answers a failed list or trend query.
func (a *api) listFailed(w http.ResponseWriter, err error) {
	var fe *projections.FilterError
	if errors.As(err, &fe) {
		code := domain.CodeInvalidEnum
		if fe.Field == "cursor" || fe.Field == "q" || fe.Field == "from" {
			code = domain.CodeInvalidValue
		}
		a.reject(w, http.StatusBadRequest, apiError{Code: code, Field: fe.Field, Message: fe.Message})
		return
	}
	a.readFailed(w, err, "")
}

// wantsCSV reports whether the client asked for CSV by its Accept header.
func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true
		}
	}
	return false
}

func (a *api) getCustomers(w http.ResponseWriter, r *http.Request) {
	if wantsCSV(r) {
		a.exportCustomersCSV(w, r)
		return
	}
	f, ok := a.customerFilter(w, r)
	if !ok {
		return
	}
	how, ok := a.listDisclosure(w, r)
	if !ok {
		return
	}
	cards, next, err := a.cfg.Queries.Customers(r.Context(), f, how)
	if err != nil {
		a.listFailed(w, err)
		return
	}
	if how == eventstore.Plaintext {
		if err := a.recordListDisclosure(r, cards); err != nil {
			a.readFailed(w, err, "")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": cards, "next": next})
}

// listDisclosure is disclosure for a list: ?unmasked=true needs an admin
// token, and each customer shown is recorded (recordListDisclosure).
func (a *api) listDisclosure(w http.ResponseWriter, r *http.Request) (eventstore.Disclosure, bool) {
	v := r.URL.Query().Get("unmasked")
	if v == "" || v == "false" {
		return eventstore.Masked, true
	}
	if v != "true" {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "unmasked", Message: "unmasked must be true or false"})
		return 0, false
	}
	if tok := a.requestToken(r); tok == nil || !tok.Has(auth.ScopeAdmin) || a.cfg.Auditor == nil {
		a.reject(w, http.StatusForbidden, apiError{Code: "forbidden", Field: "unmasked", Message: "unmasked personal data requires an admin token"})
		return 0, false
	}
	return eventstore.Plaintext, true
}

// requestToken is the request's authenticated token (nil in open mode).
func (a *api) requestToken(r *http.Request) *auth.Token {
	return auth.FromContext(r.Context())
}

// recordListDisclosure records a plaintext read of each card; it runs
// before the cards are written.
func (a *api) recordListDisclosure(r *http.Request, cards []projections.CustomerCard) error {
	if len(cards) == 0 {
		return nil
	}
	codes := make([]domain.CustomerCode, len(cards))
	for i, c := range cards {
		codes[i] = domain.CustomerCode(c.Customer)
	}
	return a.cfg.Auditor.RecordDisclosures(r.Context(), a.requestToken(r).Name, codes, r.Method+" "+r.URL.Path)
}

// exportColumns are the export's header: the seeds' Chinese column names.
var exportColumns = []string{"客户编号", "客户名称", "负责人", "价值层级", "活跃度", "需求导向", "生命周期", "客群", "标签", "累计净额", "最近下单时间", "最近变化时间"}

func exportRow(c *projections.CustomerCard) []string {
	tags := make([]string, len(c.Tags))
	for i, t := range c.Tags {
		tags[i] = t.Display
	}
	name, lastOrder := "", ""
	if c.Name != nil {
		name = *c.Name
	}
	if c.LastOrderAt != nil {
		lastOrder = *c.LastOrderAt
	}
	return []string{c.Customer, name, c.Owner, c.Labels[domain.LabelValueTier].Display, c.Labels[domain.LabelActivity].Display,
		c.Labels[domain.LabelNeedOrientation].Display, c.Labels[domain.LabelLifecycle].Display, c.Labels[domain.LabelSegment].Display,
		strings.Join(tags, "；"), c.NetAmount.String(), lastOrder, c.ChangedAt}
}

// exportPrelude validates an export request; the filter's cursor and limit
// do not apply (the whole list is exported).
func (a *api) exportPrelude(w http.ResponseWriter, r *http.Request) (projections.CustomerFilter, eventstore.Disclosure, bool) {
	f, ok := a.customerFilter(w, r)
	if !ok {
		return f, 0, false
	}
	how, ok := a.listDisclosure(w, r)
	return f, how, ok
}

func exportName(ext string, now time.Time) string {
	return `attachment; filename="customers-` + now.Format("20060102-150405") + "." + ext + `"`
}

func (a *api) exportCustomersCSV(w http.ResponseWriter, r *http.Request) {
	f, how, ok := a.exportPrelude(w, r)
	if !ok {
		return
	}
	started := false
	// Rows go out in 64 KB writes (csv's own buffer is 4 KB: a write, and
	// an HTTP chunk, per ~40 rows).
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	err := a.cfg.Queries.EachCustomerPage(r.Context(), f, exportPage, how, func(cards []projections.CustomerCard) error {
		if how == eventstore.Plaintext {
			if err := a.recordListDisclosure(r, cards); err != nil {
				return err
			}
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", exportName("csv", a.cfg.Now().In(a.cfg.Location)))
			w.WriteHeader(http.StatusOK)
			// A byte-order mark: spreadsheet programs then read the file as UTF-8.
			_, _ = w.Write([]byte("\ufeff"))
			_ = cw.Write(exportColumns)
		}
		for i := range cards {
			_ = cw.Write(exportRow(&cards[i]))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	})
	a.exportDone(w, r, err, started, func() {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", exportName("csv", a.cfg.Now().In(a.cfg.Location)))
		_, _ = w.Write([]byte("\ufeff"))
		_ = cw.Write(exportColumns)
		cw.Flush()
		_ = bw.Flush()
	})
}

// exportDone finishes an export: an empty list still gets its header
// (empty), an error before the first byte gets its status, an error after
// it can only cut the response short (the client sees a truncated body).
func (a *api) exportDone(w http.ResponseWriter, r *http.Request, err error, started bool, empty func()) {
	switch {
	case err != nil && !started:
		a.listFailed(w, err)
	case err != nil:
		a.cfg.Logger.Warn("customer export cut short", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	case !started:
		empty()
	}
}

func (a *api) exportCustomersXLSX(w http.ResponseWriter, r *http.Request) {
	f, how, ok := a.exportPrelude(w, r)
	if !ok {
		return
	}
	book := excelize.NewFile()
	defer func() { _ = book.Close() }()
	const sheet = "Sheet1"
	sw, err := book.NewStreamWriter(sheet)
	if err != nil {
		a.listFailed(w, err)
		return
	}
	header := make([]any, len(exportColumns))
	for i, c := range exportColumns {
		header[i] = c
	}
	if err := sw.SetRow("A1", header); err != nil {
		a.listFailed(w, err)
		return
	}
	row := 2
	err = a.cfg.Queries.EachCustomerPage(r.Context(), f, exportPage, how, func(cards []projections.CustomerCard) error {
		if how == eventstore.Plaintext {
			if err := a.recordListDisclosure(r, cards); err != nil {
				return err
			}
		}
		for i := range cards {
			values := exportRow(&cards[i])
			cells := make([]any, len(values))
			for j, v := range values {
				cells[j] = v
			}
			// The amount as a number, so the sheet can sum it.
			if n, err := strconv.ParseFloat(cards[i].NetAmount.String(), 64); err == nil {
				cells[9] = n
			}
			cell, err := excelize.CoordinatesToCellName(1, row)
			if err != nil {
				return err
			}
			if err := sw.SetRow(cell, cells); err != nil {
				return err
			}
			row++
		}
		return nil
	})
	if err == nil {
		err = sw.Flush()
	}
	if err != nil {
		a.exportDone(w, r, err, false, nil)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", exportName("xlsx", a.cfg.Now().In(a.cfg.Location)))
	w.WriteHeader(http.StatusOK)
	if err := book.Write(w); err != nil {
		a.cfg.Logger.Warn("customer export cut short", "path", r.URL.Path, "err", err)
	}
}

func (a *api) getSegmentTrend(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	label, interval := q.Get("label"), q.Get("interval")
	if label == "" {
		label = domain.LabelSegment
	}
	if interval == "" {
		interval = projections.IntervalMonth
	}
	now := a.cfg.Now()
	to, ok := a.trendInstant(w, q.Get("to"), "to", now)
	if !ok {
		return
	}
	from, ok := a.trendInstant(w, q.Get("from"), "from", to.AddDate(0, -11, 0))
	if !ok {
		return
	}
	if from.After(to) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "from", Message: "from must not be after to"})
		return
	}
	trend, err := a.cfg.Queries.Trend(r.Context(), label, interval, from, to, now)
	if err != nil {
		a.listFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, trend)
}

// trendInstant reads an RFC 3339 time or a date (2026-01-02, midnight in
// the output time zone); def when empty.
func (a *api) trendInstant(w http.ResponseWriter, v, field string, def time.Time) (time.Time, bool) {
	if v == "" {
		return def, true
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, a.cfg.Location); err == nil {
		return t, true
	}
	a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidFormat, Field: field, Message: field + " must be an RFC 3339 time or a date such as 2026-01-31"})
	return time.Time{}, false
}

// getVocabulary lists every value of each label and every tag with its
// display name (the workbench's filters and legends).
func (a *api) getVocabulary(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"labels": a.cfg.Queries.Vocabulary()})
}
