package importer_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/fixturegen"
)

// exportTo writes an export of the whole log to a file.
func (b *bundle) exportTo(t *testing.T, name string, o importer.ExportOptions) string {
	t.Helper()
	path := filepath.Join(b.dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	o.Location = shanghai
	if strings.HasSuffix(name, ".csv") {
		_, err = importer.ExportCSV(context.Background(), b.store, f, o)
	} else {
		_, err = importer.ExportXLSX(context.Background(), b.store, f, o)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("export %s: %v", name, err)
	}
	return path
}

// sheetRows reads a file's rows the way the importer does.
func sheetRows(t *testing.T, path string) [][]string {
	t.Helper()
	var rows [][]string
	if _, err := importer.ReadFile(path, "", func(_ string, _ int, cells []string) error {
		rows = append(rows, slices.Clone(cells))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestImportingAnExportOfTheLogStoresNothingNewMaskedOrNot(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	book := filepath.Join(b.dir, "book.xlsx")
	if err := fixturegen.WriteXLSX(book, fixturegen.Workbook{Customers: 6, Orders: 4, FollowUps: 3}); err != nil {
		t.Fatal(err)
	}
	b.run(t, book, false)
	// A customer that came in through the API, with an order of its own.
	live := domain.CustomerCode("KH-LIVE-1")
	if _, err := b.store.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{
		{Type: domain.TypeCustomerRegistered, Customer: live, OccurredAt: importNow.Add(-48 * time.Hour),
			Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptr("杭州丙网络有限公司"), Owner: ptr("陈经理"),
				Contact: &domain.Contact{Name: ptr("张伟"), Phone: ptr("13912345678"), Email: ptr("zhang.wei@example.com")}}}},
		{Type: domain.TypeOrderPlaced, Customer: live, OccurredAt: importNow.Add(-24 * time.Hour),
			Data: &domain.OrderPlaced{OrderID: "SO-LIVE-1", Amount: 880_050}},
	}}); err != nil {
		t.Fatal(err)
	}
	stored := b.events(t)

	var disclosed []domain.CustomerCode
	plain := b.exportTo(t, "plain.csv", importer.ExportOptions{Disclosure: eventstore.Plaintext,
		Disclosed: func(_ context.Context, c []domain.CustomerCode) error {
			disclosed = append(disclosed, c...)
			return nil
		}})
	masked := b.exportTo(t, "masked.xlsx", importer.ExportOptions{})

	rows := sheetRows(t, plain)
	if !slices.Equal(rows[0], importer.ExportHeader) || len(rows) != 1+7 {
		t.Fatalf("plain export: header %q, %d rows; want the seeds' header and 7 customers", rows[0], len(rows)-1)
	}
	if len(disclosed) != 7 || !slices.Contains(disclosed, live) {
		t.Errorf("disclosures recorded for %q, want the 7 customers exported", disclosed)
	}
	for _, r := range rows[1:] {
		if r[0] == string(live) && (r[8] != "13912345678" || r[11] != "8800.50" || r[12] != importNow.Add(-24*time.Hour).Format(time.DateOnly)) {
			t.Errorf("live customer's row %q", r)
		}
	}
	for _, r := range sheetRows(t, masked)[1:] {
		if strings.Contains(strings.Join(r, ","), "13912345678") || strings.Contains(strings.Join(r, ","), "张伟") {
			t.Errorf("masked export shows personal data: %q", r)
		}
	}

	for _, path := range []string{plain, masked} {
		sum := b.run(t, path, false)
		if sum.EventsStored != 0 || b.events(t) != stored || sum.RowsRejected != 0 || sum.RowsAlready != 7 {
			t.Errorf("importing %s stored %d new events: %+v", filepath.Base(path), b.events(t)-stored, sum)
		}
		for _, r := range readReport(t, sum.ReportPath)[1:] {
			if r[2] == importer.CodeRejected || r[2] == "event_id_reused" || r[2] == importer.CodeIgnoredColumn {
				t.Errorf("%s: report line %q", filepath.Base(path), r)
			}
			if path == plain && r[2] != "needs_completion" && r[2] != "already_registered" &&
				r[2] != importer.CodeBalanceKept && r[2] != importer.CodeBalanceSkipped {
				t.Errorf("plain export re-imported: unexpected report line %q", r)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
