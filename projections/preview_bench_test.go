package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
)

// BenchmarkPreviewVsRebuild measures, in one run on the same data (5,000
// customers, 3 events each; SEGMENTS_BENCH_CUSTOMERS sets another number),
// the rate of a rules preview against the rate of a rebuild, in customers
// per second, and the process's peak RSS during the preview
// (docs/BENCHMARKS.md).
func BenchmarkPreviewVsRebuild(b *testing.B) {
	t := b
	e := newEnv(t, tNow)
	if _, err := e.proj.RegisterRules(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("SEGMENTS_BENCH_CUSTOMERS")); err == nil && v > 0 {
		n = v
	}
	at := tNow.Add(-time.Hour)
	var batch []domain.Envelope
	for i := range n {
		code := domain.CustomerCode(fmt.Sprintf("R%06d", i))
		batch = append(batch, ev(code, at.Add(-90*24*time.Hour), order(fmt.Sprintf("A%d", i), fmt.Sprint(1000+i*200))),
			ev(code, at.Add(-10*24*time.Hour), order(fmt.Sprintf("B%d", i), "5000")), ev(code, at, inquiry("x")))
		if len(batch) >= 900 {
			e.record(at, batch...)
			batch = nil
		}
	}
	if len(batch) > 0 {
		e.record(at, batch...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour) // larger runs outlast ctxT
	defer cancel()
	st, err := e.proj.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cand := rulesBook(t, string(domain.DefaultRulesYAML()), `  - version: 2
    effective_at: "2026-11-24T00:00:00+08:00"
    value_tiers:
      - {value: strategic, display: 战略客户, short: 战略, min_net_amount: "800000.00"}
      - {value: key,       display: 重点客户, short: 重点, min_net_amount: "400000.00"}
      - {value: regular,   display: 普通客户, short: 普通, min_net_amount: "100000.00"}
      - {value: potential, display: 潜力客户, short: 潜力, min_net_amount: "0"}
`)
	// Writing 5 to clear_refs resets the peak RSS (VmHWM), so the peak read
	// after the preview is the preview's own.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	start := time.Now()
	rep, err := e.proj.Preview(ctx, cand, tNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	b.ReportMetric((float64(rep.Customers)/took.Seconds())/(float64(st.Customers)/st.Took.Seconds()), "preview/rebuild")
	t.Logf("preview peak RSS %s", peakRSS())
	t.Logf("rebuild: %d customers, %d events in %s = %.0f customers/s; preview: %d customers (%d changed) in %s = %.0f customers/s; ratio %.2f",
		st.Customers, st.Events, st.Took, float64(st.Customers)/st.Took.Seconds(), rep.Customers, rep.CustomersChanged, took,
		float64(rep.Customers)/took.Seconds(), (float64(rep.Customers)/took.Seconds())/(float64(st.Customers)/st.Took.Seconds()))
}

// peakRSS is the process's VmHWM line from /proc/self/status.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmHWM:")); ok {
			return string(bytes.TrimSpace(v))
		}
	}
	return "unknown"
}
