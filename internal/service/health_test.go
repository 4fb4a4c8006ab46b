package service

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/backoff"
	"github.com/segments-dev/segments/internal/testenv"
)

func TestASupervisedWorkerResumesWithinASecondOfTheDatabaseComingBack(t *testing.T) {
	t.Parallel()
	cluster := testenv.StartCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, err := eventstore.Connect(ctx, cluster.URL("segments"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Short first delays, so that a few seconds of outage grow the restart
	// delay to several seconds, as a long outage does with the defaults.
	a := &Service{Pool: pool, Log: testenv.Logger(t), Restart: backoff.Policy{Initial: 20 * time.Millisecond, Max: time.Minute}}
	var failures atomic.Int64
	healthy := make(chan time.Time, 64)
	var wg sync.WaitGroup
	a.Supervise(ctx, &wg, "worker", func(ctx context.Context) error {
		if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
			failures.Add(1)
			return err
		}
		healthy <- time.Now()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
				return err
			}
		}
	})
	defer wg.Wait()
	defer cancel()
	<-healthy

	cluster.Crash()
	// After 7 failures the next delay is 20 ms·2⁷ ≈ 2.5 s (± 20 %).
	testenv.Eventually(t, 30*time.Second, "the worker to fail 7 times", func() bool { return failures.Load() >= 7 })
	cluster.Start()
	back := time.Now()
	select {
	case at := <-healthy:
		if took := at.Sub(back); took > time.Second {
			t.Errorf("the worker resumed %v after the database came back, want ≤ 1 s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not resume")
	}
}
