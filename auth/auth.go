// Package auth holds the API's bearer tokens: a file of "name scopes hash"
// lines (only SHA-256 hashes of the secrets are ever stored), generation of
// new tokens, and the check of a request's token against a required scope.
package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
)

// Scope is a permission of a token (SPEC §6).
type Scope string

// Scopes. Admin implies every other scope.
const (
	ScopeIngest Scope = "ingest" // POST events
	ScopeRead   Scope = "read"   // customers, segments, alerts
	ScopeAudit  Scope = "audit"  // events, history, as_of, verify, replay
	ScopeAdmin  Scope = "admin"  // unmasked personal data, rules
)

// AllScopes lists the scopes.
var AllScopes = []Scope{ScopeIngest, ScopeRead, ScopeAudit, ScopeAdmin}

// Errors callers branch on.
var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("a bearer token is required")
	// ErrBadToken: the token matches no configured token.
	ErrBadToken = errors.New("the bearer token is not valid")
	// ErrScope: the token lacks the scope the request needs.
	ErrScope = errors.New("the token lacks the required scope")
)

// Token is one configured token (the secret itself is never kept).
type Token struct {
	Name   string
	Scopes []Scope
	hash   [sha256.Size]byte
}

// Has reports whether the token grants scope s.
func (t *Token) Has(s Scope) bool {
	return slices.Contains(t.Scopes, ScopeAdmin) || slices.Contains(t.Scopes, s)
}

// Set is the configured tokens. The zero Set has none: the API is then open
// and must only listen on loopback.
type Set struct {
	tokens []Token
}

// Empty reports whether no token is configured.
func (s *Set) Empty() bool { return s == nil || len(s.tokens) == 0 }

// Len is the number of tokens.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.tokens)
}

// Parse reads a tokens file: one token per line, "name scopes sha256hex",
// scopes comma-separated; blank lines and # comments are ignored.
func Parse(r io.Reader) (*Set, error) {
	set := &Set{}
	sc := bufio.NewScanner(r)
	names := map[string]bool{}
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("tokens line %d: want \"name scopes sha256-hash\"", line)
		}
		t := Token{Name: f[0]}
		if names[t.Name] {
			return nil, fmt.Errorf("tokens line %d: name %q used twice", line, t.Name)
		}
		names[t.Name] = true
		for _, sc := range strings.Split(f[1], ",") {
			s := Scope(sc)
			if !slices.Contains(AllScopes, s) {
				return nil, fmt.Errorf("tokens line %d: unknown scope %q (want ingest, read, audit or admin)", line, sc)
			}
			t.Scopes = append(t.Scopes, s)
		}
		h, err := hex.DecodeString(f[2])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("tokens line %d: the hash must be 64 hex digits (sha256 of the secret)", line)
		}
		copy(t.hash[:], h)
		set.tokens = append(set.tokens, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return set, nil
}

// Hash is the hex SHA-256 of a secret, as the tokens file holds it.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// New generates a token: the secret to hand out once, and its file line.
func New(name string, scopes []Scope) (secret, line string, err error) {
	// Parse splits lines with strings.Fields (any Unicode space), so a name
	// with any space would not read back as the same token.
	if name == "" || strings.ContainsRune(name, '#') || strings.ContainsFunc(name, unicode.IsSpace) {
		return "", "", errors.New("token name must be non-empty without spaces or #")
	}
	if len(scopes) == 0 {
		return "", "", errors.New("at least one scope is required")
	}
	parts := make([]string, len(scopes))
	for i, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return "", "", fmt.Errorf("unknown scope %q", s)
		}
		parts[i] = string(s)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	secret = "seg_" + base64.RawURLEncoding.EncodeToString(raw)
	return secret, name + " " + strings.Join(parts, ",") + " " + Hash(secret), nil
}

// Authenticate finds the token of an Authorization header value and checks
// it grants scope. The comparison is constant-time over every configured
// token, so timing does not reveal how close a guess was.
func (s *Set) Authenticate(header string, scope Scope) (*Token, error) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, ErrNoToken
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	var found *Token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].hash[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	if found == nil {
		return nil, ErrBadToken
	}
	if !found.Has(scope) {
		return found, ErrScope
	}
	return found, nil
}

// ParseScopes reads "read,audit".
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(AllScopes, Scope(p)) {
			return nil, fmt.Errorf("unknown scope %q (want ingest, read, audit or admin)", p)
		}
		out = append(out, Scope(p))
	}
	return out, nil
}
