package natsbus_test

// What an upstream system (order system, CRM, service desk, survey tool)
// needs from NATS, as deploy/nats/nats.conf grants it to the user "upstream"
// of account SEGMENTS:
//
//   - credentials of that user (user name and password; in docker-compose the
//     password comes from UPSTREAM_NATS_PASSWORD);
//   - permission to publish to ingest.> only: an envelope published to
//     ingest.<anything> (e.g. ingest.crm, ingest.orders.eu) is captured by
//     stream SEGMENTS_INGEST. Publish it as a JetStream publish (a publish
//     with a reply inbox) and wait for the PubAck: only an acknowledged
//     envelope is durably accepted; without a PubAck, resend it with the
//     same event_id (and, optionally, the same Nats-Msg-Id header), which the
//     service deduplicates;
//   - permission to subscribe to _INBOX.> only, to receive those PubAcks.
//
// It reads its rejections (rejected.<subject>, stream SEGMENTS_REJECTED)
// live or through its own consumers on that stream; no other JetStream API:
// it cannot create, change, purge or delete streams, get messages by
// sequence, read the other streams, publish anything but envelopes (no
// forged customers.events.>, alerts.> or rejected.>), nor subscribe to the
// service's outputs (customers.>, alerts.>, segments.>) or to envelopes
// (ingest.>). The user "reader" reads the outputs (alerts.>,
// segments.changed.>, customers.events.>) and nothing else. The streams are
// created by the service (user segmentd,
// natsbus.EnsureStreams) before upstreams publish; until then a publish gets
// no PubAck.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/natsbus"
)

const (
	accountsConf     = "testdata/accounts.conf"
	segmentdPassword = "test-segmentd-password"
	upstreamPassword = "test-upstream-password"
	readerPassword   = "test-reader-password"
)

// asyncErrors collects a connection's asynchronous errors (permission
// violations arrive that way).
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{}
}

func (a *asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
}

// await waits for a permission violation that names subject.
func (a *asyncErrors) await(t *testing.T, what, subject string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		a.mu.Lock()
		for _, err := range a.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				a.mu.Unlock()
				return
			}
		}
		a.mu.Unlock()
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("no permissions violation for %s to %q", what, subject)
		}
	}
}

// startAccountsServer starts the embedded server with the test accounts.
func startAccountsServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedConfig{StoreDir: t.TempDir(), Addr: "127.0.0.1:0", ConfigFile: accountsConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func connectAs(t *testing.T, srv *server.Server, user, password string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, *asyncErrors) {
	t.Helper()
	return connectWith(t, srv, user, append([]nats.Option{nats.UserInfo(user, password)}, opts...)...)
}

// connectWith connects with the options (credentials among them) and
// collects the connection's asynchronous errors.
func connectWith(t *testing.T, srv *server.Server, user string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, *asyncErrors) {
	t.Helper()
	ae := &asyncErrors{ch: make(chan struct{}, 1)}
	nc, err := nats.Connect(srv.ClientURL(), append(opts, nats.ErrorHandler(ae.handler), nats.MaxReconnects(0))...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, ae
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := js.Stream(ctxFor(t), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestUpstreamMayOnlyPublishIngest(t *testing.T) {
	t.Parallel()
	srv := startAccountsServer(t)

	// The service creates the streams.
	_, svc, _ := connectAs(t, srv, "segmentd", segmentdPassword)
	if err := natsbus.EnsureStreams(ctxFor(t), svc); err != nil {
		t.Fatalf("segmentd creates the streams: %v", err)
	}
	if err := natsbus.StreamsPresent(ctxFor(t), svc); err != nil {
		t.Fatal(err)
	}

	up, ujs, upErrs := connectAs(t, srv, "upstream", upstreamPassword, nats.PermissionErrOnSubscribe(true))

	// Publishing envelopes to ingest.<anything> is acknowledged by SEGMENTS_INGEST.
	envelope := []byte(`{"type":"InquiryReceived","customer":"KH1","data":{"channel":"phone","topic":"交期"}}`)
	for i, subject := range []string{"ingest.crm", "ingest.orders.eu", "ingest.survey"} {
		ack, err := ujs.Publish(ctxFor(t), subject, envelope, jetstream.WithMsgID(fmt.Sprintf("evt-%d", i)))
		if err != nil {
			t.Fatalf("upstream publish to %s: %v", subject, err)
		}
		if ack.Stream != natsbus.StreamIngest || ack.Sequence != uint64(i+1) || ack.Duplicate {
			t.Errorf("PubAck for %s = %+v, want %s sequence %d", subject, ack, natsbus.StreamIngest, i+1)
		}
	}
	// A resend with the same Nats-Msg-Id is acknowledged as a duplicate.
	if ack, err := ujs.Publish(ctxFor(t), "ingest.crm", envelope, jetstream.WithMsgID("evt-0")); err != nil || !ack.Duplicate {
		t.Errorf("resend: ack %+v, err %v; want a duplicate PubAck", ack, err)
	}
	if n := streamMsgs(t, svc, natsbus.StreamIngest); n != 3 {
		t.Errorf("SEGMENTS_INGEST holds %d messages, want 3", n)
	}

	t.Run("publish elsewhere", func(t *testing.T) {
		// Forged service output: refused, and nothing reaches the streams.
		for _, subject := range []string{
			"customers.events.OrderPlaced", "alerts.churn_risk", "segments.changed.activity", "rejected.ingest.crm",
			"ingest", // the bare prefix is not ingest.>
		} {
			if err := up.Publish(subject, envelope); err != nil {
				t.Fatal(err)
			}
			if err := up.Flush(); err != nil {
				t.Fatal(err)
			}
			upErrs.await(t, "publish", subject)
		}
		for _, stream := range []string{natsbus.StreamEvents, natsbus.StreamAlerts, natsbus.StreamChanges, natsbus.StreamRejected} {
			if n := streamMsgs(t, svc, stream); n != 0 {
				t.Errorf("%s holds %d messages after refused publishes", stream, n)
			}
		}
	})

	t.Run("JetStream API", func(t *testing.T) {
		// Every stream operation is a request on $JS.API.>, which the
		// upstream may not publish to. The request gets no answer; the
		// permissions violation arrives asynchronously, then the request is
		// abandoned.
		for _, c := range []struct {
			subject string
			op      func(ctx context.Context) error
		}{
			{"$JS.API.STREAM.CREATE.EVIL", func(ctx context.Context) error {
				_, err := ujs.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"customers.>"}})
				return err
			}},
			{"$JS.API.STREAM.UPDATE.SEGMENTS_INGEST", func(ctx context.Context) error {
				_, err := ujs.UpdateStream(ctx, jetstream.StreamConfig{Name: natsbus.StreamIngest, Subjects: []string{"ingest.>"}, MaxMsgs: 1})
				return err
			}},
			{"$JS.API.STREAM.DELETE.SEGMENTS_EVENTS", func(ctx context.Context) error { return ujs.DeleteStream(ctx, natsbus.StreamEvents) }},
			{"$JS.API.STREAM.INFO.SEGMENTS_INGEST", func(ctx context.Context) error {
				_, err := ujs.Stream(ctx, natsbus.StreamIngest)
				return err
			}},
			{"$JS.API.CONSUMER.CREATE.SEGMENTS_INGEST.spy", func(ctx context.Context) error {
				_, err := ujs.CreateOrUpdateConsumer(ctx, natsbus.StreamIngest, jetstream.ConsumerConfig{Name: "spy"})
				return err
			}},
		} {
			denied(t, upErrs, c.subject, c.op)
		}
		// The service sees its streams unchanged and no other stream.
		names := svc.StreamNames(ctxFor(t))
		var got []string
		for n := range names.Name() {
			got = append(got, n)
		}
		if err := names.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		want := []string{natsbus.StreamAlerts, natsbus.StreamChanges, natsbus.StreamEvents, natsbus.StreamIngest, natsbus.StreamRejected}
		if !slices.Equal(got, want) {
			t.Errorf("streams = %v, want %v", got, want)
		}
		st, err := svc.Stream(ctxFor(t), natsbus.StreamIngest)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := st.CachedInfo().Config; cfg.MaxMsgs > 0 {
			t.Errorf("SEGMENTS_INGEST was changed: MaxMsgs %d", cfg.MaxMsgs)
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		// Neither the service's outputs nor other upstreams' envelopes.
		subscribeDenied(t, up, "customers.>", "customers.events.OrderPlaced", "alerts.>", "segments.>", "ingest.>", ">", "_INBOX_segmentd.>", "_INBOX_reader.>")
	})

	// After all that, the upstream's connection still works for its job.
	if _, err := ujs.Publish(ctxFor(t), "ingest.crm", envelope); err != nil {
		t.Fatalf("publish after refusals: %v", err)
	}
	if !up.IsConnected() {
		t.Error("the upstream connection was closed")
	}
}

func TestUpstreamBeforeStreamsExistGetsNoPubAck(t *testing.T) {
	t.Parallel()
	srv := startAccountsServer(t)
	_, ujs, _ := connectAs(t, srv, "upstream", upstreamPassword)
	// No stream captures ingest.> yet: no responders, so the publish fails
	// at once instead of being silently lost.
	_, err := ujs.Publish(ctxFor(t), "ingest.crm", []byte(`{}`))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("publish before the streams exist: %v, want no responders", err)
	}
}

func TestAuthenticationIsRequired(t *testing.T) {
	t.Parallel()
	srv := startAccountsServer(t)
	for _, c := range []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"wrong password", []nats.Option{nats.UserInfo("upstream", "guess")}},
		{"segmentd's name with upstream's password", []nats.Option{nats.UserInfo("segmentd", upstreamPassword)}},
		{"unknown user", []nats.Option{nats.UserInfo("admin", "admin")}},
	} {
		nc, err := nats.Connect(srv.ClientURL(), append(c.opts, nats.MaxReconnects(0))...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", c.name)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", c.name, err)
		}
	}
}

// TestTestAccountsMatchDeployment keeps testdata/accounts.conf honest: it must
// grant exactly the permissions of deploy/nats/nats.conf.
func TestTestAccountsMatchDeployment(t *testing.T) {
	// The deployment reads passwords from the environment.
	t.Setenv("SEGMENTD_NATS_PASSWORD", "p1")
	t.Setenv("UPSTREAM_NATS_PASSWORD", "p2")
	t.Setenv("READER_NATS_PASSWORD", "p3")
	deployed, err := server.ProcessConfigFile("../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	tested, err := server.ProcessConfigFile(accountsConf)
	if err != nil {
		t.Fatal(err)
	}
	perms := func(o *server.Options) map[string]string {
		out := map[string]string{}
		for _, u := range o.Users {
			p := u.Permissions
			if p == nil {
				out[u.Username] = "account " + u.Account.Name + ": no permissions (everything allowed)"
				continue
			}
			s := func(sp *server.SubjectPermission) string {
				if sp == nil {
					return "all"
				}
				return fmt.Sprintf("allow %v deny %v", sp.Allow, sp.Deny)
			}
			out[u.Username] = fmt.Sprintf("account %s publish %s subscribe %s responses %v", u.Account.Name, s(p.Publish), s(p.Subscribe), p.Response)
		}
		return out
	}
	d, tt := perms(deployed), perms(tested)
	if len(d) != 3 || d["segmentd"] == "" || d["upstream"] == "" || d["reader"] == "" {
		t.Fatalf("deployment users = %v", d)
	}
	for user, want := range d {
		if tt[user] != want {
			t.Errorf("user %s:\n test       %s\n deployment %s", user, tt[user], want)
		}
	}
	if len(tt) != len(d) {
		t.Errorf("test users %v, deployment users %v", tt, d)
	}
	if deployed.MaxPayload != tested.MaxPayload {
		t.Errorf("max_payload: test %d, deployment %d", tested.MaxPayload, deployed.MaxPayload)
	}
}

func TestDeployedUpstreamReadsItsRejectionsAndReaderOnlyTheOutputs(t *testing.T) {
	t.Parallel()
	srv := startAccountsServer(t)
	_, svc, _ := connectAs(t, srv, "segmentd", segmentdPassword)
	if err := natsbus.EnsureStreams(ctxFor(t), svc); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"rejected.ingest.crm", "alerts.churn_risk", "segments.changed.activity", "customers.events.OrderPlaced"} {
		if _, err := svc.Publish(ctxFor(t), subject, []byte(`{}`)); err != nil {
			t.Fatalf("service publish to %s: %v", subject, err)
		}
	}
	_, ujs, upErrs := connectAs(t, srv, "upstream", upstreamPassword)
	if md := readOne(t, ujs, natsbus.StreamRejected, "rejected.ingest.>"); md.Stream != natsbus.StreamRejected {
		t.Errorf("upstream reads its rejections: %+v", md)
	}
	denied(t, upErrs, "$JS.API.STREAM.MSG.GET.SEGMENTS_INGEST", func(ctx context.Context) error {
		_, err := ujs.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.SEGMENTS_INGEST", []byte(`{"seq":1}`))
		return err
	})

	rd, rjs, rdErrs := connectAs(t, srv, "reader", readerPassword, nats.CustomInboxPrefix("_INBOX_reader"), nats.PermissionErrOnSubscribe(true))
	for stream, filter := range map[string]string{natsbus.StreamAlerts: "alerts.>", natsbus.StreamChanges: "", natsbus.StreamEvents: "customers.events.>"} {
		if md := readOne(t, rjs, stream, filter); md.Stream != stream {
			t.Errorf("reader reads %s: %+v", stream, md)
		}
	}
	for _, stream := range []string{natsbus.StreamIngest, natsbus.StreamRejected} {
		denied(t, rdErrs, "$JS.API.CONSUMER.CREATE."+stream+".spy", func(ctx context.Context) error {
			_, err := rjs.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Name: "spy"})
			return err
		})
	}
	if err := rd.Publish("ingest.crm", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rdErrs.await(t, "publish", "ingest.crm")
	subscribeDenied(t, rd, "ingest.>", "rejected.>", "_INBOX.>", "_INBOX_segmentd.>")
}
