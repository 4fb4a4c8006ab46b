package privacy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/privacy"
)

func rawKey(fill byte) []byte { return bytes.Repeat([]byte{fill}, privacy.KeySize) }

func masterKey(t *testing.T, fill byte) privacy.MasterKey {
	t.Helper()
	k, err := privacy.NewMasterKey(rawKey(fill))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCipher(t *testing.T, stream uuid.UUID) (*privacy.Cipher, []byte) {
	t.Helper()
	dk, err := privacy.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := privacy.NewCipher(dk, stream)
	if err != nil {
		t.Fatal(err)
	}
	return c, dk
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	t.Parallel()
	mk := masterKey(t, 1)
	stream := uuid.New()
	dk, err := privacy.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(dk) != privacy.KeySize {
		t.Fatalf("data key is %d bytes", len(dk))
	}
	wrapped, err := mk.Wrap(dk, stream)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dk) {
		t.Fatal("wrapped key contains the data key in clear")
	}
	got, err := mk.Unwrap(wrapped, stream)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dk) {
		t.Fatal("unwrapped key differs from the data key")
	}
	// A master key rebuilt from the same bytes unwraps it too.
	if got, err := masterKey(t, 1).Unwrap(wrapped, stream); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("same master key bytes: %v", err)
	}
	// Wrapping twice gives different bytes (fresh nonce), both unwrap.
	again, err := mk.Wrap(dk, stream)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, wrapped) {
		t.Fatal("wrapping the same key twice gave identical bytes")
	}
}

func TestUnwrapFails(t *testing.T) {
	t.Parallel()
	mk := masterKey(t, 1)
	stream := uuid.New()
	dk, _ := privacy.NewDataKey()
	wrapped, err := mk.Wrap(dk, stream)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(wrapped)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name    string
		key     privacy.MasterKey
		wrapped []byte
		stream  uuid.UUID
	}{
		{"another master key", masterKey(t, 2), wrapped, stream},
		{"another stream", mk, wrapped, uuid.New()},
		{"tampered", mk, flipped, stream},
		{"truncated", mk, wrapped[:10], stream},
		{"empty", mk, nil, stream},
	}
	for _, c := range cases {
		got, err := c.key.Unwrap(c.wrapped, c.stream)
		if !errors.Is(err, privacy.ErrUnwrap) || got != nil {
			t.Errorf("%s: Unwrap = %x, %v; want ErrUnwrap", c.name, got, err)
		}
	}
}

func TestMasterKeyID(t *testing.T) {
	t.Parallel()
	a, b := masterKey(t, 1), masterKey(t, 2)
	if a.ID() == "" || a.ID() != masterKey(t, 1).ID() || a.ID() == b.ID() {
		t.Fatalf("ids %q %q: want stable, distinct and non-empty", a.ID(), b.ID())
	}
	if strings.Contains(a.ID(), hex.EncodeToString(rawKey(1))[:16]) {
		t.Fatal("id reveals key bytes")
	}
	if (privacy.MasterKey{}).ID() != "" {
		t.Fatal("zero master key has an id")
	}
}

func TestNewMasterKeyRejectsWrongSizes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := privacy.NewMasterKey(make([]byte, n)); !errors.Is(err, privacy.ErrBadMasterKey) {
			t.Errorf("%d bytes: err = %v, want ErrBadMasterKey", n, err)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	t.Parallel()
	// Bytes whose base64 contains '+' and '/' (std) or '-' and '_' (url).
	raw := make([]byte, privacy.KeySize)
	for i := range raw {
		raw[i] = byte(0xf8 + i%8)
	}
	want, err := privacy.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	std := base64.StdEncoding.EncodeToString(raw)
	url := base64.URLEncoding.EncodeToString(raw)
	if !strings.ContainsAny(std, "+/") || !strings.ContainsAny(url, "-_") || std == url {
		t.Fatalf("test key does not exercise both alphabets: %s %s", std, url)
	}
	for name, s := range map[string]string{
		"base64 std":          std,
		"base64 std unpadded": base64.RawStdEncoding.EncodeToString(raw),
		"base64 url":          url,
		"base64 url unpadded": base64.RawURLEncoding.EncodeToString(raw),
		"hex":                 hex.EncodeToString(raw),
		"HEX":                 strings.ToUpper(hex.EncodeToString(raw)),
		"with whitespace":     "  " + std + "\n",
	} {
		k, err := privacy.ParseMasterKey(s)
		if err != nil {
			t.Errorf("%s %q: %v", name, s, err)
			continue
		}
		if k.ID() != want.ID() {
			t.Errorf("%s: parsed another key", name)
		}
	}
	for name, s := range map[string]string{
		"empty":           "",
		"16 bytes b64":    base64.StdEncoding.EncodeToString(raw[:16]),
		"31 bytes b64":    base64.StdEncoding.EncodeToString(raw[:31]),
		"33 bytes b64":    base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 1)),
		"64 bytes b64":    base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), raw...)),
		"16 bytes hex":    hex.EncodeToString(raw[:16]),
		"31 bytes hex":    hex.EncodeToString(raw[:31]),
		"33 bytes hex":    hex.EncodeToString(append(bytes.Clone(raw), 1)),
		"not an encoding": "this is not a key at all, really not!!",
		"raw 32 chars":    "0123456789abcdef0123456789abcdef",
	} {
		if _, err := privacy.ParseMasterKey(s); !errors.Is(err, privacy.ErrBadMasterKey) {
			t.Errorf("%s %q: err = %v, want ErrBadMasterKey", name, s, err)
		}
	}
}

func TestLoadOrCreateMasterKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secrets", "nested", "master.key")
	first, created, err := privacy.LoadOrCreateMasterKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created || first.ID() == "" {
		t.Fatalf("first call: created=%v id=%q", created, first.ID())
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %v, want 0600", perm)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file holds the key itself, parseable on its own.
	fromFile, err := privacy.ParseMasterKey(string(content))
	if err != nil || fromFile.ID() != first.ID() {
		t.Fatalf("file content does not parse to the created key: %v", err)
	}

	second, created, err := privacy.LoadOrCreateMasterKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created || second.ID() != first.ID() {
		t.Fatalf("second call: created=%v id=%q, want the existing key %q", created, second.ID(), first.ID())
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, content) {
		t.Fatal("loading rewrote the key file")
	}
	// What one wraps the other unwraps.
	stream := uuid.New()
	dk, _ := privacy.NewDataKey()
	wrapped, err := first.Wrap(dk, stream)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := second.Unwrap(wrapped, stream); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("loaded key cannot unwrap what the created key wrapped: %v", err)
	}

	// Another path gets another key.
	other, created, err := privacy.LoadOrCreateMasterKeyFile(filepath.Join(t.TempDir(), "master.key"))
	if err != nil || !created || other.ID() == first.ID() {
		t.Fatalf("second file: created=%v err=%v same id=%v", created, err, other.ID() == first.ID())
	}
}

func TestLoadMasterKeyFileRejectsBadContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(rawKey(3)[:16])), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := privacy.LoadOrCreateMasterKeyFile(path); !errors.Is(err, privacy.ErrBadMasterKey) || created {
		t.Fatalf("short key file: created=%v err=%v, want ErrBadMasterKey", created, err)
	}
	// A bad file is never replaced by a new key.
	if b, _ := os.ReadFile(path); string(b) != base64.StdEncoding.EncodeToString(rawKey(3)[:16]) {
		t.Fatal("bad key file was overwritten")
	}
	// A path that cannot be read for another reason is an error, not a new key.
	dir := t.TempDir()
	if _, created, err := privacy.LoadOrCreateMasterKeyFile(dir); err == nil || created {
		t.Fatalf("directory as key file: created=%v err=%v", created, err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	stream := uuid.New()
	c, dk := newCipher(t, stream)
	for _, pt := range []string{"李明", "13812345678", "li.ming@example.com", "", "+8613812345678", strings.Repeat("长", 1000)} {
		sealed, err := c.Seal("contact.name", pt)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, privacy.SealedPrefix) || !privacy.IsSealed(sealed) {
			t.Fatalf("sealed value %q lacks the %q prefix", sealed, privacy.SealedPrefix)
		}
		if pt != "" && strings.Contains(sealed, pt) {
			t.Fatalf("sealed value contains the plaintext %q", pt)
		}
		got, err := c.Open("contact.name", sealed)
		if err != nil || got != pt {
			t.Fatalf("Open = %q, %v; want %q", got, err, pt)
		}
		// Another cipher over the same key and stream opens it too.
		c2, err := privacy.NewCipher(dk, stream)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c2.Open("contact.name", sealed); err != nil || got != pt {
			t.Fatalf("second cipher: Open = %q, %v", got, err)
		}
	}
}

func TestSealingTwiceGivesDifferentCiphertexts(t *testing.T) {
	t.Parallel()
	c, _ := newCipher(t, uuid.New())
	seen := map[string]bool{}
	for range 20 {
		s, err := c.Seal("contact.phone", "13812345678")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("the same ciphertext %q came out twice", s)
		}
		seen[s] = true
		if got, err := c.Open("contact.phone", s); err != nil || got != "13812345678" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
}

func TestOpenIsBoundToStreamFieldAndKey(t *testing.T) {
	t.Parallel()
	stream := uuid.New()
	c, dk := newCipher(t, stream)
	sealed, err := c.Seal("contact.phone", "13812345678")
	if err != nil {
		t.Fatal(err)
	}
	otherStream, err := privacy.NewCipher(dk, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := newCipher(t, stream)
	body := sealed[len(privacy.SealedPrefix):]
	ct, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	ct[len(ct)-1] ^= 1
	tampered := privacy.SealedPrefix + base64.RawStdEncoding.EncodeToString(ct)

	cases := []struct {
		name   string
		c      *privacy.Cipher
		field  string
		sealed string
	}{
		{"wrong stream (same data key)", otherStream, "contact.phone", sealed},
		{"wrong field", c, "contact.email", sealed},
		{"field name prefix", c, "contact.phon", sealed},
		{"wrong data key", otherKey, "contact.phone", sealed},
		{"tampered ciphertext", c, "contact.phone", tampered},
		{"truncated", c, "contact.phone", sealed[:len(privacy.SealedPrefix)+8]},
		{"bad base64", c, "contact.phone", privacy.SealedPrefix + "!!!"},
		{"prefix only", c, "contact.phone", privacy.SealedPrefix},
	}
	for _, tc := range cases {
		got, err := tc.c.Open(tc.field, tc.sealed)
		if err == nil || got != "" {
			t.Errorf("%s: Open = %q, %v; want an error", tc.name, got, err)
		}
	}
	// The right cipher and field still open it.
	if got, err := c.Open("contact.phone", sealed); err != nil || got != "13812345678" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefusesUnsealedValues(t *testing.T) {
	t.Parallel()
	c, _ := newCipher(t, uuid.New())
	for _, s := range []string{"", "13812345678", "enc:v2:abc", "ENC:V1:abc"} {
		if privacy.IsSealed(s) {
			t.Errorf("IsSealed(%q) = true", s)
		}
		if _, err := c.Open("contact.phone", s); !errors.Is(err, privacy.ErrNotSealed) {
			t.Errorf("Open(%q): err = %v, want ErrNotSealed", s, err)
		}
	}
}

func TestNewCipherRejectsBadKeys(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 7, 33} {
		if _, err := privacy.NewCipher(make([]byte, n), uuid.New()); err == nil {
			t.Errorf("%d-byte data key accepted", n)
		}
	}
}

func TestMaskName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"李明", "李某"},
		{"欧阳娜娜", "欧某"},
		{"李", "李某"},
		{"Li Ming", "L***"},
		{"L", "L***"},
		{"élodie", "é***"},
		{"", ""},
	} {
		if got := privacy.MaskName(c.in); got != c.want {
			t.Errorf("MaskName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"13812345678", "138****5678"},
		{"13800008888", "138****8888"},
		{"+8613812345678", "+861****5678"},
		{"+12025550123", "+120****0123"},
		{"12345678", "123****5678"},
		{"1234567", "*******"},
		{"12345", "*****"},
		{"+12345", "+*****"},
		{"1", "*"},
		{"+", "+"},
		{"", ""},
	} {
		got := privacy.MaskPhone(c.in)
		if got != c.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", c.in, got, c.want)
		}
		// Never more than 7 digits of the original survive.
		kept := 0
		for _, r := range got {
			if r >= '0' && r <= '9' {
				kept++
			}
		}
		if kept > 7 {
			t.Errorf("MaskPhone(%q) keeps %d digits", c.in, kept)
		}
	}
}

func TestMaskEmail(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"li.ming@example.com", "l***@example.com"},
		{"a@b.cn", "a***@b.cn"},
		{"李明@example.com", "李***@example.com"},
		{`"a@b"@example.com`, `"***@example.com`},
		{"li.ming", "***"},
		{"@example.com", "***"},
		{"", "***"},
	} {
		if got := privacy.MaskEmail(c.in); got != c.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMaskRegionKeepsTheFirstTwoCharacters(t *testing.T) {
	for in, want := range map[string]string{"北京市朝阳区": "北京****", "Zhejiang": "Zh****", "上海": "**", "": "", "浙江省杭州市西湖区": "浙江****"} {
		if got := privacy.MaskRegion(in); got != want {
			t.Errorf("MaskRegion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBlindIndexDigestsAreKeyedAndSeparatedByField(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, privacy.KeySize), bytes.Repeat([]byte{2}, privacy.KeySize)
	a, err := privacy.NewBlindIndex(k1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := privacy.NewBlindIndex(k2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Digest("phone", "13800138000"), a.Digest("phone", "13800138000")) {
		t.Error("one key and value gave two digests")
	}
	if bytes.Equal(a.Digest("phone", "13800138000"), b.Digest("phone", "13800138000")) {
		t.Error("two keys gave one digest")
	}
	if bytes.Equal(a.Digest("phone", "13800138000"), a.Digest("name", "13800138000")) {
		t.Error("two fields gave one digest")
	}
	if _, err := privacy.NewBlindIndex(k1[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}
