package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// StreamAlerts is the stream the notifier reads (published by projections).
const StreamAlerts = "SEGMENTS_ALERTS"

// DefaultDurable is the notifier's durable consumer on SEGMENTS_ALERTS.
const DefaultDurable = "segments-notifier"

// Customers gives routing and messages what they need of a customer.
type Customers interface {
	CustomerInfo(ctx context.Context, code string) (CustomerInfo, error)
}

// AlertStatuses tells an alert's current status, for reminders and second
// escalations, which are sent only while the alert still needs action.
type AlertStatuses interface {
	AlertStatus(ctx context.Context, alertID uuid.UUID) (string, error)
}

// Metrics counts delivery outcomes per channel.
type Metrics interface {
	DeliveryAttempt(channel, outcome string)
}

// Options configure a Notifier; zero values take the defaults.
type Options struct {
	Config    *Config
	Store     *Store
	Customers Customers
	Statuses  AlertStatuses
	// Worklist feeds the daily digest (none without it).
	Worklist Worklist
	Metrics  Metrics
	Logger   *slog.Logger
	Now      func() time.Time
	// Durable is the consumer's name (DefaultDurable).
	Durable string
	// Lease is how long a claimed delivery is left to its attempt before
	// another may take it (30 s).
	Lease time.Duration
	// GiveUpAfter is how long a delivery is retried before it is dead (24 h).
	GiveUpAfter time.Duration
	// MaxBackoff caps the delay between attempts (30 s: a receiver back
	// from an outage gets everything within a minute).
	MaxBackoff time.Duration
}

// Notifier is the notifier role.
type Notifier struct {
	o    Options
	wake map[string]chan struct{}
	// limiters hold each rate-limited channel to its rate, shared by the
	// dispatcher and the daily digest.
	limiters map[string]*rate.Limiter
	// digestMu serialises digest rounds; digestDone is the last local day
	// whose digests were all sent (or found sent).
	digestMu   sync.Mutex
	digestDone time.Time
}

// New returns a notifier; Run starts it.
func New(o Options) *Notifier {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.GiveUpAfter == 0 {
		o.GiveUpAfter = 24 * time.Hour
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	n := &Notifier{o: o, wake: map[string]chan struct{}{}, limiters: map[string]*rate.Limiter{}}
	for name, ch := range o.Config.Channels {
		n.wake[name] = make(chan struct{}, 1)
		if lim := newLimiter(ch.RatePerMinute); lim != nil {
			n.limiters[name] = lim
		}
	}
	return n
}

type noMetrics struct{}

func (noMetrics) DeliveryAttempt(string, string) {}

// Run consumes alerts and dispatches deliveries until ctx ends.
func (n *Notifier) Run(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamAlerts, jetstream.ConsumerConfig{
		Durable:   n.o.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		// Recording a batch takes well under a second; what a crashed
		// notifier had taken comes again after this.
		AckWait:       10 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("notifier: consumer: %w", err)
	}
	msgs := make(chan jetstream.Msg, 1024)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done(): // unacknowledged: it comes again
		}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("notifier: subscribe: %w", err)
	}
	defer cc.Stop()
	var wg sync.WaitGroup
	for name, ch := range n.o.Config.Channels {
		wg.Go(func() { n.dispatch(ctx, ch, n.wake[name]) })
	}
	wg.Go(func() { n.digestLoop(ctx) })
	n.consume(ctx, msgs)
	wg.Wait()
	return nil
}

// maxRecordBatch bounds the alerts recorded in one statement.
const maxRecordBatch = 500

// consume records the deliveries of received alerts, then acknowledges
// them: once recorded, a delivery survives any crash.
func (n *Notifier) consume(ctx context.Context, msgs <-chan jetstream.Msg) {
	for {
		var batch []jetstream.Msg
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < maxRecordBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := n.recordBatch(ctx, batch); err != nil {
			n.o.Logger.Warn("notifier: recording deliveries failed; the alerts come again", "err", err)
			for _, m := range batch {
				_ = m.NakWithDelay(time.Second)
			}
			continue
		}
		for _, m := range batch {
			_ = m.Ack()
		}
	}
}

func (n *Notifier) recordBatch(ctx context.Context, batch []jetstream.Msg) error {
	var ds []planned
	now := n.o.Now()
	for _, m := range batch {
		var a Alert
		if err := json.Unmarshal(m.Data(), &a); err != nil || a.ID == uuid.Nil {
			n.o.Logger.Error("notifier: unreadable alert skipped", "subject", m.Subject(), "err", err)
			continue
		}
		planned, err := n.plan(ctx, &a, now)
		if err != nil {
			return err
		}
		ds = append(ds, planned...)
	}
	if err := n.o.Store.record(ctx, now, ds); err != nil {
		return err
	}
	n.wakeAll(ds)
	return nil
}

// plan lists the deliveries of an alert: to each channel its routes select,
// the alert now, a reminder before its due time, and, for an escalation,
// the owner's manager now and the manager's manager 24 h later.
func (n *Notifier) plan(ctx context.Context, a *Alert, now time.Time) ([]planned, error) {
	var info CustomerInfo
	if n.o.Customers != nil {
		var err error
		if info, err = n.o.Customers.CustomerInfo(ctx, a.Customer); err != nil {
			return nil, fmt.Errorf("customer %s: %w", a.Customer, err)
		}
	}
	cfg := n.o.Config
	var out []planned
	add := func(channel, purpose, recipient string, due time.Time) {
		p := planned{channel: channel, status: StatusPending, due: due,
			item: Item{Alert: *a, Customer: info, Purpose: purpose, Recipient: recipient}}
		if a.DeliverySuppressed {
			p.status, p.lastError = StatusSuppressed, a.SuppressedReason
		}
		out = append(out, p)
	}
	for _, ch := range cfg.ChannelsFor(a, &info) {
		add(ch, PurposeAlert, "", now)
		if a.DueAt != nil && a.Escalates == nil && cfg.ReminderBefore > 0 {
			add(ch, PurposeReminder, "", a.DueAt.Add(-cfg.ReminderBefore))
		}
		if manager := cfg.Escalation[a.Owner]; a.Escalates != nil && manager != "" {
			add(ch, PurposeEscalation, manager, now)
			if second := cfg.Escalation[manager]; second != "" {
				add(ch, PurposeEscalation2, second, a.CreatedAt.Add(24*time.Hour))
			}
		}
	}
	return out, nil
}

func (n *Notifier) wakeAll(ds []planned) {
	for i := range ds {
		if ch, ok := n.wake[ds[i].channel]; ok {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// backoff is the delay before attempt number attempts+1: exponential from
// 1 s, capped at MaxBackoff, with jitter in [d/2, d].
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.o.MaxBackoff
	if attempts < 30 {
		d = min(time.Second<<max(attempts-1, 0), n.o.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter, not a secret
}

// errStale: a reminder or escalation of an alert that no longer needs one.
var errStale = errors.New("alert no longer needs action")
