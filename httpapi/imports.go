package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/segments-dev/segments/importer"
)

// Imports is what the import endpoints need; *importer.Service implements it.
type Imports interface {
	Start(ctx context.Context, filename, name string, body io.Reader) (string, error)
	Status(id string) (importer.JobStatus, error)
}

// MaxImportBytes bounds an uploaded spreadsheet.
const MaxImportBytes = 256 << 20

// postImport takes a multipart upload (field "file", optional "name") and
// starts importing it; the answer names the import to poll.
func (a *api) postImport(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxImportBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		a.reject(w, http.StatusBadRequest, apiError{Code: "invalid_body", Field: "file",
			Message: "需要 multipart/form-data 上传，字段 file / a multipart/form-data upload with a field \"file\" is required"})
		return
	}
	name := ""
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.reject(w, http.StatusBadRequest, apiError{Code: "invalid_body", Field: "file", Message: "multipart body cannot be read: " + err.Error()})
			return
		}
		switch part.FormName() {
		case "name":
			b, _ := io.ReadAll(io.LimitReader(part, 200))
			name = string(b)
		case "file":
			id, err := a.cfg.Imports.Start(r.Context(), part.FileName(), name, part)
			if err != nil {
				a.importError(w, err)
				return
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"import_id": id, "status": "/v1/imports/" + id})
			return
		}
	}
	a.reject(w, http.StatusBadRequest, apiError{Code: "required", Field: "file", Message: "字段 file 缺失 / the field \"file\" is required"})
}

func (a *api) importError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		a.reject(w, http.StatusRequestEntityTooLarge, apiError{Code: "too_large", Field: "file", Message: "the file is larger than 256 MiB"})
	case errors.Is(err, importer.ErrNotSpreadsheet), errors.Is(err, importer.ErrEncrypted):
		a.reject(w, http.StatusUnprocessableEntity, apiError{Code: "invalid_file", Field: "file", Message: err.Error()})
	default:
		a.cfg.Logger.Error("import upload failed", "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Code: "internal", Message: "the upload could not be stored"})
	}
}

// getImport shows an import's progress and, once finished, its summary and
// the first lines of its report.
func (a *api) getImport(w http.ResponseWriter, r *http.Request) {
	st, err := a.cfg.Imports.Status(r.PathValue("id"))
	if errors.Is(err, importer.ErrNoImport) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Field: "id", Message: "没有这个导入 / no such import in this process"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}
