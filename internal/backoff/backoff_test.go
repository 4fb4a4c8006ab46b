package backoff

import (
	"testing"
	"time"
)

func within(t *testing.T, got, nominal time.Duration) {
	t.Helper()
	lo, hi := time.Duration(float64(nominal)*(1-Jitter)), time.Duration(float64(nominal)*(1+Jitter))+1
	if got < lo || got > hi {
		t.Errorf("delay %v, want %v ± %.0f%%", got, nominal, Jitter*100)
	}
}

func TestDelaysDoubleUpToTheCap(t *testing.T) {
	b := New(Policy{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond})
	for _, ms := range []int{100, 200, 400, 800, 800, 800} {
		within(t, b.Next(), time.Duration(ms)*time.Millisecond)
	}
}

func TestRetryPolicyNeverWaitsASecond(t *testing.T) {
	b := New(Retry)
	for range 50 {
		if d := b.Next(); d >= time.Second {
			t.Fatalf("retry delay %v: a dependency that is back would wait that long", d)
		}
	}
}

func TestAHealthyRunResetsTheDelays(t *testing.T) {
	p := Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Healthy: 10 * time.Second}
	b := New(p)
	for range 8 { // a long first outage: delays at the cap
		b.Failed(0)
	}
	within(t, b.Failed(time.Second), 10*time.Second) // a short run keeps them there
	within(t, b.Failed(p.Healthy), p.Initial)        // a healthy one starts again
	within(t, b.Failed(0), 2*p.Initial)
}

func TestResetStartsAgain(t *testing.T) {
	b := New(Restart)
	b.Next()
	b.Next()
	b.Reset()
	within(t, b.Next(), Restart.Initial)
}
