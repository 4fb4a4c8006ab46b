package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/segments-dev/segments/importer"
)

// importFile runs "segmentd import FILE [--sheet S] [--mapping M] [--dry-run]
// [--name N] [--report R]" (SPEC §10).
func importFile(ctx context.Context, args []string) error {
	fs := newFlagSet("import", "FILE.xlsx|FILE.csv [flags]\n\nBring in the seeds' customer, order and follow-up sheets (docs/IMPORT.md).")
	sheet := fs.String("sheet", "", "import only this sheet of a workbook")
	mappingPath := fs.String("mapping", "", "YAML file naming columns: columns: {表头: field}")
	dryRun := fs.Bool("dry-run", false, "check and report, store nothing")
	name := fs.String("name", "", "the import's id (default: sha256- and 16 hex digits of the file)")
	reportPath := fs.String("report", "", "per-row report CSV (default: FILE.report.csv beside the input)")
	// The file comes before the flags.
	var file string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	cfg, err := loadConfig(fs, args, dataDirFlag, logLevelFlag)
	if err != nil {
		return err
	}
	if file == "" {
		return usageErrorf(fs, "a file to import is required")
	}
	var mapping importer.Mapping
	if *mappingPath != "" {
		if mapping, err = importer.LoadMapping(*mappingPath); err != nil {
			return err
		}
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return err
	}
	opts := importer.Options{Path: file, Sheet: *sheet, Mapping: mapping, Name: *name, DryRun: *dryRun,
		Location: loc, ReportPath: *reportPath, Progress: progressFor(os.Stderr)}
	if !*dryRun {
		store, closeStore, err := openStore(ctx, &cfg)
		if err != nil {
			return err
		}
		defer closeStore()
		opts.Store = store
	}
	sum, err := importer.Run(ctx, opts)
	printSummary(sum)
	return err
}

// progressFor draws a bar on a terminal and writes plain lines otherwise.
func progressFor(f *os.File) importer.Progress {
	if term.IsTerminal(int(f.Fd())) {
		return importer.NewBarProgress(f)
	}
	return importer.NewLineProgress(f, 2*time.Second)
}

func printSummary(s importer.Summary) {
	mode := ""
	if s.DryRun {
		mode = "（试运行，未存储 / dry run, nothing stored）"
	}
	fmt.Printf("导入 %s%s\n  文件 file: %s (%s)\n", s.ImportID, mode, s.File, s.Format)
	fmt.Printf("  读取行 rows read: %d\n  已导入 imported: %d\n  已导入过 skipped as already imported: %d\n  拒绝 rejected: %d\n",
		s.RowsRead, s.RowsImported, s.RowsAlready, s.RowsRejected)
	fmt.Printf("  待补充客户 customers flagged 待补充: %d\n  新事件 events stored: %d\n  报告 report: %s (%d lines)\n",
		s.NeedsCompletion, s.EventsStored, s.ReportPath, s.Problems)
}
