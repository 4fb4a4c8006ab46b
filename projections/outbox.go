package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/backoff"
)

// Relay publishes an outbox stream (rows of table outbox written in the same
// transactions as the label changes and alerts they announce).
//
// Exactly-once: one relay per stream runs at a time (a lease,
// eventstore.Leadership; claims are fenced by it, so a relay that was frozen
// past its lease claims nothing). It claims unpublished rows by giving them consecutive publication
// positions, publishes them in position order in atomic batches carrying the
// position, and deletes them once acknowledged. After a crash it reads the
// position in the stream's last message, deletes what that covers and
// publishes the rest: nothing twice, nothing skipped, however long it was
// down (JetStream's Nats-Msg-Id window on these streams is only
// natsbus.PublishedDuplicates, seconds).
type Relay struct {
	pool   *pgxpool.Pool
	sink   eventstore.Sink
	stream string
	log    *slog.Logger
	poll   time.Duration
	gap    time.Duration
	// LeaseTTL is how long leadership outlives the last renewal (zero:
	// eventstore.DefaultLeaseTTL).
	LeaseTTL time.Duration
	lease    *eventstore.Leadership // held while run leads
}

// RelayGap is how long a relay waits after publishing a batch that was not
// full before it claims the next one. JetStream stages every atomic batch
// to a file stream in a file store of its own, created and removed on disk:
// about 3 ms of CPU on the reference machine and several syscalls and fsyncs
// per batch, whatever its size. Without a gap a busy relay publishes whatever
// committed during its last round trip, many tiny batches a second; with
// it, at most 1/RelayGap partial batches a second per stream, at the cost
// of up to RelayGap more delay for a label change to reach the bus (the
// read models are queryable at commit, before any of this).
const RelayGap = 250 * time.Millisecond

// RelayVacuumRows is how many rows a relay deletes between its vacuums of
// the outbox. Every row of a queue table dies twice (claimed, deleted), and
// the claim reads the unclaimed index from its start: left to autovacuum
// (at most once a minute per database, and never where it is off) a busy
// outbox carries hundreds of thousands of dead rows that every claim wades
// through. Vacuumed every few thousand rows it stays a few pages.
const RelayVacuumRows = 10_000

// NewRelay returns the relay of one outbox stream.
func NewRelay(pool *pgxpool.Pool, sink eventstore.Sink, stream string, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{pool: pool, sink: sink, stream: stream, log: log, poll: 100 * time.Millisecond, gap: RelayGap}
}

// Run relays until ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (r *Relay) run(ctx context.Context) error {
	lead, err := eventstore.AcquireLeadership(ctx, r.pool, "relay "+r.stream, r.LeaseTTL)
	if err != nil {
		return fmt.Errorf("outbox relay %s: wait for leadership: %w", r.stream, err)
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
	r.lease = lead
	err = r.lead(ctx)
	if lead.Held() {
		return err
	}
	r.log.Warn("outbox relay lost leadership (the lease was not renewed in time); another instance may relay now", "stream", r.stream)
	return eventstore.ErrLeadershipLost
}

// lead relays while this instance holds the lease.
func (r *Relay) lead(ctx context.Context) error {
	next, err := r.resume(ctx)
	if err != nil {
		return err
	}
	retry := backoff.New(backoff.Retry)
	// Rows claimed but not published can only be left by an earlier run or
	// a failed batch: look for them after every resume, not every step.
	recheck := true
	deleted := 0 // since the last vacuum
	for {
		n, err := r.step(ctx, &next, &recheck)
		if deleted += n; deleted >= RelayVacuumRows {
			deleted = 0
			// SKIP_LOCKED: another relay vacuuming the table does it for both.
			// TRUNCATE false: giving the emptied tail pages back to the
			// file system takes an ACCESS EXCLUSIVE lock, which would stall
			// the projectors' inserts; the free space is reused anyway.
			if _, err := r.pool.Exec(ctx, "VACUUM (SKIP_LOCKED, TRUNCATE false) outbox"); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox relay: vacuum", "stream", r.stream, "err", err)
			}
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, eventstore.ErrLeadershipLost) {
				return err
			}
			wait := retry.Next()
			r.log.Warn("outbox relay: publication failed; resuming from the stream's tail", "stream", r.stream, "err", err, "retry_in", wait)
			// Publish nothing more until the stream's tail has been read:
			// without it the relay would not know what the failed batch left
			// behind, and next must not be lost (a batch claimed from a
			// wrong position could later be taken for published and deleted).
			for {
				if !sleepCtx(ctx, wait) {
					return ctx.Err()
				}
				wait = retry.Next()
				resumed, err := r.resume(ctx)
				if err == nil {
					next, recheck = resumed, true
					break
				}
				r.log.Warn("outbox relay: resume", "stream", r.stream, "err", err, "retry_in", wait)
			}
			continue
		}
		retry.Reset()
		pause := time.Duration(0)
		switch {
		case n == 0:
			pause = r.poll
		case n < r.sink.MaxBatch():
			pause = r.gap
		}
		if pause > 0 && !sleepCtx(ctx, pause) {
			return ctx.Err()
		}
	}
}

// resume deletes what the stream already holds and returns the next
// publication position to hand out.
func (r *Relay) resume(ctx context.Context) (int64, error) {
	last, known, err := r.sink.LastPublishedPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox relay %s: read stream tail: %w", r.stream, err)
	}
	if known {
		if _, err := r.pool.Exec(ctx, "DELETE FROM outbox WHERE stream = $1 AND pub_pos <= $2", r.stream, last); err != nil {
			return 0, fmt.Errorf("outbox relay %s: %w", r.stream, err)
		}
	}
	var maxClaimed *int64
	if err := r.pool.QueryRow(ctx, "SELECT max(pub_pos) FROM outbox WHERE stream = $1", r.stream).Scan(&maxClaimed); err != nil {
		return 0, fmt.Errorf("outbox relay %s: %w", r.stream, err)
	}
	next := last + 1
	if maxClaimed != nil && *maxClaimed >= next {
		next = *maxClaimed + 1
	}
	return next, nil
}

// step publishes one batch of claimed rows (when recheck says some may be
// left over), else claims new ones and publishes them. It returns how many
// rows it published.
func (r *Relay) step(ctx context.Context, next *int64, recheck *bool) (int, error) {
	var msgs []eventstore.Message
	if *recheck {
		var err error
		if msgs, err = r.claimed(ctx); err != nil {
			return 0, err
		}
		*recheck = len(msgs) > 0
	}
	if len(msgs) == 0 {
		// Claim and read in one statement; RETURNING has no order, the
		// positions do.
		name, holder, epoch := r.lease.Fence()
		rows, err := r.pool.Query(ctx, `WITH c AS (
				SELECT id, row_number() OVER (ORDER BY id) AS rn FROM outbox
				WHERE stream = $1 AND pub_pos IS NULL AND `+fmt.Sprintf(eventstore.LeaseHeld, 4, 5, 6)+` ORDER BY id LIMIT $3)
			UPDATE outbox o SET pub_pos = $2 + c.rn - 1 FROM c WHERE o.id = c.id
			RETURNING o.subject, o.msg_id, o.payload, o.pub_pos, o.correction`, r.stream, *next, r.sink.MaxBatch(), name, holder, epoch)
		if err != nil {
			return 0, fmt.Errorf("outbox relay %s: claim: %w", r.stream, err)
		}
		if msgs, err = collectMessages(rows); err != nil {
			return 0, fmt.Errorf("outbox relay %s: claim: %w", r.stream, err)
		}
		if len(msgs) == 0 {
			return 0, nil
		}
		slices.SortFunc(msgs, func(a, b eventstore.Message) int { return cmp.Compare(a.Position, b.Position) })
		*next += int64(len(msgs))
	}
	if !r.lease.Held() {
		return 0, eventstore.ErrLeadershipLost
	}
	if err := r.sink.PublishAtomic(ctx, msgs); err != nil {
		return 0, err
	}
	first, last := msgs[0].Position, msgs[len(msgs)-1].Position
	// Bounded below as well: the index range then starts at this batch
	// instead of wading through the entries of rows deleted before (dead
	// until vacuum). Nothing below first is left: claims are published in
	// position order.
	if _, err := r.pool.Exec(ctx, "DELETE FROM outbox WHERE stream = $1 AND pub_pos BETWEEN $2 AND $3", r.stream, first, last); err != nil {
		// Published but not deleted: resume will delete them from the
		// stream's tail, so they are not published again.
		return 0, fmt.Errorf("outbox relay %s: delete published: %w", r.stream, err)
	}
	return len(msgs), nil
}

func (r *Relay) claimed(ctx context.Context) ([]eventstore.Message, error) {
	rows, err := r.pool.Query(ctx, "SELECT subject, msg_id, payload, pub_pos, correction FROM outbox WHERE stream = $1 AND pub_pos IS NOT NULL ORDER BY pub_pos LIMIT $2", r.stream, r.sink.MaxBatch())
	if err != nil {
		return nil, fmt.Errorf("outbox relay %s: read: %w", r.stream, err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("outbox relay %s: read: %w", r.stream, err)
	}
	return msgs, nil
}

// HeaderCorrection marks a message that a rebuild published to correct the
// history on SEGMENTS_CHANGES or SEGMENTS_ALERTS (value "true"; the body
// says which correction). Messages without it are live.
const HeaderCorrection = "Segments-Correction"

// collectMessages reads rows of (subject, msg_id, payload, pub_pos, correction).
func collectMessages(rows pgx.Rows) ([]eventstore.Message, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.Message, error) {
		var m eventstore.Message
		var correction bool
		err := row.Scan(&m.Subject, &m.ID, &m.Body, &m.Position, &correction)
		m.Header = map[string]string{"Segments-Position": strconv.FormatInt(m.Position, 10)}
		if correction {
			m.Header[HeaderCorrection] = "true"
		}
		return m, err
	})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
