package ingestload

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/natsbus"
)

func natsServerVersion() string { return server.VERSION }

// natsPhase is how long each NATS measurement runs.
func (r *runner) natsPhase() time.Duration { return max(2*time.Second, r.o.duration/4) }

// scenarioNATSSync measures what SyncAlways (fsync before every
// acknowledgement) costs: upstream publishes to SEGMENTS_INGEST over TCP
// (asynchronous with a window, and synchronous), and the publisher's atomic
// batches to SEGMENTS_EVENTS over the in-process connection.
func (r *runner) scenarioNATSSync(ctx context.Context) error {
	for _, syncOn := range []bool{true, false} {
		if err := r.natsSyncOne(ctx, syncOn); err != nil {
			return err
		}
	}
	return nil
}

type natsMeasure struct {
	name string
	run  func(ctx context.Context, b *loadkit.Bus, upstream jetstream.JetStream) (int64, error)
}

func (r *runner) natsSyncOne(ctx context.Context, syncOn bool) error {
	payload := ingestPayload()
	measures := []natsMeasure{
		{"PublishAsync to SEGMENTS_INGEST, window 256, 1 publisher", func(ctx context.Context, _ *loadkit.Bus, js jetstream.JetStream) (int64, error) {
			return r.publishAsync(ctx, js, payload)
		}},
		{"sync Publish to SEGMENTS_INGEST, 1 publisher", func(ctx context.Context, _ *loadkit.Bus, js jetstream.JetStream) (int64, error) {
			return r.publishSync(ctx, js, payload, 1)
		}},
		{"sync Publish to SEGMENTS_INGEST, 16 concurrent publishers", func(ctx context.Context, _ *loadkit.Bus, js jetstream.JetStream) (int64, error) {
			return r.publishSync(ctx, js, payload, 16)
		}},
		{"atomic batches of 1000 to SEGMENTS_EVENTS (natsbus.BatchPublisher)", func(ctx context.Context, b *loadkit.Bus, _ jetstream.JetStream) (int64, error) {
			return r.publishBatches(ctx, b)
		}},
	}
	for i, m := range measures {
		// A fresh server for each measurement: one's backlog of unsynced
		// writes must not be paid by the next.
		b, err := r.startBus(ctx, syncOn)
		if err != nil {
			return err
		}
		nc, err := nats.Connect(b.Srv.ClientURL(), nats.Name("segments-load-upstream"))
		if err != nil {
			b.Close()
			return err
		}
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256))
		if err != nil {
			nc.Close()
			b.Close()
			return err
		}
		c0 := loadkit.TakeCPU(nil)
		t0 := time.Now()
		n, err := m.run(ctx, b, js)
		secs := time.Since(t0).Seconds()
		c1 := loadkit.TakeCPU(nil)
		nc.Close()
		b.Close()
		if err != nil {
			return fmt.Errorf("%s, %s: %w", m.name, syncName(syncOn), err)
		}
		rate := float64(n) / secs
		switch {
		case i == 0 && syncOn:
			r.fig.natsAsyncOn = rate
		case i == 0:
			r.fig.natsAsyncOff = rate
		case i == 1 && syncOn:
			r.fig.natsSyncOn = rate
		case i == 1:
			r.fig.natsSyncOf = rate
		case i == 3 && syncOn:
			r.fig.natsBatchOn = rate
		case i == 3:
			r.fig.natsBatchOf = rate
		}
		r.add("nats", m.name+", "+syncName(syncOn), num(rate)+" msgs/s",
			fmt.Sprintf("%d messages acknowledged in %.1f s; %s", n, secs, loadkit.CPUBetween(c0, c1)))
	}
	return nil
}

// ingestPayload is an envelope as an upstream system would publish it.
func ingestPayload() []byte {
	g := newGen(100_000)
	o := g.next(time.Now())
	return appendEnvelope(nil, &o)
}

func (r *runner) publishAsync(ctx context.Context, js jetstream.JetStream, payload []byte) (int64, error) {
	deadline := time.Now().Add(r.natsPhase())
	var sent int64
	futures := make([]jetstream.PubAckFuture, 0, 1024)
	check := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for time.Now().Before(deadline) && sent < r.o.maxRequests {
		f, err := js.PublishAsync("ingest.load.orders", payload)
		if err != nil {
			return sent, err
		}
		futures = append(futures, f)
		sent++
		if len(futures) == cap(futures) {
			if err := check(); err != nil {
				return sent, err
			}
		}
	}
	return sent, check()
}

func (r *runner) publishSync(ctx context.Context, js jetstream.JetStream, payload []byte, publishers int) (int64, error) {
	deadline := time.Now().Add(r.natsPhase())
	var sent atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for time.Now().Before(deadline) && sent.Load() < r.o.maxRequests && ctx.Err() == nil {
				if _, err := js.Publish(ctx, "ingest.load.orders", payload); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return sent.Load(), err
	}
	return sent.Load(), ctx.Err()
}

// publishBatches publishes atomic batches of 1000 event messages (bodies and
// headers shaped like the publisher's) as fast as they are acknowledged.
func (r *runner) publishBatches(ctx context.Context, b *loadkit.Bus) (int64, error) {
	p := natsbus.NewBatchPublisher(b.NC, b.JS, natsbus.StreamEvents)
	if _, err := p.LastMessage(ctx); err != nil {
		return 0, err
	}
	g := newGen(r.o.customers)
	deadline := time.Now().Add(r.natsPhase())
	var sent int64
	var pos int64
	msgs := make([]natsbus.OutMsg, natsbus.MaxAtomicBatch)
	for time.Now().Before(deadline) && sent < r.o.maxRequests {
		now := time.Now()
		for i := range msgs {
			o := g.next(now)
			pos++
			body := appendEnvelope(make([]byte, 0, 512), &o)
			// The published body is the envelope plus version, position and recorded_at.
			body = append(body[:len(body)-1], `,"version":1,"position":`...)
			body = strconv.AppendInt(body, pos, 10)
			body = append(body, `,"recorded_at":"`...)
			body = now.In(cst).AppendFormat(body, time.RFC3339Nano)
			body = append(body, `"}`...)
			msgs[i] = natsbus.OutMsg{
				Subject: natsbus.SubjectEventsPrefix + "OrderPlaced",
				MsgID:   o.eventID.String(),
				Header: nats.Header{
					natsbus.HeaderPosition:  []string{strconv.FormatInt(pos, 10)},
					natsbus.HeaderCustomer:  []string{customerCode(o.customer)},
					natsbus.HeaderVersion:   []string{"1"},
					natsbus.HeaderEventType: []string{"OrderPlaced"},
				},
				Data: body,
			}
		}
		if err := p.Publish(ctx, msgs); err != nil {
			return sent, err
		}
		sent += int64(len(msgs))
	}
	return sent, nil
}
