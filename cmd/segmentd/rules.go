package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/projections"
)

// rulesCmd runs the rules subcommands: preview.
func rulesCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("rules preview", "FILE [--format text|json]\n\n"+
		"What the latest version of the rules FILE would change if it took effect now (or at its\n"+
		"effective_at, when later): customers per label and tag change (from → to), 20 examples\n"+
		"each with the reason, and the alerts it would raise. Computed on a snapshot of the read\n"+
		"model; nothing is written. FILE must agree with the versions in force.")
	format := fs.String("format", "text", "text or json")
	if len(args) == 0 || args[0] != "preview" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return &usageError{fs: fs, err: flag.ErrHelp}
		}
		return usageErrorf(fs, "unknown rules command (want: segmentd rules preview FILE)")
	}
	args = args[1:]
	var file string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	cfg, err := loadConfig(fs, args, dataDirFlag, logLevelFlag)
	if err != nil {
		return err
	}
	if file == "" {
		return usageErrorf(fs, "a rules file to preview is required")
	}
	if *format != "text" && *format != "json" {
		return usageErrorf(fs, "--format must be text or json")
	}
	cand, err := loadRules(file)
	if err != nil {
		return err
	}
	if err := checkRoutesAgainstRules(cand, cfg.NotifyFile); err != nil {
		return err
	}
	running, err := loadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	pool, err := eventstore.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	proj := projections.New(projections.Config{Pool: pool, Rules: running})
	started := time.Now()
	rep, err := proj.Preview(ctx, cand, time.Now(), previewProgress(os.Stderr))
	if err != nil {
		return err
	}
	took := time.Since(started)
	if *format == "json" {
		return json.MarshalWrite(os.Stdout, rep, jsontext.WithIndent("  "))
	}
	printPreview(os.Stdout, rep, took)
	return nil
}

// previewProgress draws a bar on a terminal and writes a line every 2 s
// otherwise.
func previewProgress(f *os.File) projections.PreviewProgress {
	if term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		return func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(f),
					progressbar.OptionSetDescription("预览 previewing"), progressbar.OptionShowCount(),
					progressbar.OptionSetItsString("customers"), progressbar.OptionShowIts(),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { _, _ = fmt.Fprintln(f) }))
			}
			_ = bar.Set64(done)
		}
	}
	var last time.Time
	return func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= 2*time.Second || done == total {
			last = now
			_, _ = fmt.Fprintf(f, "预览 previewing: %d / %d customers\n", done, total)
		}
	}
}

func printPreview(w io.Writer, rep *projections.PreviewReport, took time.Duration) {
	rate := 0.0
	if took > 0 {
		rate = float64(rep.Customers) / took.Seconds()
	}
	_, _ = fmt.Fprintf(w, "规则版本 %d 取代 %d，于 %s / rule version %d replacing %d at %s\n",
		rep.CandidateVersion, rep.InForceVersion, rep.At, rep.CandidateVersion, rep.InForceVersion, rep.At)
	_, _ = fmt.Fprintf(w, "客户 customers: %d, 将变化 would change: %d (%s, %.0f customers/s)\n\n",
		rep.Customers, rep.CustomersChanged, took.Round(time.Millisecond), rate)
	for _, l := range rep.Labels {
		_, _ = fmt.Fprintf(w, "%s: %d\n", l.Label, l.Customers)
		for _, t := range l.Transitions {
			_, _ = fmt.Fprintf(w, "  %s → %s: %d\n", orNone(t.From), t.To, t.Customers)
		}
		for _, e := range l.Examples {
			_, _ = fmt.Fprintf(w, "    %s  %s → %s  %s\n", e.Customer, orNone(e.From), e.To, e.Reason)
		}
	}
	for _, a := range rep.Alerts {
		_, _ = fmt.Fprintf(w, "alert %s: %d\n", a.Kind, a.Count)
		for _, e := range a.Examples {
			_, _ = fmt.Fprintf(w, "    %s  %s\n", e.Customer, strings.TrimSpace(e.Reason+" "+e.DueAt))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// routedPreviewer previews candidate rules for the API after checking them
// against the notify routes, as the command line does.
type routedPreviewer struct {
	proj       *projections.Projector
	notifyFile string
}

func (p routedPreviewer) Preview(ctx context.Context, cand *domain.RuleBook, now time.Time, progress projections.PreviewProgress) (*projections.PreviewReport, error) {
	if err := checkRoutesAgainstRules(cand, p.notifyFile); err != nil {
		var re *domain.RulesError
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, err
	}
	return p.proj.Preview(ctx, cand, now, progress)
}
