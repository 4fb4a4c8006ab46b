// Command customer-list measures the customer list of SPEC §9 at scale: it
// fills a scratch database with synthetic customer_projections rows (the
// list reads nothing else), then times 50-row pages of GET /v1/customers
// with each single filter (p50/p99 over many requests, first and deep
// pages), prints each filter's plan (EXPLAIN ANALYZE), times the segment
// summary (from the counters) and the 12-month trend over a synthetic label
// history, the requests of each workbench page and its first load's
// assets, and streams the CSV export of every row against a raw COPY TO of
// the same columns, with the process's RSS before and after.
//
//	go run ./bench/customer-list -customers 1000000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/privacy"
	"github.com/segments-dev/segments/projections"
	"github.com/segments-dev/segments/workbench"
)

func main() {
	pg := flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database URL (loopback)")
	n := flag.Int("customers", 1_000_000, "synthetic customers")
	requests := flag.Int("requests", 200, "requests per filter")
	keep := flag.Bool("keep", false, "keep the scratch database")
	flag.StringVar(&only, "only", "", "run only these phases (comma-separated: pages, summary, trend, workbench, assets, export)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the export (this process: service and client) to this file")
	flag.Parse()
	if err := run(context.Background(), *pg, *n, *requests, *keep); err != nil {
		log.Fatal(err)
	}
}

var only, cpuProfile string

// phase reports whether the phase is to run.
func phase(name string) bool { return only == "" || slices.Contains(strings.Split(only, ","), name) }

// lastQuery remembers the last statement a pool ran (for EXPLAIN).
type lastQuery struct {
	mu   sync.Mutex
	sql  string
	args []any
}

func (l *lastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM customer_projections") {
		l.mu.Lock()
		l.sql, l.args = d.SQL, d.Args
		l.mu.Unlock()
	}
	return ctx
}

func (l *lastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func run(ctx context.Context, pg string, n, requests int, keep bool) error {
	dbs, err := loadkit.OpenDatabases(ctx, pg, "seglist_", keep, log.Printf)
	if err != nil {
		return err
	}
	defer dbs.Close(ctx)
	name := dbs.NewName()
	boot, err := eventstore.Connect(ctx, dbs.URLFor(name))
	if err != nil {
		return err
	}
	if _, err := eventstore.Migrate(ctx, boot); err != nil {
		return err
	}
	boot.Close()
	trace := &lastQuery{}
	pool, err := dbs.Pool(ctx, name, func(c *pgxpool.Config) { c.ConnConfig.Tracer = trace; c.MaxConns = 4 })
	if err != nil {
		return err
	}
	defer pool.Close()
	fmt.Printf("customer-list benchmark: %d synthetic customers, %d requests per filter, %s\n", n, requests, loadkit.Calibration())
	if err := fill(ctx, pool, n); err != nil {
		return err
	}
	if err := fillHistory(ctx, pool, n); err != nil {
		return err
	}
	key, err := privacy.NewMasterKey(make([]byte, 32))
	if err != nil {
		return err
	}
	store, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer store.Close()
	proj := projections.New(projections.Config{Pool: pool, Logger: slog.New(slog.DiscardHandler)})
	q := projections.NewQueries(proj, store)
	wb, err := workbench.New(workbench.Config{API: httpapi.New(httpapi.Config{Store: store, Queries: q, Auditor: store})})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(wb)
	defer srv.Close()
	codes, err := realCustomers(ctx, srv.URL, proj)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		run  func() error
	}{
		{"pages", func() error { return pages(ctx, srv.URL, pool, trace, requests) }},
		{"summary", func() error { return summary(ctx, srv.URL, q, pool) }},
		{"trend", func() error { return trend(ctx, srv.URL) }},
		{"workbench", func() error { return workbenchPages(ctx, srv.URL, codes) }},
		{"assets", assets},
		{"export", func() error { return export(ctx, srv.URL, pool, n) }},
	} {
		if !phase(p.name) {
			continue
		}
		if err := p.run(); err != nil {
			return err
		}
	}
	return nil
}

// fill inserts n customers with skewed label distributions (few strategic,
// many potential), 200 owners and change instants spread over a year.
func fill(ctx context.Context, pool *pgxpool.Pool, n int) error {
	start := time.Now()
	_, err := pool.Exec(ctx, `
		INSERT INTO customer_projections (stream_id, customer, version, rule_version, evaluated_at, projection,
			value_tier, activity, need_orientation, lifecycle, tags, net_amount, owner, changes,
			changed_at, last_order_at, name, search_name, orders, nps, rfm_segment)
		SELECT md5('c' || i)::uuid, 'KH' || lpad(i::text, 10, '0'), 3, 1, now(), '\x01'::bytea,
			CASE WHEN h % 100 < 2 THEN 'strategic' WHEN h % 100 < 10 THEN 'key' WHEN h % 100 < 40 THEN 'regular' ELSE 'potential' END,
			CASE WHEN (h / 100) % 10 < 2 THEN 'high' WHEN (h / 100) % 10 < 5 THEN 'medium' ELSE 'low' END,
			(ARRAY['product', 'service', 'partnership', 'unknown'])[1 + (h / 1000) % 4],
			(ARRAY['prospect', 'intent', 'customer', 'lost'])[1 + (h / 4000) % 4],
			CASE WHEN h % 100 < 1 THEN ARRAY['strategic_partner'] WHEN (h / 7) % 100 < 5 THEN ARRAY['churn_warning']
				WHEN (h / 7) % 100 < 15 THEN ARRAY['needs_completion'] ELSE ARRAY[]::text[] END,
			(h % 200000000)::bigint, '经理' || (h % 200), 5,
			now() - make_interval(secs => (h % 31536000)), now() - make_interval(secs => (h % 15768000)),
			'某某科技有限公司' || i, '某某科技有限公司' || i,
			CASE WHEN h % 100 < 55 THEN 1 WHEN h % 100 < 75 THEN 2 ELSE 3 + (h / 100) % 20 END,
			(ARRAY['', '', 'promoter', 'passive', 'detractor'])[1 + (h / 7) % 5],
			(ARRAY['important_value', 'important_develop', 'important_keep', 'important_retain',
				'general_value', 'general_develop', 'general_keep', 'general_retain'])[1 + (h / 11) % 8]
		FROM generate_series(1, $1::int) AS i, LATERAL (SELECT abs(hashint4(i))::bigint AS h) x`, n)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE customer_projections"); err != nil {
		return err
	}
	fmt.Printf("filled %d rows in %s\n\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

var filters = []string{"", "value_tier=strategic", "value_tier=potential", "activity=low", "lifecycle=lost", "need_orientation=service",
	"segment=strategic%2Fhigh", "tag=churn_warning", "tag=strategic_partner", "tag=to_convert", "owner=" + url.QueryEscape("经理7"),
	"q=KH00000123", "q=" + url.QueryEscape("某某科技有限公司4242")}

func get(ctx context.Context, u string) (map[string]any, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	took := time.Since(start)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %d %s", u, res.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, 0, err
	}
	return m, took, nil
}

func pct(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// pages times the first page and the 20th page of each filter, then shows
// each filter's first-page plan.
func pages(ctx context.Context, base string, pool *pgxpool.Pool, trace *lastQuery, requests int) error {
	fmt.Println("| filter | rows on page 1 | page 1 p50 | page 1 p99 | page 20 p99 |")
	fmt.Println("|---|---|---|---|---|")
	plans := map[string]string{}
	for _, f := range filters {
		var first, deep []time.Duration
		var rows int
		for range requests {
			m, took, err := get(ctx, base+"/v1/customers?limit=50&"+f)
			if err != nil {
				return err
			}
			first = append(first, took)
			list, _ := m["customers"].([]any)
			rows = len(list)
		}
		trace.mu.Lock()
		sql, args := trace.sql, trace.args
		trace.mu.Unlock()
		plan, err := explain(ctx, pool, sql, args)
		if err != nil {
			return err
		}
		plans[f] = plan
		cursor := ""
		for range 19 {
			m, _, err := get(ctx, base+"/v1/customers?limit=50&"+f+"&cursor="+url.QueryEscape(cursor))
			if err != nil {
				return err
			}
			if cursor, _ = m["next"].(string); cursor == "" {
				break
			}
		}
		for range requests / 4 {
			if cursor == "" {
				break
			}
			_, took, err := get(ctx, base+"/v1/customers?limit=50&"+f+"&cursor="+url.QueryEscape(cursor))
			if err != nil {
				return err
			}
			deep = append(deep, took)
		}
		deepP99 := "—"
		if len(deep) > 0 {
			deepP99 = fmt.Sprint(pct(deep, 0.99).Round(10 * time.Microsecond))
		}
		fmt.Printf("| `%s` | %d | %s | %s | %s |\n", orNone(f), rows, pct(first, 0.5).Round(10*time.Microsecond), pct(first, 0.99).Round(10*time.Microsecond), deepP99)
	}
	fmt.Println()
	for _, f := range filters {
		fmt.Printf("plan of `%s` (page 1):\n```\n%s```\n", orNone(f), plans[f])
	}
	return nil
}

func orNone(f string) string {
	if f == "" {
		return "(no filter)"
	}
	if u, err := url.QueryUnescape(f); err == nil {
		return u
	}
	return f
}

func explain(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) (string, error) {
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, args...)
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n") + "\n", nil
}

func rssKB() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

// export streams the whole CSV export and compares it with a raw COPY TO
// of the same columns.
func export(ctx context.Context, base string, pool *pgxpool.Pool, n int) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT customer, name, owner, value_tier, activity, need_orientation, lifecycle,
		tags, net_amount, last_order_at, changed_at FROM customer_projections ORDER BY changed_at DESC, stream_id DESC) TO STDOUT (FORMAT csv)`)
	conn.Release()
	if err != nil {
		return fmt.Errorf("copy to: %w", err)
	}
	copyTook := time.Since(start)
	runtime.GC()
	before := rssKB()
	peak := before
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, rssKB())
			}
		}
	}()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile) //nolint:gosec // G304: the operator names the profile file
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/customers.csv", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	bytes, err := io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	close(done)
	if err != nil {
		return err
	}
	exportTook := time.Since(start)
	fmt.Printf("\nexport of %d rows: CSV over HTTP %s (%.0f rows/s, %d MB), raw COPY TO of the same columns %s (%.0f rows/s): %.0f %%\n",
		n, exportTook.Round(time.Millisecond), float64(n)/exportTook.Seconds(), bytes>>20, copyTook.Round(time.Millisecond),
		float64(n)/copyTook.Seconds(), 100*copyTook.Seconds()/exportTook.Seconds())
	fmt.Printf("RSS before the export %d MB, peak during it %d MB (growth %d MB)\n", before>>10, peak>>10, (peak-before)>>10)
	return nil
}
