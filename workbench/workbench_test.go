package workbench_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/workbench"
)

// bench is a workbench in front of a recording stand-in for the API.
type bench struct {
	srv      *httptest.Server
	secrets  map[string]string
	calls    atomic.Int64
	lastAuth atomic.Value
}

func newBench(t *testing.T, withTokens bool) *bench {
	t.Helper()
	b := &bench{secrets: map[string]string{}}
	var tokens *auth.Set
	if withTokens {
		var lines strings.Builder
		for name, scopes := range map[string][]auth.Scope{"reader": {auth.ScopeRead}, "ingester": {auth.ScopeIngest}} {
			secret, line, err := auth.New(name, scopes)
			if err != nil {
				t.Fatal(err)
			}
			b.secrets[name] = secret
			lines.WriteString(line + "\n")
		}
		var err error
		if tokens, err = auth.Parse(strings.NewReader(lines.String())); err != nil {
			t.Fatal(err)
		}
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		b.lastAuth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusTeapot)
	})
	h, err := workbench.New(workbench.Config{API: api, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// client is a browser-like client with a cookie jar.
func (b *bench) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// reply is a response with its body read.
type reply struct {
	StatusCode int
	Header     http.Header
	cookies    []*http.Cookie
}

func (r reply) Cookies() []*http.Cookie { return r.cookies }

func (b *bench) send(t *testing.T, c *http.Client, method, path, body string, header ...string) (reply, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return reply{StatusCode: res.StatusCode, Header: res.Header, cookies: res.Cookies()}, string(raw)
}

var csrfField = regexp.MustCompile(`"csrf":"([^"]+)"`)

func TestLoginTurnsATokenIntoAnHttpOnlyStrictSessionCookie(t *testing.T) {
	t.Parallel()
	b := newBench(t, true)
	c := b.client(t)
	for _, tc := range []struct {
		body, contentType string
		status            int
		header            []string
	}{
		{`{"token":"seg_nope"}`, "application/json", http.StatusUnauthorized, nil},
		{`{"token":"` + b.secrets["ingester"] + `"}`, "application/json", http.StatusForbidden, nil},
		{`{"token":"` + b.secrets["reader"] + `"}`, "text/plain", http.StatusUnsupportedMediaType, nil},
		{`{"token":"` + b.secrets["reader"] + `"}`, "application/json", http.StatusForbidden, []string{"Origin", "https://evil.example"}},
		{`not json`, "application/json", http.StatusBadRequest, nil},
	} {
		res, body := b.send(t, c, http.MethodPost, "/session", tc.body, append([]string{"Content-Type", tc.contentType}, tc.header...)...)
		if res.StatusCode != tc.status || len(res.Cookies()) != 0 {
			t.Errorf("login %s (%s %v): %d %s, cookies %v; want %d and no cookie", tc.body, tc.contentType, tc.header, res.StatusCode, body, res.Cookies(), tc.status)
		}
		if strings.Contains(body, b.secrets["reader"]) {
			t.Errorf("the answer repeats the token: %s", body)
		}
	}
	if res, _ := b.send(t, c, http.MethodGet, "/session", ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /session before login: %d", res.StatusCode)
	}
	res, body := b.send(t, c, http.MethodPost, "/session", `{"token":"`+b.secrets["reader"]+`"}`, "Origin", b.srv.URL)
	if res.StatusCode != http.StatusOK || len(res.Cookies()) != 1 {
		t.Fatalf("login: %d %s %v", res.StatusCode, body, res.Cookies())
	}
	ck := res.Cookies()[0]
	if ck.Name != workbench.CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Value == b.secrets["reader"] {
		t.Errorf("session cookie %+v", ck)
	}
	if !strings.Contains(body, `"name":"reader"`) || !csrfField.MatchString(body) {
		t.Errorf("identity %s", body)
	}
	if res, body := b.send(t, c, http.MethodGet, "/session", ""); res.StatusCode != http.StatusOK || !strings.Contains(body, `"scopes":["read"]`) {
		t.Errorf("GET /session: %d %s", res.StatusCode, body)
	}
}

func TestSessionRequestsCarryTheTokenAndChangesNeedTheCSRFToken(t *testing.T) {
	t.Parallel()
	b := newBench(t, true)
	c := b.client(t)
	_, body := b.send(t, c, http.MethodPost, "/session", `{"token":"`+b.secrets["reader"]+`"}`)
	csrf := csrfField.FindStringSubmatch(body)[1]

	if res, _ := b.send(t, c, http.MethodGet, "/v1/customers", ""); res.StatusCode != http.StatusTeapot || b.lastAuth.Load() != "Bearer "+b.secrets["reader"] {
		t.Errorf("a session's GET reaches the API with %v (status %d)", b.lastAuth.Load(), res.StatusCode)
	}
	before := b.calls.Load()
	for _, header := range [][]string{nil, {workbench.CSRFHeader, "wrong"}} {
		res, body := b.send(t, c, http.MethodPost, "/v1/alerts/x/ack", `{}`, header...)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":"csrf"`) {
			t.Errorf("POST with CSRF header %v: %d %s, want 403 csrf", header, res.StatusCode, body)
		}
	}
	if b.calls.Load() != before {
		t.Errorf("a request without the CSRF token reached the API")
	}
	if res, _ := b.send(t, c, http.MethodPost, "/v1/alerts/x/ack", `{}`, workbench.CSRFHeader, csrf); res.StatusCode != http.StatusTeapot {
		t.Errorf("POST with the CSRF token: %d", res.StatusCode)
	}
	// An API client with its own token needs no session and no CSRF token.
	plain := &http.Client{}
	if res, _ := b.send(t, plain, http.MethodPost, "/v1/events", `{}`, "Authorization", "Bearer x"); res.StatusCode != http.StatusTeapot || b.lastAuth.Load() != "Bearer x" {
		t.Errorf("bearer client: %d, API saw %v", res.StatusCode, b.lastAuth.Load())
	}
	// Logout needs the CSRF token too, then the cookie no longer works.
	if res, _ := b.send(t, c, http.MethodDelete, "/session", ""); res.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", res.StatusCode)
	}
	if res, _ := b.send(t, c, http.MethodDelete, "/session", "", workbench.CSRFHeader, csrf); res.StatusCode != http.StatusOK {
		t.Errorf("logout: %d", res.StatusCode)
	}
	b.send(t, c, http.MethodGet, "/v1/customers", "")
	if got := b.lastAuth.Load(); got != "" {
		t.Errorf("after logout the API saw %q", got)
	}
}

func TestOpenModeLogsInWithoutAToken(t *testing.T) {
	t.Parallel()
	b := newBench(t, false)
	c := b.client(t)
	if _, body := b.send(t, c, http.MethodGet, "/session", ""); !strings.Contains(body, `"open":true`) {
		t.Errorf("GET /session in open mode before login: %s", body)
	}
	res, body := b.send(t, c, http.MethodPost, "/session", `{}`)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"open":true`) || !strings.Contains(body, `"name":"local"`) {
		t.Fatalf("open-mode login: %d %s", res.StatusCode, body)
	}
	b.send(t, c, http.MethodGet, "/v1/customers", "")
	if got := b.lastAuth.Load(); got != "" {
		t.Errorf("open mode sent Authorization %q", got)
	}
}

// The pages and assets carry a strict Content-Security-Policy, and nothing
// in them needs what it forbids: no inline script, no style attributes, no
// markup built from strings, no eval.
func TestAssetsKeepTheContentSecurityPolicyAndThePageBudget(t *testing.T) {
	t.Parallel()
	b := newBench(t, true)
	c := b.client(t)
	res, page := b.send(t, c, http.MethodGet, "/", "")
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || csp != workbench.ContentSecurityPolicy || strings.Contains(csp, "unsafe") ||
		!strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("GET /: %d, CSP %q", res.StatusCode, csp)
	}
	if regexp.MustCompile(`<script(?:\s+type="module")?>|\sstyle=|\son[a-z]+=`).MatchString(page) {
		t.Errorf("index.html has inline script, a style attribute or an event handler attribute")
	}
	forbidden := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\('style'|\.style\.`)
	total := 0
	err := filepath.WalkDir("assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") || strings.HasSuffix(p, "LICENSE") {
			return err
		}
		url := "/" + filepath.ToSlash(p)
		if p == "assets/index.html" {
			url = "/"
		}
		res, body := b.send(t, c, http.MethodGet, url, "", "Accept-Encoding", "gzip")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: %d %v", url, res.StatusCode, res.Header)
		}
		total += len(body)
		if strings.HasPrefix(p, "assets/js/") {
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if m := forbidden.Find(src); m != nil {
				t.Errorf("%s uses %s", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 300<<10 {
		t.Errorf("the workbench's assets are %d bytes compressed, over 300 KB", total)
	}
	t.Logf("workbench assets: %d bytes compressed", total)
}

// The vendored ECharts is the file its README pins.
func TestVendoredEChartsMatchesItsPinnedChecksum(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("assets/vendor/echarts/README.md")
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("assets/vendor/echarts/echarts.common.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(js)
	if !strings.Contains(string(readme), "sha256: `"+hex.EncodeToString(sum[:])+"`") {
		t.Errorf("echarts.common.min.js has sha256 %x, not the one its README records", sum)
	}
}
