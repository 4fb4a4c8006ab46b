package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/fixturegen"
	"github.com/segments-dev/segments/internal/testenv"
)

func upload(t *testing.T, e *apiEnv, filename string, content []byte) response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/v1/imports", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.obj); err != nil {
		t.Fatalf("POST /v1/imports: not a JSON object: %v\n%s", err, raw)
	}
	return r
}

// errorField is the field named by an error response.
func errorField(r response) string {
	e, _ := r.obj["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

func TestAnUploadedSpreadsheetIsImportedAndItsProgressAndReportCanBeRead(t *testing.T) {
	e := newAPI(t, func(c *httpapi.Config) {
		c.Imports = &importer.Service{Dir: t.TempDir(), Store: c.Store, Location: cst, Now: c.Now, Logger: testenv.Logger(t)}
	})
	path := filepath.Join(t.TempDir(), "客户信息.csv")
	if err := fixturegen.WriteCSV(path, 5, true, false); err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := upload(t, e, "客户信息.csv", content)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /v1/imports: %d %s", r.status, r.raw)
	}
	id, _ := r.obj["import_id"].(string)
	var st response
	for deadline := time.Now().Add(time.Minute); ; {
		st = e.do(http.MethodGet, "/v1/imports/"+id, nil)
		if st.status != http.StatusOK || st.obj["state"] != importer.JobRunning || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.status != http.StatusOK || st.obj["state"] != importer.JobDone {
		t.Fatalf("GET /v1/imports/%s: %d %s", id, st.status, st.raw)
	}
	sum, _ := st.obj["summary"].(map[string]any)
	if sum["rows_read"] != float64(11) || sum["rows_rejected"] != float64(1) || st.obj["rows_done"] != st.obj["rows_total"] {
		t.Errorf("summary %s", st.raw)
	}
	if rep, _ := st.obj["report"].([]any); len(rep) < len(fixturegen.BadRows) {
		t.Errorf("report %s", st.raw)
	}
	// The same file again is the same import.
	if again := upload(t, e, "copy.csv", content); again.status != http.StatusAccepted || again.obj["import_id"] != id {
		t.Errorf("re-upload: %d %s", again.status, again.raw)
	}
	if bad := upload(t, e, "picture.xlsx", []byte("\x89PNG\r\n\x1a\n\x00\x00")); bad.status != http.StatusUnprocessableEntity || errorField(bad) != "file" {
		t.Errorf("a picture: %d %s", bad.status, bad.raw)
	}
	if nf := e.do(http.MethodGet, "/v1/imports/nope", nil); nf.status != http.StatusNotFound {
		t.Errorf("unknown import: %d", nf.status)
	}
}
