package ingestload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/natsbus"
)

// newHTTPClient returns a client whose pool keeps a connection per
// concurrent client (no reconnect churn on loopback).
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          2 * conns,
			MaxIdleConnsPerHost:   conns,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true,
			ResponseHeaderTimeout: 30 * time.Second,
		},
	}
}

// post sends one ingest request; it returns the status and, when it is not
// 201, the start of the response body.
func post(ctx context.Context, c *http.Client, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, string(b), nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, "", err
}

// snapshot is everything measured at one window boundary.
type snapshot struct {
	at        time.Time
	cpu       loadkit.CPUSnap
	wal       loadkit.WALSnap
	grp       groupSnap
	acked     int64
	published uint64
}

type probe struct {
	r     *runner
	svc   *deployment
	bus   *loadkit.Bus
	acked *atomic.Int64
}

func (p *probe) take(ctx context.Context) snapshot {
	var s snapshot
	if p.bus != nil {
		s.published, _ = p.bus.Msgs(ctx, natsbus.StreamEvents)
	}
	s.wal = p.r.dbs.WAL(ctx)
	if p.svc != nil {
		s.grp = p.svc.groups.snap()
	}
	if p.acked != nil {
		s.acked = p.acked.Load()
	}
	s.at = time.Now()
	s.cpu = loadkit.TakeCPU(nil)
	return s
}

// window is what happened between two snapshots.
type window struct {
	secs      float64
	events    int64
	rate      float64 // acknowledged events/s
	cpu       loadkit.CPUUse
	wal       loadkit.WALSnap
	groups    int64
	grpReqs   int64
	grpEvents int64
	busyFrac  float64 // share of the window the group-commit writer spent in transactions
	pubRate   float64 // events/s that reached SEGMENTS_EVENTS
}

func between(a, b *snapshot) window {
	w := window{secs: b.at.Sub(a.at).Seconds()}
	w.events = b.acked - a.acked
	w.rate = float64(w.events) / w.secs
	w.cpu = loadkit.CPUBetween(a.cpu, b.cpu)
	w.wal = b.wal.Since(a.wal)
	w.groups = b.grp.groups - a.grp.groups
	w.grpReqs = b.grp.requests - a.grp.requests
	w.grpEvents = b.grp.events - a.grp.events
	w.busyFrac = float64(b.grp.busy-a.grp.busy) / float64(b.at.Sub(a.at))
	if b.published >= a.published {
		w.pubRate = float64(b.published-a.published) / w.secs
	}
	return w
}

// groupNote describes group commit over a window.
func (w *window) groupNote() string {
	if w.groups == 0 {
		return ""
	}
	s := fmt.Sprintf("%.0f tx/s, %.1f requests and %.0f events per tx, writer in tx %.0f%% of the time",
		float64(w.groups)/w.secs, float64(w.grpReqs)/float64(w.groups), float64(w.grpEvents)/float64(w.groups), 100*w.busyFrac)
	if w.wal.OK && w.wal.Syncs > 0 {
		s += fmt.Sprintf("; WAL %.1f MB/s, %.0f fsyncs/s", float64(w.wal.Bytes)/w.secs/1e6, float64(w.wal.Syncs)/w.secs)
	}
	return s
}

type latencies []time.Duration

func (l latencies) pct(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// loadResult is the outcome of one load run.
type loadResult struct {
	window
	lat      latencies
	requests int64 // over the whole run
	acked    int64 // events acknowledged over the whole run
	errors   int64
	firstErr string
	maxLag   int64 // publication lag (events) seen during the window
	extra    string
}

// worker is one client of a closed-loop run.
type worker struct {
	id  int
	gen *gen
	buf []byte
}

// workFunc does one request and returns how many events it recorded.
type workFunc func(ctx context.Context, w *worker) (int, error)

// drive runs workers that each do a request, wait for its answer and do the
// next (closed loop), for the warm-up and then the measured window, and
// measures the window. With b set it also follows publication to
// SEGMENTS_EVENTS.
func (r *runner) drive(ctx context.Context, svc *deployment, b *loadkit.Bus, workers int, work workFunc) (loadResult, error) {
	var (
		acked, issued, errs atomic.Int64
		stop, measuring     atomic.Bool
		errMu               sync.Mutex
		firstErr            string
		latMu               sync.Mutex
		lat                 latencies
		wg                  sync.WaitGroup
	)
	done := make(chan struct{})
	for id := range workers {
		wg.Go(func() {
			w := &worker{id: id, gen: newGen(r.o.customers)}
			var mine latencies
			defer func() {
				latMu.Lock()
				lat = append(lat, mine...)
				latMu.Unlock()
			}()
			for !stop.Load() && ctx.Err() == nil {
				if issued.Add(1) > r.o.maxRequests {
					return
				}
				t0 := time.Now()
				n, err := work(ctx, w)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errMu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					errMu.Unlock()
					if errs.Add(1) > 100 {
						return
					}
					continue
				}
				acked.Add(int64(n))
				if measuring.Load() {
					mine = append(mine, d)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	p := &probe{r: r, svc: svc, bus: b, acked: &acked}
	var maxLag atomic.Int64
	lagDone := make(chan struct{})
	lagStop := make(chan struct{})
	if b != nil && svc != nil {
		go func() {
			defer close(lagDone)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-lagStop:
					return
				case <-t.C:
				}
				head := svc.head(ctx)
				n, err := b.Msgs(ctx, natsbus.StreamEvents)
				if err == nil && head >= 0 && measuring.Load() {
					if lag := head - clampInt64(n); lag > maxLag.Load() {
						maxLag.Store(lag)
					}
				}
			}
		}()
	} else {
		close(lagDone)
	}

	sleepOrDone(ctx, done, r.o.warmup)
	r.analyze(ctx, svc)
	s0 := p.take(ctx)
	measuring.Store(true)
	if svc != nil {
		svc.trace.Start()
	}
	sleepOrDone(ctx, done, r.o.duration)
	measuring.Store(false)
	if svc != nil {
		svc.trace.Stop()
	}
	s1 := p.take(ctx)
	stop.Store(true)
	<-done
	close(lagStop)
	<-lagDone

	res := loadResult{window: between(&s0, &s1), lat: lat, requests: min(issued.Load(), r.o.maxRequests),
		acked: acked.Load(), errors: errs.Load(), firstErr: firstErr, maxLag: maxLag.Load()}
	if res.errors > 0 {
		logf("  %d failed requests; first: %s", res.errors, res.firstErr)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.errors > 100 {
		return res, fmt.Errorf("too many failed requests; first: %s", res.firstErr)
	}
	return res, nil
}

// httpLoad drives the HTTP API with clients sending eventsPerReq events per
// request: 1 sends the single-envelope form, more the batch form.
func (r *runner) httpLoad(ctx context.Context, svc *deployment, b *loadkit.Bus, clients, eventsPerReq int) (loadResult, error) {
	client := newHTTPClient(clients)
	defer client.CloseIdleConnections()
	return r.drive(ctx, svc, b, clients, func(ctx context.Context, w *worker) (int, error) {
		now := time.Now()
		if eventsPerReq == 1 {
			o := w.gen.next(now)
			w.buf = appendEnvelope(w.buf[:0], &o)
		} else {
			w.buf = w.gen.appendBatch(w.buf[:0], eventsPerReq, now)
		}
		status, msg, err := post(ctx, client, svc.url(w.id), w.buf)
		if err != nil {
			return 0, err
		}
		if status != http.StatusCreated {
			return 0, fmt.Errorf("status %d: %s", status, msg)
		}
		return eventsPerReq, nil
	})
}

func sleepOrDone(ctx context.Context, done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-done:
	case <-t.C:
	}
}

// openResult is the outcome of a constant-arrival-rate run.
type openResult struct {
	window
	target   float64
	achieved float64 // requests/s completed, of those scheduled in the window
	lat      latencies
	shed     int64 // arrivals not sent because maxInFlight requests were outstanding
	errors   int64
	firstErr string
}

const maxInFlight = 4096

// openLoop sends single-event requests at a constant arrival rate,
// independent of how fast answers come (open loop). Each request's latency
// runs from its scheduled send time, so a stall of the server or of the
// scheduler counts against the latency instead of slowing the arrivals
// (no coordinated omission).
func (r *runner) openLoop(ctx context.Context, svc *deployment, rate float64) (openResult, error) {
	client := newHTTPClient(1024)
	defer client.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / rate)
	total := r.o.warmup + r.o.duration
	n := int(total / interval)
	n = min(n, int(r.o.maxRequests))
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
		shed     atomic.Int64
		errs     atomic.Int64
		acked    atomic.Int64
		errMu    sync.Mutex
		firstErr string
	)
	gens := sync.Pool{New: func() any { return newGen(r.o.customers) }}
	p := &probe{r: r, svc: svc, acked: &acked}
	start := time.Now()
	// The window's first snapshot is taken aside, not to delay arrivals.
	var s0 snapshot
	s0Done := make(chan struct{})
	go func() {
		defer close(s0Done)
		time.Sleep(time.Until(start.Add(r.o.warmup / 2)))
		r.analyze(ctx, svc)
		time.Sleep(time.Until(start.Add(r.o.warmup)))
		s0 = p.take(ctx)
		svc.trace.Start()
	}()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		if inFlight.Load() >= maxInFlight {
			shed.Add(1)
			lat[i] = -1
			continue
		}
		inFlight.Add(1)
		wg.Go(func() {
			defer inFlight.Add(-1)
			g, _ := gens.Get().(*gen)
			o := g.next(time.Now())
			gens.Put(g)
			body := appendEnvelope(make([]byte, 0, 512), &o)
			status, msg, err := post(ctx, client, svc.url(i), body)
			if err != nil || status != http.StatusCreated {
				lat[i] = -1
				errMu.Lock()
				if firstErr == "" {
					firstErr = fmt.Sprintf("status %d %s %v", status, msg, err)
				}
				errMu.Unlock()
				errs.Add(1)
				return
			}
			lat[i] = time.Since(at)
			acked.Add(1)
		})
	}
	wg.Wait()
	<-s0Done
	svc.trace.Stop()
	s1 := p.take(ctx)
	res := openResult{target: rate, shed: shed.Load(), errors: errs.Load(), firstErr: firstErr}
	first := int(r.o.warmup / interval)
	ok := 0
	for _, d := range lat[min(first, len(lat)):] {
		if d >= 0 {
			res.lat = append(res.lat, d)
			ok++
		}
	}
	res.window = between(&s0, &s1)
	res.achieved = float64(ok) / r.o.duration.Seconds()
	if res.errors > 0 {
		logf("  %d failed requests; first: %s", res.errors, res.firstErr)
	}
	return res, ctx.Err()
}

func clampInt64(u uint64) int64 {
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// analyze gives the planner statistics of the tables the warm-up filled, as
// autovacuum would after its first round on a live system (on a fresh
// database it has not run yet, and plans made for empty tables stay cached
// in the sessions until statistics change).
func (r *runner) analyze(ctx context.Context, svc *deployment) {
	if svc == nil || !r.o.analyze {
		return
	}
	if _, err := svc.pool.Exec(ctx, "ANALYZE"); err != nil {
		logf("  ANALYZE: %v", err)
	}
}
