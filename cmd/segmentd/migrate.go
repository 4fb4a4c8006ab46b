package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/segments-dev/segments/eventstore"
)

func migrate(ctx context.Context, args []string) error {
	sub := "up"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	fs := newFlagSet("migrate", "[up|list|validate]\n\nup (default): create the database if needed and apply migrations; list: each\nmigration and when it was applied; validate: fail if one is pending or changed.")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if sub != "up" && sub != "list" && sub != "validate" {
		return usageErrorf(fs, "unknown migrate command %q (want up, list or validate)", sub)
	}
	pool, err := eventstore.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "up":
		applied, err := eventstore.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Println("database is up to date")
		}
		for _, v := range applied {
			fmt.Printf("applied migration %04d\n", v)
		}
		return nil
	case "list", "validate":
		migrations, applied, err := eventstore.MigrationStatus(ctx, pool)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS") // tabwriter buffers; Flush reports errors
		bad := 0
		for _, m := range migrations {
			a, ok := applied[m.Version]
			status := "pending"
			switch {
			case ok && a.Checksum != m.Checksum:
				status, bad = "CHANGED since applied", bad+1
			case ok:
				status = "applied " + a.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
			default:
				bad++
			}
			_, _ = fmt.Fprintf(tw, "%04d\t%s\t%s\n", m.Version, m.Name, status)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("print migrations: %w", err)
		}
		if sub == "validate" && bad > 0 {
			return errors.New("migrations are pending or changed")
		}
	}
	return nil
}
