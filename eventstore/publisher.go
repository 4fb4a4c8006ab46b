package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/backoff"
)

// Message is one recorded event ready for the bus.
type Message struct {
	Subject  string
	ID       string // Nats-Msg-Id: the event_id
	Position int64
	Header   map[string]string
	Body     []byte
}

// Sink is where the publisher puts the log: a stream that keeps messages in
// order and can say which position it holds last. Package sinktest is its
// conformance suite.
type Sink interface {
	// LastPublishedPosition returns the log position carried by the stream's
	// last message. known is false when the stream cannot tell (its last
	// message is gone), and then the durable checkpoint is used.
	LastPublishedPosition(ctx context.Context) (pos int64, known bool, err error)
	// PublishAtomic appends msgs in order as one unit: all or none.
	PublishAtomic(ctx context.Context, msgs []Message) error
	// MaxBatch is the largest number of messages PublishAtomic takes.
	MaxBatch() int
}

// PublisherMetrics receives the publisher's measurements.
type PublisherMetrics interface {
	Published(n int)
	PublishFailed()
	PublishLag(events int64, seconds float64)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Store    *Store
	Sink     Sink
	Location *time.Location // time zone of times in message bodies
	Logger   *slog.Logger
	Metrics  PublisherMetrics
	// Name of the durable checkpoint; also scopes the leader lock.
	Name string
	// IdleWake bounds how long the publisher sleeps without a signal; NOTIFY
	// and the in-process signal normally wake it at once.
	IdleWake time.Duration
	// BatchGap is the least time from the start of one partial batch's
	// publication to the next (default DefaultBatchGap; negative: none).
	BatchGap time.Duration
	// LeaseTTL is how long leadership outlives the last renewal (default
	// DefaultLeaseTTL).
	LeaseTTL time.Duration
}

// DefaultBatchGap bounds the event publisher to 50 partial batches a second.
// JetStream stages every atomic batch in a file store of its own, created,
// fsynced and removed on disk: about 3 ms of CPU per batch on the reference
// machine whatever its size. Published back to back under a steady load the
// batches come about every 14 ms; this makes them fewer and larger, for at
// most that much more delay on the bus.
const DefaultBatchGap = 20 * time.Millisecond

// Publisher relays the event log to the bus. The log is the outbox: every
// committed event is read back by position and published, in position order,
// in atomic batches; nothing is published that is not committed, and nothing
// committed is left out.
//
// Exactly-once publication comes from three things together: only one
// publisher per database runs at a time (a lease, see Leadership); each
// batch is atomic and must land directly after the stream's last sequence;
// and after a crash or any failure the publisher resumes from the position in
// the stream's own last message, not from a checkpoint that may lag.
type Publisher struct {
	cfg PublisherConfig
}

// NewPublisher returns a publisher; Run drives it.
func NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Name == "" {
		cfg.Name = "jetstream"
	}
	if cfg.IdleWake <= 0 {
		cfg.IdleWake = time.Second
	}
	if cfg.BatchGap == 0 {
		cfg.BatchGap = DefaultBatchGap
	}
	return &Publisher{cfg: cfg}
}

// Run publishes until ctx is done. It waits to become the leader first.
// It returns nil when ctx ends it, an error when it cannot go on (the caller
// restarts it).
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (p *Publisher) run(ctx context.Context) error {
	lead, err := AcquireLeadership(ctx, p.cfg.Store.pool, "publisher "+p.cfg.Name, p.cfg.LeaseTTL)
	if err != nil {
		return fmt.Errorf("publisher: wait for leadership: %w", err)
	}
	defer lead.Release(ctx)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-lead.Lost():
			stop()
		case <-ctx.Done():
		}
	}()
	err = p.lead(ctx, lead)
	if lead.Held() {
		return err
	}
	p.cfg.Logger.Warn("publisher lost leadership (the lease was not renewed in time); another instance may publish now")
	return ErrLeadershipLost
}

// lead publishes while this instance holds the lease.
func (p *Publisher) lead(ctx context.Context, lead *Leadership) error {
	log := p.cfg.Logger
	conn, err := p.cfg.Store.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("publisher: acquire connection: %w", mapError(err))
	}
	// LISTEN lives with this connection; destroy it on the way out rather
	// than hand a listening session back to the pool.
	defer func() { _ = conn.Conn().Close(context.WithoutCancel(ctx)); conn.Release() }()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("publisher: listen: %w", mapError(err))
	}
	log.Info("publisher is the leader", "checkpoint", p.cfg.Name)

	notified := make(chan struct{}, 1)
	listenErr := make(chan error, 1)
	listenCtx, stopListening := context.WithCancel(ctx)
	listenDone := make(chan struct{})
	// Runs before the connection is closed (defers run last-in first-out).
	defer func() { stopListening(); <-listenDone }()
	go func() {
		defer close(listenDone)
		for {
			if _, err := conn.Conn().WaitForNotification(listenCtx); err != nil {
				listenErr <- err
				return
			}
			select {
			case notified <- struct{}{}:
			default:
			}
		}
	}()

	pos, err := p.resume(ctx)
	if err != nil {
		return err
	}
	retry := backoff.New(backoff.Retry)
	// The checkpoint is only the fallback for a stream that lost its last
	// message: it is saved at most once a second, rather than after every
	// batch (each save is a synchronous commit).
	saved, savedAt := pos, time.Now()
	idle := false // the last wait ended with nothing appended for an IdleWake
	// The backlog gauges cost a query or two; refresh them at most once a
	// second rather than after every batch.
	var lagReportedAt time.Time
	reportLag := func() {
		if p.cfg.Metrics == nil || time.Since(lagReportedAt) < time.Second {
			return
		}
		lagReportedAt = time.Now()
		p.reportLag(ctx, pos)
	}
	save := func() {
		if pos == saved {
			return
		}
		if cerr := p.cfg.Store.SaveCheckpoint(ctx, p.cfg.Name, pos); cerr != nil {
			if ctx.Err() == nil {
				// The stream itself is the truth on restart; a stale
				// checkpoint costs nothing but a log line.
				log.Warn("publisher: save checkpoint", "err", cerr)
			}
			return
		}
		saved, savedAt = pos, time.Now()
	}
	var nextRead time.Time // a partial batch was published: not before then
	var settled int64      // no position up to here can still be committed
	for {
		if wait := time.Until(nextRead); wait > 0 && !sleep(ctx, wait) {
			return nil
		}
		readAt := time.Now()
		events, err := p.next(ctx, pos, &settled)
		if err == nil && len(events) > 0 {
			if !lead.Held() {
				// Frozen past the lease: another instance may be publishing.
				// The stream's expected last sequence fences a batch that
				// slips through after this check.
				return ErrLeadershipLost
			}
			err = p.publish(ctx, events)
			if err == nil {
				pos = events[len(events)-1].Position
				retry.Reset()
				if time.Since(savedAt) >= time.Second {
					save()
				}
				reportLag()
				if len(events) < p.cfg.Sink.MaxBatch() && p.cfg.BatchGap > 0 {
					nextRead = readAt.Add(p.cfg.BatchGap)
				}
				continue
			}
		}
		if err == nil && (idle || time.Since(savedAt) >= time.Second) {
			// Caught up. Under load that happens after most batches, so
			// this too saves at most once a second, or once nothing has been
			// appended for an IdleWake.
			save()
		}
		idle = false
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if p.cfg.Metrics != nil {
				p.cfg.Metrics.PublishFailed()
			}
			wait := retry.Next()
			log.Warn("publisher: publication failed; will resume from the stream's tail", "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return nil
			}
			if pos, err = p.resumeRetrying(ctx, retry); err != nil {
				return err // only ctx ends the retries
			}
			continue
		}
		reportLag()
		select {
		case <-ctx.Done():
			return nil
		case err := <-listenErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publisher: notification connection lost: %w", mapError(err))
		case <-notified:
		case <-p.cfg.Store.Appended():
		case <-time.After(p.cfg.IdleWake):
			idle = true
		}
	}
}

// next reads the events after pos up to the settled position, which it
// advances when pos reached it: a position still in flight below a committed
// one is waited for, never skipped (settle.go).
func (p *Publisher) next(ctx context.Context, pos int64, settled *int64) ([]RecordedEvent, error) {
	fresh := false
	for {
		if *settled <= pos || fresh {
			to, err := p.cfg.Store.AwaitSettled(ctx)
			if err != nil {
				return nil, err
			}
			*settled, fresh = to, true
		}
		events, err := p.cfg.Store.ReadUpTo(ctx, pos, *settled, p.cfg.Sink.MaxBatch())
		if err != nil || len(events) > 0 || fresh {
			return events, err
		}
		// Only gaps up to the old settled position: look further.
		fresh = true
	}
}

// resume decides where publication really stopped: the stream's last message
// wins over the checkpoint, which may lag (crash between publish and
// checkpoint) or lead (stream lost its tail, e.g. restored from backup).
func (p *Publisher) resume(ctx context.Context) (int64, error) {
	streamPos, known, err := p.cfg.Sink.LastPublishedPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: read stream tail: %w", err)
	}
	cp, err := p.cfg.Store.Checkpoint(ctx, p.cfg.Name)
	if err != nil {
		return 0, err
	}
	if !known {
		p.cfg.Logger.Warn("publisher: stream's last message is unreadable; resuming from checkpoint", "checkpoint", cp)
		return cp, nil
	}
	if streamPos != cp {
		p.cfg.Logger.Info("publisher: resuming from the stream's last message", "stream_position", streamPos, "checkpoint", cp)
	}
	return streamPos, nil
}

func (p *Publisher) resumeRetrying(ctx context.Context, b *backoff.Backoff) (int64, error) {
	for {
		pos, err := p.resume(ctx)
		if err == nil {
			return pos, nil
		}
		wait := b.Next()
		p.cfg.Logger.Warn("publisher: cannot read the stream's tail", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return 0, ctx.Err()
		}
	}
}

func (p *Publisher) publish(ctx context.Context, events []RecordedEvent) error {
	msgs, err := p.cfg.Store.Messages(ctx, events, p.cfg.Location)
	if err != nil {
		return err
	}
	if err := p.cfg.Sink.PublishAtomic(ctx, msgs); err != nil {
		return err
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.Published(len(msgs))
		p.cfg.Metrics.PublishLag(0, time.Since(events[len(events)-1].RecordedAt).Seconds())
	}
	return nil
}

func (p *Publisher) reportLag(ctx context.Context, pos int64) {
	head, _, err := p.cfg.Store.Head(ctx)
	if err != nil {
		return
	}
	lagEvents := head - pos
	lagSeconds := 0.0
	if lagEvents > 0 {
		if next, err := p.cfg.Store.ReadAll(ctx, pos, 1); err == nil && len(next) == 1 {
			lagSeconds = time.Since(next[0].RecordedAt).Seconds()
		}
	}
	p.cfg.Metrics.PublishLag(lagEvents, lagSeconds)
}

// EventBody is the JSON body of a published event: the envelope plus
// version, position and recorded_at (SPEC §3). It carries no personal data,
// not even masked: consumers that need it ask the API with an admin token.
type EventBody struct {
	EventID       uuid.UUID      `json:"event_id"`
	Type          string         `json:"type"`
	Customer      string         `json:"customer"`
	OccurredAt    string         `json:"occurred_at"`
	Source        string         `json:"source,omitempty"`
	CorrelationID string         `json:"correlation_id,omitempty"`
	Data          jsontext.Value `json:"data"`
	Version       int64          `json:"version"`
	Position      int64          `json:"position"`
	RecordedAt    string         `json:"recorded_at"`
}

// Messages turns recorded events into bus messages without personal data.
func (s *Store) Messages(ctx context.Context, events []RecordedEvent, loc *time.Location) ([]Message, error) {
	var profiles []uuid.UUID
	for _, e := range events {
		if e.Type == domain.TypeCustomerRegistered || e.Type == domain.TypeCustomerProfileUpdated {
			profiles = append(profiles, e.StreamID)
		}
	}
	individual, err := s.individualStreams(ctx, profiles)
	if err != nil {
		return nil, err
	}
	msgs := make([]Message, len(events))
	for i, e := range events {
		data := jsontext.Value(e.Data)
		if e.Type == domain.TypeCustomerRegistered || e.Type == domain.TypeCustomerProfileUpdated {
			if data, err = withoutPersonalData(e, individual[e.StreamID]); err != nil {
				return nil, err
			}
		}
		body, err := json.Marshal(EventBody{
			EventID: e.EventID, Type: string(e.Type), Customer: string(e.Customer),
			OccurredAt: domain.FormatInstant(e.OccurredAt, e.OccurredOffset, loc), Source: e.Source,
			CorrelationID: e.CorrelationID, Data: data, Version: e.Version, Position: e.Position,
			RecordedAt: e.RecordedAt.In(loc).Format(time.RFC3339Nano),
		})
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", e.Position, err)
		}
		msgs[i] = Message{
			Subject:  "customers.events." + string(e.Type),
			ID:       e.EventID.String(),
			Position: e.Position,
			Header: map[string]string{
				"Segments-Position":   strconv.FormatInt(e.Position, 10),
				"Segments-Customer":   string(e.Customer),
				"Segments-Version":    strconv.FormatInt(e.Version, 10),
				"Segments-Event-Type": string(e.Type),
			},
			Body: body,
		}
	}
	return msgs, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var _ = errors.New
