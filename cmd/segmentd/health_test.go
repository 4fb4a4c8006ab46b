package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// runService starts the whole service in-process with its database on
// databaseURL and, when natsURL is set, an external NATS; it stops at the
// end of the test.
func runService(t *testing.T, databaseURL, natsURL string) (*app, string) {
	t.Helper()
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.NATSURL, cfg.EmbeddedNATSAddr = databaseURL, natsURL, "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := start(ctx, &cfg, testenv.Logger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("service did not stop within 60s")
		}
	})
	testenv.Eventually(t, 30*time.Second, "HTTP listener", func() bool { return a.Listening() != "" })
	base := "http://" + a.Listening()
	testenv.Eventually(t, 30*time.Second, "/readyz to report ready", func() bool { return readyz(t, base).status == http.StatusOK })
	return a, base
}

type readyzBody struct {
	status int
	raw    string
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz asks /readyz once; status 0 means no answer.
func readyz(t *testing.T, base string) readyzBody {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// Not answering (yet): the listener exists before the server runs.
		return readyzBody{raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := readyzBody{status: resp.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("/readyz body %s: %v", raw, err)
	}
	return r
}

func postInquiry(t *testing.T, base, customer string, n int) int {
	t.Helper()
	body := fmt.Sprintf(`{"type":"InquiryReceived","customer":%q,"data":{"channel":"phone","topic":"报价 %d"}}`, customer, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/events: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func metricValue(t *testing.T, base, name string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}

func TestTheAPIStaysReadyAndRecordsEventsDuringANATSOutage(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	bus := testenv.StartNATS(t)
	a, base := runService(t, db.URL, bus.URL())
	if got := metricValue(t, base, "segments_bus_connected"); got != "1" {
		t.Errorf("segments_bus_connected = %s before the outage, want 1", got)
	}

	bus.Stop()
	testenv.Eventually(t, 10*time.Second, "the service to see NATS down", func() bool { return !a.NC.IsConnected() })
	const during = 5
	for i := range during {
		if status := postInquiry(t, base, "KH-NATS-OUT", i); status != http.StatusCreated {
			t.Fatalf("POST /v1/events during the NATS outage = %d, want 201 (the log is the outbox)", status)
		}
	}
	r := readyz(t, base)
	if r.status != http.StatusOK || r.Checks["bus"] != "disconnected" || r.Checks["database"] != "ok" {
		t.Errorf("/readyz during a NATS outage = %d %s, want 200 with bus disconnected", r.status, r.raw)
	}
	if got := metricValue(t, base, "segments_bus_connected"); got != "0" {
		t.Errorf("segments_bus_connected = %s during the outage, want 0", got)
	}

	bus.Restart()
	testenv.Eventually(t, 30*time.Second, "the events recorded during the outage on SEGMENTS_EVENTS", func() bool {
		st, err := a.JS.Stream(context.Background(), natsbus.StreamEvents)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == during
	})
	if r := readyz(t, base); r.status != http.StatusOK || r.Checks["bus"] != "connected" {
		t.Errorf("/readyz after the outage = %d %s", r.status, r.raw)
	}
}

func TestReadyzNeverShowsConnectionErrorsAndRecoversWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	cluster := testenv.StartCluster(t)
	_, base := runService(t, cluster.URL("segments_private"), "")

	cluster.Crash()
	r := readyz(t, base)
	if r.status != http.StatusServiceUnavailable || r.Checks["database"] != "unreachable" {
		t.Fatalf("/readyz with the database down = %d %s, want 503 with database unreachable", r.status, r.raw)
	}
	for _, secret := range []string{strconv.Itoa(cluster.Port), "127.0.0.1", "segments_private", "postgres", "dial", "refused"} {
		if strings.Contains(r.raw, secret) {
			t.Errorf("/readyz shows %q to an anonymous caller: %s", secret, r.raw)
		}
	}

	cluster.Start()
	back := time.Now()
	testenv.Eventually(t, 10*time.Second, "/readyz ready again", func() bool { return readyz(t, base).status == http.StatusOK })
	if took := time.Since(back); took > 2*time.Second {
		t.Errorf("ready %v after the database came back, want ≤ 2 s", took)
	}
}
