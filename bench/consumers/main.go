// Command consumers measures how fast different JetStream consumers drain and
// acknowledge a pre-published backlog, to choose the consumer of the ingest
// worker (docs/consumer-choice.md).
//
// It starts an in-process nats-server (JetStream, file storage in a temp
// dir, SyncAlways off: the server fsyncs on its periodic interval, not after
// every write; the comparison is of consumers, not disks), listens on
// loopback TCP like a real deployment, creates a stream on
// "ingest.>", publishes N JSON messages of about 300 bytes once with
// PublishAsync, and then, for every variant and every run, creates a fresh
// durable consumer (AckExplicit, MaxAckPending 4096, AckWait 30s, deliver
// all: the ingest worker's settings) and drains the stream through it.
//
// A run is finished when the handlers have seen every one of the N messages
// and the server reports the consumer fully acknowledged (no ack pending,
// nothing pending, ack floor at the last sequence). Time, CPU time and
// allocations are taken from the start of consumption to that point. They
// are process-wide, so they include the embedded server's share, which is
// about the same for every variant (the same messages are stored, sent and
// acknowledged; DoubleAck adds a reply per ack).
//
// The machine may be shared: before each run the program waits (bounded)
// until other processes leave the CPUs alone, and it reports the share of
// the CPUs they took during each run.
//
// Run it with `go run .` from this directory; see -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	streamName    = "SEGMENTS_INGEST"
	streamSubject = "ingest.>"
	customers     = 500
	maxAckPending = 4096
)

var (
	flagN        = flag.Int("n", 200_000, "messages to publish and consume per run")
	flagRuns     = flag.Int("runs", 3, "runs per variant (the median is reported)")
	flagWork     = flag.Duration("work", 0, "simulated handler time per message (0: no-op handler)")
	flagPool     = flag.Int("pool", 32, "nats.go variants: shard goroutines")
	flagPull     = flag.Int("pull", 512, "nats.go variants: PullMaxMessages")
	flagWMSubs   = flag.Int("wm-subs", 32, "Watermill: concurrent subscriptions (router handlers / SubscribersCount)")
	flagWMPull   = flag.Int("wm-pull", 128, "Watermill pkg/jetstream: PullMaxMessages per subscription")
	flagOnly     = flag.String("only", "", "comma-separated variant names to run (default: all)")
	flagTimeout  = flag.Duration("timeout", 3*time.Minute, "limit for one run")
	flagSettle   = flag.Duration("settle", time.Second, "pause before each run")
	flagQuiet    = flag.Float64("quiet", 10, "before each run, wait until other processes use less than this share of the CPUs (%) over one second")
	flagQuietMax = flag.Duration("quiet-max", 2*time.Minute, "longest wait for -quiet before running anyway")
)

// variant consumes through consumer durable until tr is done, then stops.
type variant struct {
	name string
	desc string
	run  func(ctx context.Context, env *env, durable string, tr *tracker) error
}

func variants() []variant {
	return []variant{
		{"natsgo-messages", fmt.Sprintf("nats.go jetstream Messages(PullMaxMessages(%d)), %d shard goroutines by customer, Ack()", *flagPull, *flagPool), runNatsMessages},
		{"natsgo-consume", fmt.Sprintf("nats.go jetstream Consume(cb, PullMaxMessages(%d)), %d shard goroutines by customer, Ack()", *flagPull, *flagPool), runNatsConsume},
		{"wm-jetstream", fmt.Sprintf("Watermill router, watermill-nats pkg/jetstream (beta), %d handlers on one durable, PullMaxMessages(%d) each, AckAsync", *flagWMSubs, *flagWMPull), wmJetStream(*flagWMSubs, true, false)},
		{"wm-jetstream+mw", "as wm-jetstream, plus router middleware Retry{MaxRetries: 10, InitialInterval: 100ms, Multiplier: 2, MaxInterval: 10s} and Recoverer", wmJetStream(*flagWMSubs, true, true)},
		{"wm-jetstream-dblack", "as wm-jetstream, but the subscriber's default ack: DoubleAck (AckAsync false)", wmJetStream(*flagWMSubs, false, false)},
		{"wm-jetstream-1", fmt.Sprintf("as wm-jetstream with a single router handler (one subscription, as in Watermill's examples), PullMaxMessages(%d)", *flagWMPull), wmJetStream(1, true, false)},
		{"wm-nats-legacy", fmt.Sprintf("Watermill router, watermill-nats pkg/nats with JetStream (push, durable queue group), SubscribersCount %d, AckAsync", *flagWMSubs), wmLegacy(false)},
		{"wm-nats-legacy+mw", "as wm-nats-legacy, plus Retry and Recoverer middleware", wmLegacy(true)},
	}
}

type env struct {
	url    string
	js     jetstream.JetStream // control connection
	stream jetstream.Stream
	last   uint64 // last stream sequence
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "bench-consumers-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: false, // explicit: fsync is left to the periodic sync, as in the server's default
		NoLog:      true,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server not ready")
	}

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     streamName,
		Subjects: []string{streamSubject},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return err
	}

	n := *flagN
	t0 := time.Now()
	avgBody, err := publish(ctx, js, n)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(n) { //nolint:gosec // n is a positive flag value
		return fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	e := &env{url: srv.ClientURL(), js: js, stream: stream, last: info.State.LastSeq}

	fmt.Printf("go %s, %s/%s, GOMAXPROCS %d, NumCPU %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("nats-server %s, file storage, SyncAlways off; published %d messages (JSON bodies of %d bytes on average, with Nats-Msg-Id) in %s\n",
		server.VERSION, n, avgBody, time.Since(t0).Round(time.Millisecond))
	fmt.Printf("consumer: durable, AckExplicit, MaxAckPending %d, AckWait 30s, DeliverAll; handler work %s; one unmeasured warm-up drain, then %d rounds of all variants (order rotated per round, %s pause before each run)\n\n", maxAckPending, *flagWork, *flagRuns, *flagSettle)

	vs := variants()
	if *flagOnly != "" {
		want := strings.Split(*flagOnly, ",")
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !slices.Contains(want, v.name) })
		if len(vs) == 0 {
			return fmt.Errorf("no variant matches -only %q", *flagOnly)
		}
	}
	// Warm-up, not measured: one drain loads the stream's blocks into the
	// server's cache, so the first measured run does not pay for it alone.
	if _, err := measure(ctx, e, variant{name: "warm-up", run: runNatsConsume}, n, "bench-warmup"); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	results := make([][]result, len(vs))
	for r := range *flagRuns {
		// Each round starts at another variant, so that no variant always
		// runs right after the same neighbour.
		for k := range vs {
			i := (k + r) % len(vs)
			v := vs[i]
			time.Sleep(*flagSettle) // let the previous run's connection and consumer clean-up finish
			waitQuiet()
			res, err := measure(ctx, e, v, n, fmt.Sprintf("bench-%d-%d", i, r))
			if err != nil {
				return fmt.Errorf("%s run %d: %w", v.name, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "run %d %-20s %9.0f msgs/s %8s %5.1f CPU µs/msg %6.1f allocs/msg %7.0f B/msg  out-of-order %6d  other processes %4.1f%% CPU\n",
				r+1, v.name, res.rate, res.elapsed.Round(time.Millisecond), res.cpu, res.allocs, res.bytes, res.ooo, res.foreign)
			results[i] = append(results[i], res)
		}
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	// tabwriter buffers: write errors surface in Flush.
	_, _ = fmt.Fprintln(tw, "variant\tmsgs/s (median)\tmin–max msgs/s\ttotal time\tCPU µs/msg\theap allocs/msg\theap B/msg\tout-of-order per customer\tother processes' CPU\t")
	for i, v := range vs {
		rs := results[i]
		rates := pluck(rs, func(r result) float64 { return r.rate })
		_, _ = fmt.Fprintf(tw, "%s\t%.0f\t%.0f–%.0f\t%s\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f%%\t\n",
			v.name, median(rates), slices.Min(rates), slices.Max(rates),
			time.Duration(median(pluck(rs, func(r result) float64 { return float64(r.elapsed) }))).Round(time.Millisecond),
			median(pluck(rs, func(r result) float64 { return r.cpu })),
			median(pluck(rs, func(r result) float64 { return r.allocs })),
			median(pluck(rs, func(r result) float64 { return r.bytes })),
			median(pluck(rs, func(r result) float64 { return float64(r.ooo) })),
			slices.Max(pluck(rs, func(r result) float64 { return r.foreign })))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	for _, v := range vs {
		fmt.Printf("%-20s %s\n", v.name, v.desc)
	}
	return nil
}

// publish sends n messages on ingest.<type>, each with a Nats-Msg-Id.
func publish(ctx context.Context, js jetstream.JetStream, n int) (avgBody int, err error) {
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // deterministic test data, not a secret
	types := []string{"track", "identify", "page"}
	pad := strings.Repeat("x", 130)
	total := 0
	for i := range n {
		typ := types[i%len(types)]
		body := fmt.Sprintf(`{"n":%09d,"customer":"c%04d","type":%q,"event_id":"","occurred_at":"2026-01-02T03:04:05.678Z","properties":{"plan":"pro","amount":"12.34","currency":"EUR","note":%q}}`,
			i, rng.IntN(customers), typ, pad)
		if i == 0 {
			if got, c := parseN([]byte(body)), parseCustomer([]byte(body)); got != 0 || c < 0 {
				return 0, fmt.Errorf("body layout: %s", body)
			}
		}
		msg := nats.NewMsg("ingest." + typ)
		msg.Data = []byte(body)
		total += len(body)
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID("m-"+strconv.Itoa(i))); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, errors.New("publish did not complete")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return total / n, nil
}

// Body layout: {"n":000000123,"customer":"c0042",...
func parseN(b []byte) int {
	v := 0
	for _, c := range b[5:14] {
		v = v*10 + int(c-'0')
	}
	return v
}

func parseCustomer(b []byte) int {
	v := 0
	for _, c := range b[28:32] {
		v = v*10 + int(c-'0')
	}
	return v
}

func customerBytes(b []byte) []byte { return b[27:32] }

// tracker checks that each message is handled, counts duplicates and
// messages handled before an earlier message of the same customer.
type tracker struct {
	n     int64
	work  time.Duration
	seen  []atomic.Bool
	count atomic.Int64
	dups  atomic.Int64
	last  []atomic.Int64
	ooo   atomic.Int64
	done  chan struct{}
}

func newTracker(n int, work time.Duration) *tracker {
	t := &tracker{n: int64(n), work: work, seen: make([]atomic.Bool, n), last: make([]atomic.Int64, customers), done: make(chan struct{})}
	for i := range t.last {
		t.last[i].Store(-1)
	}
	return t
}

// handle is the benchmark's "handler": simulated work, then bookkeeping.
func (t *tracker) handle(body []byte) {
	if t.work > 0 {
		time.Sleep(t.work)
	}
	i := parseN(body)
	if prev := t.last[parseCustomer(body)].Swap(int64(i)); prev > int64(i) {
		t.ooo.Add(1)
	}
	if t.seen[i].Swap(true) {
		t.dups.Add(1)
		return
	}
	if t.count.Add(1) == t.n {
		close(t.done)
	}
}

type result struct {
	rate    float64
	elapsed time.Duration
	allocs  float64
	bytes   float64
	ooo     int64
	cpu     float64 // this process's CPU time per message, in µs
	foreign float64 // share of the machine's CPU used by other processes during the run, in %
}

func measure(ctx context.Context, e *env, v variant, n int, durable string) (result, error) {
	// The legacy Watermill subscriber is push-based and creates its push
	// consumer itself, with the same settings (see wmLegacy).
	if !strings.HasPrefix(v.name, "wm-nats-legacy") {
		if _, err := e.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    -1,
			MaxAckPending: maxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: streamSubject,
		}); err != nil {
			return result{}, err
		}
	}
	defer func() { _ = e.stream.DeleteConsumer(context.WithoutCancel(ctx), durable) }()

	tr := newTracker(n, *flagWork)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := sampleCPU()
	start := time.Now()

	rctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	defer cancel()
	finished := make(chan struct{})
	var elapsed time.Duration
	var cpu1 cpuSample
	var waitErr error
	go func() {
		defer close(finished)
		waitErr = waitAcked(rctx, e, durable, tr)
		elapsed = time.Since(start)
		cpu1 = sampleCPU()
		runtime.ReadMemStats(&after)
		cancel()
	}()
	runErr := v.run(rctx, e, durable, tr)
	<-finished
	if waitErr != nil {
		return result{}, fmt.Errorf("%w (handled %d of %d, duplicates %d)", waitErr, tr.count.Load(), n, tr.dups.Load())
	}
	if runErr != nil {
		return result{}, runErr
	}
	if got := tr.count.Load(); got != int64(n) {
		return result{}, fmt.Errorf("handled %d distinct messages, want %d", got, n)
	}
	if d := tr.dups.Load(); d != 0 {
		return result{}, fmt.Errorf("%d messages handled twice", d)
	}
	return result{
		rate:    float64(n) / elapsed.Seconds(),
		elapsed: elapsed,
		allocs:  float64(after.Mallocs-before.Mallocs) / float64(n),
		bytes:   float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		ooo:     tr.ooo.Load(),
		cpu:     float64((cpu1.self - cpu0.self).Microseconds()) / float64(n),
		foreign: foreignShare(cpu0, cpu1),
	}, nil
}

// waitAcked returns when all messages were handled and the server has every
// ack of consumer durable.
func waitAcked(ctx context.Context, e *env, durable string, tr *tracker) error {
	select {
	case <-tr.done:
	case <-ctx.Done():
		return fmt.Errorf("handlers did not see every message: %w", ctx.Err())
	}
	var c interface {
		Info(context.Context) (*jetstream.ConsumerInfo, error)
	}
	c, err := e.js.Consumer(ctx, streamName, durable)
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		c, err = e.js.PushConsumer(ctx, streamName, durable)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", durable, err)
	}
	for {
		info, err := c.Info(ctx)
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == e.last {
			return nil
		}
		if ctx.Err() != nil {
			if info != nil {
				return fmt.Errorf("consumer not fully acknowledged: %w (ack pending %d, pending %d, ack floor %d of %d, redelivered %d)",
					ctx.Err(), info.NumAckPending, info.NumPending, info.AckFloor.Stream, e.last, info.NumRedelivered)
			}
			return fmt.Errorf("consumer not fully acknowledged: %w (last error: %w)", ctx.Err(), err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// --- nats.go jetstream, as in ingest/worker.go -------------------------------

func connect(e *env) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(e.url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func pluck(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
