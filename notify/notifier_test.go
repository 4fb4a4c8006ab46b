package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// dedupingReceiver is a webhook receiver that counts deliveries by
// idempotency key, as a receiver that dedupes would see them.
type dedupingReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   map[string]int
	bodies map[string]string
	status int
}

func startReceiver(t *testing.T, status int) *dedupingReceiver {
	r := &dedupingReceiver{seen: map[string]int{}, bodies: map[string]string{}, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		key := req.Header.Get(HeaderIdempotencyKey)
		r.seen[key]++
		r.bodies[key] = string(body)
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *dedupingReceiver) keys() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

type notifierBundle struct {
	store *Store
	js    jetstream.JetStream
	nc    *nats.Conn
}

func setupNotifier(t *testing.T, routes string, env map[string]string, o Options) (*notifierBundle, context.CancelFunc) {
	t.Helper()
	db := testenv.Postgres(t)
	ns := testenv.StartNATS(t)
	nc, js := ns.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := natsbus.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("notify.yaml", []byte(routes), testVocabulary, mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.Store, o.Logger = cfg, NewStore(db.Pool), testenv.Logger(t)
	n := New(o)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, js) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &notifierBundle{store: o.Store, js: js, nc: nc}, cancel
}

func publishAlert(t *testing.T, js jetstream.JetStream, a Alert, extra map[string]any) {
	t.Helper()
	body, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		for k, v := range extra {
			m[k] = v
		}
		body, _ = json.Marshal(m)
	}
	if _, err := js.Publish(context.Background(), "alerts."+a.Kind+".owner", body, jetstream.WithMsgID(a.ID.String())); err != nil {
		t.Fatal(err)
	}
}

func newAlert(kind string) Alert {
	return Alert{ID: uuid.New(), Customer: "C001", Kind: kind, From: "high", To: "low", Reason: "原因", Owner: "张三", CreatedAt: time.Now()}
}

func TestEachAlertReachesEachRoutedChannelOnceAndADeadChannelBlocksNoOther(t *testing.T) {
	good := startReceiver(t, http.StatusOK)
	broken := startReceiver(t, http.StatusBadRequest)
	routes := fmt.Sprintf(`channels:
  good: {type: webhook, url: %q, secret_env: HOOK}
  broken: {type: webhook, url: %q, secret_env: HOOK}
routes:
  - channels: [good, broken]
`, good.srv.URL, broken.srv.URL)
	b, _ := setupNotifier(t, routes, map[string]string{"HOOK": "k"}, Options{GiveUpAfter: 2 * time.Second, MaxBackoff: 200 * time.Millisecond})
	var alerts []Alert
	for range 20 {
		a := newAlert("activity_dropped")
		alerts = append(alerts, a)
		publishAlert(t, b.js, a, nil)
	}
	suppressed := newAlert("churn_risk")
	publishAlert(t, b.js, suppressed, map[string]any{"delivery_suppressed": true, "delivery_suppressed_reason": "imported"})
	ctx := context.Background()
	testenv.Eventually(t, 30*time.Second, "the broken channel's deliveries are dead-lettered", func() bool {
		for _, a := range alerts {
			ds, err := b.store.AlertDeliveries(ctx, a.ID)
			if err != nil || len(ds) != 2 {
				return false
			}
			for _, d := range ds {
				if (d.Channel == "good") != (d.Status == StatusDelivered) || (d.Channel == "broken") != (d.Status == StatusDead) {
					return false
				}
			}
		}
		return true
	})
	seen := good.keys()
	for _, a := range alerts {
		if n := seen[a.ID.String()+":good:alert"]; n != 1 {
			t.Errorf("alert %s reached the good channel %d times", a.ID, n)
		}
	}
	if len(seen) != len(alerts) {
		t.Errorf("the good channel saw %d keys, want %d (the suppressed alert is not sent)", len(seen), len(alerts))
	}
	ds, err := b.store.AlertDeliveries(ctx, alerts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Channel == "broken" && (d.Attempts < 2 || d.LastError == "" || d.DeliveredAt != nil) {
			t.Errorf("dead delivery %+v", d)
		}
		if d.Channel == "good" && (d.Attempts != 1 || d.DeliveredAt == nil) {
			t.Errorf("delivered %+v", d)
		}
	}
	ds, err = b.store.AlertDeliveries(ctx, suppressed.ID)
	if err != nil || len(ds) != 2 || ds[0].Status != StatusSuppressed || ds[0].LastError != "imported" || ds[0].Attempts != 0 {
		t.Fatalf("suppressed alert's deliveries: %+v %v", ds, err)
	}
}

func TestAReceiverBackFromAnOutageGetsEverythingOnceWithinTheBackoffCap(t *testing.T) {
	r := startReceiver(t, http.StatusServiceUnavailable)
	routes := fmt.Sprintf("channels:\n  hook: {type: webhook, url: %q, secret_env: HOOK}\nroutes:\n  - channels: [hook]\n", r.srv.URL)
	b, _ := setupNotifier(t, routes, map[string]string{"HOOK": "k"}, Options{MaxBackoff: 500 * time.Millisecond})
	var alerts []Alert
	for range 10 {
		a := newAlert("activity_dropped")
		alerts = append(alerts, a)
		publishAlert(t, b.js, a, nil)
	}
	testenv.Eventually(t, 20*time.Second, "every delivery attempted at least twice", func() bool {
		for _, a := range alerts {
			ds, err := b.store.AlertDeliveries(context.Background(), a.ID)
			if err != nil || len(ds) != 1 || ds[0].Attempts < 2 {
				return false
			}
		}
		return true
	})
	r.mu.Lock()
	r.status, r.seen = http.StatusOK, map[string]int{}
	r.mu.Unlock()
	back := time.Now()
	testenv.Eventually(t, 10*time.Second, "everything delivered after the return", func() bool {
		return len(r.keys()) == len(alerts)
	})
	if took := time.Since(back); took > 2*time.Second {
		t.Errorf("took %v after the return, want within the 500 ms cap (+ jitter, claim)", took)
	}
	for k, n := range r.keys() {
		if n != 1 {
			t.Errorf("%s delivered %d times after the return", k, n)
		}
	}
}

func (r *dedupingReceiver) setStatus(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func (r *dedupingReceiver) body(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[key]
}
