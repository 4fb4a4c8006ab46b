package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/projections"
)

// fillHistory gives every customer a history: two segment changes (a first
// value 200 days before its latest change, then its current segment) and
// one order of its net amount, recorded 100 days before its latest change,
// then counts the trend's days from it. The events are synthetic (no hash
// chain): the count reads only their type, amount and recording instant.
func fillHistory(ctx context.Context, pool *pgxpool.Pool, n int) error {
	start := time.Now()
	if _, err := pool.Exec(ctx, `
		INSERT INTO label_changes (id, stream_id, customer, seq, label, from_value, to_value, at, cause_kind, rule_version, reason, reason_en)
		SELECT md5('l' || p.customer || s)::uuid, p.stream_id, p.customer, s, 'segment',
			CASE s WHEN 1 THEN NULL ELSE 'potential/low' END,
			CASE s WHEN 1 THEN 'potential/low' ELSE p.value_tier || '/' || p.activity END,
			CASE s WHEN 1 THEN p.changed_at - interval '200 days' ELSE p.changed_at END, 'event', 1, '', ''
		FROM customer_projections p, generate_series(1, 2) AS s`); err != nil {
		return fmt.Errorf("fill label changes: %w", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO events (position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data, metadata, hash)
		SELECT row_number() OVER (), p.stream_id, p.customer, 1, md5('e' || p.customer)::uuid, 'OrderPlaced', t, t,
			json_build_object('order_id', 'O1', 'amount', (p.net_amount / 100.0)::text), '{}'::json, sha256(convert_to(p.customer, 'UTF8'))
		FROM customer_projections p, LATERAL (SELECT p.changed_at - interval '100 days' AS t) x`); err != nil {
		return fmt.Errorf("fill events: %w", err)
	}
	// Events recorded through the store later take positions after these.
	if _, err := pool.Exec(ctx, "SELECT setval('events_position_seq', (SELECT max(position) FROM events))"); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE label_changes, events"); err != nil {
		return err
	}
	fmt.Printf("filled %d label changes and %d order events in %s\n", 2*n, n, time.Since(start).Round(time.Millisecond))
	// The trend's days from that history, as migration 0021 counts them
	// for an existing database.
	start = time.Now()
	if _, err := pool.Exec(ctx, "SELECT segment_trend_recount('Asia/Shanghai')"); err != nil {
		return fmt.Errorf("count the trend's days: %w", err)
	}
	var days int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM segment_trend_days").Scan(&days); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE segment_trend_days"); err != nil {
		return err
	}
	fmt.Printf("segment_trend_recount (migration 0021's backfill): %d rows of segment_trend_days in %s\n\n", days, time.Since(start).Round(time.Millisecond))
	return nil
}

// timings runs f times times (fewer when it is slow: at most about 20
// seconds in all) and returns the durations.
func timings(times int, f func() error) ([]time.Duration, error) {
	var out []time.Duration
	began := time.Now()
	for range times {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
		if len(out) >= 3 && time.Since(began) > 20*time.Second {
			break
		}
	}
	return out, nil
}

func spread(d []time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s over %d runs", pct(d, 0.5).Round(10*time.Microsecond),
		pct(d, 0.99).Round(10*time.Microsecond), slices.Max(d).Round(10*time.Microsecond), len(d))
}

// summary times the segment summary from the counters (the query and the
// HTTP answer, heat map included) and the same figures aggregated on read.
func summary(ctx context.Context, base string, q *projections.Queries, pool *pgxpool.Pool) error {
	d, err := timings(100, func() error { _, err := q.Summary(ctx); return err })
	if err != nil {
		return err
	}
	fmt.Printf("\nsegment summary from the counters (Queries.Summary): %s\n", spread(d))
	d, err = timings(100, func() error { _, _, err := get(ctx, base+"/v1/segments/summary"); return err })
	if err != nil {
		return err
	}
	fmt.Printf("GET /v1/segments/summary (labels, tags and the value × activity heat map): %s\n", spread(d))
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM segment_counters").Scan(&rows); err != nil {
		return err
	}
	d, err = timings(3, func() error {
		_, err := pool.Exec(ctx, `SELECT value_tier, activity, count(*), sum(net_amount) FROM customer_projections GROUP BY 1, 2`)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("segment_counters holds %d rows; the heat map aggregated on read instead: %s\n", rows, spread(d))
	return nil
}

// trend times GET /v1/segments/trend over 12 months (the API's default),
// for at most two minutes in all.
func trend(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	d, err := timings(100, func() error {
		_, _, err := get(ctx, base+"/v1/segments/trend?label=segment&interval=month")
		return err
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Printf("\nGET /v1/segments/trend?label=segment&interval=month (12 months): not answered within 2 minutes\n")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nGET /v1/segments/trend?label=segment&interval=month (12 months): %s\n", spread(d))
	return nil
}

// workbenchPages times the requests each workbench page makes, in a
// session (open mode, as --demo on loopback), one after the other: a
// page's server time is their sum.
func workbenchPages(ctx context.Context, base string, codes []string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	c := &http.Client{Jar: jar}
	send := func(method, path string) error {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("{}")
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = res.Body.Close() }()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %d", method, path, res.StatusCode)
		}
		return nil
	}
	if err := send(http.MethodPost, "/session"); err != nil {
		return err
	}
	pages := []struct {
		name  string
		paths []string
	}{
		{"shell (index.html, session)", []string{"/", "/session"}},
		{"inbox (4 statuses, 500 each)", []string{"/v1/alerts?status=overdue&limit=500", "/v1/alerts?status=open&limit=500",
			"/v1/alerts?status=acknowledged&limit=500", "/v1/alerts?status=snoozed&limit=500"}},
		{"customer list (vocabulary, first page)", []string{"/v1/segments/vocabulary", "/v1/customers?limit=50"}},
		{"customer list, one filter", []string{"/v1/customers?limit=50&activity=low"}},
		{"overview (summary + heat map)", []string{"/v1/segments/summary"}},
		{"overview (12-month trend)", []string{"/v1/segments/trend?label=segment&interval=month"}},
		{"card (document, label history, events, alerts)", []string{"/v1/customers/" + codes[0], "/v1/customers/" + codes[0] + "/labels/history",
			"/v1/customers/" + codes[0] + "/events", "/v1/alerts?customer=" + codes[0] + "&limit=100"}},
		{"audit (a customer as of an instant, its chain verified)", []string{"/v1/customers/" + codes[1] + "?as_of=" + url.QueryEscape(time.Now().Format(time.RFC3339)),
			"/v1/customers/" + codes[1] + "/audit/verify"}},
	}
	fmt.Println("\n| workbench page | requests | server time p50 | p99 | loads |")
	fmt.Println("|---|---|---|---|---|")
	for _, p := range pages {
		d, err := timings(100, func() error {
			for _, path := range p.paths {
				if err := send(http.MethodGet, path); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %d | %s | %s | %d |\n", p.name, len(p.paths), pct(d, 0.5).Round(10*time.Microsecond),
			pct(d, 0.99).Round(10*time.Microsecond), len(d))
	}
	return nil
}

// assets sums the workbench's assets as a first load transfers them
// (gzip, best compression, as the workbench serves them).
func assets() error {
	total, files := 0, 0
	err := fs.WalkDir(os.DirFS("workbench/assets"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") || strings.HasSuffix(p, "LICENSE") {
			return err
		}
		raw, err := fs.ReadFile(os.DirFS("workbench/assets"), p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		total += gz.Len()
		files++
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("\nworkbench first load: %d files, %d KB compressed (every asset, ECharts included)\n", files, total>>10)
	return nil
}
