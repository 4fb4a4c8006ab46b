package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

func keysConfig(t *testing.T, dataDir, dbURL string) *config {
	t.Helper()
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.MasterKey, cfg.EmbeddedNATSAddr = dbURL, "", "127.0.0.1:0"
	return &cfg
}

// TestASecondInstanceWithAnotherGeneratedMasterKeyRefusesToStart: two
// instances on one database, each generating a master key into its own data
// directory: the second refuses to start, naming both key ids.
func TestASecondInstanceWithAnotherGeneratedMasterKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ctx := context.Background()
	first, err := start(ctx, keysConfig(t, t.TempDir(), db.URL), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second, err := start(ctx, keysConfig(t, t.TempDir(), db.URL), testenv.Logger(t))
	if !errors.Is(err, eventstore.ErrMasterKeyMismatch) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second instance with another key: %v; want ErrMasterKeyMismatch", err)
	}
}

// customerLoad appends and reads customers' personal data through two
// running "instances" until stopped, and records every failure.
type customerLoad struct {
	phones   sync.Map // customer code -> phone, once its registration is acknowledged
	codes    chan domain.CustomerCode
	appended atomic.Int64
	read     atomic.Int64
	errs     chan error
}

func (l *customerLoad) appendLoop(ctx context.Context, s *eventstore.Store, prefix string) {
	for i := 0; ctx.Err() == nil; i++ {
		code := domain.CustomerCode(fmt.Sprintf("KH-%s-%d", prefix, i))
		phone := fmt.Sprintf("138%08d", i)
		_, err := s.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{{
			Type: domain.TypeCustomerRegistered, Customer: code,
			Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptrTo("某某科技有限公司"),
				Contact: &domain.Contact{Name: ptrTo("李明"), Phone: ptrTo(phone)}}},
		}}})
		if err != nil {
			if ctx.Err() == nil {
				l.errs <- fmt.Errorf("append %s: %w", code, err)
			}
			return
		}
		l.phones.Store(code, phone)
		l.appended.Add(1)
		select {
		case l.codes <- code:
		default:
		}
	}
}

func (l *customerLoad) readLoop(ctx context.Context, s *eventstore.Store) {
	var known []domain.CustomerCode
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case c := <-l.codes:
			known = append(known, c)
		default:
		}
		if len(known) == 0 {
			time.Sleep(time.Millisecond) // nothing registered yet
			continue
		}
		code := known[i%len(known)]
		if err := checkPhone(ctx, s, code, l); err != nil {
			if ctx.Err() == nil {
				l.errs <- err
			}
			return
		}
		l.read.Add(1)
	}
}

func checkPhone(ctx context.Context, s *eventstore.Store, code domain.CustomerCode, l *customerLoad) error {
	evs, err := s.ReadStream(ctx, code, 0, 1)
	if err != nil || len(evs) != 1 {
		return fmt.Errorf("read %s: %d events, %w", code, len(evs), err)
	}
	pd, err := s.OpenPersonalData(ctx, []uuid.UUID{code.StreamID()})
	if err != nil {
		return fmt.Errorf("open personal data of %s: %w", code, err)
	}
	ev, err := pd.Reveal(evs[0], eventstore.Plaintext)
	if err != nil {
		return fmt.Errorf("reveal %s: %w", code, err)
	}
	want, _ := l.phones.Load(code)
	if got := ev.(*domain.CustomerRegistered).Contact.Phone; got == nil || *got != want {
		return fmt.Errorf("%s: phone %v, want %v", code, got, want)
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

func openTestStore(t *testing.T, db *testenv.DB, keys *privacy.Keyring) *eventstore.Store {
	t.Helper()
	s, err := eventstore.New(eventstore.Config{Pool: db.Pool, Keyring: keys, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestRotatingTheMasterKeyUnderLoadLosesNothing rotates the master key twice
// while two running instances, which started with the first key, register
// customers and read their personal data: no request fails, every customer
// (also those registered during the rotation) reads back with only the
// newest key, and the old keys leave the keyring file only once nothing
// references them, as the command's output says.
func TestRotatingTheMasterKeyUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	cfg := keysConfig(t, dir, db.URL)
	ctx := context.Background()
	log := testenv.Logger(t)
	keysA, err := keyring(cfg, log) // generates the first key
	if err != nil {
		t.Fatal(err)
	}
	first := keysA.Preferred().ID()
	keysB, err := privacy.OpenKeyringFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	a, b := openTestStore(t, db, keysA), openTestStore(t, db, keysB)
	if _, err := a.CheckKeyring(ctx); err != nil {
		t.Fatal(err)
	}

	load := &customerLoad{codes: make(chan domain.CustomerCode, 64), errs: make(chan error, 8)}
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { load.appendLoop(loadCtx, a, "A") })
	wg.Go(func() { load.appendLoop(loadCtx, b, "B") })
	wg.Go(func() { load.readLoop(loadCtx, a) })
	wg.Go(func() { load.readLoop(loadCtx, b) })
	waitFor := func(n int64) {
		t.Helper()
		target := load.appended.Load() + n
		testenv.Eventually(t, 60*time.Second, "appends under load", func() bool {
			return load.appended.Load() >= target || len(load.errs) > 0
		})
	}

	var out strings.Builder
	var ids []string
	for range 2 {
		waitFor(40)
		keysR, err := keyring(cfg, log) // the command's own process
		if err != nil {
			t.Fatal(err)
		}
		next, err := newMasterKey(cfg, keysR, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, next.ID())
		r := openTestStore(t, db, keysR)
		if err := rotate(ctx, &out, cfg, r, keysR, next); err != nil {
			t.Fatalf("rotate: %v\n%s", err, out.String())
		}
	}
	waitFor(40)
	stop()
	wg.Wait()
	close(load.errs)
	for err := range load.errs {
		t.Error(err)
	}
	t.Logf("%d appends, %d reads during two rotations\n%s", load.appended.Load(), load.read.Load(), out.String())

	// A restart with the keyring file alone: only the newest key, and it reads everything.
	fresh, err := privacy.OpenKeyringFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := fresh.IDs(); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("keyring file after rotation holds %v; want only %s", got, ids[1])
	}
	restarted := openTestStore(t, db, fresh)
	if active, err := restarted.CheckKeyring(ctx); err != nil || active != ids[1] {
		t.Fatalf("CheckKeyring after rotation = %q, %v; want %s", active, err, ids[1])
	}
	n := 0
	load.phones.Range(func(k, _ any) bool {
		if err := checkPhone(ctx, restarted, k.(domain.CustomerCode), load); err != nil {
			t.Error(err)
		}
		n++
		return true
	})
	var stale int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customer_keys WHERE master_key_id <> $1", ids[1]).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d data keys not wrapped by the newest key (%v)", stale, err)
	}
	checkBlindIndexAfterRotation(t, db, restarted, ids[1])
	retired, err := privacy.OpenKeyringFile(filepath.Join(dir, retiredKeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(retired.IDs(), ","); got != first+","+ids[0] {
		t.Fatalf("retired key file holds %s; want %s,%s", got, first, ids[0])
	}
	for _, id := range []string{first, ids[0]} {
		if !strings.Contains(out.String(), "no data key references master key "+id+" any more: moved") {
			t.Errorf("the output does not say that %s was retired:\n%s", id, out.String())
		}
	}
	if n < 80 {
		t.Fatalf("only %d customers registered under load", n)
	}
	if fi, err := os.Stat(filepath.Join(dir, keyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestRotationWithTheEnvironmentsKeyNeedsTheNewKeyListedFirst: with
// SEGMENTS_MASTER_KEY, running instances can learn a new key only from their
// environment, so the command refuses a key that is not listed there.
func TestRotationWithTheEnvironmentsKeyNeedsTheNewKeyListedFirst(t *testing.T) {
	t.Parallel()
	oldText := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	newText := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	for _, tc := range []struct {
		env, newKey string
		ok          bool
	}{
		{oldText, "", false},
		{oldText, newText, false},
		{oldText + "," + newText, newText, true},
	} {
		cfg := config{MasterKey: tc.env}
		keys, err := keyring(&cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newMasterKey(&cfg, keys, tc.newKey); (err == nil) != tc.ok {
			t.Errorf("SEGMENTS_MASTER_KEY=%s --new-key=%q: err = %v, want ok %v", tc.env, tc.newKey, err, tc.ok)
		}
	}
}

// checkBlindIndexAfterRotation: the blind-index key was re-wrapped with the
// newest master key, and the digests written under the first one still
// match: a new customer with a loaded customer's phone is flagged.
func checkBlindIndexAfterRotation(t *testing.T, db *testenv.DB, s *eventstore.Store, newest string) {
	t.Helper()
	ctx := context.Background()
	var keyID string
	if err := db.Pool.QueryRow(ctx, "SELECT master_key_id FROM blind_index_key").Scan(&keyID); err != nil || keyID != newest {
		t.Fatalf("blind index key wrapped by %q (%v); want %s", keyID, err, newest)
	}
	res, err := s.Append(ctx, domain.AppendRequest{Events: []domain.Envelope{{
		Type: domain.TypeCustomerRegistered, Customer: "KH-AFTER-ROTATION",
		Data: &domain.CustomerRegistered{Profile: domain.Profile{Name: ptrTo("旋转后新客户有限公司"),
			Contact: &domain.Contact{Phone: ptrTo("+86 138-0000-0000")}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0].PossibleDuplicateOf
	if len(got) != 2 || got[0].Fields[0] != domain.MatchPhone || got[1].Fields[0] != domain.MatchPhone {
		t.Fatalf("registration with the phone of KH-A-0 and KH-B-0 after rotation flagged %+v; want both by phone", got)
	}
}
