package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/privacy"
)

// ErrChainBroken: verification found a broken link.
var ErrChainBroken = errors.New("the log's hash chain is broken")

// verify walks the hash chains (all, or one customer's) and prints the
// first broken link per customer; it fails when any is found.
func verify(ctx context.Context, args []string) error {
	var customer string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		customer, args = args[0], args[1:]
	}
	cfg, err := loadConfig(newFlagSet("verify", "[customer] [flags]\n\nWalk the hash chains of the log (all, or one customer's) and report broken links."), args, dataDirFlag, logLevelFlag)
	if err != nil {
		return err
	}
	s, closeStore, err := openLogReader(ctx, &cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	var breaks []eventstore.Break
	if customer != "" {
		if !domain.ValidCustomerCode(customer) {
			return fmt.Errorf("invalid customer code %q", customer)
		}
		b, err := s.VerifyStream(ctx, domain.CustomerCode(customer))
		if err != nil {
			return err
		}
		if b != nil {
			breaks = append(breaks, *b)
		}
		fmt.Printf("customer %s: ", customer)
	} else {
		var checked int64
		if breaks, checked, err = s.VerifyAll(ctx); err != nil {
			return err
		}
		fmt.Printf("%d events checked: ", checked)
	}
	if len(breaks) == 0 {
		fmt.Println("hash chain intact")
		return nil
	}
	fmt.Printf("%d broken chain(s)\n", len(breaks))
	for _, b := range breaks {
		fmt.Printf("  customer %s: first broken link at version %d (position %d): %s\n", b.Customer, b.Version, b.Position, b.Reason)
	}
	return ErrChainBroken
}

// openStore connects, migrates and opens the event store for a command.
func openStore(ctx context.Context, cfg *config) (*eventstore.Store, func(), error) {
	log, err := newLogger(cfg, os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	keys, err := keyring(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return openStoreWith(ctx, cfg, keys, log)
}

// openLogReader opens the event store for a command that only reads (verify,
// replay, export): it names the database it reads, and neither creates nor
// migrates a database nor generates a master key.
func openLogReader(ctx context.Context, cfg *config) (*eventstore.Store, func(), error) {
	log, err := newLogger(cfg, os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	keys, err := existingKeyring(cfg)
	if err != nil {
		return nil, nil, err
	}
	log.Info("reading the log", "database", eventstore.Describe(cfg.DatabaseURL), "data_dir", cfg.DataDir)
	pool, err := eventstore.ConnectExisting(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	s, err := eventstore.New(eventstore.Config{Pool: pool, Keyring: keys, Logger: log})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); pool.Close() }, nil
}

// openStoreWith connects, migrates and opens the event store with a keyring.
func openStoreWith(ctx context.Context, cfg *config, keys *privacy.Keyring, log *slog.Logger) (*eventstore.Store, func(), error) {
	pool, err := eventstore.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	s, err := eventstore.New(eventstore.Config{Pool: pool, Keyring: keys, Logger: log})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); pool.Close() }, nil
}

// token creates bearer tokens.
func token(args []string) error {
	fs := newFlagSet("token", "new --name NAME --scopes ingest,read,audit,manage,admin [--owner NAME]\n\nCreate a bearer token: prints the secret once and the line to add to the SEGMENTS_TOKENS file.")
	name := fs.String("name", "", "the token's name (who uses it; recorded in the disclosure log)")
	scopes := fs.String("scopes", "", "comma-separated scopes: ingest, read, audit, manage, admin (admin implies all, manage implies read)")
	owner := fs.String("owner", "", "bind the token to this customer owner: it reads and acts only on that person's customers and alerts")
	if len(args) == 0 || args[0] != "new" {
		if err := parseFlags(fs, args, false); err != nil {
			return err
		}
		return usageErrorf(fs, "want token new")
	}
	if err := parseFlags(fs, args[1:], false); err != nil {
		return err
	}
	sc, err := auth.ParseScopes(*scopes)
	if err != nil {
		return err
	}
	secret, line, err := auth.NewForOwner(*name, sc, *owner)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "Secret (shown once; give it to the client, it is not stored anywhere):")
	fmt.Fprintln(os.Stderr, "  "+secret)
	fmt.Fprintln(os.Stderr, "Add this line to the SEGMENTS_TOKENS file:")
	fmt.Println(line)
	return nil
}
