// Package backoff is the one delay policy of Segments' retry loops and
// supervised workers: exponential with jitter (github.com/cenkalti/backoff),
// capped, and back at its start after a healthy run.
package backoff

import (
	"time"

	cb "github.com/cenkalti/backoff/v5"
)

// Jitter is the randomisation factor: each delay is within ±20 % of the
// nominal one, so instances that failed together do not retry in step.
const Jitter = 0.2

// Policy says how delays grow.
type Policy struct {
	Initial time.Duration // the first delay
	Max     time.Duration // nominal delays stop growing here (jitter may add Jitter·Max)
	// Healthy: a run that lasted at least this long before it failed
	// starts the delays again from Initial.
	Healthy time.Duration
}

// Retry is the policy of the loops that retry a database or bus operation
// in place (publisher, relays, projector, ingest): at most about a second
// between attempts, so work resumes within a second of the dependency
// coming back. A failing attempt against a server that is down is a refused
// connect, cheap at that rate.
var Retry = Policy{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond, Healthy: 5 * time.Second}

// Restart is the policy of restarting a supervised worker that stopped.
var Restart = Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Healthy: 10 * time.Second}

// Backoff hands out the delays of one loop; not safe for concurrent use.
type Backoff struct {
	policy Policy
	exp    cb.ExponentialBackOff
}

// New returns a Backoff at the start of its delays.
func New(p Policy) *Backoff {
	b := &Backoff{policy: p, exp: cb.ExponentialBackOff{
		InitialInterval: p.Initial, RandomizationFactor: Jitter, Multiplier: 2, MaxInterval: p.Max,
	}}
	b.exp.Reset()
	return b
}

// Next returns the delay before the next attempt and grows the one after.
func (b *Backoff) Next() time.Duration { return b.exp.NextBackOff() }

// Reset starts the delays again from Initial (after a success).
func (b *Backoff) Reset() { b.exp.Reset() }

// Failed returns the delay after a run that lasted ran and then failed: a
// run that stayed healthy for Policy.Healthy resets the delays first, so a
// second outage long after the first is retried as promptly as the first.
func (b *Backoff) Failed(ran time.Duration) time.Duration {
	if b.policy.Healthy > 0 && ran >= b.policy.Healthy {
		b.Reset()
	}
	return b.Next()
}
