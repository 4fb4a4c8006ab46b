package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/notify"
)

// notifierParallel is how many messages the notifier sends at once on an
// unlimited channel (notify's sendParallel).
const notifierParallel = 32

func webhookRoutes(url string) string {
	return fmt.Sprintf("channels:\n  hook: {type: webhook, url: %q, secret_env: HOOK}\nroutes:\n  - channels: [hook]\n", url)
}

var hookEnv = map[string]string{"HOOK": "bench-secret"}

func burst(ctx context.Context, dbs *loadkit.Databases) error {
	recv, err := newReceiver(ctx, `{}`, true)
	if err != nil {
		return err
	}
	defer recv.down()
	r, err := startRig(ctx, dbs, "burst", webhookRoutes(recv.url()), hookEnv, false)
	if err != nil {
		return err
	}
	defer r.close()
	// Warm-up (not measured): the consumer exists and connections are open.
	if _, _, err := r.publish(ctx, 100); err != nil {
		return err
	}
	if !await(time.Minute, func() bool { d, _, _ := recv.stats(); return d >= 100 }) {
		return errors.New("warm-up alerts not delivered within a minute")
	}
	n := *flagAlerts
	start := time.Now()
	ids, at, err := r.publish(ctx, n)
	if err != nil {
		return err
	}
	published := time.Since(start)
	if !await(10*time.Minute, func() bool { d, _, _ := recv.stats(); return d >= n+100 }) {
		return fmt.Errorf("%d alerts not delivered within 10 minutes", n)
	}
	lat, last := latencies(recv, ids, at)
	elapsed := last.Sub(start)
	rate := float64(n) / elapsed.Seconds()
	_, receptions, repeats := recv.stats()

	recv.mu.Lock()
	bodies := slices.Clone(recv.bodies[100:])
	recv.keep = false
	recv.mu.Unlock()
	seq, err := bareLoop(ctx, recv.url(), bodies, 1, "bare1:")
	if err != nil {
		return err
	}
	par, err := bareLoop(ctx, recv.url(), bodies, notifierParallel, "bare32:")
	if err != nil {
		return err
	}
	drain, err := drainRate(ctx, dbs, n)
	if err != nil {
		return err
	}
	fmt.Printf("\n(a) burst of %d alerts → webhook receiver (published on SEGMENTS_ALERTS in %s; alert + reminder row per alert)\n", n, published.Round(time.Millisecond))
	fmt.Printf("  latency publication → receiver: p50 %s  p99 %s  max %s   (target p99 ≤ 1 s)\n",
		pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("  notifier throughput: %s alerts/s (%d delivered in %s; %d receptions, %d repeated)\n",
		loadkit.Grouped(rate), n, elapsed.Round(time.Millisecond), receptions-100, repeats)
	fmt.Printf("  notifier draining the same burst already on the stream (its own throughput, publication apart): %s alerts/s\n", loadkit.Grouped(drain))
	fmt.Printf("  bare loop, same bodies, same receiver, 1 goroutine:  %s POST/s → notifier at %.0f%% (drain %.0f%%; target ≥ 50%%)\n",
		loadkit.Grouped(seq), 100*rate/seq, 100*drain/seq)
	fmt.Printf("  bare loop, %d goroutines (the notifier's parallelism): %s POST/s → notifier at %.0f%% (drain %.0f%%)\n",
		notifierParallel, loadkit.Grouped(par), 100*rate/par, 100*drain/par)
	return nil
}

// drainRate publishes n alerts with the notifier stopped, then starts it
// and returns alerts delivered per second.
func drainRate(ctx context.Context, dbs *loadkit.Databases, n int) (float64, error) {
	recv, err := newReceiver(ctx, `{}`, false)
	if err != nil {
		return 0, err
	}
	defer recv.down()
	r, err := startRig(ctx, dbs, "drain", webhookRoutes(recv.url()), hookEnv, true)
	if err != nil {
		return 0, err
	}
	defer r.close()
	if _, _, err := r.publish(ctx, n); err != nil {
		return 0, err
	}
	start := time.Now()
	r.start()
	if !await(10*time.Minute, func() bool { d, _, _ := recv.stats(); return d >= n }) {
		return 0, fmt.Errorf("drain: %d alerts not delivered within 10 minutes", n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// latencies returns the sorted publication-to-arrival latencies and the
// last arrival.
func latencies(recv *receiver, ids []uuid.UUID, at []time.Time) ([]time.Duration, time.Time) {
	recv.mu.Lock()
	defer recv.mu.Unlock()
	lat := make([]time.Duration, len(ids))
	var last time.Time
	for i, id := range ids {
		got := recv.first[keyOf(id, "hook")]
		lat[i] = got.Sub(at[i])
		if got.After(last) {
			last = got
		}
	}
	slices.Sort(lat)
	return lat, last
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(time.Millisecond)
}

// bareLoop POSTs the bodies with their headers (under a fresh key prefix)
// from parallel goroutines and returns POSTs per second.
func bareLoop(ctx context.Context, url string, bodies []sentBody, parallel int, prefix string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: parallel}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var next sync.Mutex
	i := 0
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(bodies) {
					return
				}
				if err := post(ctx, client, url, &bodies[j], prefix); err != nil {
					next.Lock()
					firstErr = cmpOr(firstErr, err)
					next.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(len(bodies)) / time.Since(start).Seconds(), firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func post(ctx context.Context, client *http.Client, url string, b *sentBody, prefix string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b.body))
	if err != nil {
		return err
	}
	req.Header = b.header.Clone()
	req.Header.Set(notify.HeaderIdempotencyKey, prefix+b.header.Get(notify.HeaderIdempotencyKey))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bare loop: status %d", resp.StatusCode)
	}
	return nil
}

func outage(ctx context.Context, dbs *loadkit.Databases) error {
	recv, err := newReceiver(ctx, `{}`, false)
	if err != nil {
		return err
	}
	recv.down()
	r, err := startRig(ctx, dbs, "outage", webhookRoutes(recv.url()), hookEnv, false)
	if err != nil {
		return err
	}
	defer r.close()
	n := *flagOutageAlerts
	wentDown := time.Now()
	if _, _, err := r.publish(ctx, n); err != nil {
		return err
	}
	time.Sleep(time.Until(wentDown.Add(*flagDown)))
	if err := recv.up(ctx); err != nil {
		return err
	}
	defer recv.down()
	back := time.Now()
	if !await(10*time.Minute, func() bool { d, _, _ := recv.stats(); return d >= n }) {
		return fmt.Errorf("%d alerts not delivered within 10 minutes of the receiver's return", n)
	}
	took := time.Since(back)
	distinct, receptions, repeats := recv.stats()
	fmt.Printf("\n(b) receiver down %s with %d alerts waiting (the issue's 10 minutes scaled down: retries are capped at 30 s apart after ~31 s, so a longer outage is the same regime)\n", *flagDown, n)
	fmt.Printf("  everything delivered %s after the receiver's return (target ≤ 1 min); %d distinct keys, %d receptions, %d keys received more than once\n",
		took.Round(time.Millisecond), distinct, receptions, repeats)
	return nil
}

func digest(ctx context.Context, dbs *loadkit.Databases) error {
	recv, err := newReceiver(ctx, `{"errcode":0,"errmsg":"ok"}`, false)
	if err != nil {
		return err
	}
	defer recv.down()
	routes := "channels:\n  robot: {type: dingtalk, url_env: DING_URL, secret_env: DING_SECRET}\nroutes:\n  - channels: [robot]\n"
	r, err := startRig(ctx, dbs, "digest", routes, map[string]string{"DING_URL": recv.url() + "?access_token=bench", "DING_SECRET": "SECbench"}, false)
	if err != nil {
		return err
	}
	defer r.close()
	n := *flagDigest
	start := time.Now()
	if _, _, err := r.publish(ctx, n); err != nil {
		return err
	}
	carried := func() int { recv.mu.Lock(); defer recv.mu.Unlock(); return recv.items }
	if !await(10*time.Minute, func() bool { return carried() >= n }) {
		return fmt.Errorf("the robot's messages carried %d of %d alerts after 10 minutes", carried(), n)
	}
	took := time.Since(start)
	recv.mu.Lock()
	messages := len(recv.arrive)
	recv.mu.Unlock()
	fmt.Printf("\n(c) %d alerts for one owner → a DingTalk robot (rate_per_minute 20, the default)\n", n)
	fmt.Printf("  %d messages carried all %d alerts in %s; busiest 60 s: %d messages (target < 20)\n",
		messages, carried(), took.Round(time.Millisecond), recv.busiestMinute())
	return nil
}
