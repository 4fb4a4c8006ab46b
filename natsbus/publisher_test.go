package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

func orderEvents(customer string, from, n int) domain.AppendRequest {
	var r domain.AppendRequest
	for i := from; i < from+n; i++ {
		r.Events = append(r.Events, domain.Envelope{
			Type: domain.TypeOrderPlaced, Customer: domain.CustomerCode(customer),
			Data: &domain.OrderPlaced{OrderID: "o" + strconv.Itoa(i), Amount: 100},
		})
	}
	return r
}

// runPublisher runs a publisher until the returned stop is called.
func runPublisher(t *testing.T, s *eventstore.Store, sink eventstore.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := eventstore.NewPublisher(eventstore.PublisherConfig{Store: s, Sink: sink, Logger: testenv.Logger(t), IdleWake: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("publisher: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// streamMessages reads every message of SEGMENTS_EVENTS in sequence order.
func streamMessages(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, natsbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

func streamCount(js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, natsbus.StreamEvents)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// assertExactlyOnce checks that the stream holds every recorded event once,
// in position order, with Nats-Msg-Id = event_id and the §3 body.
func assertExactlyOnce(t *testing.T, s *eventstore.Store, js jetstream.JetStream) {
	t.Helper()
	events, err := s.ReadAll(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	msgs := streamMessages(t, js)
	if len(msgs) != len(events) {
		t.Fatalf("stream holds %d messages for %d recorded events", len(msgs), len(events))
	}
	for i, m := range msgs {
		e := events[i]
		if m.Header.Get(jetstream.MsgIDHeader) != e.EventID.String() {
			t.Fatalf("message %d: Nats-Msg-Id %q, want event %s (position %d)", m.Sequence, m.Header.Get(jetstream.MsgIDHeader), e.EventID, e.Position)
		}
		if m.Subject != "customers.events."+string(e.Type) {
			t.Fatalf("message %d: subject %s", m.Sequence, m.Subject)
		}
		var body eventstore.EventBody
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("message %d body: %v", m.Sequence, err)
		}
		if body.Position != e.Position || body.Version != e.Version || body.EventID != e.EventID || body.RecordedAt == "" || len(body.Data) == 0 {
			t.Fatalf("message %d body = %+v, want position %d version %d", m.Sequence, body, e.Position, e.Version)
		}
	}
}

func TestPublishesEveryEventOnceInPositionOrder(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	runPublisher(t, s, natsbus.NewEventSink(nc, js))
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Append(ctx, orderEvents(fmt.Sprintf("KH%d", i%2), i*700, 700)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, "3500 messages on the stream", func() bool { return streamCount(js) >= 3500 })
	assertExactlyOnce(t, s, js)
}

func TestPublicationSurvivesANATSOutageWithoutLossOrDuplicate(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	runPublisher(t, s, natsbus.NewEventSink(nc, js))
	ctx := context.Background()
	if _, err := s.Append(ctx, orderEvents("KH1", 0, 100)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "first 100 published", func() bool { return streamCount(js) == 100 })

	n.Stop()
	// Ingestion keeps working while NATS is down.
	for i := range 10 {
		if _, err := s.Append(ctx, orderEvents("KH2", i*30, 30)); err != nil {
			t.Fatalf("append during the outage: %v", err)
		}
	}
	n.Restart()
	testenv.Eventually(t, 2*time.Minute, "400 messages after NATS returns", func() bool { return streamCount(js) >= 400 })
	assertExactlyOnce(t, s, js)
}

// crashAfterPublish is a sink that publishes, then cancels the publisher's
// context before it can save its checkpoint: a kill between publish and
// checkpoint.
type crashAfterPublish struct {
	eventstore.Sink
	after  int
	calls  int
	cancel func()
}

func (c *crashAfterPublish) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	err := c.Sink.PublishAtomic(ctx, msgs)
	c.calls++
	if err == nil && c.calls == c.after {
		c.cancel()
		return errors.New("killed after publishing")
	}
	return err
}

func TestKillBetweenPublishAndCheckpointDuplicatesNothing(t *testing.T) {
	t.Parallel()
	s, db := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, orderEvents("KH1", 0, 50)); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	sink := &crashAfterPublish{Sink: natsbus.NewEventSink(nc, js), after: 1, cancel: cancel}
	p := eventstore.NewPublisher(eventstore.PublisherConfig{Store: s, Sink: sink, Logger: testenv.Logger(t), IdleWake: 20 * time.Millisecond})
	if err := p.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	if got := streamCount(js); got != 50 {
		t.Fatalf("first publisher published %d messages, want 50", got)
	}
	var checkpoint int64
	_ = db.Pool.QueryRow(ctx, "SELECT coalesce((SELECT position FROM publication_checkpoints WHERE name = 'jetstream'), 0)").Scan(&checkpoint)
	if checkpoint != 0 {
		t.Fatalf("checkpoint = %d; the kill should have left it behind the stream", checkpoint)
	}

	// A new publisher starts after the kill, more events arrive.
	runPublisher(t, s, natsbus.NewEventSink(nc, js))
	if _, err := s.Append(ctx, orderEvents("KH1", 50, 25)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "75 messages", func() bool { return streamCount(js) >= 75 })
	assertExactlyOnce(t, s, js)
	testenv.Eventually(t, 30*time.Second, "checkpoint to catch up", func() bool {
		cp, err := s.Checkpoint(ctx, "jetstream")
		return err == nil && cp == 75
	})
}

func TestPublisherRepublishesATailTheStreamLost(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, orderEvents("KH1", 0, 20)); err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, s, natsbus.NewEventSink(nc, js))
	testenv.Eventually(t, time.Minute, "20 published", func() bool { return streamCount(js) == 20 })
	stop()
	// The stream loses its content (e.g. restored from an older backup):
	// the checkpoint says 20, the stream says 0.
	st, err := js.Stream(ctx, natsbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, natsbus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	runPublisher(t, s, natsbus.NewEventSink(nc, js))
	testenv.Eventually(t, time.Minute, "the lost events republished", func() bool { return streamCount(js) == 20 })
	assertExactlyOnce(t, s, js)
}

func TestOnlyOnePublisherPublishesAtATime(t *testing.T) {
	t.Parallel()
	s, _ := testenv.Store(t, time.Now)
	n := testenv.StartNATS(t)
	nc1, js1 := n.Connect(t)
	nc2, js2 := n.Connect(t)
	runPublisher(t, s, natsbus.NewEventSink(nc1, js1))
	runPublisher(t, s, natsbus.NewEventSink(nc2, js2))
	ctx := context.Background()
	for i := range 20 {
		if _, err := s.Append(ctx, orderEvents(fmt.Sprintf("KH%d", i), 0, 10)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, "200 messages", func() bool { return streamCount(js1) >= 200 })
	assertExactlyOnce(t, s, js1)
}

func TestBatchPublisherRefusesToWriteOutOfSequence(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	ctx := context.Background()
	a := natsbus.NewBatchPublisher(nc, js, natsbus.StreamEvents)
	b := natsbus.NewBatchPublisher(nc, js, natsbus.StreamEvents)
	if _, err := a.LastMessage(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.LastMessage(ctx); err != nil {
		t.Fatal(err)
	}
	msg := func(id string) []natsbus.OutMsg {
		return []natsbus.OutMsg{{Subject: "customers.events.Test", MsgID: id, Header: nats.Header{}, Data: []byte("{}")}}
	}
	if err := a.Publish(ctx, msg("a1")); err != nil {
		t.Fatal(err)
	}
	// b still believes the stream is empty: its write must be refused.
	if err := b.Publish(ctx, msg("b1")); !errors.Is(err, natsbus.ErrOutOfSync) {
		t.Fatalf("stale publisher: err = %v, want ErrOutOfSync", err)
	}
	if err := b.Publish(ctx, msg("b1")); !errors.Is(err, natsbus.ErrOutOfSync) {
		t.Fatalf("publisher that has not re-synced: err = %v, want ErrOutOfSync", err)
	}
	if _, err := b.LastMessage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, msg("b1")); err != nil {
		t.Fatalf("after re-sync: %v", err)
	}
	if got := streamCount(js); got != 2 {
		t.Fatalf("stream holds %d messages, want 2", got)
	}
}
