// Package ingestload is `load ingest` (bench/load): it measures the
// ingestion and publication path of Segments on this machine, in one run,
// beside the raw limit of PostgreSQL:
//
//	go run ./bench/load ingest [-duration 20s] [-scenario all|copy|batch|single|instances|publish|latency|nats-sync]
//
// It creates its own fresh databases (segments_load_<random>, dropped at the
// end) and in-process NATS servers (in temporary directories), starts the
// service in-process as serve does (internal/service, through loadkit) with
// the HTTP API on a 127.0.0.1 TCP listener, and prints a results table. Clients, service, NATS and
// PostgreSQL share the machine's cores. It only talks to loopback addresses
// and every phase is bounded in time (-warmup + -duration) and requests
// (-max-requests).
package ingestload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

type options struct {
	duration         time.Duration
	warmup           time.Duration
	scenario         string
	pg               string
	batchClients     []int
	batchSize        int
	singleClients    int
	insertClients    int
	copyWriters      []int
	copyChunk        int
	customers        int
	backlog          int
	rate             float64
	maxRequests      int64
	keep             bool
	tmpDir           string
	cpuprofile       string
	explain          time.Duration
	analyze          bool
	busyRetries      int
	quietWait        time.Duration
	writers          int
	instances        []int
	instBatch        int
	instBatchClients int
}

var scenarios = []string{"copy", "batch", "single", "instances", "publish", "latency", "nats-sync"}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("load ingest", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured window of each phase")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each window")
	fs.StringVar(&o.scenario, "scenario", "all", "all, or a comma-separated list of: "+strings.Join(scenarios, ", "))
	defPG := os.Getenv("TEST_DATABASE_URL")
	if defPG == "" {
		defPG = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	fs.StringVar(&o.pg, "pg", defPG, "maintenance connection URL (fresh databases are created beside it); default $TEST_DATABASE_URL")
	clients := fs.String("batch-clients", "2,4,8", "concurrent clients tried for batches of -batch-size events")
	fs.IntVar(&o.writers, "writers", 0, "eventstore.Config.Writers: group transactions in flight (0: the store's default)")
	fs.IntVar(&o.batchSize, "batch-size", 500, "events per batch request")
	fs.IntVar(&o.singleClients, "single-clients", 64, "concurrent clients sending single-event requests")
	fs.IntVar(&o.insertClients, "insert-clients", 64, "clients of the single-row INSERT reference")
	writers := fs.String("copy-writers", "1,2", "connections doing COPY in the baseline (the store writes from one); the best is the raw rate")
	fs.IntVar(&o.copyChunk, "copy-chunk", 500, "rows per COPY in the baseline")
	instances := fs.String("instances", "1,2,3", "service instances (each its own pool, store and listener, one database) tried by the instances scenario")
	fs.IntVar(&o.instBatch, "instances-batch", 20, "events per batch request in the instances scenario")
	fs.IntVar(&o.instBatchClients, "instances-batch-clients", 16, "clients sending batches in the instances scenario")
	fs.IntVar(&o.customers, "customers", 100_000, "customer codes events are spread over")
	fs.IntVar(&o.backlog, "backlog", 200_000, "events in the backlog the publisher drains (publish scenario)")
	fs.Float64Var(&o.rate, "latency-rate", 0, "arrival rate (requests/s) of the latency scenario; default half the single-event maximum")
	fs.Int64Var(&o.maxRequests, "max-requests", 5_000_000, "upper bound on requests of one phase")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases (for inspection)")
	fs.StringVar(&o.tmpDir, "tmpdir", "", "directory for the NATS stores (default: the system's temporary directory)")
	fs.BoolVar(&o.analyze, "analyze", true, "ANALYZE the service's database after the warm-up (the statistics autovacuum would have gathered on a live system)")
	fs.IntVar(&o.busyRetries, "busy-retries", 2, "run a scenario again (at most this often) when other processes used the cores during its window")
	fs.DurationVar(&o.quietWait, "quiet-wait", 3*time.Minute, "how long to wait for a quiet machine before each scenario")
	fs.DurationVar(&o.explain, "pg-explain", 0, "diagnosis: log plans of the service's statements slower than this (auto_explain, PostgreSQL's log)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to the file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.batchClients, err = positiveList("-batch-clients", *clients); err != nil {
		return o, err
	}
	if o.copyWriters, err = positiveList("-copy-writers", *writers); err != nil {
		return o, err
	}
	if o.instances, err = positiveList("-instances", *instances); err != nil {
		return o, err
	}
	if o.scenario != "all" {
		for _, s := range strings.Split(o.scenario, ",") {
			if !slices.Contains(scenarios, s) {
				return o, fmt.Errorf("-scenario: unknown %q (want all or %s)", s, strings.Join(scenarios, ", "))
			}
		}
	}
	switch {
	case o.duration <= 0 || o.warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.duration > 10*time.Minute:
		return o, errors.New("-duration is bounded to 10m")
	case o.batchSize < 1 || o.batchSize > 1000:
		return o, errors.New("-batch-size must be 1..1000 (the API's limit)")
	case o.customers < 100:
		return o, errors.New("-customers must be at least 100")
	case o.singleClients < 1 || o.insertClients < 1 || o.insertClients > 90 || o.copyChunk < 1:
		return o, errors.New("client counts must be positive (and -insert-clients at most 90: max_connections)")
	}
	return o, nil
}

func positiveList(flagName, list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("%s: %q is not a number in 1..64", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) runs(s string) bool {
	return o.scenario == "all" || slices.Contains(strings.Split(o.scenario, ","), s)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// Main runs the ingest command with its arguments (after "ingest"); a
// signal ends it early. -h gives flag.ErrHelp.
func Main(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	return run(ctx, &o)
}

func run(ctx context.Context, o *options) error {
	if err := checkStoredData(); err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dbs, err := loadkit.OpenDatabases(ctx, o.pg, "segments_load_", o.keep, logf)
	if err != nil {
		return err
	}
	defer dbs.Close(ctx)
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		loc = cst
	}
	r := &runner{o: o, dbs: dbs, log: newLogger(), loc: loc}
	r.printEnvironment(ctx)
	err = r.runAll(ctx)
	r.printResults()
	return err
}

// runner runs the scenarios and keeps their figures.
type runner struct {
	o    *options
	dbs  *loadkit.Databases
	log  *slog.Logger
	loc  *time.Location
	rows []resultRow
	fig  figures
	sql  []string // SQL time breakdowns of the service phases
}

// figures are the results the targets are judged on.
type figures struct {
	copyRate, insertRate     float64
	copyWriters              int
	batchRate                float64
	batchClients             int
	batchPubIngest           float64
	batchPubRate             float64
	batchPubMaxLag           int64
	batchPubCatchUp          time.Duration
	singleRate               float64
	drainOn, drainOff        float64
	latP50, latP99, latRate  float64
	natsAsyncOn, natsSyncOn  float64
	natsAsyncOff, natsSyncOf float64
	natsBatchOn, natsBatchOf float64
	instanceCurves           []string
}

type resultRow struct {
	id, what, value, notes string
}

func (r *runner) add(id, what, value, notes string) {
	r.rows = append(r.rows, resultRow{id, what, value, notes})
	logf("  => %s %s: %s  (%s)", id, what, value, notes)
}

func (r *runner) runAll(ctx context.Context) error {
	type phase struct {
		name string
		run  func(context.Context) error
	}
	phases := []phase{
		{"copy", r.scenarioCopy},
		{"batch", r.scenarioBatch},
		{"single", r.scenarioSingle},
		{"instances", r.scenarioInstances},
		{"publish", r.scenarioPublish},
		{"latency", r.scenarioLatency},
		{"nats-sync", r.scenarioNATSSync},
	}
	var errs []error
	for _, p := range phases {
		if !r.o.runs(p.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		for attempt := 0; ; attempt++ {
			r.waitQuiet(ctx)
			logf("scenario %s", p.name)
			rows, sql := len(r.rows), len(r.sql)
			err := p.run(ctx)
			if err != nil {
				logf("scenario %s failed: %v", p.name, err)
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
				break
			}
			if attempt >= r.o.busyRetries || !r.busy(r.rows[rows:]) || ctx.Err() != nil {
				break
			}
			logf("scenario %s ran while other processes were busy; running it again", p.name)
			r.rows, r.sql = r.rows[:rows], r.sql[:sql]
		}
	}
	return errors.Join(errs...)
}

func (r *runner) busy(rows []resultRow) bool {
	for _, row := range rows {
		if strings.Contains(row.notes, loadkit.NotQuiet) {
			return true
		}
	}
	return false
}

// waitQuiet waits (up to -quiet-wait) until other processes leave the
// cores alone, so that a phase measures this machine rather than a
// neighbour's job.
func (r *runner) waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(r.o.quietWait)
	for {
		a := loadkit.TakeCPU(nil)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		u := loadkit.CPUBetween(a, loadkit.TakeCPU(nil))
		if !u.OK || u.Other+u.Self+u.PG < 0.2 {
			return
		}
		if time.Now().After(deadline) {
			logf("machine still busy (other processes %.2f cores); measuring anyway", u.Other+u.PG)
			return
		}
		logf("waiting for a quiet machine (other processes %.2f cores)", u.Other+u.PG)
	}
}

func (r *runner) printEnvironment(ctx context.Context) {
	fmt.Println("# load ingest")
	fmt.Println()
	fmt.Printf("- started: %s\n", time.Now().Format(time.RFC3339))
	fmt.Printf("- Go: %s, GOMAXPROCS=%d, NumCPU=%d, %s/%s\n", runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("- CPU: %s; memory: %s; kernel: %s\n", loadkit.CPUModel(), loadkit.MemTotal(), loadkit.ReadTrim("/proc/sys/kernel/osrelease"))
	fmt.Printf("- Calibration: %s\n", loadkit.Calibration())
	fmt.Printf("- PostgreSQL: %s; synchronous_commit=%s, fsync=%s, wal_sync_method=%s, shared_buffers=%s, max_wal_size=%s, commit_delay=%s\n",
		r.dbs.Setting(ctx, "server_version"), r.dbs.Setting(ctx, "synchronous_commit"), r.dbs.Setting(ctx, "fsync"),
		r.dbs.Setting(ctx, "wal_sync_method"), r.dbs.Setting(ctx, "shared_buffers"), r.dbs.Setting(ctx, "max_wal_size"),
		r.dbs.Setting(ctx, "commit_delay"))
	fmt.Printf("- NATS: embedded nats-server %s (natsbus.StartEmbedded; SyncAlways on unless a row says off)\n", natsServerVersion())
	fmt.Printf("- load average at start: %s\n", loadkit.ReadTrim("/proc/loadavg"))
	fmt.Printf("- load: %d customers, OrderPlaced events with event_id and unique order_id; warm-up %s, window %s per phase; ANALYZE after warm-up: %v\n",
		r.o.customers, r.o.warmup, r.o.duration, r.o.analyze)
	fmt.Printf("- eventstore writers (group transactions in flight): %d (0 = default)\n", r.o.writers)
	fmt.Println("- one process holds the HTTP clients, the service (API, store, publisher) and NATS; it shares the cores with PostgreSQL")
	fmt.Println()
}

func (r *runner) printResults() {
	if len(r.rows) == 0 {
		return
	}
	fmt.Println("| # | measurement | result | notes |")
	fmt.Println("|---|---|---|---|")
	for _, row := range r.rows {
		fmt.Printf("| %s | %s | %s | %s |\n", row.id, row.what, row.value, row.notes)
	}
	for _, row := range r.rows {
		if strings.Contains(row.notes, loadkit.NotQuiet) {
			fmt.Printf("\n%s: other processes used more than %.2f cores during that window; its figure is not a quiet-machine figure.\n", loadkit.NotQuiet+"]", loadkit.BusyOther)
			break
		}
	}
	fmt.Println()
	r.printTargets()
	for _, s := range r.sql {
		fmt.Println()
		fmt.Print(s)
	}
}

// addSQL keeps the SQL time breakdown of a service phase.
func (r *runner) addSQL(id, what string, svc *deployment, w *window) {
	r.sql = append(r.sql, fmt.Sprintf("SQL round trips of the service's pool, %s %s (wall time while the window ran):\n\n%s",
		id, what, sqlReport(svc.trace.Stats(), w.secs, w.groups)))
}

func (r *runner) printTargets() {
	f := &r.fig
	var lines []string
	if f.batchRate > 0 && f.copyRate > 0 {
		pct := 100 * f.batchRate / f.copyRate
		lines = append(lines, fmt.Sprintf("- (a) target >= 40%% of raw COPY: %s events/s with %d clients = %.0f%% of %s rows/s (COPY, %d connection(s)): %s",
			num(f.batchRate), f.batchClients, pct, num(f.copyRate), f.copyWriters, verdict(pct >= 40, fmt.Sprintf("%+.0f points", pct-40))))
	}
	if f.singleRate > 0 {
		lines = append(lines, fmt.Sprintf("- (b) target >= 12,000 events/s: %s events/s: %s",
			num(f.singleRate), verdict(f.singleRate >= 12000, fmt.Sprintf("%+.0f%%", 100*(f.singleRate/12000-1)))))
	}
	if f.singleRate > 0 && f.insertRate > 0 {
		x := f.singleRate / f.insertRate
		lines = append(lines, fmt.Sprintf("- (issue 20) single events >= 1.0x raw single-row INSERT from %d clients: %s events/s vs %s rows/s = %.2fx: %s",
			r.o.insertClients, num(f.singleRate), num(f.insertRate), x, verdict(x >= 1, fmt.Sprintf("%.2fx", x))))
	}
	for _, c := range f.instanceCurves {
		lines = append(lines, "- (issue 20) instances, throughput relative to the first: "+c)
	}
	if f.batchPubRate > 0 {
		keeps := f.batchPubRate >= 0.95*f.batchPubIngest
		lines = append(lines, fmt.Sprintf("- (c) target: publication keeps up with (a): published %s events/s while ingesting %s events/s, max lag %d events, caught up %s after the load stopped: %s",
			num(f.batchPubRate), num(f.batchPubIngest), f.batchPubMaxLag, f.batchPubCatchUp.Round(time.Millisecond), verdict(keeps, fmt.Sprintf("%.0f%% of the ingest rate", 100*f.batchPubRate/f.batchPubIngest))))
	}
	if f.drainOn > 0 && f.batchRate > 0 {
		lines = append(lines, fmt.Sprintf("- (c) backlog drain %s events/s (SyncAlways on) vs (a) %s events/s: %s",
			num(f.drainOn), num(f.batchRate), verdict(f.drainOn >= f.batchRate, fmt.Sprintf("%.1fx", f.drainOn/f.batchRate))))
	}
	if f.latRate > 0 {
		lines = append(lines, fmt.Sprintf("- (d) at %s requests/s (open loop): p50 %.2f ms, p99 %.2f ms", num(f.latRate), f.latP50, f.latP99))
	}
	if len(lines) > 0 {
		fmt.Println("Targets (issue 2):")
		for _, l := range lines {
			fmt.Println(l)
		}
	}
}

// num formats a rate with thousands separators.
var num = loadkit.Grouped

func verdict(ok bool, by string) string {
	if ok {
		return "MET (" + by + ")"
	}
	return "MISSED (" + by + ")"
}
