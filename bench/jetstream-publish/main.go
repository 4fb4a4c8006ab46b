// Command jetstream-publish measures what publishing into a SyncAlways file
// stream costs per message, two ways, at several batch sizes:
//
//   - atomic: natsbus.BatchPublisher, the publisher's and the relays' way
//     (one JetStream atomic batch per call);
//   - chained: plain asynchronous publishes, each expecting the stream's last
//     sequence to be the one before it (Nats-Expected-Last-Sequence), so a
//     failed message fails every later one and no gap can form: the
//     alternative that would skip the atomic batch's staging store.
//
// It starts an in-process nats-server as segmentd does (SyncAlways on) with
// the service's streams in a temporary directory, and prints messages/s,
// CPU of this process per message and wall time per batch. See
// docs/BENCHMARKS.md (issue 3, session 7).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/natsbus"
)

func main() {
	total := flag.Int("n", 5000, "messages per case")
	size := flag.Int("size", 700, "message body bytes (an event on SEGMENTS_EVENTS is ~700)")
	flag.Parse()
	if err := run(*total, *size); err != nil {
		log.Fatal(err)
	}
}

func run(total, size int) error {
	dir, err := os.MkdirTemp("", "jetstream-publish")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedConfig{StoreDir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, js, err := natsbus.Connect(srv.ClientURL(), srv, "jetstream-publish", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js); err != nil {
		return err
	}
	b := bench{js: js, pub: natsbus.NewBatchPublisher(nc, js, natsbus.StreamEvents), body: make([]byte, size)}
	fmt.Printf("SyncAlways file stream %s, %d-byte bodies, %d messages per case\n", natsbus.StreamEvents, size, total)
	for _, k := range []int{1, 10, 100, 500} {
		for _, c := range []struct {
			name    string
			publish func(context.Context, int) error
		}{{"atomic", b.atomic}, {"chained", b.chained}} {
			c0, t0 := loadkit.ProcessCPU(), time.Now()
			n := 0
			for ; n < total; n += k {
				if err := c.publish(ctx, k); err != nil {
					return fmt.Errorf("%s, batches of %d: %w", c.name, k, err)
				}
			}
			wall, cpu := time.Since(t0), loadkit.ProcessCPU()-c0
			fmt.Printf("%-7s batches of %3d: %7.0f messages/s  %7.1f µs CPU per message  %7.2f ms per batch\n",
				c.name, k, float64(n)/wall.Seconds(), float64(cpu.Microseconds())/float64(n), wall.Seconds()*1000/float64(n/k))
		}
	}
	return nil
}

type bench struct {
	js     jetstream.JetStream
	pub    *natsbus.BatchPublisher
	body   []byte
	next   int    // last message id and position used
	synced bool   // pub knows the stream's last sequence
	last   uint64 // the stream's last sequence, for chained (0: read it)
}

func (b *bench) atomic(ctx context.Context, k int) error {
	if !b.synced { // once: a successful Publish keeps the publisher in step
		if _, err := b.pub.LastMessage(ctx); err != nil {
			return err
		}
		b.synced = true
	}
	b.last = 0 // the chained case must re-read the stream's tail
	msgs := make([]natsbus.OutMsg, k)
	for i := range msgs {
		b.next++
		id := strconv.Itoa(b.next)
		msgs[i] = natsbus.OutMsg{Subject: "customers.events.OrderPlaced", MsgID: id, Header: nats.Header{"Segments-Position": {id}}, Data: b.body}
	}
	return b.pub.Publish(ctx, msgs)
}

func (b *bench) chained(ctx context.Context, k int) error {
	b.synced = false // the atomic case must re-read the stream's tail
	if b.last == 0 {
		s, err := b.js.Stream(ctx, natsbus.StreamEvents)
		if err != nil {
			return err
		}
		b.last = s.CachedInfo().State.LastSeq
	}
	acks := make([]jetstream.PubAckFuture, k)
	for i := range acks {
		b.next++
		id := strconv.Itoa(b.next)
		m := nats.NewMsg("customers.events.OrderPlaced")
		m.Data = b.body
		m.Header.Set("Segments-Position", id)
		m.Header.Set(jetstream.MsgIDHeader, id)
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(b.last+uint64(i), 10))
		var err error
		if acks[i], err = b.js.PublishMsgAsync(m); err != nil {
			return err
		}
	}
	for _, a := range acks {
		select {
		case ack := <-a.Ok():
			b.last = ack.Sequence
		case err := <-a.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
