package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/privacy"
)

// rotateMasterKey makes a new master key the log's active key and re-wraps
// every data key with it, while the service runs:
//
//  1. the new key joins the keyring (the data directory's file, which running
//     processes re-read when they meet an unknown key id; with
//     SEGMENTS_MASTER_KEY the operator lists it there on every instance first);
//  2. the log's active key id switches (appends wrap with it from then on);
//  3. data keys are re-wrapped in small transactions (each row's wrapped key
//     and key id change together, so readers always find the right key);
//  4. an older key that no data key references any more is retired, and only
//     then leaves the keyring file.
//
// Interrupted at any step, nothing is unreadable: run it again.
func rotateMasterKey(ctx context.Context, args []string) error {
	fs := newFlagSet("rotate-master-key", "[--new-key K] [flags]\n\nMake a new master key the log's active key and re-wrap every customer data key with it.")
	newKeyText := fs.String("new-key", os.Getenv("SEGMENTS_NEW_MASTER_KEY"), "the new master key (base64 or hex of 32 bytes); generated when empty (only with the key file)")
	cfg, err := loadConfig(fs, args, dataDirFlag, logLevelFlag)
	if err != nil {
		return err
	}
	log, err := newLogger(&cfg, os.Stderr)
	if err != nil {
		return err
	}
	keys, err := keyring(&cfg, log)
	if err != nil {
		return err
	}
	next, err := newMasterKey(&cfg, keys, *newKeyText)
	if err != nil {
		return err
	}
	s, closeStore, err := openStoreWith(ctx, &cfg, keys, log)
	if err != nil {
		return err
	}
	defer closeStore()
	return rotate(ctx, os.Stdout, &cfg, s, keys, next)
}

// newMasterKey parses or generates the key to rotate to. With
// SEGMENTS_MASTER_KEY it must be given and already listed there: running
// instances cannot learn it otherwise.
func newMasterKey(cfg *config, keys *privacy.Keyring, text string) (privacy.MasterKey, error) {
	if text == "" {
		if cfg.MasterKey != "" {
			return privacy.MasterKey{}, errors.New("--new-key is required with SEGMENTS_MASTER_KEY: list the new key in SEGMENTS_MASTER_KEY of every instance (\"old,new\"), restart them, then rotate")
		}
		raw, err := privacy.NewDataKey()
		if err != nil {
			return privacy.MasterKey{}, err
		}
		return privacy.NewMasterKey(raw)
	}
	next, err := privacy.ParseMasterKey(text)
	if err != nil {
		return next, fmt.Errorf("--new-key: %w", err)
	}
	if cfg.MasterKey != "" && !slices.Contains(keys.IDs(), next.ID()) {
		return next, fmt.Errorf("--new-key %s is not in SEGMENTS_MASTER_KEY: list it there on every instance (\"old,new\"), restart them, then rotate", next.ID())
	}
	return next, nil
}

func rotate(ctx context.Context, out io.Writer, cfg *config, s *eventstore.Store, keys *privacy.Keyring, next privacy.MasterKey) error {
	old, err := s.CheckKeyring(ctx)
	if err != nil {
		return err
	}
	keys.Add(next)
	path := filepath.Join(cfg.DataDir, keyFileName)
	if cfg.MasterKey == "" {
		// Written before the switch, so a running process that meets the
		// new id re-reads the file and finds it.
		if err := privacy.WriteKeyringFile(path, append([]privacy.MasterKey{next}, without(keys.Keys(), next.ID())...)); err != nil {
			return err
		}
	}
	if err := s.ActivateMasterKey(ctx, next); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "master key %s is active (was %s): new data keys are wrapped with it\n", next.ID(), old)
	rep, err := s.RewrapKeys(ctx)
	if err != nil {
		return fmt.Errorf("%w (every data key stays readable; run rotate-master-key again to finish)", err)
	}
	_, _ = fmt.Fprintf(out, "re-wrapped %d customer data keys with master key %s; events untouched\n", rep.Rewrapped, rep.Active)
	if len(rep.Remaining) > 0 {
		for id, n := range rep.Remaining {
			_, _ = fmt.Fprintf(out, "master key %s still wraps %d data keys: keep it\n", id, n)
		}
		return errors.New("rotation unfinished: run rotate-master-key again")
	}
	return retireKeys(ctx, out, cfg, s, keys, path)
}

// retireKeys removes the keys the log retired from the keyring file, keeping
// them in the retired file for backups; with SEGMENTS_MASTER_KEY it says
// which keys may leave it.
func retireKeys(ctx context.Context, out io.Writer, cfg *config, s *eventstore.Store, keys *privacy.Keyring, path string) error {
	retired, err := s.RetiredMasterKeys(ctx)
	if err != nil {
		return err
	}
	var keep, drop []privacy.MasterKey
	for _, k := range keys.Keys() {
		if slices.Contains(retired, k.ID()) {
			drop = append(drop, k)
		} else {
			keep = append(keep, k)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	ids := make([]string, len(drop))
	for i, k := range drop {
		ids[i] = k.ID()
	}
	if cfg.MasterKey != "" {
		_, _ = fmt.Fprintf(out, "no data key references master key %s any more: remove it from SEGMENTS_MASTER_KEY (keep it only to restore older backups)\n", strings.Join(ids, ", "))
		return nil
	}
	retiredPath := filepath.Join(cfg.DataDir, retiredKeyFileName)
	if err := appendRetired(retiredPath, drop); err != nil {
		return err
	}
	if err := privacy.WriteKeyringFile(path, keep); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "no data key references master key %s any more: moved from %s to %s (segmentd never reads it; keep it only to restore backups taken before now, then delete it)\n",
		strings.Join(ids, ", "), path, retiredPath)
	return nil
}

func appendRetired(path string, keys []privacy.MasterKey) error {
	var prev []privacy.MasterKey
	if k, err := privacy.OpenKeyringFile(path); err == nil {
		prev = k.Keys()
	} else if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) { //nolint:gosec // G703: the operator names the data directory
		return err
	}
	return privacy.WriteKeyringFile(path, append(prev, keys...))
}

func without(keys []privacy.MasterKey, id string) []privacy.MasterKey {
	return slices.DeleteFunc(keys, func(k privacy.MasterKey) bool { return k.ID() == id })
}
