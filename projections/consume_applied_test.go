package projections_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

// countingMetrics counts what the projector reports.
type countingMetrics struct{ projected, alreadyApplied atomic.Int64 }

func (m *countingMetrics) EventsProjected(n int)        { m.projected.Add(int64(n)) }
func (m *countingMetrics) ProjectionLag(float64)        {}
func (m *countingMetrics) MessagesAlreadyApplied(n int) { m.alreadyApplied.Add(int64(n)) }

// Messages of events that this process's own synchronous Apply already
// stored are acknowledged without a transaction; the others are applied as
// before, and the result is what one pass over the log gives.
func TestConsumeAcknowledgesWithoutATransactionWhatThisProcessAlreadyStored(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 3, 9, 0, 0, 0, cst)
	e := newEnv(t, start)
	metrics := &countingMetrics{}
	proj := projections.New(projections.Config{Pool: e.db.Pool, Logger: testenv.Logger(t), Now: e.clock.Now, Metrics: metrics})
	ctx := ctxT(t)

	// Phase 1: recorded and applied here, synchronously, before the bus
	// carries anything.
	sc := newScript(31, "KHA", 25, start)
	phase1 := 0
	for range 12 {
		s := sc.next(5)
		phase1 += len(e.record(s.at, s.events...))
	}
	var codes []domain.CustomerCode
	for _, c := range sc.codes() {
		if _, err := e.store.StreamVersion(ctx, c); err == nil {
			codes = append(codes, c)
		}
	}
	if n, err := proj.Apply(ctx, streamIDs(codes...)); err != nil || n != phase1 {
		t.Fatalf("apply phase 1: %d events, %v; want %d", n, err, phase1)
	}
	// Phase 2: one more event per customer, applied by nobody yet. One
	// each, so no message of this phase can be covered by another one's
	// transaction.
	at := e.clock.Now().Add(time.Hour)
	var more []domain.Envelope
	for _, c := range codes {
		more = append(more, ev(c, at, inquiry("售后")))
	}
	phase2 := len(e.record(at, more...))

	const durable = "projector-applied-test"
	js, _ := e.publishAndConsume(proj, durable)

	// Every message delivered and acknowledged.
	total := phase1 + phase2
	testenv.Eventually(t, time.Minute, "every message acknowledged", func() bool {
		cons, err := js.Consumer(ctx, natsbus.StreamEvents, durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Consumer == uint64(total) && info.NumAckPending == 0
	})
	if got := metrics.alreadyApplied.Load(); got != int64(phase1) {
		t.Errorf("%d messages acknowledged as already applied, want the %d of phase 1", got, phase1)
	}
	if got := metrics.projected.Load(); got != int64(phase1+phase2) {
		t.Errorf("%d events projected in all, want %d: each once", got, phase1+phase2)
	}
	for _, c := range codes {
		want, err := e.store.StreamVersion(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if d := e.doc(c); d.Version != want {
			t.Errorf("%s projected to version %d, want %d", c, d.Version, want)
		}
	}
	// Nothing written twice or skipped: one pass over the log agrees.
	got := e.snapshot()
	e.reproject(codes)
	sameSnapshot(t, got, e.snapshot())
}
