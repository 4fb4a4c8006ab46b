package importer_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segments-dev/segments/internal/fixturegen"
)

// TestThePossibleDuplicatesOfTheSeedsFixtureAreReportedAndImported imports
// the committed customer table, whose deliberate duplicates share a legal
// name and phone, a phone typed otherwise or a legal name typed otherwise
// with an earlier customer under another code (and two bad rows share a
// phone): each pair is reported once as possible_duplicate, naming the
// other code and the fields, and the rows are imported all the same. The
// rows are appended concurrently, so either customer of a pair may be the
// one reported.
func TestThePossibleDuplicatesOfTheSeedsFixtureAreReportedAndImported(t *testing.T) {
	b := setup(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "客户信息.csv"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b.dir, "客户信息.csv")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := b.run(t, path, false)

	rows := fixturegen.Table(fixturegen.SetRows, true, true)
	codeAt := func(row int) string { return rows[row-2][0] } // row 1 is the header
	n := fixturegen.SetRows
	want := []string{
		pair(fixturegen.Code(1), fixturegen.Code(n+1000)) + " legal name, phone",
		pair(fixturegen.Code(0), fixturegen.Code(n+1001)) + " phone",
		pair(fixturegen.Code(2), fixturegen.Code(n+1002)) + " legal name",
		pair("KH-BAD-DATE", "KH-BAD-AMOUNT") + " phone",
	}
	message := regexp.MustCompile(`^疑似重复：与 (\S+) 的\S+相同 / possible duplicate of (\S+): same (.+)$`)
	var got []string
	for _, r := range readReport(t, sum.ReportPath)[1:] {
		if r[2] != "possible_duplicate" {
			continue
		}
		m := message.FindStringSubmatch(r[3])
		if len(m) != 4 || m[1] != m[2] {
			t.Fatalf("possible_duplicate line %q", r)
		}
		row, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, pair(codeAt(row), m[1])+" "+m[3])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("possible duplicates reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The duplicates are warnings: of the 29 rows only the one without a
	// code is rejected, and the repeat of row 0 is already imported.
	if sum.RowsRejected != 1 || sum.RowsAlready != 1 || sum.RowsImported != len(rows)-2 {
		t.Errorf("summary %+v; want every row but the codeless one and the repeat imported", sum)
	}
}

// pair names two codes in a stable order.
func pair(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "~" + b
}
