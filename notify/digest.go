package notify

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segments-dev/segments/eventstore"
)

// Worklist lists the alerts that still need action (open, acknowledged or
// overdue: not snoozed, resolved, superseded or info), for the daily digest.
type Worklist interface {
	ActionableAlerts(ctx context.Context) ([]Alert, error)
}

// Daily is one owner's daily digest (SPEC §8): what is overdue, what falls
// due today and what else is open, in the rules' time zone.
type Daily struct {
	Owner string
	// Day is the local date (midnight in the rules' time zone).
	Day                     time.Time
	Overdue, DueToday, Open []Item
}

func (d *Daily) items() []Item {
	return slices.Concat(d.Overdue, d.DueToday, d.Open)
}

// digestEvery is how often the notifier looks whether a digest is due: the
// digest goes out within this of its time, or when a notifier starts later
// that day.
const digestEvery = 30 * time.Second

// digestLoop sends the daily digests until ctx ends.
func (n *Notifier) digestLoop(ctx context.Context) {
	for {
		if err := n.SendDigests(ctx); err != nil && ctx.Err() == nil {
			n.o.Logger.Warn("notifier: daily digest failed; retried shortly", "err", err)
		}
		if !sleep(ctx, digestEvery, nil) {
			return
		}
	}
}

// SendDigests sends today's digests not yet sent, once the day's digest
// time has passed. Each (owner, channel, day) is claimed by a unique row
// of alert_digests before it is sent, so several notifiers or a restart
// send it once; a failed send gives the claim back to be tried again. A
// crash between claim and send loses that day's digest rather than
// repeating it (the next day's comes as usual).
func (n *Notifier) SendDigests(ctx context.Context) error {
	cfg := n.o.Config
	if n.o.Worklist == nil {
		return nil
	}
	now := n.o.Now().In(cfg.Location)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, cfg.Location)
	if now.Before(time.Date(now.Year(), now.Month(), now.Day(), cfg.DigestHour, cfg.DigestMinute, 0, 0, cfg.Location)) {
		return nil
	}
	n.digestMu.Lock()
	defer n.digestMu.Unlock()
	if n.digestDone.Equal(day) {
		return nil
	}
	alerts, err := n.o.Worklist.ActionableAlerts(ctx)
	if err != nil {
		return fmt.Errorf("daily digest: %w", err)
	}
	dailies, channels, err := n.dailies(ctx, alerts, now, day)
	if err != nil {
		return err
	}
	var failed error
	for _, owner := range sortedKeys(dailies) {
		for _, name := range channels[owner] {
			if err := n.sendDaily(ctx, cfg.Channels[name], dailies[owner]); err != nil {
				failed = err
			}
		}
	}
	if failed == nil {
		n.digestDone = day
	}
	return failed
}

// dailies sorts actionable alerts into each owner's digest and lists the
// channels the owner's alerts are routed to.
func (n *Notifier) dailies(ctx context.Context, alerts []Alert, now, day time.Time) (map[string]*Daily, map[string][]string, error) {
	slices.SortFunc(alerts, func(a, b Alert) int {
		return cmp.Or(compareDue(a.DueAt, b.DueAt), a.CreatedAt.Compare(b.CreatedAt))
	})
	dailies, channels := map[string]*Daily{}, map[string][]string{}
	infos := map[string]CustomerInfo{}
	tomorrow := day.AddDate(0, 0, 1)
	for i := range alerts {
		a := &alerts[i]
		if a.DeliverySuppressed {
			continue
		}
		info, ok := infos[a.Customer]
		if !ok && n.o.Customers != nil {
			var err error
			if info, err = n.o.Customers.CustomerInfo(ctx, a.Customer); err != nil {
				return nil, nil, fmt.Errorf("daily digest: customer %s: %w", a.Customer, err)
			}
			infos[a.Customer] = info
		}
		routed := n.o.Config.ChannelsFor(a, &info)
		if len(routed) == 0 {
			continue
		}
		d := dailies[a.Owner]
		if d == nil {
			d = &Daily{Owner: a.Owner, Day: day}
			dailies[a.Owner] = d
		}
		for _, ch := range routed {
			if !slices.Contains(channels[a.Owner], ch) {
				channels[a.Owner] = append(channels[a.Owner], ch)
			}
		}
		it := Item{Alert: *a, Customer: info, Purpose: PurposeDigest}
		switch {
		case a.Status == "overdue" || (a.DueAt != nil && a.DueAt.Before(now)):
			d.Overdue = append(d.Overdue, it)
		case a.DueAt != nil && a.DueAt.Before(tomorrow):
			d.DueToday = append(d.DueToday, it)
		default:
			d.Open = append(d.Open, it)
		}
	}
	return dailies, channels, nil
}

// compareDue orders due times, alerts without one last.
func compareDue(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return a.Compare(*b)
}

// sendDaily claims and sends one owner's digest on one channel, within the
// channel's rate limit.
func (n *Notifier) sendDaily(ctx context.Context, ch *Channel, d *Daily) error {
	claimed, err := n.o.Store.claimDigest(ctx, d.Owner, ch.Name, d.Day, n.o.Now())
	if err != nil || !claimed {
		return err
	}
	if lim := n.limiters[ch.Name]; lim != nil {
		if err := lim.Wait(ctx); err != nil {
			return n.releaseDigest(ctx, ch, d, err)
		}
	}
	key := "daily:" + d.Owner + ":" + ch.Name + ":" + d.Day.Format(time.DateOnly)
	err = ch.SendDaily(ctx, key, d, n.o.Config.BaseURL, n.o.Config.Location)
	if err != nil {
		n.o.Metrics.DeliveryAttempt(ch.Name, StatusPending)
		return n.releaseDigest(ctx, ch, d, err)
	}
	n.o.Metrics.DeliveryAttempt(ch.Name, StatusDelivered)
	return nil
}

// releaseDigest gives back the claim of a digest that was not sent.
func (n *Notifier) releaseDigest(ctx context.Context, ch *Channel, d *Daily, cause error) error {
	if err := n.o.Store.releaseDigest(context.WithoutCancel(ctx), d.Owner, ch.Name, d.Day); err != nil {
		return fmt.Errorf("daily digest %s/%s: %w (releasing its claim: %w)", d.Owner, ch.Name, cause, err)
	}
	return fmt.Errorf("daily digest %s/%s: %w", d.Owner, ch.Name, cause)
}

// claimDigest records that the digest of (owner, channel, day) is being
// sent; false when it already was (or another notifier is sending it).
func (s *Store) claimDigest(ctx context.Context, owner, channel string, day, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO alert_digests (owner, channel, day, sent_at) VALUES ($1, $2, $3::date, $4)
		ON CONFLICT DO NOTHING`, owner, channel, day.Format(time.DateOnly), now)
	if err != nil {
		return false, fmt.Errorf("claim digest: %w", eventstore.MapError(err))
	}
	return tag.RowsAffected() == 1, nil
}

func (s *Store) releaseDigest(ctx context.Context, owner, channel string, day time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM alert_digests WHERE owner = $1 AND channel = $2 AND day = $3::date`,
		owner, channel, day.Format(time.DateOnly))
	if err != nil {
		return fmt.Errorf("release digest: %w", eventstore.MapError(err))
	}
	return nil
}
