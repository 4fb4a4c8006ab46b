package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A token is a leader's own connection, on which it holds a session
// advisory lock keyed by the lease's name and its holder id for as long as
// it leads (taken before it writes the lease). When the leader's process
// dies, the kernel closes its connection, PostgreSQL ends the session and
// the lock is free at once: a waiting candidate that finds the current
// holder's lock free (probeLease) takes the lease from that holder, at
// that epoch, without waiting for the lease to expire. A frozen or
// partitioned leader keeps its session, and its lock, for a while: then the
// lease's expiry decides. The lease stays the authority: its holder and
// epoch fence every leader-only write. (A leader whose token connection
// alone is cut, the database's restart aside, may lose the lease early: one
// change of leader more, fenced like any other.) Waiting candidates hold no
// connection of their own: the probe takes and releases the lock in one
// statement on a pooled connection.
type token struct {
	conn *pgx.Conn
}

// tokenSeed separates these advisory lock keys from the per-customer ones.
const tokenSeed = 7071

// probeLease reads the lease ($1 its name) and whether its holder's token
// is free, releasing it at once if the probe took it ($2 tokenSeed).
const probeLease = `SELECT holder, epoch, expires_at < clock_timestamp(),
		CASE WHEN pg_try_advisory_lock(hashtextextended('lease ' || name || ' ' || holder::text, $2))
			THEN pg_advisory_unlock(hashtextextended('lease ' || name || ' ' || holder::text, $2)) ELSE false END
	FROM leader_leases WHERE name = $1`

type leaseState struct {
	holder  uuid.UUID
	epoch   int64
	expired bool
	gone    bool // the holder's token is free: its session ended
}

// openToken connects and takes the lock of holder as the lease's name's
// leader; the lock is new (the holder id is), so it is granted at once.
func openToken(ctx context.Context, pool *pgxpool.Pool, name string, holder uuid.UUID) (*token, error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("leadership token connection: %w", mapError(err))
	}
	t := &token{conn: conn}
	var held bool
	err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended('lease ' || $1 || ' ' || $2::text, $3))", name, holder, tokenSeed).Scan(&held)
	if err == nil && !held {
		err = fmt.Errorf("token of holder %s is taken", holder)
	}
	if err != nil {
		t.close(ctx)
		return nil, fmt.Errorf("leadership token: %w", mapError(err))
	}
	return t, nil
}

// close ends the session, which frees the lock. A nil token is closed.
func (t *token) close(ctx context.Context) {
	if t == nil || t.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = t.conn.Close(ctx)
	t.conn = nil
}
