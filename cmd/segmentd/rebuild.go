package main

import (
	"context"
	"fmt"
	"os"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// rebuild drops every projection and replays the log (SPEC §7).
func rebuild(ctx context.Context, args []string) error {
	cfg, err := loadConfig(newFlagSet("rebuild", "[flags]\n\nDrop every projection and replay the whole event log with the rules file."), args, rulesFlag, logLevelFlag)
	if err != nil {
		return err
	}
	log, err := newLogger(&cfg, os.Stderr)
	if err != nil {
		return err
	}
	book, err := loadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	pool, err := eventstore.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	proj := projections.New(projections.Config{Pool: pool, Rules: book, Logger: log})
	// A rules file that disagrees with the versions in force would rewrite
	// history: refused, like at serve's start.
	if _, err := proj.RegisterRules(ctx); err != nil {
		return err
	}
	st, err := proj.Rebuild(ctx)
	if err != nil {
		return err
	}
	rate := 0.0
	if st.Took > 0 {
		rate = float64(st.Events) / st.Took.Seconds()
	}
	fmt.Printf("rebuilt %d customers from %d events in %s (%.0f events/s): %d label changes; corrections published: %d added, %d retracted\n",
		st.Customers, st.Events, st.Took.Round(1e6), rate, st.Changes, st.NewChanges, st.Retracted)
	return nil
}
