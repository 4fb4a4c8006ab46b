package importer

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// ExportHeader is the customer table an export writes: the seeds' column
// names, each one the importer reads back (seedHeaders).
var ExportHeader = []string{"客户编号", "客户名称", "所属行业", "区域", "员工人数", "客户来源", "联系人", "职位", "联系电话", "电子邮箱",
	"合作起始日期", "累计合作金额", "最近合作时间", "满意度评分", "反馈内容", "核心诉求", "沟通偏好", "价格敏感度", "负责人"}

// amountColumn is 累计合作金额's index in ExportHeader (a number in XLSX).
const amountColumn = 11

// ExportSource is the log an export reads; *eventstore.Store implements it.
type ExportSource interface {
	EachStreamPage(ctx context.Context, size int, fn func([][]eventstore.RecordedEvent) error) error
	OpenPersonalData(ctx context.Context, streams []uuid.UUID) (*eventstore.PersonalData, error)
}

// ExportOptions configure an export.
type ExportOptions struct {
	// Disclosure: Masked (the default) or Plaintext, for an admin.
	Disclosure eventstore.Disclosure
	// Location is the rules' time zone: dates are written as days there.
	Location *time.Location
	// Disclosed is called with the customers of each page before their
	// plaintext is written (the disclosures log); only with Plaintext.
	Disclosed func(ctx context.Context, customers []domain.CustomerCode) error
}

// exportPage is how many customers are read and written at a time.
const exportPage = 200

// ExportCSV writes every customer as one row of the seeds' customer table,
// UTF-8 with a BOM (so Excel reads the Chinese), page by page. It returns
// the number of customers written.
func ExportCSV(ctx context.Context, src ExportSource, w io.Writer, o ExportOptions) (int, error) {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportHeader); err != nil {
		return 0, err
	}
	n, err := eachExportRow(ctx, src, o, func(r *exportRow) error {
		return cw.Write(r.cells(o.Location))
	}, func() error {
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	return n, cw.Error()
}

// ExportXLSX writes the same table as a workbook with one sheet, 客户信息,
// through excelize's stream writer (rows go to a temporary file, not to
// memory); 累计合作金额 is a number, so pivot tables can sum it.
func ExportXLSX(ctx context.Context, src ExportSource, w io.Writer, o ExportOptions) (n int, err error) {
	book := excelize.NewFile()
	defer func() {
		if cerr := book.Close(); err == nil {
			err = cerr
		}
	}()
	const sheet = "客户信息"
	if err := book.SetSheetName("Sheet1", sheet); err != nil {
		return 0, err
	}
	sw, err := book.NewStreamWriter(sheet)
	if err != nil {
		return 0, err
	}
	if err := sw.SetRow("A1", anyCells(ExportHeader)); err != nil {
		return 0, err
	}
	line := 1
	n, err = eachExportRow(ctx, src, o, func(r *exportRow) error {
		line++
		cells := anyCells(r.cells(o.Location))
		if amount, perr := strconv.ParseFloat(r.netAmount.String(), 64); perr == nil && r.netAmount != 0 {
			cells[amountColumn] = amount
		}
		cell, err := excelize.CoordinatesToCellName(1, line)
		if err != nil {
			return err
		}
		return sw.SetRow(cell, cells)
	}, nil)
	if err != nil {
		return n, err
	}
	if err := sw.Flush(); err != nil {
		return n, err
	}
	return n, book.Write(w)
}

func anyCells(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// eachExportRow folds each customer's stream into its export row and hands
// the rows to write, a page at a time (flush after each page, if given).
func eachExportRow(ctx context.Context, src ExportSource, o ExportOptions, write func(*exportRow) error, flush func() error) (int, error) {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Disclosure == eventstore.Plaintext && o.Disclosed == nil {
		return 0, errors.New("export: an unmasked export must record its disclosures")
	}
	n := 0
	err := src.EachStreamPage(ctx, exportPage, func(streams [][]eventstore.RecordedEvent) error {
		ids := make([]uuid.UUID, len(streams))
		codes := make([]domain.CustomerCode, len(streams))
		for i, s := range streams {
			ids[i], codes[i] = s[0].StreamID, s[0].Customer
		}
		pd, err := src.OpenPersonalData(ctx, ids)
		if err != nil {
			return err
		}
		if o.Disclosure == eventstore.Plaintext {
			if err := o.Disclosed(ctx, codes); err != nil {
				return err
			}
		}
		for _, s := range streams {
			r, err := foldExportRow(s, pd, o.Disclosure)
			if err != nil {
				return err
			}
			if !r.state.Profile.Registered {
				continue // alert actions or facts of a customer never registered: no row of the table
			}
			if err := write(r); err != nil {
				return err
			}
			n++
		}
		if flush != nil {
			return flush()
		}
		return nil
	})
	return n, err
}

// exportRow is what a customer's events say in the customer table's terms.
type exportRow struct {
	state        domain.CustomerState
	registeredAt time.Time
	needs        *domain.NeedsDeclared
	needsAt      time.Time
	satisfaction *domain.SatisfactionRated
	ratedAt      time.Time
	netAmount    domain.Money
}

// foldExportRow reads one stream. The profile, net amount and last order
// come from the domain's own fold (domain.CustomerState); the registration
// date, the latest needs and rating (with its feedback) are kept here
// because the table shows them and the state does not.
func foldExportRow(events []eventstore.RecordedEvent, pd *eventstore.PersonalData, how eventstore.Disclosure) (*exportRow, error) {
	r := &exportRow{}
	for _, e := range events {
		data, err := pd.Reveal(e, how)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", e.Customer, err)
		}
		r.state.Apply(&domain.Recorded{EventID: e.EventID, Customer: e.Customer, Version: e.Version, Type: e.Type,
			OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Source: e.Source, Data: data})
		switch d := data.(type) {
		case *domain.CustomerRegistered:
			r.registeredAt = e.OccurredAt
		case *domain.NeedsDeclared:
			if !e.OccurredAt.Before(r.needsAt) {
				r.needs, r.needsAt = d, e.OccurredAt
			}
		case *domain.SatisfactionRated:
			if !e.OccurredAt.Before(r.ratedAt) {
				r.satisfaction, r.ratedAt = d, e.OccurredAt
			}
		}
	}
	r.netAmount = r.state.NetAmount
	return r, nil
}

// lastAt is 最近合作时间: the latest business date of an order, a rating or
// declared needs (what the importer dates a row's facts with).
func (r *exportRow) lastAt() time.Time {
	t := r.state.LastOrderAt
	for _, u := range []time.Time{r.needsAt, r.ratedAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

func day(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(time.DateOnly)
}

var (
	preferenceText  = map[domain.CommunicationPreference]string{domain.PreferPhone: "电话", domain.PreferEmail: "邮件", domain.PreferOffline: "线下"}
	sensitivityText = map[domain.PriceSensitivity]string{domain.SensitivityLow: "低", domain.SensitivityMedium: "中", domain.SensitivityHigh: "高"}
)

// cells is the row in ExportHeader's order.
func (r *exportRow) cells(loc *time.Location) []string {
	p := &r.state.Profile
	employees, score, feedback, amount := "", "", "", ""
	if p.Employees != nil {
		employees = strconv.FormatInt(*p.Employees, 10)
	}
	if r.satisfaction != nil {
		score, feedback = strconv.Itoa(r.satisfaction.Score), r.satisfaction.Feedback
	}
	if r.netAmount != 0 {
		amount = r.netAmount.String()
	}
	var needs, preference, sensitivity string
	if r.needs != nil {
		needs = strings.Join(r.needs.CoreNeeds, "、")
		preference, sensitivity = preferenceText[r.needs.CommunicationPreference], sensitivityText[r.needs.PriceSensitivity]
	}
	return []string{string(r.state.Customer), p.Name, p.Industry, p.Region, employees, p.SourceChannel,
		p.Contact.Name, p.Contact.Title, p.Contact.Phone, p.Contact.Email,
		day(r.registeredAt, loc), amount, day(r.lastAt(), loc), score, feedback, needs, preference, sensitivity, p.Owner}
}
