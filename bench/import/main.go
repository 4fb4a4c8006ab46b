// Command import measures `segmentd import` of a large workbook (SPEC §10,
// issue 19): it writes an N-row XLSX in the seeds' layout (fixturegen,
// streamed), appends the events of the same rows straight through the
// store in batches of 500 (the reference: no file, no per-row requests),
// then imports the file into a fresh database in a child process, whose
// peak RSS (getrusage) is the importer's memory.
//
//	go run ./bench/import -rows 1000000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/privacy"
)

const childEnv = "SEGMENTS_BENCH_IMPORT_CHILD"

func main() {
	pg := flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database URL (loopback)")
	rows := flag.Int("rows", 1_000_000, "customer rows in the workbook")
	batch := flag.Int("batch", 500, "events per request of the reference")
	clients := flag.Int("clients", 4, "concurrent requests of the reference")
	workers := flag.Int("workers", 0, "importer workers (0: the importer's default)")
	dir := flag.String("dir", os.TempDir(), "where the workbook is written")
	keep := flag.Bool("keep", false, "keep the scratch databases")
	cpuProfile := flag.String("cpuprofile", "", "write the import child's CPU profile here")
	flag.Parse()
	ctx := context.Background()
	if os.Getenv(childEnv) != "" {
		if err := child(ctx, flag.Arg(0), flag.Arg(1), *workers, *cpuProfile); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(ctx, *pg, *dir, *rows, *batch, *clients, *workers, *cpuProfile, *keep); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, pg, dir string, rows, batch, clients, workers int, cpuProfile string, keep bool) error {
	dbs, err := loadkit.OpenDatabases(ctx, pg, "segimport_", keep, log.Printf)
	if err != nil {
		return err
	}
	defer dbs.Close(ctx)
	fmt.Printf("import benchmark: %d rows, %s\n", rows, loadkit.Calibration())
	path := filepath.Join(dir, fmt.Sprintf("segments-bench-import-%d.xlsx", os.Getpid()))
	defer func() { _ = os.Remove(path) }()
	defer func() { _ = os.Remove(importer.DefaultReportPath(path)) }()
	if err := generate(path, rows); err != nil {
		return err
	}
	ref, err := reference(ctx, dbs, path, rows, batch, clients)
	if err != nil {
		return err
	}
	imp, err := importInChild(ctx, dbs, path, workers, cpuProfile)
	if err != nil {
		return err
	}
	refRate := float64(ref.events) / ref.took.Seconds()
	impRate := float64(imp.EventsStored) / imp.took.Seconds()
	fmt.Printf("reference: %d events in %s = %s events/s (%d requests of ≤%d events, %d clients; conversion %s of it)\n",
		ref.events, ref.took.Round(time.Millisecond), loadkit.Grouped(refRate), ref.requests, batch, clients, ref.convert.Round(time.Millisecond))
	fmt.Printf("import:    %d events in %s = %s events/s, %s rows/s; peak RSS %d MiB; importer CPU %s\n",
		imp.EventsStored, imp.took.Round(time.Millisecond), loadkit.Grouped(impRate),
		loadkit.Grouped(float64(imp.RowsRead)/imp.took.Seconds()), imp.maxRSS>>20, imp.cpu.Round(time.Millisecond))
	fmt.Printf("summary:   %+v\n", imp.Summary)
	verdict := "met"
	if impRate < refRate/2 {
		verdict = "MISSED"
	}
	memory := "met"
	if imp.maxRSS > 300<<20 {
		memory = "MISSED"
	}
	fmt.Printf("ratio %.0f %% of the reference (target ≥ 50 %%: %s); RSS %d MiB (target ≤ 300: %s)\n",
		100*impRate/refRate, verdict, imp.maxRSS>>20, memory)
	if ref.events != int64(imp.EventsStored) {
		fmt.Printf("WARNING: the reference stored %d events, the import %d\n", ref.events, imp.EventsStored)
	}
	return nil
}

func generate(path string, rows int) error {
	start := time.Now()
	if err := fixturegenWrite(path, rows); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Printf("workbook:  %s, %d MiB, written in %s\n", path, st.Size()>>20, time.Since(start).Round(time.Millisecond))
	return nil
}

// openStore migrates a fresh database and opens a store on it.
func openStore(ctx context.Context, url string) (*eventstore.Store, *pgxpool.Pool, error) {
	pool, err := eventstore.Connect(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	if _, err := eventstore.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	key, err := privacy.NewMasterKey(make([]byte, 32))
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	store, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool, nil
}

type imported struct {
	importer.Summary
	took   time.Duration
	cpu    time.Duration // the child's user and system time
	maxRSS int64
}

// importInChild runs the import in a child process so that its peak RSS
// is the importer's alone.
func importInChild(ctx context.Context, dbs *loadkit.Databases, path string, workers int, cpuProfile string) (imported, error) {
	name := dbs.NewName()
	cmd := exec.CommandContext(ctx, os.Args[0], "-workers", strconv.Itoa(workers), "-cpuprofile", cpuProfile, path, dbs.URLFor(name)) // #nosec G204 G702 -- this program, re-executed
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	if err != nil {
		return imported{}, fmt.Errorf("import child: %w", err)
	}
	var res imported
	if err := json.Unmarshal(out, &res.Summary); err != nil {
		return imported{}, fmt.Errorf("import child said %q: %w", out, err)
	}
	res.took = took
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = ru.Maxrss << 10 // KiB on Linux
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return res, nil
}

// child imports path into the database at url and prints the summary.
func child(ctx context.Context, path, url string, workers int, cpuProfile string) error {
	if cpuProfile != "" {
		f, err := os.Create(filepath.Clean(cpuProfile))
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	store, pool, err := openStore(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer store.Close()
	sum, err := importer.Run(ctx, importer.Options{Path: path, Store: store, Workers: workers, Location: time.UTC,
		Progress: importer.NewLineProgress(os.Stderr, 10*time.Second)})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(sum)
}
