package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// RulesPreviewer previews a candidate rules file (projections.Projector).
type RulesPreviewer interface {
	Preview(ctx context.Context, cand *domain.RuleBook, now time.Time, progress projections.PreviewProgress) (*projections.PreviewReport, error)
}

// previewBody is POST /v1/rules/preview's body: the whole rules file as
// text (JSON, as every POST of the API), and an optional name for errors.
type previewBody struct {
	Rules string `json:"rules"`
	File  string `json:"file"`
}

// postRulesPreview answers what the latest version of a rules file would
// change (SPEC §11), writing nothing. A file that does not parse is a 400
// naming its line and field; one that disagrees with the versions in force
// a 409.
func (a *api) postRulesPreview(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		a.reject(w, http.StatusRequestEntityTooLarge, apiError{Code: "body_too_large", Field: "body", Message: "request body exceeds 1 MiB"})
		return
	}
	var b previewBody
	if err := json.Unmarshal(raw, &b, json.RejectUnknownMembers(true)); err != nil || b.Rules == "" {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidJSON, Field: "rules", Message: `body must be {"rules": "<the rules file as text>", "file": "<optional name>"}`})
		return
	}
	name := b.File
	if name == "" {
		name = "rules"
	}
	cand, err := domain.ParseRulesFile(name, []byte(b.Rules))
	var rep *projections.PreviewReport
	if err == nil {
		rep, err = a.cfg.Rules.Preview(r.Context(), cand, a.cfg.Now(), nil)
	}
	var re *domain.RulesError
	if errors.As(err, &re) {
		a.reject(w, http.StatusBadRequest, apiError{Code: domain.CodeInvalidValue, Field: "rules:" + strconv.Itoa(re.Line) + ":" + re.Path, Message: err.Error()})
		return
	}
	if errors.Is(err, projections.ErrRulesMismatch) {
		a.reject(w, http.StatusConflict, apiError{Code: "rules_mismatch", Field: "rules", Message: err.Error()})
		return
	}
	if err != nil {
		a.readFailed(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
