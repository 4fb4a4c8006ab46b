package natsbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/eventstore/sinktest"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestTheJetStreamSinkConforms runs the Sink conformance suite on EventSink,
// each case on a fresh stream configured like SEGMENTS_EVENTS.
func TestTheJetStreamSinkConforms(t *testing.T) {
	server := testenv.StartNATS(t)
	nc, js := server.Connect(t)
	var streams int
	sinktest.Run(t, func(t *testing.T) sinktest.Open {
		streams++
		cfg := natsbus.StreamConfigs()[2]
		if cfg.Name != natsbus.StreamEvents {
			t.Fatalf("StreamConfigs()[2] is %s, want %s", cfg.Name, natsbus.StreamEvents)
		}
		cfg.Name = fmt.Sprintf("SINKTEST_%d", streams)
		cfg.Subjects = []string{fmt.Sprintf("sinktest%d.>", streams)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		return func() eventstore.Sink {
			return renamed{natsbus.NewStreamSink(nc, js, cfg.Name), fmt.Sprintf("sinktest%d.", streams)}
		}
	})
}

// renamed puts the suite's messages on the case's own subjects.
type renamed struct {
	*natsbus.EventSink
	prefix string
}

func (r renamed) PublishAtomic(ctx context.Context, msgs []eventstore.Message) error {
	out := make([]eventstore.Message, len(msgs))
	for i, m := range msgs {
		m.Subject = r.prefix + m.Subject
		out[i] = m
	}
	return r.EventSink.PublishAtomic(ctx, out)
}
