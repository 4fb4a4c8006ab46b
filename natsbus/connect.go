package natsbus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// InboxPrefix is segmentd's reply-subject prefix.
const InboxPrefix = "_INBOX_segmentd"

// Connect connects to NATS: to url, or in-process to srv when srv is set.
// It reconnects forever; while disconnected, publishes fail fast and the
// callers' retries take over.
func Connect(url string, srv *server.Server, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		// segmentd's replies and pull deliveries (which carry upstream
		// payloads) use a private inbox prefix that the upstream user may not
		// subscribe to (see deploy/nats/nats.conf).
		nats.CustomInboxPrefix(InboxPrefix),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted()) }),
	}
	opts = append(opts, extra...)
	if srv != nil {
		opts = append(opts, nats.InProcessServer(srv))
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream context: %w", err)
	}
	return nc, js, nil
}
