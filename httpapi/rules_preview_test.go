package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/httpapi"
)

// TestRulesPreviewIsForRuleAuthorsAndRefusesBadRules: an admin previews a
// candidate rules file; a reader may not; a file with a CEL error is a 400
// naming its line and field; one changing the version in force a 409.
func TestRulesPreviewIsForRuleAuthorsAndRefusesBadRules(t *testing.T) {
	t.Parallel()
	s := newSecureAPI(t)
	cfg := s.cfg
	cfg.Rules = s.proj
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	s.srv = srv
	if _, err := s.proj.RegisterRules(t.Context()); err != nil {
		t.Fatal(err)
	}
	body := func(rules string) []byte {
		b, err := json.Marshal(map[string]string{"rules": rules, "file": "candidate.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := strings.TrimRight(string(domain.DefaultRulesYAML()), "\n")
	good := base + "\n  - version: 2\n    effective_at: \"2027-01-01T00:00:00+08:00\"\n    tags:\n      - {name: big, display: 大, when: \"net_amount > yuan(1)\"}\n"
	s.call(http.MethodPost, "/v1/rules/preview", "reader", body(good)).expect(t, http.StatusForbidden)
	r := s.call(http.MethodPost, "/v1/rules/preview", "root", body(good)).expect(t, http.StatusOK)
	if r.obj["candidate_version"] != float64(2) || r.obj["labels"] == nil {
		t.Fatalf("preview %s", r.raw)
	}
	bad := base + "\n  - version: 2\n    effective_at: \"2027-01-01T00:00:00+08:00\"\n    tags:\n      - {name: big, display: 大, when: \"net_amount >\"}\n"
	e := s.call(http.MethodPost, "/v1/rules/preview", "root", body(bad)).expectError(t, http.StatusBadRequest, domain.CodeInvalidValue, "rules:"+
		strconv.Itoa(strings.Count(bad, "\n"))+":$.versions[1].tags[0].when")
	if !strings.Contains(e.Message, "candidate.yaml line ") {
		t.Errorf("message %q does not name the file", e.Message)
	}
	changed := strings.Replace(good, `"500000.00"`, `"400000.00"`, 1)
	s.call(http.MethodPost, "/v1/rules/preview", "root", body(changed)).expectError(t, http.StatusConflict, "rules_mismatch", "rules")
}
