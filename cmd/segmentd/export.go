package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/importer"
)

// exportEndpoint is how an unmasked CLI export appears in the disclosures log.
const exportEndpoint = "segmentd export"

// exportFile runs "segmentd export --format xlsx|csv [--out FILE]
// [--unmasked --token-file F]": every customer in the seeds' customer table
// layout, which `segmentd import` reads back (docs/IMPORT.md, "Export").
func exportFile(ctx context.Context, args []string) error {
	fs := newFlagSet("export", "--format xlsx|csv [--out FILE] [--unmasked --token-file F]\n\nEvery customer in the seeds' customer table layout, which import reads back (docs/IMPORT.md).")
	format := fs.String("format", "xlsx", "xlsx or csv")
	out := fs.String("out", "", "file to write (default: standard output)")
	unmasked := fs.Bool("unmasked", false, "personal data in plaintext (needs --token-file with an admin token; recorded in the disclosures log)")
	tokenFile := fs.String("token-file", "", "file holding an admin token's secret (SEGMENTS_TOKENS must list the token)")
	cfg, err := loadConfig(fs, args, dataDirFlag, logLevelFlag, tokensFlag)
	if err != nil {
		return err
	}
	if *format != string(importer.FormatXLSX) && *format != string(importer.FormatCSV) {
		return usageErrorf(fs, "--format must be xlsx or csv, not %q", *format)
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return err
	}
	o := importer.ExportOptions{Location: loc}
	var who string
	if *unmasked {
		if who, err = exportAdmin(cfg.TokensFile, *tokenFile); err != nil {
			return err
		}
		o.Disclosure = eventstore.Plaintext
	}
	store, closeStore, err := openLogReader(ctx, &cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	o.Disclosed = func(ctx context.Context, customers []domain.CustomerCode) error {
		return store.RecordDisclosures(ctx, who, customers, exportEndpoint)
	}
	w, finish, err := exportTarget(*out)
	if err != nil {
		return err
	}
	var n int
	if *format == string(importer.FormatCSV) {
		n, err = importer.ExportCSV(ctx, store, w, o)
	} else {
		n, err = importer.ExportXLSX(ctx, store, w, o)
	}
	if err := finish(err); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "导出客户 customers exported: %d\n", n)
	return nil
}

// exportAdmin checks the admin token of an unmasked export and returns its
// name (who the disclosures log names). The secret is read from a file, not
// a flag, so it does not show in the process list.
func exportAdmin(tokensFile, secretFile string) (string, error) {
	if tokensFile == "" || secretFile == "" {
		return "", errors.New("--unmasked needs an admin token: --token-file with its secret, and SEGMENTS_TOKENS listing it")
	}
	tokens, err := loadTokens(tokensFile)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Clean(secretFile))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok, err := tokens.Identify(strings.TrimSpace(string(raw)))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if !tok.Has(auth.ScopeAdmin) {
		return "", fmt.Errorf("--token-file: token %q has no admin scope; unmasked exports need one", tok.Name)
	}
	return tok.Name, nil
}

// exportTarget opens the output: a file written beside its final name and
// renamed when complete (a failed export leaves no partial file), or
// standard output.
func exportTarget(path string) (io.Writer, func(error) error, error) {
	if path == "" {
		return os.Stdout, func(err error) error { return err }, nil
	}
	path = filepath.Clean(path)
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.part")
	if err != nil {
		return nil, nil, err
	}
	return f, func(err error) error {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
		return err
	}, nil
}
