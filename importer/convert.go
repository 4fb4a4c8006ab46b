package importer

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// Problem is one line of the per-row report.
type Problem struct {
	Sheet   string `json:"sheet"`
	Row     int    `json:"row"`
	Column  string `json:"column"` // the header as written, empty for the whole row
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Unit is what one data row becomes: requests to append, each all or
// nothing on its own, so that a customer already registered elsewhere still
// gets the row's other facts.
type Unit struct {
	Sheet    string
	Row      int
	Customer domain.CustomerCode
	Requests []domain.AppendRequest
	Problems []Problem
	// Rejected: the row yields nothing (its problems say why).
	Rejected bool
	// Missing lists the profile fields a customer row lacks (待补充).
	Missing []string
}

// eventNamespace scopes the importer's event ids (UUIDv5).
var eventNamespace = uuid.MustParse("6b1f4a52-3c7e-5d90-a2b4-8e6f0c1d2a3b")

// OpeningBalanceOrderID is the order id of the one order a customer row's
// 累计合作金额 becomes (see docs/IMPORT.md).
const OpeningBalanceOrderID = "期初余额"

// factID is the id of an imported fact: derived from the customer and the
// fact itself, never from the file's bytes, so that importing the same rows
// again (the same file, a re-saved copy, an export) stores nothing new.
func factID(customer domain.CustomerCode, kind string, parts ...string) uuid.UUID {
	var b strings.Builder
	b.WriteString(string(customer))
	b.WriteByte(0)
	b.WriteString(kind)
	for _, p := range parts {
		b.WriteByte(0)
		b.WriteString(p)
	}
	return uuid.NewSHA1(eventNamespace, []byte(b.String()))
}

// Converter turns the rows of recognised sheets into events.
type Converter struct {
	// Location is the rules' time zone: dates without a time are midnight there.
	Location *time.Location
	// Source is the envelope source of every event ("import:<id>").
	Source string
	// Now is the instant the envelopes are validated at.
	Now time.Time
}

// row gives access to one data row's cells by field.
type row struct {
	h     Header
	cells []string
	unit  *Unit
}

func (r *row) text(f Field) string {
	i, ok := r.h.Columns[f]
	if !ok || i >= len(r.cells) {
		return ""
	}
	return Normalize(r.cells[i])
}

func (r *row) column(f Field) string {
	if i, ok := r.h.Columns[f]; ok && i < len(r.h.Names) {
		return strings.TrimSpace(r.h.Names[i])
	}
	return string(f)
}

func (r *row) problem(f Field, code, msg string) {
	col := ""
	if f != "" {
		col = r.column(f)
	}
	r.unit.Problems = append(r.unit.Problems, Problem{Sheet: r.unit.Sheet, Row: r.unit.Row, Column: col, Code: code, Message: msg})
}

// date reads an optional date cell; a bad one is reported and treated as absent.
func (r *row) date(f Field, loc *time.Location) (time.Time, bool) {
	s := r.text(f)
	if s == "" {
		return time.Time{}, false
	}
	t, err := ParseDate(s, loc)
	if err != nil {
		r.problem(f, CodeBadDate, "日期无法识别（如 2024-05-10、2024/5/10、2024年5月10日）/ not a date such as 2024-05-10, 2024/5/10 or 2024年5月10日: "+strconv.Quote(s))
		return time.Time{}, false
	}
	return t, true
}

func (r *row) amount(f Field) (domain.Money, bool) {
	s := r.text(f)
	if s == "" {
		return 0, false
	}
	m, err := ParseAmount(s)
	if err != nil {
		r.problem(f, CodeBadAmount, "金额无法识别（如 1,200,000.00、120万）/ not an amount such as 1,200,000.00 or 120万: "+strconv.Quote(s))
		return 0, false
	}
	return m, true
}

// IsEmpty reports whether a row has no text in any cell.
func IsEmpty(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// Convert turns one data row of a recognised sheet into a Unit.
func (c *Converter) Convert(h Header, sheet string, rowNum int, cells []string) Unit {
	u := Unit{Sheet: sheet, Row: rowNum}
	r := &row{h: h, cells: cells, unit: &u}
	code := r.text(FieldCustomer)
	switch {
	case code == "":
		r.problem(FieldCustomer, CodeRequired, "客户编号不能为空 / the customer code is required")
		u.Rejected = true
		return u
	case !domain.ValidCustomerCode(code):
		r.problem(FieldCustomer, CodeBadCode, "客户编号只能包含字母、数字、-、_、.（1–64 个字符）/ a customer code is 1-64 letters, digits, '-', '_' or '.': "+strconv.Quote(code))
		u.Rejected = true
		return u
	}
	u.Customer = domain.CustomerCode(code)
	var envs [][]domain.Envelope
	switch h.Kind {
	case SheetCustomers:
		envs = c.customerRow(r)
	case SheetOrders:
		envs = c.orderRow(r)
	case SheetFollowUps:
		envs = c.followUpRow(r)
	}
	for _, group := range envs {
		var valid []domain.Envelope
		for _, e := range group {
			if c.validate(r, e) {
				valid = append(valid, e)
			}
		}
		if len(valid) > 0 {
			u.Requests = append(u.Requests, domain.AppendRequest{Events: valid})
		}
	}
	if len(u.Requests) == 0 {
		u.Rejected = true
	}
	return u
}

// validate applies the domain's envelope rules (the same as for HTTP) and
// reports their field errors against the row's columns.
func (c *Converter) validate(r *row, e domain.Envelope) bool {
	err := e.Validate(c.Now)
	if err == nil {
		return true
	}
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		r.problem("", CodeBadValue, err.Error())
		return false
	}
	for _, fe := range ve.Errors {
		f := envelopeFieldColumn[fe.Field]
		r.problem(f, fe.Code, string(e.Type)+" "+fe.Field+": "+fe.Message)
	}
	return false
}

// envelopeFieldColumn names the column an envelope field came from.
var envelopeFieldColumn = map[string]Field{
	"customer": FieldCustomer, "data.name": FieldName, "data.industry": FieldIndustry,
	"data.region": FieldRegion, "data.owner": FieldOwner, "data.source_channel": FieldSourceChannel,
	"data.contact.name": FieldContactName, "data.contact.title": FieldContactTitle,
	"data.contact.phone": FieldPhone, "data.contact.email": FieldEmail,
	"data.order_id": FieldOrderID, "data.amount": FieldOrderAmount, "data.category": FieldCategory,
	"data.score": FieldSatisfaction, "data.feedback": FieldFeedback, "data.by": FieldFollowUpBy,
	"data.summary": FieldSummary, "data.outcome": FieldOutcome,
}

func (c *Converter) envelope(id uuid.UUID, t domain.EventType, code domain.CustomerCode, at time.Time, data domain.Event) domain.Envelope {
	return domain.Envelope{EventID: id, Type: t, Customer: code, OccurredAt: at, Source: c.Source, Data: data}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
