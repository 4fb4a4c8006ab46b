package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/segments-dev/segments/privacy"
)

// rotateMasterKey re-wraps every customer's data key with a new master key.
// With the key in the data directory's key file, the file is replaced after
// the database commit (the old key is kept as master.key.old until the
// operator removes it); with SEGMENTS_MASTER_KEY the new key is printed for
// the operator to install.
func rotateMasterKey(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rotate-master-key", flag.ContinueOnError)
	newKeyText := fs.String("new-key", os.Getenv("SEGMENTS_NEW_MASTER_KEY"), "the new master key (base64 or hex of 32 bytes); generated when empty")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	var next privacy.MasterKey
	var nextText string
	if *newKeyText != "" {
		if next, err = privacy.ParseMasterKey(*newKeyText); err != nil {
			return fmt.Errorf("--new-key: %w", err)
		}
		nextText = *newKeyText
	} else {
		raw, err := privacy.NewDataKey()
		if err != nil {
			return err
		}
		nextText = base64.StdEncoding.EncodeToString(raw)
		if next, err = privacy.NewMasterKey(raw); err != nil {
			return err
		}
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	old, err := masterKey(cfg, log)
	if err != nil {
		return err
	}
	s, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	n, err := s.RewrapKeys(ctx, old, next)
	if err != nil {
		return err
	}
	fmt.Printf("re-wrapped %d customer data keys with master key %s (was %s); events untouched\n", n, next.ID(), old.ID())
	if cfg.MasterKey != "" {
		fmt.Println("Set SEGMENTS_MASTER_KEY to the new key before the next start:")
		fmt.Println(nextText)
		return nil
	}
	path := filepath.Join(cfg.DataDir, "master.key")
	if err := os.Rename(path, path+".old"); err != nil {
		return fmt.Errorf("keep the old key file: %w", err)
	}
	if err := os.WriteFile(path, []byte(nextText+"\n"), 0o600); err != nil { //nolint:gosec // the operator chooses the data directory
		return fmt.Errorf("write the new key file (the old one is %s.old): %w", path, err)
	}
	fmt.Printf("wrote the new key to %s (the old one is %s.old: delete it once backups are rotated)\n", path, path)
	return nil
}
