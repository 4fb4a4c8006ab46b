package loadkit

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStatementTimerTimesOnlyBetweenStartAndStop(t *testing.T) {
	var st StatementTimer
	query := func(sql string) {
		st.TraceQueryEnd(st.TraceQueryStart(context.Background(), nil, pgx.TraceQueryStartData{SQL: sql}), nil, pgx.TraceQueryEndData{})
	}
	query("SELECT 1") // before Start: counted, not timed
	st.Start()
	query("SELECT  x\n FROM t")
	query("SELECT x FROM t")
	st.TraceCopyFromEnd(st.TraceCopyFromStart(context.Background(), nil, pgx.TraceCopyFromStartData{TableName: pgx.Identifier{"events"}}), nil, pgx.TraceCopyFromEndData{})
	var b pgx.Batch
	b.Queue("INSERT INTO t VALUES (1)")
	b.Queue("INSERT INTO t VALUES (2)")
	st.TraceBatchEnd(st.TraceBatchStart(context.Background(), nil, pgx.TraceBatchStartData{Batch: &b}), nil, pgx.TraceBatchEndData{})
	st.Stop()
	query("SELECT 2") // after Stop: counted, not timed

	if n := st.Sent.Load(); n != 6 {
		t.Fatalf("Sent = %d, want 6", n)
	}
	calls := map[string]int64{}
	for _, s := range st.Stats() {
		calls[s.Name] = s.Calls
	}
	want := map[string]int64{"SELECT x FROM t": 2, `COPY "events"`: 1, "batch(2) INSERT INTO t VALUES (1)": 1}
	if len(calls) != len(want) {
		t.Fatalf("timed %v, want %v", calls, want)
	}
	for name, n := range want {
		if calls[name] != n {
			t.Fatalf("timed %v, want %v", calls, want)
		}
	}
	st.Start()
	if s := st.Stats(); len(s) != 0 {
		t.Fatalf("Start kept %d timed statements", len(s))
	}
}
