package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
)

// TestTheExportIsMaskedAndAnUnmaskedOneNeedsAnAdminTokenAndIsDisclosed runs
// "segmentd export" against a real database: masked by default; unmasked
// only with an admin token's secret, and then each customer is recorded in
// the disclosures log under the token's name.
func TestTheExportIsMaskedAndAnUnmaskedOneNeedsAnAdminTokenAndIsDisclosed(t *testing.T) {
	db := testenv.Postgres(t)
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("SEGMENTS_MASTER_KEY", "")
	dir := t.TempDir()
	ctx := context.Background()
	cfg := keysConfig(t, dir, db.URL)
	store, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{{Type: domain.TypeCustomerRegistered, Customer: "KH-EXPORT-1",
		Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptrTo("深圳市甲科技有限公司"),
			Contact: &domain.Contact{Name: ptrTo("李明"), Phone: ptrTo("13812345678")}}}}}}); err != nil {
		t.Fatal(err)
	}
	closeStore()

	admin, adminLine, err := auth.New("auditor-wang", []auth.Scope{auth.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	reader, readerLine, err := auth.New("reader-zhao", []auth.Scope{auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	tokens := writeFile(t, dir, "tokens", adminLine+"\n"+readerLine+"\n")
	out := filepath.Join(dir, "客户.csv")
	base := []string{"export", "--format", "csv", "--out", out, "--data-dir", dir, "--tokens", tokens}

	if err := run(ctx, base); err != nil {
		t.Fatal(err)
	}
	if body := readText(t, out); !strings.Contains(body, "KH-EXPORT-1") || strings.Contains(body, "13812345678") || strings.Contains(body, "李明") {
		t.Errorf("masked export:\n%s", body)
	}
	for _, refused := range [][]string{
		append(base, "--unmasked"),
		append(base, "--unmasked", "--token-file", writeFile(t, dir, "reader", reader)),
		append(base, "--unmasked", "--token-file", writeFile(t, dir, "wrong", "not-a-token")),
	} {
		if err := run(ctx, refused); err == nil {
			t.Errorf("%q: an unmasked export without an admin token was allowed", refused[len(refused)-2:])
		}
	}
	if n := disclosures(t, db, "auditor-wang"); n != 0 {
		t.Fatalf("disclosures before any unmasked export: %d", n)
	}
	if err := run(ctx, append(base, "--unmasked", "--token-file", writeFile(t, dir, "admin", admin+"\n"))); err != nil {
		t.Fatal(err)
	}
	if body := readText(t, out); !strings.Contains(body, "13812345678") || !strings.Contains(body, "李明") {
		t.Errorf("unmasked export:\n%s", body)
	}
	if n := disclosures(t, db, "auditor-wang"); n != 1 {
		t.Errorf("disclosures of the unmasked export: %d, want 1", n)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func disclosures(t *testing.T, db *testenv.DB, who string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM disclosures WHERE who = $1 AND endpoint = $2 AND customer = 'KH-EXPORT-1'",
		who, exportEndpoint).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
