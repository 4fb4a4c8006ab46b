// Package workbench serves the web UI of SPEC §9 at / from embedded assets
// (plain ES modules, no build step) and puts it in front of the API: a
// token login becomes an HttpOnly, SameSite=Strict session cookie; requests
// of a session to /v1/ carry the session's bearer token to the API, and
// state-changing ones must carry the session's CSRF token.
package workbench

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/segments-dev/segments/auth"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every workbench response: scripts,
// styles and connections from this origin only, no inline script or style
// attribute, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// CSRFHeader carries the session's CSRF token on state-changing requests.
const CSRFHeader = "X-CSRF-Token"

// Config configures the workbench.
type Config struct {
	// API serves everything the workbench does not (/v1/, /healthz, …).
	API http.Handler
	// Tokens are the bearer tokens; empty means open mode (loopback only):
	// logging in needs no token and the session carries none.
	Tokens *auth.Set
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL is how long a session lasts (default 12 h).
	SessionTTL time.Duration
}

type workbench struct {
	cfg      Config
	sessions *sessions
	files    map[string]*asset
}

// asset is one embedded file, with its gzip form and entity tag.
type asset struct {
	body, gzipped []byte
	etag, ctype   string
}

// New returns the handler of the whole HTTP interface: the workbench, and
// the API behind it.
func New(cfg Config) (http.Handler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	wb := &workbench{cfg: cfg, sessions: newSessions(cfg.SessionTTL, cfg.Now), files: map[string]*asset{}}
	if err := wb.loadAssets(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", wb.serveIndex)
	mux.HandleFunc("GET /assets/", wb.serveAsset)
	mux.HandleFunc("POST /session", wb.login)
	mux.HandleFunc("GET /session", wb.current)
	mux.HandleFunc("DELETE /session", wb.logout)
	mux.Handle("/", wb.withSession(cfg.API))
	return mux, nil
}

func (wb *workbench) loadAssets() error {
	return fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		wb.files["/"+p] = &asset{body: body, gzipped: gz.Bytes(), etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype}
		return nil
	})
}

// securityHeaders are set on every workbench response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (wb *workbench) serveIndex(w http.ResponseWriter, r *http.Request) {
	wb.serveFile(w, r, wb.files["/assets/index.html"])
}

func (wb *workbench) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := wb.files[r.URL.Path]
	if a == nil {
		securityHeaders(w.Header())
		http.NotFound(w, r)
		return
	}
	wb.serveFile(w, r, a)
}

// serveFile answers with an asset, gzipped when the client accepts it; the
// client revalidates each time (no-cache) and gets 304 while it is current.
func (wb *workbench) serveFile(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = a.gzipped
	}
	_, _ = w.Write(body)
}

// sameOrigin refuses a browser request sent from another origin: an Origin
// header, when present, must name this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin" || r.Header.Get("Sec-Fetch-Site") == "none"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.MarshalWrite(w, v, json.Deterministic(true))
}

func writeError(w http.ResponseWriter, status int, code, field, message string) {
	writeJSON(w, status, map[string]map[string]string{"error": {"code": code, "field": field, "message": message}})
}

// identity is what GET /session tells the page about its user.
type identity struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Owner: the customer owner an owner-bound token reads for (SPEC §8);
	// the inbox and the list are that owner's and cannot be widened.
	Owner string `json:"owner,omitempty"`
	Open  bool   `json:"open"`
	CSRF  string `json:"csrf"`
}

func (wb *workbench) identityOf(ses *session) identity {
	if ses.token == nil {
		return identity{Name: "local", Scopes: []string{"read", "audit"}, Open: true, CSRF: ses.csrf}
	}
	id := identity{Name: ses.token.Name, CSRF: ses.csrf}
	if !ses.token.Has(auth.ScopeManage) {
		id.Owner = ses.token.Owner
	}
	for _, s := range auth.AllScopes {
		if ses.token.Has(s) {
			id.Scopes = append(id.Scopes, string(s))
		}
	}
	return id
}

// login turns a token into a session: POST /session {"token": "…"} (no
// token in open mode). The token travels in the body, never in a URL.
func (wb *workbench) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross_origin", "Origin", "requests from another site are refused")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type", "Content-Type must be application/json")
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	if err == nil && len(bytes.TrimSpace(raw)) > 0 {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_value", "token", "the body must be {\"token\": \"…\"}")
		return
	}
	var tok *auth.Token
	secret := strings.TrimSpace(body.Token)
	if !wb.cfg.Tokens.Empty() {
		tok, err = wb.cfg.Tokens.Authenticate("Bearer "+secret, auth.ScopeRead)
		if tok == nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", "token", "the token is not valid")
			return
		}
		if err != nil && !tok.Has(auth.ScopeAudit) {
			writeError(w, http.StatusForbidden, "forbidden", "token", "the workbench needs a token with scope read or audit")
			return
		}
	} else {
		secret = ""
	}
	id, ses := wb.sessions.create(tok, secret)
	// Secure only when segmentd terminates TLS itself: over plain HTTP
	// (loopback, or behind a TLS proxy) a Secure cookie would never come back.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: Secure follows the connection, see above
		Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(wb.cfg.SessionTTL / time.Second),
	})
	wb.cfg.Logger.Info("workbench login", "token", wb.identityOf(ses).Name)
	writeJSON(w, http.StatusOK, wb.identityOf(ses))
}

func (wb *workbench) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	return wb.sessions.get(c.Value)
}

// current tells the page who is logged in (401 when nobody is).
func (wb *workbench) current(w http.ResponseWriter, r *http.Request) {
	ses := wb.sessionOf(r)
	if ses == nil {
		// open: whether logging in needs a token (the login form asks).
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error": map[string]string{"code": "unauthorized", "message": "not logged in"}, "open": wb.cfg.Tokens.Empty(),
		})
		return
	}
	writeJSON(w, http.StatusOK, wb.identityOf(ses))
}

func (wb *workbench) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(CookieName)
	ses := wb.sessionOf(r)
	if err != nil || ses == nil {
		writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
		return
	}
	if !ses.csrfOK(r.Header.Get(CSRFHeader)) {
		writeError(w, http.StatusForbidden, "csrf", CSRFHeader, "this request needs the session's CSRF token")
		return
	}
	wb.sessions.remove(c.Value)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1, Secure: r.TLS != nil}) //nolint:gosec // G124: clears the cookie; Secure follows the connection as at login
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
}

// withSession lets a session's requests through to the API with its bearer
// token. A request with its own Authorization header is an API client's
// and passes untouched; a session's state-changing request needs the CSRF
// token.
func (wb *workbench) withSession(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			api.ServeHTTP(w, r)
			return
		}
		ses := wb.sessionOf(r)
		if ses == nil {
			api.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !ses.csrfOK(r.Header.Get(CSRFHeader)) {
				writeError(w, http.StatusForbidden, "csrf", CSRFHeader, "this request needs the session's CSRF token")
				return
			}
		}
		if ses.secret != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+ses.secret)
		}
		api.ServeHTTP(w, r)
	})
}
