package projectorload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// rawRead reads the whole log as Rebuild does (same columns, same pages of
// 20,000 by position, one repeatable-read transaction), optionally decoding
// each event's data as Rebuild does, and returns rows/s.
func (r *runner) rawRead(ctx context.Context, b *backlogDB, decode bool) (float64, error) {
	var n int64
	start := time.Now()
	err := pgx.BeginTxFunc(ctx, b.svc.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var after int64
		for {
			rows, err := tx.Query(ctx, `SELECT position, stream_id, customer, version, event_id, type, occurred_at, recorded_at, data
				FROM events WHERE position > $1 ORDER BY position LIMIT 20000`, after)
			if err != nil {
				return err
			}
			page := 0
			for rows.Next() {
				var rec domain.Recorded
				var id uuid.UUID
				var data []byte
				if err := rows.Scan(&after, &id, &rec.Customer, &rec.Version, &rec.EventID, &rec.Type, &rec.OccurredAt, &rec.RecordedAt, &data); err != nil {
					rows.Close()
					return err
				}
				if decode {
					d, err := domain.DecodeData(rec.Type, data)
					if err == nil && d == nil {
						err = fmt.Errorf("event %d decoded to nothing", after)
					}
					if err != nil {
						rows.Close()
						return err
					}
				}
				page++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			n += int64(page)
			if page == 0 {
				return nil
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if n != int64(b.events) {
		return 0, fmt.Errorf("read %d events, want %d", n, b.events)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fingerprint summarises the read models so a rebuild can be checked to
// reproduce them: label change ids, projection documents, alerts.
func fingerprint(ctx context.Context, b *backlogDB) (string, error) {
	var changes, timeChanges, projs, alerts int64
	var hc, hp, ha int64
	err := b.svc.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM label_changes), (SELECT count(*) FROM label_changes WHERE cause_kind = 'time'),
		(SELECT coalesce(sum(hashtext(id::text || seq::text || at::text)::bigint), 0) FROM label_changes),
		(SELECT count(*) FROM customer_projections), (SELECT coalesce(sum(hashtext(projection::text || coalesce(next_at::text, ''))::bigint), 0) FROM customer_projections),
		(SELECT count(*) FROM alerts), (SELECT coalesce(sum(hashtext(alert_id::text || status)::bigint), 0) FROM alerts)`).
		Scan(&changes, &timeChanges, &hc, &projs, &hp, &alerts, &ha)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d label changes (%d with cause time; hash %d), %d projections (hash %d), %d alerts (hash %d)", changes, timeChanges, hc, projs, hp, alerts, ha), nil
}

func (r *runner) runRebuild(ctx context.Context) error {
	b := r.backlog
	freeMemory()
	// Compare like with like: Rebuild passes every boundary up to its
	// instant, as the live scheduler does. So the scheduler first catches
	// the live read models up to an instant T, and the rebuild runs at T.
	at := time.Now()
	sched := projections.NewScheduler(b.proj, func() time.Time { return at }, r.log, nil)
	for {
		n, err := sched.RunDue(ctx, at)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	rebuilder := projections.New(projections.Config{Pool: b.svc.pool, Rules: domain.DefaultRuleBook(), Logger: r.log, Now: func() time.Time { return at }})
	before, err := fingerprint(ctx, b)
	if err != nil {
		return err
	}
	r.waitQuiet(ctx, b.svc.name)
	ph := r.begin(ctx, "rebuild-rawread", b.svc.name)
	raw, err := r.rawRead(ctx, b, false)
	ph.end(ctx)
	if err != nil {
		return err
	}
	r.add("rebuild", "raw read of the log (Rebuild's query and scan, no decoding)", grouped(raw), "rows/s", "(~250,000)", "")
	ph = r.begin(ctx, "rebuild-rawdecode", b.svc.name)
	rawDecode, err := r.rawRead(ctx, b, true)
	ph.end(ctx)
	if err != nil {
		return err
	}
	r.add("rebuild", "raw read + domain.DecodeData of each event", grouped(rawDecode), "rows/s", "", "")

	freeMemory()
	r.waitQuiet(ctx, b.svc.name)
	b.svc.qc.Start()
	ph = r.begin(ctx, "rebuild", b.svc.name)
	st, err := rebuilder.Rebuild(ctx)
	ps := ph.end(ctx)
	r.stmtReport("rebuild", stmtLines(b.svc.qc, ps.took, 12))
	if err != nil {
		return err
	}
	rate := float64(st.Events) / st.Took.Seconds()
	r.add("rebuild", fmt.Sprintf("Projector.Rebuild of %s events (%s customers)", grouped(float64(st.Events)), grouped(float64(st.Customers))),
		grouped(rate), "events/s", "≥ 50,000", metIf(rate >= 50_000, fmt.Sprintf("(%.0f%% of target)", 100*rate/50_000)))
	r.add("rebuild", "  Rebuild duration", f1(st.Took.Seconds()), "s", "", "")
	r.cpuCost("rebuild", ps, st.Events)
	r.add("rebuild", "  peak RSS during Rebuild (holds every projection)", f0(float64(ps.maxRSS)/(1<<20)), "MiB", "", "")
	after, err := fingerprint(ctx, b)
	if err != nil {
		return err
	}
	same := "identical"
	if before != after {
		same = "DIFFERENT"
	}
	r.note("rebuild: %d label changes (%d new), read models of the live projector and scheduler (caught up to the rebuild's instant) and of the rebuild are %s: before %s; after %s; %s",
		st.Changes, st.NewChanges, same, before, after, ps.cpu)
	if before != after {
		return errors.New("rebuild: the rebuilt read models differ from the live ones")
	}
	return nil
}
