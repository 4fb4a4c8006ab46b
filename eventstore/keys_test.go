package eventstore_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

// TestAStoreWhoseKeyringLacksTheLogsMasterKeyIsRefused: the first process
// makes its key the log's active key; a second process with another key
// (e.g. one generated into its own data directory) is refused at start, by key
// id only, and cannot append either — nothing it would write is unreadable.
func TestAStoreWhoseKeyringLacksTheLogsMasterKeyIsRefused(t *testing.T) {
	t.Parallel()
	first, db := testenv.Store(t, nil)
	ctx := ctxT(t)
	active, err := first.CheckKeyring(ctx)
	if err != nil || active != testenv.MasterKey(t).ID() {
		t.Fatalf("CheckKeyring on a fresh log = %q, %v; want it to adopt %s", active, err, testenv.MasterKey(t).ID())
	}
	if _, err := first.Append(ctx, req(registered("KH1", "某某科技有限公司", "13812345678", "li.ming@example.com"))); err != nil {
		t.Fatal(err)
	}

	raw := bytes.Repeat([]byte{9}, privacy.KeySize)
	other, err := privacy.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	second, err := eventstore.New(eventstore.Config{Pool: db.Pool, MasterKey: other, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	_, err = second.CheckKeyring(ctx)
	if !errors.Is(err, eventstore.ErrMasterKeyMismatch) {
		t.Fatalf("CheckKeyring with another key: %v; want ErrMasterKeyMismatch", err)
	}
	for _, want := range []string{active, other.ID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name key id %s", err, want)
		}
	}
	if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(raw)) {
		t.Errorf("refusal %q shows the key itself", err)
	}
	before := countEvents(t, first)
	if _, err := second.Append(ctx, req(registered("KH2", "另一家公司", "13900001111", "x@example.com"))); !errors.Is(err, eventstore.ErrMasterKeyMismatch) {
		t.Fatalf("append with another key: %v; want ErrMasterKeyMismatch", err)
	}
	if after := countEvents(t, first); after != before {
		t.Fatalf("the refused append stored %d events", after-before)
	}

	// A keyring holding both keys is accepted: the log's key decides.
	both, err := eventstore.New(eventstore.Config{Pool: db.Pool, Keyring: privacy.NewKeyring(other, testenv.MasterKey(t)), Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(both.Close)
	if got, err := both.CheckKeyring(ctx); err != nil || got != active {
		t.Fatalf("CheckKeyring with both keys = %q, %v; want %s", got, err, active)
	}
}
