package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A token is a leadership candidate's own connection, on which it holds a
// session advisory lock keyed by the lease's name while it leads. When the
// leader's process dies, the kernel closes its connection, PostgreSQL ends
// the session and the lock is free at once: a waiting candidate that takes
// it knows the leader is gone and takes the lease without waiting for it to
// expire (publication resumes within tokenPoll, not a lease). A frozen or
// partitioned leader keeps its session, and the lock, for a while: then the
// lease's expiry decides, as before. The lease stays the authority (its
// holder and epoch fence every leader-only write); the token only lets a
// successor skip the wait. A leader that does not hold the token (it took
// over from a frozen one) may lose the lease to a candidate that takes the
// token when the frozen one wakes: one extra change of leader, fenced like
// any other.
type token struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn // nil while disconnected
	key  string
	held bool
}

// tokenSeed separates these advisory lock keys from the per-customer ones.
const tokenSeed = 7071

func openToken(ctx context.Context, pool *pgxpool.Pool, name string) (*token, error) {
	t := &token{cfg: pool.Config().ConnConfig.Copy(), key: "lease " + name}
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *token) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, t.cfg.Copy())
	if err != nil {
		return fmt.Errorf("leadership token connection: %w", mapError(err))
	}
	t.conn = conn
	return nil
}

// take tries to take the lock and reports whether it holds it. An error
// leaves it as it was: only a failure of the caller's ctx is returned.
func (t *token) take(ctx context.Context) (bool, error) {
	if t.held {
		return true, nil
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if t.conn == nil || t.conn.IsClosed() {
		if err := t.connect(qctx); err != nil {
			return false, ctx.Err() // the database is away: the lease's expiry decides
		}
	}
	err := t.conn.QueryRow(qctx, "SELECT pg_try_advisory_lock(hashtextextended($1, $2))", t.key, tokenSeed).Scan(&t.held)
	if err != nil {
		t.held = false
		return false, ctx.Err()
	}
	return t.held, nil
}

// close ends the session, which frees the lock.
func (t *token) close(ctx context.Context) {
	t.held = false
	if t.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = t.conn.Close(ctx)
	t.conn = nil
}
