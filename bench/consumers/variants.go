package main

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

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
