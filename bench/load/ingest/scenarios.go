package ingestload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/loadkit"
)

// scenarioCopy: the raw limit (COPY of the same rows in 500-row chunks) and
// the single-row INSERT reference.
func (r *runner) scenarioCopy(ctx context.Context) error {
	r.fig.copyRate = 0
	for _, writers := range r.o.copyWriters {
		res, err := r.rawCopy(ctx, writers, r.o.copyChunk)
		if err != nil {
			return err
		}
		if res.rate > r.fig.copyRate {
			r.fig.copyRate, r.fig.copyWriters = res.rate, writers
		}
		r.add("raw", fmt.Sprintf("COPY into a bare events table, %d-row chunks (one transaction each), %d connection(s)", r.o.copyChunk, writers),
			num(res.rate)+" rows/s", fmt.Sprintf("%s; %d rows; %s", res.cpu, res.events, walNote(&res.window)))
	}

	res, err := r.rawInsert(ctx, r.o.insertClients)
	if err != nil {
		return err
	}
	r.fig.insertRate = res.rate
	r.add("raw", fmt.Sprintf("single-row INSERT transactions, %d clients", r.o.insertClients),
		num(res.rate)+" rows/s", fmt.Sprintf("%s; p50 %s, p99 %s; %s", res.cpu, ms(res.lat.pct(0.5)), ms(res.lat.pct(0.99)), walNote(&res.window)))
	return nil
}

func walNote(w *window) string {
	if !w.wal.OK {
		return ""
	}
	return fmt.Sprintf("WAL %.1f MB/s, %.0f fsyncs/s", float64(w.wal.Bytes)/w.secs/1e6, float64(w.wal.Syncs)/w.secs)
}

// verifyHead checks that the log holds exactly the acknowledged events.
func verifyHead(ctx context.Context, svc *deployment, acked int64) (string, error) {
	n, err := svc.count(ctx)
	if err != nil {
		return "", err
	}
	if n != acked {
		return "", fmt.Errorf("the log holds %d events, but %d were acknowledged", n, acked)
	}
	return fmt.Sprintf("log holds the %d acknowledged events", acked), nil
}

// scenarioBatch: (a) HTTP batches from 2, 4, 8 clients on fresh databases,
// then (c) the best of them again with the publisher running.
func (r *runner) scenarioBatch(ctx context.Context) error {
	best := loadResult{}
	bestClients := 0
	for _, clients := range r.o.batchClients {
		res, check, err := r.batchRun(ctx, clients, false)
		if err != nil {
			return err
		}
		note := fmt.Sprintf("p50 %s, p99 %s per request; %s; %s; %s", ms(res.lat.pct(0.5)), ms(res.lat.pct(0.99)), res.cpu, res.groupNote(), check)
		if r.fig.copyRate > 0 {
			note = fmt.Sprintf("%.0f%% of raw COPY; ", 100*res.rate/r.fig.copyRate) + note
		}
		r.add("a", fmt.Sprintf("HTTP batches of %d events, %d clients, publisher off", r.o.batchSize, clients), num(res.rate)+" events/s", note)
		if res.rate > best.rate {
			best, bestClients = res, clients
		}
	}
	r.fig.batchRate, r.fig.batchClients = best.rate, bestClients

	res, check, err := r.batchRun(ctx, bestClients, true)
	if err != nil {
		return err
	}
	r.fig.batchPubIngest, r.fig.batchPubRate, r.fig.batchPubMaxLag = res.rate, res.pubRate, res.maxLag
	r.add("a+c", fmt.Sprintf("HTTP batches of %d events, %d clients, publisher on (as segmentd serve)", r.o.batchSize, bestClients),
		num(res.rate)+" events/s ingested", fmt.Sprintf("%s; %s; %s", res.cpu, res.groupNote(), check))
	r.add("c", "published to SEGMENTS_EVENTS while (a+c) runs", num(res.pubRate)+" events/s",
		fmt.Sprintf("max lag %d events (sampled every 200 ms); %s", res.maxLag, res.extra))
	return nil
}

func (r *runner) batchRun(ctx context.Context, clients int, publish bool) (loadResult, string, error) {
	logf("  batches of %d, %d clients, publisher %v", r.o.batchSize, clients, publish)
	svc, err := r.startService(ctx, publish)
	if err != nil {
		return loadResult{}, "", err
	}
	defer svc.close(ctx)
	var b *loadkit.Bus
	if publish {
		b = svc.bus
	}
	res, err := r.httpLoad(ctx, svc, b, clients, r.o.batchSize)
	if err != nil {
		return res, "", err
	}
	check, err := verifyHead(ctx, svc, res.acked)
	if err != nil {
		return res, "", err
	}
	pubNote := "publisher off"
	if publish {
		pubNote = "publisher on"
	}
	r.addSQL("a", fmt.Sprintf("batches of %d, %d clients, %s", r.o.batchSize, clients, pubNote), svc, &res.window)
	if publish {
		took, err := waitPublished(ctx, b, uint64(res.acked), 2*time.Minute) //nolint:gosec // G115: a count
		if err != nil {
			return res, "", err
		}
		r.fig.batchPubCatchUp = took
		res.extra = fmt.Sprintf("all %d events published %s after the load stopped", res.acked, took.Round(time.Millisecond))
	}
	return res, check, nil
}

// scenarioSingle: (b) single-event requests from many clients.
func (r *runner) scenarioSingle(ctx context.Context) error {
	logf("  single events, %d clients", r.o.singleClients)
	svc, err := r.startService(ctx, false)
	if err != nil {
		return err
	}
	defer svc.close(ctx)
	res, err := r.httpLoad(ctx, svc, nil, r.o.singleClients, 1)
	if err != nil {
		return err
	}
	check, err := verifyHead(ctx, svc, res.acked)
	if err != nil {
		return err
	}
	r.addSQL("b", fmt.Sprintf("single events, %d clients", r.o.singleClients), svc, &res.window)
	r.fig.singleRate = res.rate
	r.add("b", fmt.Sprintf("single-event HTTP requests, %d clients (closed loop)", r.o.singleClients), num(res.rate)+" events/s",
		fmt.Sprintf("p50 %s, p99 %s; %s; %s; %s", ms(res.lat.pct(0.5)), ms(res.lat.pct(0.99)), res.cpu, res.groupNote(), check))
	return nil
}

// scenarioLatency: (d) append latency at a constant arrival rate of half
// the single-event maximum.
func (r *runner) scenarioLatency(ctx context.Context) error {
	rate := r.o.rate
	how := "-latency-rate"
	if rate <= 0 {
		if r.fig.singleRate <= 0 {
			if err := r.scenarioSingle(ctx); err != nil {
				return err
			}
		}
		rate = r.fig.singleRate / 2
		how = "half of (b)"
	}
	logf("  open loop at %.0f requests/s", rate)
	svc, err := r.startService(ctx, false)
	if err != nil {
		return err
	}
	defer svc.close(ctx)
	res, err := r.openLoop(ctx, svc, rate)
	if err != nil {
		return err
	}
	r.addSQL("d", fmt.Sprintf("open loop at %s requests/s", num(rate)), svc, &res.window)
	r.fig.latRate = rate
	r.fig.latP50 = float64(res.lat.pct(0.5)) / float64(time.Millisecond)
	r.fig.latP99 = float64(res.lat.pct(0.99)) / float64(time.Millisecond)
	r.add("d", fmt.Sprintf("append latency (HTTP round trip), single events at %s requests/s (%s), open loop", num(rate), how),
		fmt.Sprintf("p50 %s, p99 %s", ms(res.lat.pct(0.5)), ms(res.lat.pct(0.99))),
		fmt.Sprintf("p90 %s, p99.9 %s, max %s; %d requests in the window, %s/s completed, %d shed, %d failed; %s; %s",
			ms(res.lat.pct(0.9)), ms(res.lat.pct(0.999)), ms(res.lat.pct(1)), len(res.lat), num(res.achieved), res.shed, res.errors, res.cpu, res.groupNote()))
	return nil
}

// scenarioPublish: (c) the publisher draining a backlog, into a server with
// SyncAlways on and then off.
func (r *runner) scenarioPublish(ctx context.Context) error {
	svc, err := r.startService(ctx, false)
	if err != nil {
		return err
	}
	defer svc.close(ctx)
	logf("  building a backlog of %d events", r.o.backlog)
	if err := r.fillBacklog(ctx, svc, r.o.backlog); err != nil {
		return err
	}
	head, err := svc.count(ctx)
	if err != nil {
		return err
	}
	for _, syncOn := range []bool{true, false} {
		b, err := r.startBus(ctx, syncOn)
		if err != nil {
			return err
		}
		c0 := loadkit.TakeCPU(nil)
		stop, err := svc.startPublisher(ctx, b)
		if err != nil {
			b.Close()
			return err
		}
		took, err := waitPublished(ctx, b, uint64(head), 5*time.Minute) //nolint:gosec // G115: a count
		c1 := loadkit.TakeCPU(nil)
		stop()
		b.Close()
		if err != nil {
			return err
		}
		rate := float64(head) / took.Seconds()
		if syncOn {
			r.fig.drainOn = rate
		} else {
			r.fig.drainOff = rate
		}
		r.add("c", fmt.Sprintf("publisher draining a backlog of %d events, %s", head, syncName(syncOn)), num(rate)+" events/s",
			fmt.Sprintf("%s to publish all; atomic batches of up to 1000; %s", took.Round(time.Millisecond), loadkit.CPUBetween(c0, c1)))
	}
	return nil
}

// fillBacklog appends n events straight to the store (not measured).
func (r *runner) fillBacklog(ctx context.Context, svc *deployment, n int) error {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			g := newGen(r.o.customers)
			for {
				k := min(left.Add(-1000)+1000, 1000)
				if k <= 0 {
					return
				}
				now := time.Now()
				req, err := domain.DecodeAppendRequest(g.appendBatch(nil, int(k), now), now)
				if err == nil {
					_, err = svc.store.Append(ctx, req)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
