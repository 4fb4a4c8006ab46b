package natsbus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// The tests of this file that start a 3-node cluster are not parallel: Go
// runs them one after the other before the parallel tests, so at most three
// servers of theirs compete for the CPU, and their failover timings neither
// slow the package's other tests nor are slowed by them.

// streamConfig reads a stream's configuration as the cluster holds it.
func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(ctxFor(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().Config
}

func setUpStreams(t *testing.T, js jetstream.JetStream, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := (natsbus.StreamSetup{Replicas: replicas, Logger: testenv.Logger(t)}).Ensure(ctx, js); err != nil {
		t.Fatalf("set up the streams with %d replicas: %v", replicas, err)
	}
}

func TestStreamsCreatedAtStartGetTheConfiguredReplicaCount(t *testing.T) {
	cluster := testenv.StartNATSCluster(t, 3)
	_, js := cluster.Connect(t)
	setUpStreams(t, js, 3)
	for _, cfg := range natsbus.StreamConfigs() {
		if got := streamConfig(t, js, cfg.Name).Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want the configured 3", cfg.Name, got)
		}
	}
}

func TestAnOperatorsReplicaEditSurvivesTheNextStartWhileOwnedSettingsAreRestored(t *testing.T) {
	cluster := testenv.StartNATSCluster(t, 3)
	_, js := cluster.Connect(t)
	setUpStreams(t, js, 1)

	// The operator: `nats stream edit SEGMENTS_EVENTS --replicas 3
	// --max-bytes 1GB`, and (wrongly) a shorter duplicate window.
	cfg := streamConfig(t, js, natsbus.StreamEvents)
	cfg.Replicas, cfg.MaxBytes, cfg.Duplicates = 3, 1<<30, 5*time.Second
	if _, err := js.UpdateStream(ctxFor(t), cfg); err != nil {
		t.Fatalf("operator's edit: %v", err)
	}

	setUpStreams(t, js, 1) // the next start, configured with the default

	got := streamConfig(t, js, natsbus.StreamEvents)
	if got.Replicas != 3 || got.MaxBytes != 1<<30 {
		t.Errorf("after a start: replicas %d, max bytes %d; want the operator's 3 and 1 GiB kept", got.Replicas, got.MaxBytes)
	}
	if got.Duplicates != natsbus.PublishedDuplicates {
		t.Errorf("after a start: duplicate window %v, want the service's %v restored", got.Duplicates, natsbus.PublishedDuplicates)
	}
	if r := streamConfig(t, js, natsbus.StreamIngest).Replicas; r != 1 {
		t.Errorf("unedited %s has %d replicas, want 1", natsbus.StreamIngest, r)
	}
}

func TestThreeInstancesStartingTogetherOnAFreshClusterAllSetUpTheStreams(t *testing.T) {
	// Every process starts at once: the JetStream cluster has not formed
	// when the instances first ask for their streams.
	cluster := testenv.LaunchNATSCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, cluster.Size())
	for i := range cluster.Size() {
		nc, err := nats.Connect(cluster.ClientURL(i), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			setup := natsbus.StreamSetup{Replicas: 3, AttemptTimeout: 3 * time.Second, Logger: testenv.Logger(t)}
			errs[i] = setup.Ensure(ctx, js)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i+1, err)
		}
	}
	_, js := cluster.Connect(t)
	for _, cfg := range natsbus.StreamConfigs() {
		if got := streamConfig(t, js, cfg.Name).Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want 3", cfg.Name, got)
		}
	}
}

func TestAStreamWithMoreReplicasThanAServerCanHoldFailsAtOnce(t *testing.T) {
	t.Parallel()
	_, js := connectStandalone(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := natsbus.StreamSetup{Replicas: 3}.Ensure(ctx, js)
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("R3 on a single server: %v, want the server's replicas error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a configuration error was retried for %v", d)
	}
}

// connectStandalone connects to a fresh single JetStream server without
// creating any stream.
func connectStandalone(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestPublicationResumesWithinFiveSecondsAfterTheStreamLeadersNodeIsLost(t *testing.T) {
	s, _ := testenv.Store(t, time.Now)
	cluster := testenv.StartNATSCluster(t, 3)
	_, admin := cluster.Connect(t)
	setUpStreams(t, admin, 3)
	leader := cluster.WaitStreamLeader(natsbus.StreamEvents)

	// The publisher is connected to the leader's node, the worst case: its
	// connection goes down with the node, mid-commit.
	urls := []string{cluster.ClientURL(leader)}
	for i := range cluster.Size() {
		if i != leader {
			urls = append(urls, cluster.ClientURL(i))
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, s, natsbus.NewEventSink(nc, js))

	// Events keep arriving while the node is lost.
	ctx, stopAppending := context.WithCancel(context.Background())
	appended := make(chan int, 1)
	total := -1
	t.Cleanup(func() { // before the store closes
		stopAppending()
		if total < 0 {
			<-appended
		}
	})
	go func() {
		// Steady traffic of 200 events a second: a stall shows as a
		// silence of the stream, and the stream stays small enough to
		// check whole.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := s.Append(context.WithoutCancel(ctx), orderEvents(fmt.Sprintf("KH%d", i%7), i*10, 10)); err != nil {
				t.Errorf("append: %v", err)
				break
			}
			n += 10
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
		appended <- n
	}()
	testenv.Eventually(t, 30*time.Second, "publication under way", func() bool { return streamCount(admin) >= 200 })

	lost := time.Now()
	cluster.Kill(leader)
	_, survivor := cluster.Connect(t)
	var atLoss uint64
	testenv.Eventually(t, time.Minute, "the stream readable on the survivors", func() bool {
		atLoss = streamCount(survivor)
		return atLoss > 0
	})
	testenv.Eventually(t, time.Minute, "publication going on", func() bool { return streamCount(survivor) > atLoss+100 })
	stopAppending()
	total = <-appended
	testenv.Eventually(t, time.Minute, "every event published", func() bool { return streamCount(survivor) >= uint64(total) })
	assertExactlyOnce(t, s, survivor)

	// The stall is the longest silence of the stream around the loss
	// (events were appended all along, so a healthy stream has none).
	var stall time.Duration
	msgs := streamMessages(t, survivor)
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Time.After(lost.Add(-time.Second)) {
			stall = max(stall, msgs[i].Time.Sub(msgs[i-1].Time))
		}
	}
	t.Logf("publication stalled %v when the stream leader's node was lost", stall)
	if stall > 5*time.Second {
		t.Errorf("publication stalled %v when one node of three was lost, want it to resume within 5 s", stall)
	}
}
