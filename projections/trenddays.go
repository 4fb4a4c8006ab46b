package projections

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
)

// trendDays are one transaction's deltas of segment_trend_days (migration
// 0021): per label, value and day in the rules' time zone, the change in
// customers holding the value and in their net amount. The trend is their
// cumulative sum (Trend), so every Advance that writes label changes or
// moves a net amount records its deltas here, in the same transaction.
type trendDays struct {
	loc  *time.Location
	sums map[trendDayKey]*trendDaySum
	// spilled are sums moved out of sums because adding to them would
	// have overflowed int64; PostgreSQL adds them up in numeric.
	spilled []trendDayRow
}

type trendDayKey struct {
	label, value string
	day          int64 // days since 1970-01-01 in loc
}

type trendDaySum struct{ customers, net int64 }

type trendDayRow struct {
	key trendDayKey
	sum trendDaySum
}

// newTrendDays returns empty deltas in the time zone of the latest rules,
// the zone in which Trend cuts its intervals (a rule version that changes
// the time zone needs a rebuild to move the days already counted).
func (p *Projector) newTrendDays() *trendDays {
	return &trendDays{loc: p.book.Latest().Location, sums: map[trendDayKey]*trendDaySum{}}
}

// advance records one Advance of proj: changes are what it returned and
// netBefore the net amount before it. A change moves the customer from its
// old value to its new one with the net amount it had until then; a net
// amount that the event moved then moves on every value the customer holds
// after it, at the instant of the evaluation (the event's).
func (d *trendDays) advance(book *domain.RuleBook, proj *domain.Projection, netBefore domain.Money, changes []domain.LabelChange) {
	net := int64(netBefore)
	for i := range changes {
		c := &changes[i]
		if strings.HasPrefix(c.Label, "tag:") {
			continue
		}
		day := d.day(c.At)
		if c.From != "" {
			d.add(trendDayKey{c.Label, c.From, day}, -1, -net)
		}
		if c.To != "" {
			d.add(trendDayKey{c.Label, c.To, day}, 1, net)
		}
	}
	after := int64(proj.State.NetAmount)
	if after == net {
		return
	}
	rs := book.RuleSet(proj)
	day := d.day(proj.EvaluatedAt)
	for _, name := range rs.LabelNames() {
		if v := rs.LabelValue(&proj.Labels, name); v != "" {
			k := trendDayKey{name, v, day}
			// Two additions rather than one difference: after − net
			// may not fit in int64 when either sits at its bound.
			d.add(k, 0, -net)
			d.add(k, 0, after)
		}
	}
}

func (d *trendDays) day(t time.Time) int64 {
	y, m, dd := t.In(d.loc).Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func (d *trendDays) add(k trendDayKey, customers, net int64) {
	s := d.sums[k]
	if s == nil {
		s = &trendDaySum{}
		d.sums[k] = s
	}
	sum, ok := domain.Money(s.net).AddChecked(domain.Money(net))
	if !ok {
		d.spilled = append(d.spilled, trendDayRow{k, *s})
		*s, sum = trendDaySum{}, domain.Money(net)
	}
	s.customers += customers
	s.net = int64(sum)
}

// queue adds the upsert of the deltas to b (nothing when there are none).
// The rows go to one shard this transaction holds (segment_counter_shard,
// as the segment counters' triggers take it), in key order.
func (d *trendDays) queue(b *pgx.Batch) {
	rows := d.spilled
	for k, s := range d.sums {
		if s.customers != 0 || s.net != 0 {
			rows = append(rows, trendDayRow{k, *s})
		}
	}
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b trendDayRow) int {
		return cmp.Or(cmp.Compare(a.key.label, b.key.label), cmp.Compare(a.key.day, b.key.day), cmp.Compare(a.key.value, b.key.value))
	})
	labels, values := make([]string, len(rows)), make([]string, len(rows))
	days := make([]int64, len(rows))
	customers, nets := make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		labels[i], days[i], values[i], customers[i], nets[i] = r.key.label, r.key.day, r.key.value, r.sum.customers, r.sum.net
	}
	b.Queue(`WITH shard AS MATERIALIZED (SELECT segment_counter_shard() AS s)
		INSERT INTO segment_trend_days AS t (label, day, value, shard, customers, net_amount)
		SELECT d.label, date '1970-01-01' + d.day::int, d.value, (SELECT s FROM shard), sum(d.customers), sum(d.net)
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) AS d(label, day, value, customers, net)
		GROUP BY 1, 2, 3 HAVING sum(d.customers) <> 0 OR sum(d.net) <> 0 ORDER BY 1, 2, 3
		ON CONFLICT (label, day, value, shard) DO UPDATE
			SET customers = t.customers + excluded.customers, net_amount = t.net_amount + excluded.net_amount`,
		labels, days, values, customers, nets)
}
