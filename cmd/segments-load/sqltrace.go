package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqlTracer adds up, per statement, the wall time the service's pool spends
// in PostgreSQL round trips (pgx tracer hooks: queries, batches, COPY). It
// shows where the group-commit writer's time goes without touching the
// store's code.
type sqlTracer struct {
	mu    sync.Mutex
	stats map[string]*sqlStat
	on    bool
}

type sqlStat struct {
	n     int64
	total time.Duration
}

type traceKey struct{}

type traceStart struct {
	at  time.Time
	sql string
}

func newSQLTracer() *sqlTracer { return &sqlTracer{stats: map[string]*sqlStat{}} }

func (t *sqlTracer) setOn(on bool) {
	t.mu.Lock()
	t.on = on
	t.mu.Unlock()
}

func normalizeSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

func (t *sqlTracer) start(ctx context.Context, sql string) context.Context {
	return context.WithValue(ctx, traceKey{}, &traceStart{at: time.Now(), sql: normalizeSQL(sql)})
}

func (t *sqlTracer) end(ctx context.Context) {
	st, ok := ctx.Value(traceKey{}).(*traceStart)
	if !ok {
		return
	}
	d := time.Since(st.at)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.on {
		return
	}
	s := t.stats[st.sql]
	if s == nil {
		s = &sqlStat{}
		t.stats[st.sql] = s
	}
	s.n++
	s.total += d
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, data.SQL)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.end(ctx)
}

// TraceBatchStart implements pgx.BatchTracer: a batch is named after its
// first statement.
func (t *sqlTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	first := ""
	if data.Batch != nil && len(data.Batch.QueuedQueries) > 0 {
		first = data.Batch.QueuedQueries[0].SQL
	}
	return t.start(ctx, fmt.Sprintf("batch(%d) %s", data.Batch.Len(), first))
}

// TraceBatchQuery implements pgx.BatchTracer.
func (t *sqlTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *sqlTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	t.end(ctx)
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *sqlTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, "COPY "+data.TableName.Sanitize())
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *sqlTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	t.end(ctx)
}

// report lists the statements by total time over a window of secs seconds,
// per group-commit transaction when groups > 0.
func (t *sqlTracer) report(secs float64, groups int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	type row struct {
		sql string
		s   sqlStat
	}
	rows := make([]row, 0, len(t.stats))
	for k, v := range t.stats {
		rows = append(rows, row{k, *v})
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.s.total - a.s.total) })
	var b strings.Builder
	fmt.Fprintf(&b, "| statement (batches by first statement) | calls/s | mean | share of wall time |\n|---|---|---|---|\n")
	for _, r := range rows {
		if r.s.total < time.Duration(secs*float64(time.Millisecond)) { // under 0.1% of the window
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %.0f | %.2f ms | %.0f%% |\n", strings.ReplaceAll(r.sql, "|", "\\|"),
			float64(r.s.n)/secs, float64(r.s.total)/float64(r.s.n)/float64(time.Millisecond), 100*r.s.total.Seconds()/secs)
	}
	if groups > 0 {
		fmt.Fprintf(&b, "\n(%d group-commit transactions in the window)\n", groups)
	}
	return b.String()
}
