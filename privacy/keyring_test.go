package privacy_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/privacy"
)

func mustKey(t *testing.T, b byte) privacy.MasterKey {
	t.Helper()
	k, err := privacy.NewMasterKey(bytes.Repeat([]byte{b}, privacy.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAKeyringFileIsReReadForAKeyItDoesNotHold: a running process whose
// keyring was read before rotation added a key finds that key by its id
// without a restart; an id in neither is ErrUnknownMasterKey (and ErrUnwrap).
func TestAKeyringFileIsReReadForAKeyItDoesNotHold(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "master.key")
	old, next := mustKey(t, 1), mustKey(t, 2)
	if err := privacy.WriteKeyringFile(path, []privacy.MasterKey{old}); err != nil {
		t.Fatal(err)
	}
	running, err := privacy.OpenKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stream := uuid.New()
	wrapped, err := next.Wrap([]byte("0123456789abcdef0123456789abcdef"), stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.WriteKeyringFile(path, []privacy.MasterKey{next, old}); err != nil {
		t.Fatal(err)
	}
	k, err := running.Key(next.ID())
	if err != nil {
		t.Fatalf("Key(new id) after the file gained it: %v", err)
	}
	if _, err := k.Unwrap(wrapped, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := running.Key(mustKey(t, 3).ID()); !errors.Is(err, privacy.ErrUnknownMasterKey) || !errors.Is(err, privacy.ErrUnwrap) {
		t.Fatalf("Key(unknown id): %v; want ErrUnknownMasterKey and ErrUnwrap", err)
	}
	if got := running.IDs(); len(got) != 2 || got[0] != old.ID() {
		t.Fatalf("IDs = %v; want the old key first (as read first), then the new one", got)
	}
}

// TestParseKeysAcceptsOneOrSeveralKeys covers SEGMENTS_MASTER_KEY's forms.
func TestParseKeysAcceptsOneOrSeveralKeys(t *testing.T) {
	t.Parallel()
	a := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	b := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	for _, tc := range []struct {
		in string
		n  int
	}{
		{a, 1}, {a + "\n", 1}, {a + "," + b, 2}, {"# comment\n" + a + "\n" + b + "\n", 2}, {a + ", " + b, 2},
		{"", 0}, {"nonsense", 0}, {a + ",nonsense", 0},
	} {
		keys, err := privacy.ParseKeys(tc.in)
		if len(keys) != tc.n || (err != nil) != (tc.n == 0) {
			t.Errorf("ParseKeys(%q) = %d keys, %v; want %d", tc.in, len(keys), err, tc.n)
		}
	}
}
