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
	"hash/fnv"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
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

// cpuSample is this process's CPU time and the machine's busy and total
// CPU time (from /proc/stat; zero where it cannot be read).
type cpuSample struct {
	self        time.Duration
	busy, total uint64 // clock ticks
}

func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil || i >= 8 {
			break
		}
		s.total += v
		if i != 3 && i != 4 { // idle, iowait
			s.busy += v
		}
	}
	return s
}

// waitQuiet waits, at most -quiet-max, until other processes leave the CPUs
// alone (this machine may be shared), so that they disturb runs less; each
// run reports what they used during it.
func waitQuiet() {
	deadline := time.Now().Add(*flagQuietMax)
	for {
		a := sampleCPU()
		time.Sleep(time.Second)
		f := foreignShare(a, sampleCPU())
		if f < *flagQuiet {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "other processes still use %.0f%% of the CPUs; running anyway\n", f)
			return
		}
	}
}

// foreignShare is the share of all CPUs, in percent, that other processes
// used between a and b.
func foreignShare(a, b cpuSample) float64 {
	if b.total <= a.total {
		return 0
	}
	const hz = 100 // USER_HZ: /proc/stat counts in 1/100 s
	total := float64(b.total-a.total) / hz
	busy := float64(b.busy-a.busy) / hz
	other := busy - (b.self - a.self).Seconds()
	return max(0, 100*other/total)
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

// shards is the worker's pool: messages of one customer go to one goroutine.
type shards struct {
	chs []chan jetstream.Msg
	wg  sync.WaitGroup
}

func newShards(n int, tr *tracker) *shards {
	s := &shards{chs: make([]chan jetstream.Msg, n)}
	for i := range s.chs {
		s.chs[i] = make(chan jetstream.Msg, 64)
		s.wg.Go(func() {
			for msg := range s.chs[i] {
				tr.handle(msg.Data())
				_ = msg.Ack()
			}
		})
	}
	return s
}

func (s *shards) dispatch(msg jetstream.Msg) {
	h := fnv.New32a()
	h.Write(customerBytes(msg.Data()))
	s.chs[int(h.Sum32())%len(s.chs)] <- msg
}

func (s *shards) close() {
	for _, ch := range s.chs {
		close(ch)
	}
	s.wg.Wait()
}

func runNatsMessages(ctx context.Context, e *env, durable string, tr *tracker) error {
	nc, js, err := connect(e)
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.Consumer(ctx, streamName, durable)
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(*flagPull))
	if err != nil {
		return err
	}
	sh := newShards(*flagPool, tr)
	defer sh.close()
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sh.dispatch(msg)
	}
}

func runNatsConsume(ctx context.Context, e *env, durable string, tr *tracker) error {
	nc, js, err := connect(e)
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.Consumer(ctx, streamName, durable)
	if err != nil {
		return err
	}
	sh := newShards(*flagPool, tr)
	cc, err := cons.Consume(sh.dispatch, jetstream.PullMaxMessages(*flagPull))
	if err != nil {
		sh.close()
		return err
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	sh.close()
	return nil
}

// --- Watermill ---------------------------------------------------------------

func newRouter(mw bool) (*message.Router, error) {
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	if mw {
		r.AddMiddleware(
			// Shaped like the worker's own retry (100ms doubling to 10s),
			// but bounded, as Watermill's Retry is: then the message is Nacked.
			middleware.Retry{MaxRetries: 10, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second, Logger: watermill.NopLogger{}}.Middleware,
			middleware.Recoverer,
		)
	}
	return r, nil
}

// runRouter runs r until ctx is done.
func runRouter(ctx context.Context, r *message.Router) error {
	errc := make(chan error, 1)
	go func() { errc <- r.Run(context.WithoutCancel(ctx)) }() // stopped by Close below
	select {
	case <-r.Running():
	case err := <-errc:
		return err
	}
	<-ctx.Done()
	closeErr := r.Close()
	if err := <-errc; err != nil {
		return err
	}
	_ = closeErr // closing while the broker connection drains may report a timeout; the run is already measured
	return nil
}

// wmJetStream runs subs router handlers, all on the same durable pull
// consumer, with watermill-nats' pkg/jetstream subscriber. Its subscription
// hands one message at a time to the router and waits for its ack before
// taking the next (it runs inside nats.go's Consume callback), so
// concurrency comes from the number of subscriptions.
func wmJetStream(subs int, ackAsync, mw bool) func(context.Context, *env, string, *tracker) error {
	return func(ctx context.Context, e *env, durable string, tr *tracker) error {
		nc, err := nats.Connect(e.url)
		if err != nil {
			return err
		}
		defer nc.Close()
		sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
			Conn:           nc,
			Logger:         watermill.NopLogger{},
			AckWaitTimeout: 30 * time.Second,
			AckAsync:       ackAsync,
			ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(*flagWMPull)},
			ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
				c, err := js.Consumer(ctx, streamName, durable)
				return c, nil, err
			},
		})
		if err != nil {
			return err
		}
		r, err := newRouter(mw)
		if err != nil {
			return err
		}
		for i := range subs {
			r.AddConsumerHandler("h"+strconv.Itoa(i), streamSubject, sub, func(m *message.Message) error {
				tr.handle(m.Payload)
				return nil
			})
		}
		return runRouter(ctx, r)
	}
}

// wmLegacy runs one router handler on watermill-nats' pkg/nats subscriber
// with JetStream: SubscribersCount push subscriptions in one durable queue
// group (the legacy nats.go JetStream API), manual acks.
func wmLegacy(mw bool) func(context.Context, *env, string, *tracker) error {
	return func(ctx context.Context, e *env, durable string, tr *tracker) error {
		nc, err := nats.Connect(e.url)
		if err != nil {
			return err
		}
		defer nc.Close()
		sub, err := wmnats.NewSubscriberWithNatsConn(nc, wmnats.SubscriberSubscriptionConfig{
			SubscribersCount: *flagWMSubs,
			AckWaitTimeout:   30 * time.Second,
			CloseTimeout:     10 * time.Second,
			QueueGroupPrefix: durable,
			Unmarshaler:      &wmnats.NATSMarshaler{},
			JetStream: wmnats.JetStreamConfig{
				AckAsync:      true,
				DurablePrefix: durable,
				SubscribeOptions: []nats.SubOpt{
					nats.BindStream(streamName),
					nats.ManualAck(),
					nats.AckExplicit(),
					nats.AckWait(30 * time.Second),
					nats.MaxAckPending(maxAckPending),
					nats.DeliverAll(),
				},
			},
		}, watermill.NopLogger{})
		if err != nil {
			return err
		}
		r, err := newRouter(mw)
		if err != nil {
			return err
		}
		r.AddConsumerHandler("legacy", streamSubject, sub, func(m *message.Message) error {
			tr.handle(m.Payload)
			return nil
		})
		return runRouter(ctx, r)
	}
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
