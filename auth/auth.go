// Package auth holds the API's bearer tokens: a file of "name scopes hash
// [owner=<name>]" lines (only SHA-256 hashes of the secrets are ever
// stored), generation of new tokens, and the check of a request's token
// against a required scope.
//
// What other packages use of a token's identity is small: Identify (a
// secret → its *Token), Token's Name, Scopes, Owner, Has and Actor, and
// WithToken / FromContext to carry it through a request (the API's bearer
// check and the workbench's session cookie put it there the same way).
package auth

import (
	"bufio"
	"context"
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
	ScopeManage Scope = "manage" // team lead: read, act on any alert, reassign (SPEC §8)
	ScopeRules  Scope = "rules"  // rule authors: preview candidate rules (SPEC §11)
	ScopeAdmin  Scope = "admin"  // unmasked personal data, rules
)

// AllScopes lists the scopes.
var AllScopes = []Scope{ScopeIngest, ScopeRead, ScopeAudit, ScopeManage, ScopeRules, ScopeAdmin}

const scopeList = "ingest, read, audit, manage or admin"

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
	// Owner binds the token to a customer owner (a success manager): it
	// reads only the customers that person owns and the alerts they hold,
	// and acts only on those (SPEC §8). Empty: not bound.
	Owner string
	hash  [sha256.Size]byte
}

// Has reports whether the token grants scope s. Admin implies every scope;
// manage implies read.
func (t *Token) Has(s Scope) bool {
	return slices.Contains(t.Scopes, ScopeAdmin) || slices.Contains(t.Scopes, s) ||
		(s == ScopeRead && slices.Contains(t.Scopes, ScopeManage))
}

// Actor is who the token acts as, recorded as "by" of the alert actions and
// follow-ups it appends: the owner it is bound to, else its name.
func (t *Token) Actor() string {
	if t.Owner != "" {
		return t.Owner
	}
	return t.Name
}

type tokenKey struct{}

// WithToken returns ctx carrying the request's authenticated token.
func WithToken(ctx context.Context, t *Token) context.Context {
	return context.WithValue(ctx, tokenKey{}, t)
}

// FromContext is the token WithToken put in ctx (nil: none, e.g. an API
// without tokens).
func FromContext(ctx context.Context) *Token {
	t, _ := ctx.Value(tokenKey{}).(*Token)
	return t
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
// scopes comma-separated, optionally followed by "owner=<name>" (a name
// without spaces); blank lines and # comments are ignored.
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
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("tokens line %d: want \"name scopes sha256-hash [owner=<name>]\"", line)
		}
		t := Token{Name: f[0]}
		if names[t.Name] {
			return nil, fmt.Errorf("tokens line %d: name %q used twice", line, t.Name)
		}
		names[t.Name] = true
		for _, sc := range strings.Split(f[1], ",") {
			s := Scope(sc)
			if !slices.Contains(AllScopes, s) {
				return nil, fmt.Errorf("tokens line %d: unknown scope %q (want %s)", line, sc, scopeList)
			}
			t.Scopes = append(t.Scopes, s)
		}
		h, err := hex.DecodeString(f[2])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("tokens line %d: the hash must be 64 hex digits (sha256 of the secret)", line)
		}
		copy(t.hash[:], h)
		if len(f) == 4 {
			owner, ok := strings.CutPrefix(f[3], "owner=")
			if !ok || owner == "" {
				return nil, fmt.Errorf("tokens line %d: the fourth field must be owner=<name>", line)
			}
			t.Owner = owner
		}
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
	return NewForOwner(name, scopes, "")
}

// NewForOwner is New for a token bound to a customer owner (none when
// owner is empty).
func NewForOwner(name string, scopes []Scope, owner string) (secret, line string, err error) {
	// Parse splits lines with strings.Fields (any Unicode space), so a name
	// with any space would not read back as the same token.
	if name == "" || strings.ContainsRune(name, '#') || strings.ContainsFunc(name, unicode.IsSpace) {
		return "", "", errors.New("token name must be non-empty without spaces or #")
	}
	if len(scopes) == 0 {
		return "", "", errors.New("at least one scope is required")
	}
	if strings.ContainsRune(owner, '#') || strings.ContainsFunc(owner, unicode.IsSpace) {
		return "", "", errors.New("owner must be without spaces or #")
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
	line = name + " " + strings.Join(parts, ",") + " " + Hash(secret)
	if owner != "" {
		line += " owner=" + owner
	}
	return secret, line, nil
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
	found, err := s.Identify(strings.TrimSpace(secret))
	if err != nil {
		return nil, err
	}
	if !found.Has(scope) {
		return found, ErrScope
	}
	return found, nil
}

// Identify finds the token of a secret (ErrBadToken when none), comparing
// in constant time over every configured token, so timing does not reveal
// how close a guess was.
func (s *Set) Identify(secret string) (*Token, error) {
	h := sha256.Sum256([]byte(secret))
	var found *Token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].hash[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	if found == nil {
		return nil, ErrBadToken
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
			return nil, fmt.Errorf("unknown scope %q (want %s)", p, scopeList)
		}
		out = append(out, Scope(p))
	}
	return out, nil
}
