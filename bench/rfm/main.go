// Command rfm measures the daily RFM recomputation of SPEC §11 (issue 21)
// at N customers, against the projector's own CPU per event in the same run:
//
//  1. N synthetic customer_projections rows with orders (the customer-list
//     benchmark's way: SQL, no log), evaluated after the measured day, so
//     the day selects but never writes them; the histograms are kept by the
//     triggers as they are filled;
//
//  2. R real customers (events appended through the store, applied by the
//     projector): the projector's CPU per event (Go process + its
//     PostgreSQL backends) is measured here;
//
//  3. a day of orders: -buyers % of the synthetic customers and of the real
//     ones buy (SQL for the synthetic, events for the real);
//
//  4. the next day is recorded (EnsureRFMDay: settle, boundaries from the
//     histograms, the insert, the range-scan selection) — measured;
//
//  5. the real customers it changed are advanced by the scheduler —
//     measured per customer; the synthetic customers whose scores changed
//     are counted by the same ranges, and their advance is costed at that
//     per-customer figure.
//
//     go run ./bench/rfm -customers 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
	_ "time/tzdata"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/loadkit"
	"github.com/segments-dev/segments/privacy"
	"github.com/segments-dev/segments/projections"
)

func main() {
	pg := flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "maintenance database URL (loopback)")
	n := flag.Int("customers", 1_000_000, "synthetic customers")
	realN := flag.Int("real", 5_000, "customers with a real log and projection")
	buyers := flag.Int("buyers", 1, "percent of the customers who order during the day")
	keep := flag.Bool("keep", false, "keep the scratch database")
	flag.Parse()
	if err := run(context.Background(), *pg, *n, *realN, *buyers, *keep); err != nil {
		log.Fatal(err)
	}
}

// cpu is this process's CPU plus that of the database's backends.
func cpu(ctx context.Context, pool *pgxpool.Pool) time.Duration {
	rows, err := pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		return 0
	}
	var ticks uint64
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			t, _ := loadkit.ProcessTicks("/proc/" + strconv.Itoa(pid) + "/stat")
			ticks += t
		}
	}
	rows.Close()
	return loadkit.ProcessCPU() + time.Duration(ticks)*10*time.Millisecond // USER_HZ = 100
}

type env struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
	proj  *projections.Projector
	clock time.Time
	// buyers is the percentage of customers who order during the day.
	buyers int
}

func run(ctx context.Context, pg string, n, realN, buyers int, keep bool) error {
	dbs, err := loadkit.OpenDatabases(ctx, pg, "segrfm_", keep, log.Printf)
	if err != nil {
		return err
	}
	defer dbs.Close(ctx)
	name := dbs.NewName()
	boot, err := eventstore.Connect(ctx, dbs.URLFor(name))
	if err != nil {
		return err
	}
	if _, err := eventstore.Migrate(ctx, boot); err != nil {
		return err
	}
	boot.Close()
	pool, err := dbs.Pool(ctx, name, func(c *pgxpool.Config) { c.MaxConns = 4; c.MinConns = 4 })
	if err != nil {
		return err
	}
	defer pool.Close()
	book := domain.DefaultRuleBook()
	d2 := book.RFMDayStart(time.Now())
	d1 := d2.AddDate(0, 0, -1)
	e := &env{pool: pool, clock: d1.Add(6 * time.Hour), buyers: buyers}
	key, err := privacy.NewMasterKey(make([]byte, 32))
	if err != nil {
		return err
	}
	if e.store, err = eventstore.New(eventstore.Config{Pool: pool, MasterKey: key, Now: func() time.Time { return e.clock },
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return err
	}
	defer e.store.Close()
	e.proj = projections.New(projections.Config{Pool: pool, Rules: book, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.clock }})
	fmt.Printf("rfm benchmark: %d synthetic + %d real customers, days %s and %s, %s\n", n, realN, d1.Format(time.DateOnly), d2.Format(time.DateOnly), loadkit.Calibration())
	if err := fill(ctx, pool, n, d1, d2); err != nil {
		return err
	}
	perEvent, err := e.realCustomers(ctx, realN, d1)
	if err != nil {
		return err
	}
	return e.nextDay(ctx, n, realN, d1, d2, perEvent)
}

// fill inserts n customers: 55 % one order, then fewer with more (up to
// 40), net amounts spread over five decades, last orders over two years
// before the first day's noon; evaluated after the second day.
func fill(ctx context.Context, pool *pgxpool.Pool, n int, d1, d2 time.Time) error {
	start := time.Now()
	// The secondary indexes are built after the rows, as the rebuild does:
	// maintained row by row, a million rows took over 20 minutes here.
	rows, err := pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customer_projections'
		AND indexname <> 'customer_projections_pkey'`)
	if err != nil {
		return err
	}
	var names, defs []string
	var name, def string
	if _, err := pgx.ForEachRow(rows, []any{&name, &def}, func() error { names, defs = append(names, name), append(defs, def); return nil }); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{name}.Sanitize()); err != nil {
			return err
		}
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO customer_projections (stream_id, customer, version, rule_version, evaluated_at, projection,
			value_tier, activity, need_orientation, lifecycle, tags, net_amount, owner, changes,
			changed_at, last_order_at, name, search_name, orders, nps, rfm_segment)
		SELECT md5('c' || i)::uuid, 'KH' || lpad(i::text, 10, '0'), 3, 1, $2::timestamptz + interval '1 minute', '\x01'::bytea,
			'regular', 'low', 'unknown', 'customer', ARRAY[]::text[],
			(10 ^ (3 + (h % 5000) / 1000.0))::bigint + h % 997, '经理' || (h % 200), 5,
			$3::timestamptz, $3::timestamptz - make_interval(secs => (h % 63072000)), '', NULL,
			CASE WHEN h % 100 < 55 THEN 1 WHEN h % 100 < 75 THEN 2 WHEN h % 100 < 87 THEN 3 ELSE 4 + (h / 100) % 37 END,
			(ARRAY['', '', 'promoter', 'passive', 'detractor'])[1 + (h / 7) % 5], ''
		FROM generate_series(1, $1::int) AS i, LATERAL (SELECT abs(hashint4(i))::bigint AS h) x`, n, d2, d1.Add(12*time.Hour))
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	for _, def := range defs {
		if _, err := pool.Exec(ctx, def); err != nil {
			return err
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE customer_projections"); err != nil {
		return err
	}
	fmt.Printf("filled %d synthetic rows in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// realCustomers appends 1–4 orders for each of n customers (recorded on the
// first day), applies them in batches of 500 and returns the projector's CPU
// per event. The first apply records the first day over the population.
func (e *env) realCustomers(ctx context.Context, n int, d1 time.Time) (time.Duration, error) {
	rng := rand.New(rand.NewPCG(21, 2026)) //nolint:gosec // G404: synthetic data, reproducible
	var events int
	for i := 0; i < n; i += 100 {
		var evs []domain.Envelope
		for c := i; c < min(i+100, n); c++ {
			code := domain.CustomerCode(fmt.Sprintf("KHR%07d", c))
			for k := range 1 + rng.IntN(4) {
				at := d1.Add(-time.Duration(rng.IntN(700*24)) * time.Hour)
				evs = append(evs, orderEvent(code, at, fmt.Sprintf("O%d", k), 100+rng.IntN(900_000)))
			}
		}
		if _, err := e.store.Append(ctx, domain.AppendRequest{Events: evs, Batch: true}); err != nil {
			return 0, err
		}
		events += len(evs)
	}
	// The first day over the synthetic population is recorded first, so
	// the measured applies are ordinary ones.
	if err := e.proj.EnsureRFMDay(ctx, e.clock); err != nil {
		return 0, err
	}
	c0, t0 := cpu(ctx, e.pool), time.Now()
	if err := e.applyAll(ctx, n); err != nil {
		return 0, err
	}
	used := cpu(ctx, e.pool) - c0
	per := used / time.Duration(events)
	fmt.Printf("projector: %d events of %d real customers applied in %s, CPU %s (Go + PostgreSQL backends): %s per event\n",
		events, n, time.Since(t0).Round(time.Millisecond), used.Round(time.Millisecond), per)
	return per, nil
}

func (e *env) applyAll(ctx context.Context, n int) error {
	for i := 0; i < n; i += 500 {
		var ids []domain.CustomerCode
		for c := i; c < min(i+500, n); c++ {
			ids = append(ids, domain.CustomerCode(fmt.Sprintf("KHR%07d", c)))
		}
		streams := make([]uuid.UUID, len(ids))
		for k, c := range ids {
			streams[k] = c.StreamID()
		}
		if _, err := e.proj.Apply(ctx, streams); err != nil {
			return err
		}
	}
	return nil
}

func orderEvent(code domain.CustomerCode, at time.Time, id string, fen int) domain.Envelope {
	amount, err := domain.ParseMoney(fmt.Sprintf("%d.%02d", fen/100, fen%100))
	if err != nil {
		panic(err)
	}
	data := &domain.OrderPlaced{OrderID: id, Amount: amount, Category: "定制芯片模组", Channel: domain.ChannelOffline}
	return domain.Envelope{Type: data.EventType(), Customer: code, OccurredAt: at, Source: "bench", Data: data}
}

// nextDay simulates the first day's orders, records the second day and
// advances whom it changed.
func (e *env) nextDay(ctx context.Context, n, realN int, d1, d2 time.Time, perEvent time.Duration) error {
	t := time.Now()
	if _, err := e.pool.Exec(ctx, `UPDATE customer_projections SET orders = orders + 1, net_amount = net_amount + 5000 + abs(hashtext(customer || 'n')) % 500000,
			last_order_at = $1::timestamptz + make_interval(secs => abs(hashtext(customer)) % 43200)
		WHERE customer LIKE 'KH0%' AND abs(hashtext(customer)) % 100 < $2`, d1.Add(12*time.Hour), e.buyers); err != nil {
		return fmt.Errorf("a day of orders: %w", err)
	}
	rng := rand.New(rand.NewPCG(5, 5)) //nolint:gosec // G404: synthetic data, reproducible
	e.clock = d1.Add(18 * time.Hour)
	var evs []domain.Envelope
	for c := 0; c < realN; c += 100 / max(1, e.buyers) {
		evs = append(evs, orderEvent(domain.CustomerCode(fmt.Sprintf("KHR%07d", c)), e.clock, "N", 100+rng.IntN(900_000)))
	}
	if _, err := e.store.Append(ctx, domain.AppendRequest{Events: evs, Batch: true}); err != nil {
		return err
	}
	if err := e.applyAll(ctx, realN); err != nil {
		return err
	}
	fmt.Printf("a day of orders: %d %% of the customers bought (%s)\n", e.buyers, time.Since(t).Round(time.Millisecond))
	return e.measureDay(ctx, n, d2, perEvent)
}
