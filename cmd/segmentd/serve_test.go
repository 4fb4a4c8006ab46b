package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestServeRecordsPublishesAndShutsDownGracefully runs the whole service
// in-process on its embedded defaults (in-process JetStream, generated
// master key) against a fresh database: an event posted over HTTP is
// recorded and appears on SEGMENTS_EVENTS, the demo data set is recorded,
// /readyz turns ready, and cancelling the context stops everything.
func TestServeRecordsPublishesAndShutsDownGracefully(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--demo"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = db.URL
	cfg.EmbeddedNATSAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := start(ctx, &cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.NATSServer == nil || !strings.HasPrefix(a.NATSServer.StoreDir(), filepath.Join(dir, "nats")) {
		t.Fatalf("embedded JetStream store is not under the data dir: %v", a.NATSServer)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	testenv.Eventually(t, 30*time.Second, "HTTP listener", func() bool { return a.Listening() != "" })
	base := "http://" + a.Listening()

	testenv.Eventually(t, 30*time.Second, "/readyz to report ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	body := `{"event_id":"5a0e0f6e-3c55-4c5e-9d43-2f1c6b1f2a10","type":"OrderPlaced","customer":"KH-SMOKE","data":{"order_id":"A1","amount":"99.90"}}`
	resp, err := http.Post(base+"/v1/events", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(got), `"version":1`) {
		t.Fatalf("POST /v1/events = %d %s", resp.StatusCode, got)
	}
	testenv.Eventually(t, 30*time.Second, "the posted event and the demo on SEGMENTS_EVENTS", func() bool {
		st, err := a.JS.Stream(ctx, natsbus.StreamEvents)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, "customers.events.OrderPlaced")
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == uint64(len(demoEvents(time.Now()))+1) && m != nil
	})
	msg, err := func() (*jetstream.RawStreamMsg, error) {
		st, err := a.JS.Stream(ctx, natsbus.StreamEvents)
		if err != nil {
			return nil, err
		}
		return st.GetMsg(ctx, 1)
	}()
	if err != nil || msg.Header.Get(natsbus.HeaderPosition) != "1" {
		t.Fatalf("first message: %v %v", msg, err)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metricsText), "segments_events_appended_total") {
		t.Fatal("/metrics lacks segments_events_appended_total")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("service did not stop within 60s of cancellation")
	}
}

func TestParseRoles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		err  bool
	}{
		{"all", "api,ingest,notifier,projector,publisher,scheduler", false},
		{"api, publisher", "api,publisher", false},
		{"ingest,ingest", "ingest", false},
		{"api,projector", "api,projector", false},
		{"api,scheduler2", "", true},
		{"", "", true},
	} {
		got, err := parseRoles(tc.in)
		if (err != nil) != tc.err || strings.Join(got, ",") != tc.want {
			t.Errorf("parseRoles(%q) = %v, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
