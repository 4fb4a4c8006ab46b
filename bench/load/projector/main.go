// Package projectorload is `load projector` (bench/load): it measures the
// projector, rebuild and boundary scheduler of Segments on this machine
// (issues 3 and 4, "Performance"). Usage:
//
//	go run ./bench/load projector -scenario backlog|lag|rebuild|scheduler|all [-cpuprofile DIR]
//
// The scenarios:
//
//   - backlog: 1,000,000 events over 100,000 customers appended through
//     eventstore.Store.Append, then applied by Projector.Apply over batches
//     of 1,000 customers (events/s);
//   - lag: an instance with the publisher role, then one with the projector
//     and scheduler roles (internal/service, as serve runs them) first drain
//     a smaller published backlog (Consume's events/s), then take a steady
//     open-loop 5,000 events/s appended through the second instance while
//     the lag from recorded_at to the label being queryable is measured;
//   - rebuild: Projector.Rebuild over the backlog's 1,000,000-event log, and
//     the raw read of the same columns for comparison;
//   - scheduler: customers whose boundaries come due at ~300/s, Scheduler.Run
//     on the real clock: lateness, idle CPU, memory at two sizes.
//
// It creates its own databases (segments_pload_<random>, dropped WITH
// (FORCE) at the end) and in-process NATS servers (temporary directories),
// only talks to loopback addresses, and bounds every phase in time.
package projectorload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

type options struct {
	scenarios        []string
	pg               string
	events           int
	customers        int
	appendBatch      int
	appendClients    int
	applyBatch       int
	applyWorkers     int
	consumeEvents    int
	consumeCustomers int
	lagRate          float64
	lagDuration      time.Duration
	lagWarmup        time.Duration
	lagSample        int
	lagPoll          time.Duration
	schedSizes       []int
	schedRate        float64
	schedIdle        time.Duration
	schedBusy        time.Duration
	natsSync         bool
	cpuprofile       string
	keep             bool
	tmpDir           string
	maxRun           time.Duration
	quietWait        time.Duration
	consumeWorkers   int
}

var allScenarios = []string{"backlog", "lag", "rebuild", "scheduler"}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("load projector", flag.ContinueOnError)
	scen := fs.String("scenario", "all", "all, or a comma-separated list of: "+strings.Join(allScenarios, ", "))
	defPG := os.Getenv("TEST_DATABASE_URL")
	if defPG == "" {
		defPG = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	fs.StringVar(&o.pg, "pg", defPG, "maintenance connection URL (fresh databases are created beside it)")
	fs.IntVar(&o.events, "events", 1_000_000, "events in the backlog (backlog, rebuild)")
	fs.IntVar(&o.customers, "customers", 100_000, "customers of the backlog")
	fs.IntVar(&o.appendBatch, "append-batch", 1000, "events per Store.Append call while loading")
	fs.IntVar(&o.appendClients, "append-clients", 4, "concurrent Append callers while loading (each owns a share of the customers)")
	fs.IntVar(&o.applyBatch, "apply-batch", 1000, "customers per Projector.Apply call (Consume's MaxBatch)")
	fs.IntVar(&o.applyWorkers, "apply-workers", 2, "concurrent Projector.Apply callers in the backlog scenario (Consume's default workers)")
	fs.IntVar(&o.consumeWorkers, "consume-workers", 0, "Projector.Consume workers in the lag scenario (0: the projector's default)")
	fs.IntVar(&o.consumeEvents, "consume-events", 200_000, "events of the published backlog drained by Consume (lag scenario)")
	fs.IntVar(&o.consumeCustomers, "consume-customers", 20_000, "customers of that backlog (the steady load goes to them too)")
	fs.Float64Var(&o.lagRate, "lag-rate", 5000, "open-loop arrival rate of the steady load (events/s)")
	fs.DurationVar(&o.lagDuration, "lag-duration", 60*time.Second, "measured window of the steady load")
	fs.DurationVar(&o.lagWarmup, "lag-warmup", 5*time.Second, "unmeasured start of the steady load")
	fs.IntVar(&o.lagSample, "lag-sample", 10, "measure the lag of one event in this many")
	fs.DurationVar(&o.lagPoll, "lag-poll", 5*time.Millisecond, "poll interval of customer_projections.version (lag resolution)")
	sizes := fs.String("sched-sizes", "100000,1000000", "customer counts of the scheduler runs (memory is compared across them)")
	fs.Float64Var(&o.schedRate, "sched-rate", 300, "boundaries per second coming due")
	fs.DurationVar(&o.schedIdle, "sched-idle", 20*time.Second, "idle window measured before the first boundary")
	fs.DurationVar(&o.schedBusy, "sched-busy", 120*time.Second, "window of boundaries the scheduler is measured on")
	fs.BoolVar(&o.natsSync, "nats-sync", true, "embedded JetStream with SyncAlways (segmentd's default)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "directory to write one CPU profile per measured phase (<phase>.pprof) and a heap profile at its end (<phase>.heap.pprof)")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases (for inspection)")
	fs.StringVar(&o.tmpDir, "tmpdir", "", "directory for the NATS stores (default: the system's temporary directory)")
	fs.DurationVar(&o.maxRun, "max-run", 60*time.Minute, "hard bound on the whole run")
	fs.DurationVar(&o.quietWait, "quiet-wait", 0, "before each measured phase, wait up to this long for other processes to leave the machine quiet (0: do not wait)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *scen == "all" {
		o.scenarios = allScenarios
	} else {
		for _, s := range strings.Split(*scen, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				return o, fmt.Errorf("-scenario: unknown %q (want all or %s)", s, strings.Join(allScenarios, ", "))
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 {
			return o, fmt.Errorf("-sched-sizes: %q is not a count ≥ 1000", s)
		}
		o.schedSizes = append(o.schedSizes, n)
	}
	if o.customers < 1 || o.events < o.customers || o.consumeEvents < o.consumeCustomers || o.lagSample < 1 || o.lagRate <= 0 || o.schedRate <= 0 {
		return o, errors.New("inconsistent sizes")
	}
	return o, nil
}

// result is one row of the results table.
type result struct {
	scenario, metric, value, unit, target, met string
}

type runner struct {
	o          options
	dbs        *loadkit.Databases
	log        *slog.Logger
	results    []result
	notes      []string
	phaseLines []string
	// backlog is the loaded 1,000,000-event database, kept for rebuild.
	backlog *backlogDB
}

func (r *runner) add(scenario, metric, value, unit, target, met string) {
	r.results = append(r.results, result{scenario, metric, value, unit, target, met})
	fmt.Printf("  → %-10s %-58s %14s %-12s %s %s\n", scenario, metric, value, unit, target, met)
}

func (r *runner) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	fmt.Println("  " + s)
}

// phase accounts CPU, WAL and memory over one measured window, and takes a
// CPU profile of it when -cpuprofile is set.
type phase struct {
	r     *runner
	name  string
	db    string
	start time.Time
	cpu0  loadkit.CPUSnap
	wal0  loadkit.WALSnap
	mem   *memSampler
	prof  *os.File
}

type phaseStats struct {
	took            time.Duration
	cpu             loadkit.CPUUse
	walBytes        int64
	walSyncs        int64
	maxRSS, maxHeap int64
}

func (r *runner) begin(ctx context.Context, name, db string) *phase {
	return r.beginSampling(ctx, name, db, 500*time.Millisecond)
}

// beginSampling is begin with the memory sampling interval given (0: only at
// the start and the end, for idle windows whose CPU is measured).
func (r *runner) beginSampling(ctx context.Context, name, db string, every time.Duration) *phase {
	p := &phase{r: r, name: name, db: db}
	if r.o.cpuprofile != "" {
		f, err := os.Create(filepath.Join(r.o.cpuprofile, name+".pprof")) //nolint:gosec // G304: the operator names the directory
		if err == nil {
			if err := pprof.StartCPUProfile(f); err != nil {
				_ = f.Close()
			} else {
				p.prof = f
			}
		}
	}
	p.mem = startMemSampler(every)
	p.wal0 = r.dbs.WAL(ctx)
	p.cpu0 = loadkit.TakeCPU(r.dbs.Backends(ctx, db))
	p.start = time.Now()
	return p
}

func (p *phase) end(ctx context.Context) phaseStats {
	var st phaseStats
	st.took = time.Since(p.start)
	cpu1 := loadkit.TakeCPU(p.r.dbs.Backends(ctx, p.db))
	// Backends seen only at the end started during the window; those seen
	// only at the start are kept with their start value (no CPU counted).
	st.cpu = loadkit.CPUBetween(p.cpu0, cpu1)
	w := p.r.dbs.WAL(ctx)
	if d := w.Since(p.wal0); d.OK {
		st.walBytes, st.walSyncs = d.Bytes, d.Syncs
	}
	st.maxRSS, st.maxHeap = p.mem.finish()
	if p.prof != nil {
		pprof.StopCPUProfile()
		_ = p.prof.Close()
		// What is live at the end of the phase, beside its CPU profile.
		if f, err := os.Create(filepath.Join(p.r.o.cpuprofile, p.name+".heap.pprof")); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			_ = f.Close()
		}
	}
	fmt.Printf("  [%s] %.1f s; %s; WAL %.0f MiB (cluster-wide); peak RSS %s, peak Go heap in use %s\n",
		p.name, st.took.Seconds(), st.cpu, float64(st.walBytes)/(1<<20), mib(st.maxRSS), mib(st.maxHeap))
	p.r.phaseLines = append(p.r.phaseLines, fmt.Sprintf("%s: %.1f s; %s; peak RSS %s, heap %s",
		p.name, st.took.Seconds(), st.cpu, mib(st.maxRSS), mib(st.maxHeap)))
	return st
}

// waitQuiet waits, up to -quiet-wait, until processes other than this one
// and this run's PostgreSQL backends have used less than busyOther cores
// for five consecutive seconds.
func (r *runner) waitQuiet(ctx context.Context, db string) {
	if r.o.quietWait <= 0 {
		return
	}
	start := time.Now()
	quiet := 0
	prev := loadkit.TakeCPU(r.dbs.Backends(ctx, db))
	for quiet < 5 && time.Since(start) < r.o.quietWait {
		if !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return
		}
		cur := loadkit.TakeCPU(r.dbs.Backends(ctx, db))
		u := loadkit.CPUBetween(prev, cur)
		prev = cur
		if others := u.PG - u.PGMine + u.Other; others < loadkit.BusyOther {
			quiet++
		} else {
			quiet = 0
		}
	}
	if w := time.Since(start); w > 6*time.Second {
		state := "quiet"
		if quiet < 5 {
			state = "still busy, going on"
		}
		fmt.Printf("  (waited %.0f s for a quiet machine: %s)\n", w.Seconds(), state)
	}
}

// stmtReport prints where a phase's wall time went, statement by statement.
func (r *runner) stmtReport(name string, lines []string) {
	if len(lines) == 0 {
		return
	}
	r.phaseLines = append(r.phaseLines, name+": wall time by statement (client side, includes the caller's work on the rows):")
	fmt.Println("  " + name + ": wall time by statement (client side, includes the caller's work on the rows):")
	for _, l := range lines {
		r.phaseLines = append(r.phaseLines, "    "+l)
		fmt.Println("    " + l)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load projector: "+format+"\n", args...)
}

// Main runs the projector command with its arguments (after "projector");
// a signal, or -max-run, ends it early. -h gives flag.ErrHelp.
func Main(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.maxRun)
	defer cancel()
	return run(ctx, &o)
}

func run(ctx context.Context, o *options) error {
	if o.cpuprofile != "" {
		if err := os.MkdirAll(o.cpuprofile, 0o750); err != nil {
			return err
		}
	}
	dbs, err := loadkit.OpenDatabases(ctx, o.pg, "segments_pload_", o.keep, logf)
	if err != nil {
		return err
	}
	defer dbs.Close(ctx)
	r := &runner{o: *o, dbs: dbs, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	r.printEnvironment(ctx)
	start := time.Now()
	var errs []error
	has := func(s string) bool { return slices.Contains(o.scenarios, s) }
	if has("backlog") || has("rebuild") {
		fmt.Println("\n== backlog: 1,000,000 events over 100,000 customers, then the projector applies them ==")
		if err := r.runBacklog(ctx, has("backlog")); err != nil {
			errs = append(errs, fmt.Errorf("backlog: %w", err))
		}
	}
	if has("rebuild") && r.backlog != nil {
		fmt.Println("\n== rebuild: Projector.Rebuild over the backlog's log, and the raw read of it ==")
		if err := r.runRebuild(ctx); err != nil {
			errs = append(errs, fmt.Errorf("rebuild: %w", err))
		}
	}
	if r.backlog != nil {
		r.backlog.close(ctx, r)
		r.backlog = nil
	}
	if has("lag") && ctx.Err() == nil {
		fmt.Println("\n== lag: publisher + Consume drain a published backlog, then a steady open-loop load ==")
		if err := r.runLag(ctx); err != nil {
			errs = append(errs, fmt.Errorf("lag: %w", err))
		}
	}
	if has("scheduler") && ctx.Err() == nil {
		fmt.Println("\n== scheduler: boundaries coming due at ~300/s, Scheduler.Run on the real clock ==")
		if err := r.runScheduler(ctx); err != nil {
			errs = append(errs, fmt.Errorf("scheduler: %w", err))
		}
	}
	r.printResults(time.Since(start))
	return errors.Join(errs...)
}

func (r *runner) printEnvironment(ctx context.Context) {
	fmt.Println("load projector")
	fmt.Printf("  go %s, GOOS/GOARCH %s/%s, GOMAXPROCS %d, NumCPU %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("  cpu: %s; memory: %s\n", loadkit.CPUModel(), loadkit.MemTotal())
	fmt.Printf("  calibration: %s\n", loadkit.Calibration())
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		fmt.Printf("  commit: %s\n", strings.TrimSpace(string(out)))
	}
	var version string
	_ = r.dbs.Admin.QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Printf("  PostgreSQL %s: synchronous_commit=%s shared_buffers=%s fsync=%s wal_level=%s max_wal_size=%s checkpoint_timeout=%s work_mem=%s\n",
		version, r.dbs.Setting(ctx, "synchronous_commit"), r.dbs.Setting(ctx, "shared_buffers"), r.dbs.Setting(ctx, "fsync"),
		r.dbs.Setting(ctx, "wal_level"), r.dbs.Setting(ctx, "max_wal_size"), r.dbs.Setting(ctx, "checkpoint_timeout"), r.dbs.Setting(ctx, "work_mem"))
	fmt.Printf("  scenarios: %s; embedded NATS SyncAlways=%v\n", strings.Join(r.o.scenarios, ","), r.o.natsSync)
	load := loadkit.CPUBetween(loadkit.TakeCPU(nil), func() loadkit.CPUSnap { time.Sleep(2 * time.Second); return loadkit.TakeCPU(nil) }())
	fmt.Printf("  machine before the run (2 s): %s\n", load)
}

func (r *runner) printResults(took time.Duration) {
	fmt.Printf("\n== results (run took %s) ==\n", took.Round(time.Second))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "scenario\tmeasurement\tvalue\tunit\ttarget\tmet")
	for _, x := range r.results {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.scenario, x.metric, x.value, x.unit, x.target, x.met)
	}
	_ = tw.Flush()
	if len(r.phaseLines) > 0 {
		fmt.Println("\nCPU and memory per phase:")
		for _, l := range r.phaseLines {
			fmt.Println("  " + l)
		}
	}
	if len(r.notes) > 0 {
		fmt.Println("\nnotes:")
		for _, n := range r.notes {
			fmt.Println("  - " + n)
		}
	}
}

// freeMemory returns what earlier phases left to the OS, so each phase's
// RSS is its own.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// grouped formats an integer with thousands separators.
var grouped = loadkit.Grouped

func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// cpuCost adds the CPU spent per event in a phase: by this process and by
// this run's PostgreSQL backends. Unlike events/s, it does not depend on
// what else ran on the machine; events / (both) is the rate a sequential
// loop would reach if CPU were its only cost and it had the cores to itself.
func (r *runner) cpuCost(scenario string, st phaseStats, events int64) {
	if !st.cpu.OK || events <= 0 {
		return
	}
	self := 1e6 * st.cpu.SelfSecs / float64(events)
	pg := 1e6 * st.cpu.PGMineSecs / float64(events)
	r.add(scenario, "  CPU per event: this process + this run's PostgreSQL backends", f1(self)+" + "+f1(pg), "µs", "",
		fmt.Sprintf("(CPU-only ceiling on %d cores %s events/s)", runtime.NumCPU(), grouped(float64(runtime.NumCPU())*1e6/(self+pg))))
	if st.cpu.Other > loadkit.BusyOther || st.cpu.PG-st.cpu.PGMine > loadkit.BusyOther {
		r.add(scenario, "  other processes on the machine meanwhile", f2(st.cpu.Other+st.cpu.PG-st.cpu.PGMine), "cores", "", "NOT QUIET")
	}
}

func metIf(ok bool, how string) string {
	if ok {
		return "MET " + how
	}
	return "MISSED " + how
}

// percentile returns the q-quantile (0..1) of sorted values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[min(max(i, 0), len(sorted)-1)]
}
