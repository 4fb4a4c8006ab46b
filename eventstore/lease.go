package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultLeaseTTL is how long a leader keeps leadership without renewing
// it: a frozen or partitioned leader is replaced about this long after its
// last renewal.
const DefaultLeaseTTL = 5 * time.Second

// tokenPoll is how often a waiting instance asks whether the lease is free,
// expired or its holder's session gone (token.go): a dead leader is
// replaced within about this long, a frozen one when its lease expires.
const tokenPoll = 150 * time.Millisecond

// ErrLeadershipLost: the lease expired or another instance holds it.
var ErrLeadershipLost = errors.New("leadership lost")

// Leadership is a held lease on a row of leader_leases. It renews itself
// every TTL/3 until Release or until it cannot: then Lost is closed. The
// leader must stop its leader-only work when Lost is closed, and check Held
// right before each externally visible step (a frozen process wakes with
// its old state; Held tells it the lease ran out meanwhile).
type Leadership struct {
	pool   *pgxpool.Pool
	name   string
	holder uuid.UUID
	epoch  int64
	ttl    time.Duration
	token  *token // the leader's liveness token (token.go); nil while waiting

	mu      sync.Mutex
	validTo time.Time // local monotonic bound: last renewal sent + ttl
	lost    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// AcquireLeadership waits until this caller holds the lease name and
// returns it renewing (ttl ≤ 0 means DefaultLeaseTTL). It takes the lease
// when it is free or expired, or at once when the leader's process is gone:
// a leader holds a session lock keyed by its holder id on a connection of
// its own (token.go), and a candidate that finds that lock free knows the
// leader's session ended. It looks every tokenPoll (at most ttl/5).
func AcquireLeadership(ctx context.Context, pool *pgxpool.Pool, name string, ttl time.Duration) (*Leadership, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	l := &Leadership{pool: pool, name: name, holder: uuid.New(), ttl: ttl, lost: make(chan struct{}), done: make(chan struct{})}
	for {
		sent := time.Now()
		ok, err := l.tryAcquire(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			l.validTo = sent.Add(ttl)
			break
		}
		if !sleep(ctx, min(tokenPoll, ttl/5)) {
			return nil, ctx.Err()
		}
	}
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	go l.renew(renewCtx)
	return l, nil
}

// tryAcquire takes the lease when it is free or expired (by the database's
// clock, the one clock every instance shares), or when its holder's session
// is gone (then only from that holder, at that epoch). Before writing the
// lease it takes its own token, so that it is never a leader without one.
func (l *Leadership) tryAcquire(ctx context.Context) (bool, error) {
	var st leaseState
	err := l.pool.QueryRow(ctx, probeLease, l.name, tokenSeed).Scan(&st.holder, &st.epoch, &st.expired, &st.gone)
	switch {
	case errors.Is(mapError(err), ErrNotFound):
		st.expired = true // no lease yet
	case err != nil:
		return false, fmt.Errorf("acquire leadership %s: %w", l.name, mapError(err))
	}
	if !st.expired && !st.gone {
		return false, nil // held by a live leader
	}
	if l.token == nil {
		tok, err := openToken(ctx, l.pool, l.name, l.holder)
		if err != nil {
			return false, fmt.Errorf("acquire leadership %s: %w", l.name, err)
		}
		l.token = tok
	}
	err = l.pool.QueryRow(ctx, `INSERT INTO leader_leases (name, holder, epoch, expires_at)
		VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, epoch = leader_leases.epoch + 1, expires_at = EXCLUDED.expires_at
			WHERE leader_leases.expires_at < clock_timestamp()
			   OR ($4 AND leader_leases.holder = $5 AND leader_leases.epoch = $6)
		RETURNING epoch`, l.name, l.holder, l.ttl.Milliseconds(), st.gone, st.holder, st.epoch).Scan(&l.epoch)
	if errors.Is(mapError(err), ErrNotFound) {
		l.token.close(ctx) // someone else was quicker: no connection while waiting
		l.token = nil
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire leadership %s: %w", l.name, mapError(err))
	}
	return true, nil
}

// renew extends the lease every ttl/3. A renewal that finds the lease gone
// (expired and taken) ends leadership at once; renewals that fail (database
// unreachable) end it when the lease may have expired.
func (l *Leadership) renew(ctx context.Context) {
	defer close(l.done)
	defer l.token.close(ctx) // the token goes with leadership

	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !l.Held() {
			l.lose()
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
		tag, err := l.pool.Exec(rctx, `UPDATE leader_leases SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
			WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`, l.name, l.holder, l.epoch, l.ttl.Milliseconds())
		cancel()
		switch {
		case err != nil:
			continue // retried at the next tick while Held
		case tag.RowsAffected() == 0:
			l.lose()
			return
		}
		l.mu.Lock()
		l.validTo = sent.Add(l.ttl)
		l.mu.Unlock()
	}
}

func (l *Leadership) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.lost:
	default:
		l.validTo = time.Time{}
		close(l.lost)
	}
}

// Held says whether the lease is certainly still ours: its last renewal was
// sent less than a TTL ago (by this process's monotonic clock, which runs
// on while the process is frozen) and nothing found it lost.
func (l *Leadership) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.validTo)
}

// Lost is closed when leadership ends (not by Release).
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Fence returns the lease's name, holder and epoch for a statement that
// only the leader may run (see LeaseHeld).
func (l *Leadership) Fence() (name string, holder uuid.UUID, epoch int64) {
	return l.name, l.holder, l.epoch
}

// LeaseHeld is a condition for the WHERE clause of a leader-only
// statement, with the three parameters of Fence at $n, $n+1, $n+2 where
// the statement writes it as fmt.Sprintf(LeaseHeld, n, n+1, n+2). It locks
// the lease row (FOR SHARE), so a takeover waits for the statement's
// transaction, and a statement after a takeover finds nothing.
const LeaseHeld = `EXISTS (SELECT 1 FROM leader_leases WHERE name = $%d AND holder = $%d AND epoch = $%d AND expires_at > clock_timestamp() FOR SHARE)`

// Release stops renewing and gives the lease up so another instance can
// take it at once.
func (l *Leadership) Release(ctx context.Context) {
	l.stop()
	<-l.done
	l.lose()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
	defer cancel()
	_, _ = l.pool.Exec(rctx, "DELETE FROM leader_leases WHERE name = $1 AND holder = $2 AND epoch = $3", l.name, l.holder, l.epoch)
}
