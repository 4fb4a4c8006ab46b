package loadkit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatementTimer is a pgx tracer (queries, batches, COPY) for a pool under
// measurement. It counts every statement the pool sends and, between Start
// and Stop, adds up the wall time of each kind of statement as the client
// sees it: from the call, before its arguments are encoded, to the end of
// its result (a query's when its rows are closed, so the caller's work on
// the rows counts too; a COPY's including the encoding of its rows). A batch
// is named after its first statement. Set it as ConnConfig.Tracer.
type StatementTimer struct {
	// Sent counts the statements sent, timed or not.
	Sent atomic.Int64

	on    atomic.Bool
	mu    sync.Mutex
	stats map[string]*StatementStat
}

// StatementStat is the time spent in one kind of statement.
type StatementStat struct {
	Name  string // the SQL with white space folded, cut at 72 characters
	Calls int64
	Total time.Duration
}

// Start clears what was timed and starts timing.
func (t *StatementTimer) Start() {
	t.mu.Lock()
	t.stats = nil
	t.mu.Unlock()
	t.on.Store(true)
}

// Stop stops timing; Stats still returns what was timed.
func (t *StatementTimer) Stop() { t.on.Store(false) }

// Stats returns the timed statements, most total time first.
func (t *StatementTimer) Stats() []StatementStat {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]StatementStat, 0, len(t.stats))
	for _, s := range t.stats {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b StatementStat) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), strings.Compare(a.Name, b.Name))
	})
	return out
}

type stmtTimerKey struct{}

type stmtStart struct {
	name string
	at   time.Time
}

func statementName(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 72 {
		s = s[:72] + "…"
	}
	return s
}

func (t *StatementTimer) start(ctx context.Context, name func() string) context.Context {
	t.Sent.Add(1)
	if !t.on.Load() {
		return ctx
	}
	return context.WithValue(ctx, stmtTimerKey{}, stmtStart{name: name(), at: time.Now()})
}

func (t *StatementTimer) end(ctx context.Context) {
	s, ok := ctx.Value(stmtTimerKey{}).(stmtStart)
	if !ok {
		return
	}
	took := time.Since(s.at)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stats == nil {
		t.stats = map[string]*StatementStat{}
	}
	st := t.stats[s.name]
	if st == nil {
		st = &StatementStat{Name: s.name}
		t.stats[s.name] = st
	}
	st.Calls++
	st.Total += took
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *StatementTimer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, func() string { return statementName(d.SQL) })
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *StatementTimer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.end(ctx)
}

// TraceBatchStart implements pgx.BatchTracer.
func (t *StatementTimer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	return t.start(ctx, func() string {
		first := ""
		if d.Batch != nil && len(d.Batch.QueuedQueries) > 0 {
			first = d.Batch.QueuedQueries[0].SQL
		}
		return statementName(fmt.Sprintf("batch(%d) %s", d.Batch.Len(), first))
	})
}

// TraceBatchQuery implements pgx.BatchTracer.
func (t *StatementTimer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *StatementTimer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	t.end(ctx)
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *StatementTimer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, func() string { return "COPY " + d.TableName.Sanitize() })
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *StatementTimer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	t.end(ctx)
}
