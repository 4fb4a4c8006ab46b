package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/segments-dev/segments/privacy"
)

// keyFileName is the keyring file in the data directory (one master key per
// line), used when SEGMENTS_MASTER_KEY is unset.
const keyFileName = "master.key"

// retiredKeyFileName keeps the keys rotation retired (no data key references
// them): segmentd never reads it; it restores backups taken before.
const retiredKeyFileName = "master.key.retired"

// keyring takes SEGMENTS_MASTER_KEY (one or more keys, comma-separated), or
// the keyring file in the data directory, generating it on first start.
func keyring(cfg *config, log *slog.Logger) (*privacy.Keyring, error) {
	if cfg.MasterKey != "" {
		keys, err := privacy.ParseKeys(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("SEGMENTS_MASTER_KEY: %w", err)
		}
		return privacy.NewKeyring(keys...), nil
	}
	path := filepath.Join(cfg.DataDir, keyFileName)
	k, created, err := privacy.LoadOrCreateKeyringFile(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("SEGMENTS_MASTER_KEY is unset: generated a master key; back it up, personal data cannot be read without it", "file", path, "key_id", k.Preferred().ID())
	} else {
		log.Info("SEGMENTS_MASTER_KEY is unset: using the master key file", "file", path, "key_ids", k.IDs())
	}
	return k, nil
}

// existingKeyring takes SEGMENTS_MASTER_KEY or the keyring file in the data
// directory, for commands that only read: they never create a key, since a
// key generated beside an existing log could read nothing of it.
func existingKeyring(cfg *config) (*privacy.Keyring, error) {
	if cfg.MasterKey != "" {
		keys, err := privacy.ParseKeys(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("SEGMENTS_MASTER_KEY: %w", err)
		}
		return privacy.NewKeyring(keys...), nil
	}
	path := filepath.Join(cfg.DataDir, keyFileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) { //nolint:gosec // the operator chooses the data directory
		return nil, fmt.Errorf("no master key: SEGMENTS_MASTER_KEY is unset and %s does not exist (give --data-dir the service's data directory, or set SEGMENTS_MASTER_KEY); this command only reads and never creates a key", path)
	}
	return privacy.OpenKeyringFile(path)
}
