package importer_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/fixturegen"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

// importNow is the instant of the tests' imports.
var importNow = time.Date(2025, 7, 1, 9, 0, 0, 0, shanghai)

type bundle struct {
	store *eventstore.Store
	db    *testenv.DB
	dir   string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	store, db := testenv.Store(t, func() time.Time { return importNow })
	return &bundle{store: store, db: db, dir: t.TempDir()}
}

func (b *bundle) run(t *testing.T, path string, dry bool) importer.Summary {
	t.Helper()
	sum, err := importer.Run(context.Background(), importer.Options{Path: path, Location: shanghai,
		Now: func() time.Time { return importNow }, Store: b.store, DryRun: dry})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	return sum
}

func (b *bundle) events(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func readReport(t *testing.T, path string) [][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(raw), "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestASnapshotCSVIsImportedOnceAndItsReportNamesEveryBadRow(t *testing.T) {
	b := setup(t)
	path := filepath.Join(b.dir, "客户信息.csv")
	if err := fixturegen.WriteCSV(path, 10, true, false); err != nil {
		t.Fatal(err)
	}
	dry := b.run(t, path, true)
	if b.events(t) != 0 {
		t.Fatalf("a dry run stored %d events", b.events(t))
	}
	first := b.run(t, path, false)
	// 10 valid rows, 5 bad ones, a repeated first row.
	if first.RowsRead != 16 || first.RowsRejected != 1 || first.RowsImported+first.RowsAlready != 15 {
		t.Errorf("first import: %+v", first)
	}
	if dry.RowsRead != first.RowsRead || dry.RowsRejected != first.RowsRejected {
		t.Errorf("dry run %+v disagrees with the import %+v", dry, first)
	}
	// KH-MISSING, and KH-BAD-PHONE whose phone was not recorded.
	if first.NeedsCompletion != 2 {
		t.Errorf("customers flagged 待补充: %d, want 2", first.NeedsCompletion)
	}
	stored := b.events(t)
	if stored == 0 || first.EventsStored != stored {
		t.Errorf("events stored %d, summary says %d", stored, first.EventsStored)
	}
	report := readReport(t, first.ReportPath)
	if !slices.Equal(report[0], []string{"row", "column", "code", "message", "sheet"}) {
		t.Errorf("report header %q", report[0])
	}
	codes := map[string]string{}
	for _, r := range report[1:] {
		codes[r[2]] = r[0] + " " + r[1]
	}
	for _, bad := range fixturegen.BadRows {
		if _, ok := codes[bad.Code]; !ok {
			t.Errorf("report has no %s line: %q", bad.Code, report)
		}
	}
	if got := codes["invalid_phone"]; got != "15 联系电话" {
		t.Errorf("the bad phone is reported at %q, want row 15, column 联系电话", got)
	}
	again := b.run(t, path, false)
	if b.events(t) != stored || again.EventsStored != 0 || again.RowsImported != 0 || again.RowsAlready != first.RowsImported+first.RowsAlready {
		t.Errorf("re-import stored %d new events: %+v", b.events(t)-stored, again)
	}
}

func TestAGBKWorkbookExportAndTheSameRowsInXLSXStoreTheSameFacts(t *testing.T) {
	b := setup(t)
	gbk := filepath.Join(b.dir, "gbk.csv")
	if err := fixturegen.WriteCSV(gbk, 4, false, true); err != nil {
		t.Fatal(err)
	}
	sum := b.run(t, gbk, false)
	if sum.Format != "csv gb18030" || sum.RowsImported < 4 {
		t.Fatalf("GBK import: %+v", sum)
	}
	stored := b.events(t)
	book := filepath.Join(b.dir, "book.xlsx")
	if err := fixturegen.WriteXLSX(book, fixturegen.Workbook{Customers: 4, Title: true, EmptyRows: true}); err != nil {
		t.Fatal(err)
	}
	sum = b.run(t, book, false)
	if b.events(t) != stored || sum.RowsAlready != 4 {
		t.Errorf("the same rows from a workbook stored %d new events: %+v", b.events(t)-stored, sum)
	}
}

func TestAnOpeningBalanceIsOneOrderAtTheLastCooperationDateAndTheLabelsSaySo(t *testing.T) {
	b := setup(t)
	path := filepath.Join(b.dir, "one.csv")
	content := "客户编号,客户名称,所属行业,联系人,职位,联系电话,合作起始日期,累计合作金额,最近合作时间,满意度评分,核心诉求,负责人\n" +
		"KH202405010001,深圳市甲科技有限公司,制造业-电子元件,*经理,采购部经理,010-12345678,2024/5/10,\"1,200,000.00\",2025年6月1日,4,定制化服务、技术支持,周经理\n" +
		"KH202405010002,上海乙贸易有限公司,零售业,*经理,总经理,0755-1234567-801,2023-01-05,120万,,5,成本控制,王经理\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := b.run(t, path, false)
	if sum.RowsImported != 2 || sum.RowsRejected != 0 {
		t.Fatalf("%+v", sum)
	}
	proj := projections.New(projections.Config{Pool: b.db.Pool, Now: func() time.Time { return importNow }})
	if _, err := proj.Apply(context.Background(), []uuid.UUID{domain.CustomerCode("KH202405010001").StreamID(), domain.CustomerCode("KH202405010002").StreamID()}); err != nil {
		t.Fatal(err)
	}
	q := projections.NewQueries(proj, b.store)
	recent, err := q.Customer(context.Background(), "KH202405010001", time.Time{}, importNow, eventstore.Masked)
	if err != nil {
		t.Fatal(err)
	}
	m := recent.Metrics
	if m.NetAmount != 120_000_000 || m.OrderCount != 1 || m.Orders3m != 1 || m.LastOrderAt == nil || !strings.HasPrefix(*m.LastOrderAt, "2025-06-01T00:00:00+08:00") {
		t.Errorf("metrics of a recent balance: %+v (last order %v)", m, deref(m.LastOrderAt))
	}
	if v := recent.Labels["value_tier"]; !strings.Contains(v.Reason, "1,200,000.00") {
		t.Errorf("value tier %+v does not cite the balance", v)
	}
	// Dated only by 合作起始日期 (2023): one order then, none in any recent window.
	old, err := q.Customer(context.Background(), "KH202405010002", time.Time{}, importNow, eventstore.Masked)
	if err != nil {
		t.Fatal(err)
	}
	if om := old.Metrics; om.NetAmount != 120_000_000 || om.OrderCount != 1 || om.Orders6m != 0 {
		t.Errorf("metrics of an old balance: %+v", om)
	}
	if a := old.Labels["activity"]; a.Value == "high" || a.Value == "medium" {
		t.Errorf("an undatable balance made the customer active: %+v", a)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func (b *bundle) stream(t *testing.T, code string) []eventstore.RecordedEvent {
	t.Helper()
	events, err := b.store.ReadStream(context.Background(), domain.CustomerCode(code), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return events
}
