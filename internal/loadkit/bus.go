package loadkit

import (
	"context"
	"log/slog"
	"os"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/natsbus"
)

// Bus is an embedded JetStream server started as segmentd starts it without
// NATS_URL (natsbus.StartEmbedded), in a temporary directory, with the
// service's streams and a connection.
type Bus struct {
	Srv *server.Server
	NC  *nats.Conn
	JS  jetstream.JetStream
	dir string
}

// StartBus starts a Bus whose store lives in a new directory under tmpDir
// (the system's temporary directory when empty), removed by Close.
func StartBus(ctx context.Context, tmpDir, name string, syncAlways bool, log *slog.Logger) (_ *Bus, err error) {
	b := &Bus{}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.dir, err = os.MkdirTemp(tmpDir, name+"-nats-"); err != nil {
		return nil, err
	}
	b.Srv, err = natsbus.StartEmbedded(natsbus.EmbeddedConfig{StoreDir: b.dir, Addr: "127.0.0.1:0", NoSyncAlways: !syncAlways})
	if err != nil {
		return nil, err
	}
	if b.NC, b.JS, err = natsbus.Connect("", b.Srv, name, log); err != nil {
		return nil, err
	}
	if err := natsbus.EnsureStreams(ctx, b.JS); err != nil {
		return nil, err
	}
	return b, nil
}

// Msgs is how many messages a stream holds.
func (b *Bus) Msgs(ctx context.Context, stream string) (uint64, error) {
	st, err := b.JS.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// Close stops the server and removes its store.
func (b *Bus) Close() {
	if b.NC != nil {
		b.NC.Close()
	}
	if b.Srv != nil {
		b.Srv.Shutdown()
		b.Srv.WaitForShutdown()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
