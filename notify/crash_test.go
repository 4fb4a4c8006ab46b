package notify

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestNotifierChildProcess is the notifier run as a separate process by
// the crash test (it does nothing in a normal test run).
func TestNotifierChildProcess(t *testing.T) {
	if os.Getenv("NOTIFY_CHILD_DB") == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("NOTIFY_CHILD_DB"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(os.Getenv("NOTIFY_CHILD_NATS"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("notify.yaml", []byte(os.Getenv("NOTIFY_CHILD_ROUTES")), testVocabulary, mapEnv(map[string]string{"HOOK": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	n := New(Options{Config: cfg, Store: NewStore(pool), Lease: time.Second})
	if err := n.Run(ctx, js); err != nil {
		t.Fatal(err)
	}
}

func startChild(t *testing.T, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNotifierChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestKillNineDuringABurstLosesNothingAndADedupingReceiverSeesEachAlertOnce(t *testing.T) {
	db := testenv.Postgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	if err := natsbus.EnsureStreams(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	r := startReceiver(t, http.StatusOK)
	routes := fmt.Sprintf("channels:\n  hook: {type: webhook, url: %q, secret_env: HOOK}\nroutes:\n  - channels: [hook]\n", r.srv.URL)
	env := []string{"NOTIFY_CHILD_DB=" + db.URL, "NOTIFY_CHILD_NATS=" + ns.URL(), "NOTIFY_CHILD_ROUTES=" + routes}
	const n = 2000
	child := startChild(t, env)
	var alerts []Alert
	before := 0
	for i := range n {
		a := newAlert("activity_dropped")
		alerts = append(alerts, a)
		publishAlert(t, js, a, nil)
		if i == n/2 {
			// Mid-burst: once deliveries flow, kill -9 and start again.
			testenv.Eventually(t, 30*time.Second, "the first deliveries arrive", func() bool { return len(r.keys()) > 0 })
			if err := child.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			_ = child.Wait()
			before = len(r.keys())
			child = startChild(t, env)
		}
	}
	t.Cleanup(func() { _ = child.Process.Signal(syscall.SIGTERM); _ = child.Wait() })
	testenv.Eventually(t, 60*time.Second, "every alert delivered after the restart", func() bool { return len(r.keys()) == n })
	seen := r.keys()
	for _, a := range alerts {
		if seen[a.ID.String()+":hook:alert"] == 0 {
			t.Fatalf("alert %s never delivered", a.ID)
		}
	}
	ds, err := NewStore(db.Pool).AlertDeliveries(context.Background(), alerts[n-1].ID)
	if err != nil || len(ds) != 1 || ds[0].Status != StatusDelivered {
		t.Fatalf("last alert's delivery %+v %v", ds, err)
	}
	repeats := 0
	for _, c := range seen {
		repeats += c - 1
	}
	t.Logf("killed after %d of %d deliveries; %d keys delivered twice (the deduping receiver keeps one each)", before, n, repeats)
}
