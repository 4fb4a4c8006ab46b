package loadkit

import (
	"fmt"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/samplecustomer"
)

// ReferenceEvaluateNs is CalibrateEvaluate's result on the reference
// machine of docs/BENCHMARKS.md (2 cores AMD EPYC), where the figures of
// issues 2–4 were first measured.
const ReferenceEvaluateNs = 510

// CalibrateEvaluate measures, on one core, an evaluation of a customer
// whose state holds 100 events (samplecustomer.Hundred, as the domain
// benchmark BenchmarkEvaluate100Events does), in ns per evaluation. The
// figures of the load tools depend on the machine; this single-core
// yardstick, printed beside them, says how fast the machine they came from
// is compared with the reference (machines of the same kind have measured
// up to 2.5× apart).
func CalibrateEvaluate() float64 {
	rs := domain.DefaultRuleBook().Latest()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, rs.Location)
	s := samplecustomer.Hundred(now)
	rs.Evaluate(s, now) // the window cache, built once as the projector does
	best := 0.0
	for range 3 { // the best of three: the least disturbed by other work
		r := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				rs.Evaluate(s, now)
			}
		})
		if ns := float64(r.T.Nanoseconds()) / float64(r.N); best == 0 || ns < best {
			best = ns
		}
	}
	return best
}

// Calibration is CalibrateEvaluate's result as the load tools print it.
func Calibration() string {
	ns := CalibrateEvaluate()
	return fmt.Sprintf("one domain evaluation (100 events) %.0f ns on one core; %.2f× the reference machine's %d ns (higher is slower)",
		ns, ns/ReferenceEvaluateNs, ReferenceEvaluateNs)
}
