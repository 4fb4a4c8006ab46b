package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/segments-dev/segments/auth"
)

// hashOf is the SHA-256 hex of a secret, computed independently of auth.Hash.
func hashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func TestHashIsSHA256Hex(t *testing.T) {
	t.Parallel()
	// The well-known digest of "abc" (FIPS 180-2, appendix B.1).
	if got, want := auth.Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
	for _, s := range []string{"", "seg_x", "密钥", strings.Repeat("a", 1000)} {
		got := auth.Hash(s)
		if got != hashOf(s) || len(got) != 64 || strings.ToLower(got) != got {
			t.Errorf("Hash(%q) = %s, want lowercase hex %s", s, got, hashOf(s))
		}
	}
}

func TestParseGoodLines(t *testing.T) {
	t.Parallel()
	file := "# Segments API tokens\n" +
		"\n" +
		"   # an indented comment\n" +
		"crm ingest " + hashOf("s1") + "\n" +
		"  dashboard\tread,audit   " + hashOf("s2") + "  \n" +
		"root admin " + strings.ToUpper(hashOf("s3")) + "\r\n" +
		"\t\n"
	set, err := auth.Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 || set.Empty() {
		t.Fatalf("Len = %d, Empty = %v; want 3 tokens", set.Len(), set.Empty())
	}
	for _, c := range []struct {
		secret string
		name   string
		scopes []auth.Scope
	}{
		{"s1", "crm", []auth.Scope{auth.ScopeIngest}},
		{"s2", "dashboard", []auth.Scope{auth.ScopeRead, auth.ScopeAudit}},
		{"s3", "root", []auth.Scope{auth.ScopeAdmin}},
	} {
		tok, err := set.Authenticate("Bearer "+c.secret, c.scopes[0])
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if tok.Name != c.name || !slices.Equal(tok.Scopes, c.scopes) {
			t.Errorf("token %q scopes %v, want %q %v", tok.Name, tok.Scopes, c.name, c.scopes)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"", "\n\n", "# only a comment\n"} {
		set, err := auth.Parse(strings.NewReader(file))
		if err != nil {
			t.Fatalf("Parse(%q): %v", file, err)
		}
		if !set.Empty() || set.Len() != 0 {
			t.Errorf("Parse(%q): %d tokens, want none", file, set.Len())
		}
	}
	var none *auth.Set
	if !none.Empty() || none.Len() != 0 {
		t.Error("a nil Set is not empty")
	}
	if !(&auth.Set{}).Empty() {
		t.Error("the zero Set is not empty")
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	good := "ok read " + hashOf("s") + "\n"
	for _, c := range []struct {
		name, bad string
		line      string
		mention   string
	}{
		{"two fields", "x read", "line 3", "name scopes sha256-hash"},
		{"four fields, the fourth not an owner", "x read " + hashOf("t") + " extra", "line 3", "owner=<name>"},
		{"an empty owner", "x read " + hashOf("t") + " owner=", "line 3", "owner=<name>"},
		{"five fields", "x read " + hashOf("t") + " owner=王经理 extra", "line 3", "name scopes sha256-hash"},
		{"trailing comment", "x read " + hashOf("t") + " # note", "line 3", "name scopes sha256-hash"},
		{"unknown scope", "x read,write " + hashOf("t"), "line 3", `"write"`},
		{"upper-case scope", "x READ " + hashOf("t"), "line 3", `"READ"`},
		{"empty scope", "x read, " + hashOf("t"), "line 3", `""`},
		{"empty scope in the middle", "x read,,audit " + hashOf("t"), "line 3", `""`},
		{"hash not hex", "x read " + strings.Repeat("g", 64), "line 3", "64 hex digits"},
		{"hash too short", "x read " + hashOf("t")[:62], "line 3", "64 hex digits"},
		{"hash too long", "x read " + hashOf("t") + "00", "line 3", "64 hex digits"},
		{"plaintext secret instead of hash", "x read seg_abcdef", "line 3", "64 hex digits"},
		{"duplicate name", "ok audit " + hashOf("t"), "line 3", `"ok"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// The bad line is the third, after a comment and a good line.
			_, err := auth.Parse(strings.NewReader("# tokens\n" + good + c.bad + "\n" + "later read " + hashOf("u") + "\n"))
			if err == nil {
				t.Fatalf("Parse accepted %q", c.bad)
			}
			if !strings.Contains(err.Error(), c.line+":") || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not name %q and %q", err, c.line, c.mention)
			}
		})
	}
}

func TestNewParseRoundTrip(t *testing.T) {
	t.Parallel()
	scopeSets := [][]auth.Scope{
		{auth.ScopeIngest},
		{auth.ScopeRead, auth.ScopeAudit},
		{auth.ScopeAdmin},
		auth.AllScopes,
	}
	var file strings.Builder
	secrets := map[string]string{}
	for i, scopes := range scopeSets {
		name := "token-" + string(rune('a'+i))
		secret, line, err := auth.New(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "seg_") || len(secret) < 40 {
			t.Errorf("secret %q: want seg_ and at least 32 random bytes", secret)
		}
		if strings.Contains(line, secret) {
			t.Errorf("the file line %q holds the secret itself", line)
		}
		if !strings.HasSuffix(line, " "+hashOf(secret)) {
			t.Errorf("line %q does not end with the secret's SHA-256", line)
		}
		if _, dup := secrets[secret]; dup {
			t.Fatal("New returned the same secret twice")
		}
		secrets[secret] = name
		file.WriteString(line + "\n")

		// Each line parses alone, as the helper's output is meant to be used.
		one, err := auth.Parse(strings.NewReader(line))
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		tok, err := one.Authenticate("Bearer "+secret, scopes[0])
		if err != nil || tok.Name != name || !slices.Equal(tok.Scopes, scopes) {
			t.Errorf("round trip of %q: token %+v, err %v", line, tok, err)
		}
	}
	set, err := auth.Parse(strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	for secret, name := range secrets {
		tok, err := set.Authenticate("Bearer "+secret, auth.ScopeIngest)
		if name == "token-b" {
			// read,audit: authenticated, but not for ingest.
			if !errors.Is(err, auth.ErrScope) || tok == nil || tok.Name != name {
				t.Errorf("%s for ingest: token %+v, err %v; want ErrScope", name, tok, err)
			}
			continue
		}
		if err != nil || tok.Name != name {
			t.Errorf("%s: token %+v, err %v", name, tok, err)
		}
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		scopes []auth.Scope
	}{
		{"", []auth.Scope{auth.ScopeRead}},
		{"a b", []auth.Scope{auth.ScopeRead}},
		{"a\tb", []auth.Scope{auth.ScopeRead}},
		{"a\nb", []auth.Scope{auth.ScopeRead}},
		{"a\rb", []auth.Scope{auth.ScopeRead}},
		{"a\vb", []auth.Scope{auth.ScopeRead}},
		{"a\u00a0b", []auth.Scope{auth.ScopeRead}},
		{"a\u3000b", []auth.Scope{auth.ScopeRead}},
		{"#a", []auth.Scope{auth.ScopeRead}},
		{"ok", nil},
		{"ok", []auth.Scope{"write"}},
		{"ok", []auth.Scope{auth.ScopeRead, ""}},
	} {
		if secret, line, err := auth.New(c.name, c.scopes); err == nil {
			t.Errorf("New(%q, %v) = %q, %q; want an error", c.name, c.scopes, secret, line)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	got, err := auth.ParseScopes(" read, audit ,,admin")
	if err != nil || !slices.Equal(got, []auth.Scope{auth.ScopeRead, auth.ScopeAudit, auth.ScopeAdmin}) {
		t.Errorf("ParseScopes = %v, %v", got, err)
	}
	if _, err := auth.ParseScopes("read,root"); err == nil || !strings.Contains(err.Error(), `"root"`) {
		t.Errorf("ParseScopes(read,root) error = %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{}
	var file strings.Builder
	for _, tk := range []struct {
		name   string
		scopes []auth.Scope
	}{
		{"ingester", []auth.Scope{auth.ScopeIngest}},
		{"reader", []auth.Scope{auth.ScopeRead}},
		{"auditor", []auth.Scope{auth.ScopeRead, auth.ScopeAudit}},
		{"root", []auth.Scope{auth.ScopeAdmin}},
	} {
		secret, line, err := auth.New(tk.name, tk.scopes)
		if err != nil {
			t.Fatal(err)
		}
		secrets[tk.name] = secret
		file.WriteString(line + "\n")
	}
	set, err := auth.Parse(strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no or malformed header", func(t *testing.T) {
		t.Parallel()
		for _, h := range []string{
			"", "Bearer", "Bearer ", "Bearer    ", "Bearer\t" + secrets["root"],
			secrets["root"],                     // no scheme
			"Basic " + secrets["root"],          // wrong scheme
			"Token " + secrets["root"],          // wrong scheme
			"Bearer" + secrets["root"],          // no separator
			"XBearer " + secrets["root"],        // wrong prefix
			"Bearer: " + secrets["root"],        // wrong prefix
			"Basic dXNlcjpwYXNzd29yZA==",        // basic credentials
			"Digest username=\"root\", nonce=1", // another scheme
		} {
			tok, err := set.Authenticate(h, auth.ScopeRead)
			if !errors.Is(err, auth.ErrNoToken) || tok != nil {
				t.Errorf("Authenticate(%q) = %+v, %v; want ErrNoToken", h, tok, err)
			}
		}
	})

	t.Run("unknown secret", func(t *testing.T) {
		t.Parallel()
		root := secrets["root"]
		for _, s := range []string{
			"seg_wrong", root[:len(root)-1], root + "x", strings.ToUpper(root), auth.Hash(root),
			hashOf(root), // the stored hash is not the secret
		} {
			tok, err := set.Authenticate("Bearer "+s, auth.ScopeRead)
			if !errors.Is(err, auth.ErrBadToken) || tok != nil {
				t.Errorf("Authenticate(Bearer %q) = %+v, %v; want ErrBadToken", s, tok, err)
			}
		}
	})

	t.Run("scopes", func(t *testing.T) {
		t.Parallel()
		grants := map[string][]auth.Scope{
			"ingester": {auth.ScopeIngest},
			"reader":   {auth.ScopeRead},
			"auditor":  {auth.ScopeRead, auth.ScopeAudit},
			"root":     auth.AllScopes, // admin implies every scope
		}
		for name, granted := range grants {
			for _, scope := range auth.AllScopes {
				tok, err := set.Authenticate("Bearer "+secrets[name], scope)
				if slices.Contains(granted, scope) {
					if err != nil || tok == nil || tok.Name != name {
						t.Errorf("%s for %s: %+v, %v; want granted", name, scope, tok, err)
					}
					continue
				}
				if !errors.Is(err, auth.ErrScope) {
					t.Errorf("%s for %s: err %v, want ErrScope", name, scope, err)
				}
				// The token is still identified (for logs), though refused.
				if tok == nil || tok.Name != name {
					t.Errorf("%s for %s: token %+v", name, scope, tok)
				}
				if tok != nil && tok.Has(scope) {
					t.Errorf("%s.Has(%s) = true", name, scope)
				}
			}
		}
	})

	t.Run("header tolerance", func(t *testing.T) {
		t.Parallel()
		// The scheme is case-insensitive (RFC 9110 §11.1); surrounding
		// spaces around the secret are not part of it.
		for _, h := range []string{
			"Bearer " + secrets["reader"], "bearer " + secrets["reader"], "BEARER " + secrets["reader"],
			"Bearer  " + secrets["reader"] + " ",
		} {
			tok, err := set.Authenticate(h, auth.ScopeRead)
			if err != nil || tok.Name != "reader" {
				t.Errorf("Authenticate(%q) = %+v, %v", h, tok, err)
			}
		}
	})

	t.Run("no tokens configured", func(t *testing.T) {
		t.Parallel()
		empty, err := auth.Parse(strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := empty.Authenticate("Bearer "+secrets["root"], auth.ScopeRead); !errors.Is(err, auth.ErrBadToken) {
			t.Errorf("empty set: %v, want ErrBadToken", err)
		}
	})
}

func TestTokenHas(t *testing.T) {
	t.Parallel()
	admin := auth.Token{Name: "a", Scopes: []auth.Scope{auth.ScopeAdmin}}
	for _, s := range auth.AllScopes {
		if !admin.Has(s) {
			t.Errorf("admin lacks %s", s)
		}
	}
	reader := auth.Token{Name: "r", Scopes: []auth.Scope{auth.ScopeRead}}
	if !reader.Has(auth.ScopeRead) || reader.Has(auth.ScopeAudit) || reader.Has(auth.ScopeAdmin) || reader.Has(auth.ScopeIngest) {
		t.Errorf("reader scopes wrong")
	}
}

func TestOwnerBoundTokensAndTheManageScope(t *testing.T) {
	t.Parallel()
	wang, wangLine, err := auth.NewForOwner("wang", []auth.Scope{auth.ScopeRead}, "王经理")
	if err != nil {
		t.Fatal(err)
	}
	lead, leadLine, err := auth.New("lead", []auth.Scope{auth.ScopeManage})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(wangLine, " owner=王经理") || strings.Contains(leadLine, "owner=") {
		t.Fatalf("lines %q / %q", wangLine, leadLine)
	}
	if _, _, err := auth.NewForOwner("x", []auth.Scope{auth.ScopeRead}, "王 经理"); err == nil {
		t.Error("NewForOwner accepted an owner with a space")
	}
	// An old three-field file stays valid beside the new lines.
	set, err := auth.Parse(strings.NewReader("old read " + hashOf("o") + "\n" + wangLine + "\n" + leadLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := set.Identify(wang)
	if err != nil || w.Name != "wang" || w.Owner != "王经理" || w.Actor() != "王经理" || w.Has(auth.ScopeManage) {
		t.Fatalf("wang: %+v, %v", w, err)
	}
	l, err := set.Authenticate("Bearer "+lead, auth.ScopeRead)
	if err != nil || l.Owner != "" || l.Actor() != "lead" || !l.Has(auth.ScopeManage) || l.Has(auth.ScopeAudit) || l.Has(auth.ScopeIngest) {
		t.Fatalf("lead (manage implies read, nothing else): %+v, %v", l, err)
	}
	if _, err := set.Identify("seg_guess"); !errors.Is(err, auth.ErrBadToken) {
		t.Errorf("unknown secret: %v", err)
	}
	ctx := auth.WithToken(context.Background(), w)
	if auth.FromContext(ctx) != w || auth.FromContext(context.Background()) != nil {
		t.Error("the token does not travel through the context")
	}
}
