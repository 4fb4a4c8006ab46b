package natsbus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/segments-dev/segments/natsbus"
)

func startWithCredentials(t *testing.T) (*server.Server, *natsbus.Credentials) {
	t.Helper()
	creds, created, err := natsbus.LoadOrCreateCredentials(filepath.Join(t.TempDir(), "nats-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created, natsbus.Users) {
		t.Fatalf("created %v, want %v", created, natsbus.Users)
	}
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedConfig{StoreDir: t.TempDir(), Addr: "127.0.0.1:0", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv, creds
}

func connectUser(t *testing.T, srv *server.Server, creds *natsbus.Credentials, user string) (*nats.Conn, jetstream.JetStream, *asyncErrors) {
	t.Helper()
	return connectWith(t, srv, user, append(creds.ConnectOptions(user), nats.PermissionErrOnSubscribe(true))...)
}

// denied runs a JetStream operation that needs the API subject and expects
// the permissions violation for it.
func denied(t *testing.T, ae *asyncErrors, subject string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	ae.await(t, "publish", subject)
	cancel()
	if err := <-done; err == nil {
		t.Errorf("%s succeeded", subject)
	}
}

// readOne creates a consumer on stream and fetches and acknowledges one
// message from it.
func readOne(t *testing.T, js jetstream.JetStream, stream, filter string) *jetstream.MsgMetadata {
	t.Helper()
	cons, err := js.CreateOrUpdateConsumer(ctxFor(t), stream, jetstream.ConsumerConfig{Durable: "reader-" + stream, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("consumer on %s: %v", stream, err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-batch.Messages()
	if ok {
		if err := m.DoubleAck(ctxFor(t)); err != nil {
			t.Fatalf("ack on %s: %v", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	t.Fatalf("no message from %s: %v", stream, batch.Error())
	return nil
}

func subscribeDenied(t *testing.T, nc *nats.Conn, subjects ...string) {
	t.Helper()
	for _, subject := range subjects {
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(10 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribe to %s: %v, want a permissions violation", subject, err)
		}
		_ = sub.Unsubscribe()
	}
}

func TestGeneratedCredentialsAreTheOnlyWayIntoTheEmbeddedServer(t *testing.T) {
	t.Parallel()
	srv, creds := startWithCredentials(t)
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	strangerPub, _ := stranger.PublicKey()
	for _, c := range []struct {
		name string
		opts []nats.Option
	}{
		{"anonymous", nil},
		{"user and password", []nats.Option{nats.UserInfo(natsbus.UserService, "guess")}},
		{"an unknown nkey", []nats.Option{nats.Nkey(strangerPub, stranger.Sign)}},
		{"the service's public key signed by another key", []nats.Option{nats.Nkey(creds.Public(natsbus.UserService), stranger.Sign)}},
	} {
		nc, err := nats.Connect(srv.ClientURL(), append(c.opts, nats.MaxReconnects(0))...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", c.name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", c.name, err)
		}
	}

	// Seeds are files of their owner only, and read again at the next start.
	dir := filepath.Dir(creds.SeedFile(natsbus.UserIngest))
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("credentials directory: %v, %v; want 0700", st.Mode(), err)
	}
	for _, user := range natsbus.Users {
		if st, err := os.Stat(creds.SeedFile(user)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("seed of %s: %v, %v; want 0600", user, st.Mode(), err)
		}
	}
	again, created, err := natsbus.LoadOrCreateCredentials(dir)
	if err != nil || len(created) != 0 {
		t.Fatalf("second load: created %v, %v", created, err)
	}
	for _, user := range natsbus.Users {
		if again.Public(user) != creds.Public(user) {
			t.Errorf("the key of %s changed between starts", user)
		}
	}
	if err := os.Chmod(creds.SeedFile(natsbus.UserReader), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := natsbus.LoadOrCreateCredentials(dir); !errors.Is(err, natsbus.ErrCredentialsMode) {
		t.Errorf("a world-readable seed: %v, want ErrCredentialsMode", err)
	}
}

func TestEachGeneratedUserCanDoExactlyItsJob(t *testing.T) {
	t.Parallel()
	srv, creds := startWithCredentials(t)
	_, svc, _ := connectUser(t, srv, creds, natsbus.UserService)
	if err := natsbus.EnsureStreams(ctxFor(t), svc); err != nil {
		t.Fatalf("the service creates the streams: %v", err)
	}
	envelope := []byte(`{"type":"CustomerRegistered","customer":"KH1","data":{"name":"张三","contact":{"phone":"13812345678"}}}`)
	for _, subject := range []string{"rejected.ingest.crm", "alerts.churn_risk", "segments.changed.activity", "customers.events.OrderPlaced"} {
		if _, err := svc.Publish(ctxFor(t), subject, []byte(`{}`)); err != nil {
			t.Fatalf("service publish to %s: %v", subject, err)
		}
	}

	t.Run("ingest", func(t *testing.T) {
		t.Parallel()
		nc, js, ae := connectUser(t, srv, creds, natsbus.UserIngest)
		if ack, err := js.Publish(ctxFor(t), "ingest.crm", envelope); err != nil || ack.Stream != natsbus.StreamIngest {
			t.Fatalf("publish an envelope: %+v, %v", ack, err)
		}
		if md := readOne(t, js, natsbus.StreamRejected, "rejected.>"); md.Stream != natsbus.StreamRejected {
			t.Errorf("read its rejections: %+v", md)
		}
		for _, c := range []struct {
			subject string
			op      func(ctx context.Context) error
		}{
			// What the issue saw: `nats stream get SEGMENTS_INGEST 1` printed a contact.
			{"$JS.API.STREAM.MSG.GET.SEGMENTS_INGEST", func(ctx context.Context) error { return getMsg(ctx, nc, natsbus.StreamIngest) }},
			{"$JS.API.DIRECT.GET.SEGMENTS_INGEST", func(ctx context.Context) error { return directGet(ctx, nc, natsbus.StreamIngest) }},
			{"$JS.API.STREAM.MSG.GET.SEGMENTS_REJECTED", func(ctx context.Context) error { return getMsg(ctx, nc, natsbus.StreamRejected) }},
			{"$JS.API.STREAM.INFO.SEGMENTS_INGEST", func(ctx context.Context) error {
				_, err := js.Stream(ctx, natsbus.StreamIngest)
				return err
			}},
			{"$JS.API.CONSUMER.CREATE.SEGMENTS_INGEST.spy.ingest.>", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, natsbus.StreamIngest, jetstream.ConsumerConfig{Name: "spy", FilterSubject: "ingest.>"})
				return err
			}},
			{"$JS.API.CONSUMER.CREATE.SEGMENTS_ALERTS.spy", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, natsbus.StreamAlerts, jetstream.ConsumerConfig{Name: "spy"})
				return err
			}},
			{"$JS.API.STREAM.PURGE.SEGMENTS_REJECTED", func(ctx context.Context) error {
				st, err := js.Stream(ctx, natsbus.StreamRejected)
				if err != nil {
					return err
				}
				return st.Purge(ctx)
			}},
			{"$JS.API.STREAM.DELETE.SEGMENTS_INGEST", func(ctx context.Context) error { return js.DeleteStream(ctx, natsbus.StreamIngest) }},
		} {
			denied(t, ae, c.subject, c.op)
		}
		for _, subject := range []string{"customers.events.OrderPlaced", "alerts.churn_risk", "rejected.ingest.crm"} {
			if err := nc.Publish(subject, envelope); err != nil {
				t.Fatal(err)
			}
			ae.await(t, "publish", subject)
		}
		subscribeDenied(t, nc, "ingest.>", "alerts.>", "customers.>", ">", "_INBOX.>", "_INBOX_segmentd.>", "_INBOX_reader.>")
	})

	t.Run("reader", func(t *testing.T) {
		t.Parallel()
		nc, js, ae := connectUser(t, srv, creds, natsbus.UserReader)
		for stream, filter := range map[string]string{natsbus.StreamAlerts: "alerts.>", natsbus.StreamChanges: "segments.changed.>", natsbus.StreamEvents: ""} {
			if md := readOne(t, js, stream, filter); md.Stream != stream {
				t.Errorf("read %s: %+v", stream, md)
			}
		}
		live, err := nc.SubscribeSync("alerts.>")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Publish(ctxFor(t), "alerts.activity_dropped", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if m, err := live.NextMsg(10 * time.Second); err != nil || m.Subject != "alerts.activity_dropped" {
			t.Fatalf("live alerts: %v", err)
		}
		for _, c := range []struct {
			subject string
			op      func(ctx context.Context) error
		}{
			{"$JS.API.STREAM.MSG.GET.SEGMENTS_INGEST", func(ctx context.Context) error { return getMsg(ctx, nc, natsbus.StreamIngest) }},
			{"$JS.API.CONSUMER.CREATE.SEGMENTS_INGEST.spy", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, natsbus.StreamIngest, jetstream.ConsumerConfig{Name: "spy"})
				return err
			}},
			{"$JS.API.CONSUMER.CREATE.SEGMENTS_REJECTED.spy", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, natsbus.StreamRejected, jetstream.ConsumerConfig{Name: "spy"})
				return err
			}},
			{"$JS.API.STREAM.PURGE.SEGMENTS_ALERTS", func(ctx context.Context) error {
				st, err := js.Stream(ctx, natsbus.StreamAlerts)
				if err != nil {
					return err
				}
				return st.Purge(ctx)
			}},
		} {
			denied(t, ae, c.subject, c.op)
		}
		for _, subject := range []string{"ingest.crm", "alerts.churn_risk"} {
			if err := nc.Publish(subject, envelope); err != nil {
				t.Fatal(err)
			}
			ae.await(t, "publish", subject)
		}
		subscribeDenied(t, nc, "ingest.>", "rejected.>", ">", "_INBOX_ingest.>", "_INBOX_segmentd.>")
	})
}

// getMsg asks for message 1 of a stream (what `nats stream get` does).
func getMsg(ctx context.Context, nc *nats.Conn, stream string) error {
	_, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, []byte(`{"seq":1}`))
	return err
}

func directGet(ctx context.Context, nc *nats.Conn, stream string) error {
	_, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, []byte(`{"seq":1}`))
	return err
}
