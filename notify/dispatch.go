package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// claimLimit bounds the deliveries of one channel taken per round.
const claimLimit = 256

// sendParallel is how many messages an unlimited channel sends at once.
const sendParallel = 32

// rateLimitedPause is how long a channel rests after its service said "too
// many" without saying how long (the robots count per minute).
const rateLimitedPause = time.Minute

// newLimiter keeps a channel within perMinute messages in any 60 s: a
// burst of a quarter of it plus the rest spread over the minute.
func newLimiter(perMinute int) *rate.Limiter {
	if perMinute <= 0 {
		return nil
	}
	burst := max(1, perMinute/4)
	return rate.NewLimiter(rate.Limit(float64(perMinute-burst)/60), burst)
}

// dispatch sends one channel's due deliveries until ctx ends. Each channel
// has its own loop, so a slow or dead channel never delays another.
func (n *Notifier) dispatch(ctx context.Context, ch *Channel, wake <-chan struct{}) {
	lim := n.limiters[ch.Name]
	for ctx.Err() == nil {
		if lim != nil && lim.Tokens() < 1 {
			wait := time.Duration((1 - lim.Tokens()) / float64(lim.Limit()) * float64(time.Second))
			if !sleep(ctx, wait, nil) {
				return
			}
			continue
		}
		batch, err := n.o.Store.claim(ctx, ch.Name, n.o.Now(), n.o.Lease, claimLimit)
		if err != nil {
			n.o.Logger.Warn("notifier: claiming deliveries failed", "channel", ch.Name, "err", err)
			sleep(ctx, time.Second, nil)
			continue
		}
		if len(batch) == 0 {
			n.idle(ctx, ch.Name, wake)
			continue
		}
		if pause := n.attempt(ctx, ch, lim, batch); pause > 0 {
			sleep(ctx, pause, nil)
		}
	}
}

// idle waits for a wake-up, the channel's next due delivery or a second.
func (n *Notifier) idle(ctx context.Context, channel string, wake <-chan struct{}) {
	wait := time.Second
	if next, err := n.o.Store.nextDue(ctx, channel); err == nil && !next.IsZero() {
		wait = min(wait, max(next.Sub(n.o.Now()), time.Millisecond))
	}
	sleep(ctx, wait, wake)
}

// sleep waits d, or until wake or ctx; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// attempt sends a claimed batch and records the outcomes; it returns how
// long the channel should rest (its service said too many messages).
func (n *Notifier) attempt(ctx context.Context, ch *Channel, lim *rate.Limiter, batch []claimed) time.Duration {
	now := n.o.Now()
	var outs []outcome
	var live []claimed
	for i := range batch {
		if n.stale(ctx, &batch[i]) {
			outs = append(outs, outcome{key: batch[i].key, status: StatusSkipped, lastError: errStale.Error()})
			continue
		}
		live = append(live, batch[i])
	}
	var errs []error
	switch {
	case len(live) == 0:
	case lim != nil && len(live) > int(lim.Tokens()):
		// Over the channel's rate: one digest message instead of many.
		lim.AllowN(now, 1)
		err := ch.Send(ctx, mergedKey(live), items(live), n.o.Config.BaseURL, n.o.Config.Location)
		errs = slices.Repeat([]error{err}, len(live))
	case lim != nil:
		lim.AllowN(now, len(live))
		errs = n.sendEach(ctx, ch, live, 1)
	default:
		errs = n.sendEach(ctx, ch, live, sendParallel)
	}
	var pause time.Duration
	done := n.o.Now()
	for i := range live {
		o := n.judge(&live[i], errs[i], done)
		if se, ok := errors.AsType[*SendError](errs[i]); ok && se.RateLimited {
			wait := se.RetryAfter
			if wait == 0 {
				wait = rateLimitedPause
			}
			o.next, pause = done.Add(wait), wait
		}
		n.o.Metrics.DeliveryAttempt(ch.Name, o.status)
		outs = append(outs, o)
	}
	if err := n.o.Store.settle(context.WithoutCancel(ctx), done, outs); err != nil {
		// The leases end and the deliveries are attempted again (same keys).
		n.o.Logger.Warn("notifier: recording attempts failed", "channel", ch.Name, "err", err)
	}
	return pause
}

// judge turns an attempt's result into the delivery's next state.
func (n *Notifier) judge(c *claimed, err error, now time.Time) outcome {
	switch {
	case err == nil:
		return outcome{key: c.key, status: StatusDelivered}
	case now.Sub(c.createdAt) >= n.o.GiveUpAfter:
		n.o.Logger.Warn("notifier: delivery dead-lettered", "alert", c.key.AlertID, "channel", c.key.Channel, "attempts", c.attempts, "err", err)
		return outcome{key: c.key, status: StatusDead, lastError: err.Error()}
	default:
		return outcome{key: c.key, status: StatusPending, lastError: err.Error(), next: now.Add(n.backoff(c.attempts))}
	}
}

// stale: a reminder or second escalation of an alert that no longer needs
// action (resolved, superseded, snoozed, info).
func (n *Notifier) stale(ctx context.Context, c *claimed) bool {
	if n.o.Statuses == nil || (c.key.Purpose != PurposeReminder && c.key.Purpose != PurposeEscalation2) {
		return false
	}
	id := c.key.AlertID
	if c.item.Alert.Escalates != nil {
		id = *c.item.Alert.Escalates
	}
	status, err := n.o.Statuses.AlertStatus(ctx, id)
	if err != nil {
		return false // when in doubt, remind
	}
	return status != "open" && status != "acknowledged" && status != "overdue"
}

func (n *Notifier) sendEach(ctx context.Context, ch *Channel, batch []claimed, parallel int) []error {
	errs := make([]error, len(batch))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range batch {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = ch.Send(ctx, batch[i].key.IdempotencyKey(), []Item{batch[i].item}, n.o.Config.BaseURL, n.o.Config.Location)
		})
	}
	wg.Wait()
	return errs
}

func items(batch []claimed) []Item {
	out := make([]Item, len(batch))
	for i := range batch {
		out[i] = batch[i].item
	}
	return out
}

// mergedKey identifies a digest message by the deliveries it carries.
func mergedKey(batch []claimed) string {
	h := sha256.New()
	for i := range batch {
		h.Write([]byte(batch[i].key.IdempotencyKey() + "\n"))
	}
	return "digest:" + hex.EncodeToString(h.Sum(nil))[:32]
}
