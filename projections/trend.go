package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// Trend intervals.
const (
	IntervalDay   = "day"
	IntervalWeek  = "week"
	IntervalMonth = "month"
)

// MaxTrendPoints bounds the intervals of one trend request.
const MaxTrendPoints = 120

// Trend is the contribution trend (GET /v1/segments/trend): per interval,
// each value's customers and net amount at the interval's end.
type Trend struct {
	Label    string       `json:"label"`
	Interval string       `json:"interval"`
	Points   []TrendPoint `json:"points"`
}

// TrendPoint is one interval. At is the instant its figures describe: the
// last microsecond of the interval, or now for the interval under way; the
// figures are what as_of at that instant gives, summed over customers.
type TrendPoint struct {
	Start     string       `json:"start"`
	End       string       `json:"end"`
	At        string       `json:"at"`
	Customers int64        `json:"customers"`
	NetAmount domain.Total `json:"net_amount"`
	Values    []TrendValue `json:"values"`
}

// TrendValue is one label value within a point.
type TrendValue struct {
	Value     string       `json:"value"`
	Display   string       `json:"display"`
	Customers int64        `json:"customers"`
	NetAmount domain.Total `json:"net_amount"`
}

// TrendInstants splits [from, to] into intervals in loc: each interval's
// start, end (exclusive) and the instant its figures describe (the last
// microsecond, or now when the interval is under way). Intervals that start
// after now are left out.
func TrendInstants(interval string, from, to, now time.Time, loc *time.Location) (starts, ends, ats []time.Time, err error) {
	next := map[string]func(time.Time) time.Time{
		IntervalDay:   func(t time.Time) time.Time { return t.AddDate(0, 0, 1) },
		IntervalWeek:  func(t time.Time) time.Time { return t.AddDate(0, 0, 7) },
		IntervalMonth: func(t time.Time) time.Time { return t.AddDate(0, 1, 0) },
	}[interval]
	if next == nil {
		return nil, nil, nil, &FilterError{Field: "interval", Message: "interval must be one of day, week, month"}
	}
	f := from.In(loc)
	start := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
	switch interval {
	case IntervalMonth:
		start = time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, loc)
	case IntervalWeek: // weeks begin on Monday
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7))
	}
	for ; !start.After(to) && !start.After(now); start = next(start) {
		if len(starts) == MaxTrendPoints {
			return nil, nil, nil, &FilterError{Field: "from", Message: fmt.Sprintf("at most %d intervals per request", MaxTrendPoints)}
		}
		end := next(start)
		at := end.Add(-time.Microsecond)
		if now.Before(at) {
			at = now
		}
		starts, ends, ats = append(starts, start), append(ends, end), append(ats, at)
	}
	return starts, ends, ats, nil
}

// Trend computes the trend of label from the label history (each
// customer's value is its latest change at or before the instant) and the
// recorded orders and refunds (its net amount then): the same figures as
// as_of at each instant, without replaying anyone.
func (q *Queries) Trend(ctx context.Context, label, interval string, from, to, now time.Time) (*Trend, error) {
	vocab := q.Vocabulary()
	values, ok := vocab[label]
	if !ok || label == "tag" {
		return nil, &FilterError{Field: "label", Message: "label must be one of value_tier, activity, need_orientation, lifecycle, segment"}
	}
	rs := q.projector.book.Latest()
	starts, ends, ats, err := TrendInstants(interval, from, to, now, rs.Location)
	if err != nil {
		return nil, err
	}
	rows, err := q.projector.pool.Query(ctx, `
		WITH instants AS (SELECT i, t FROM unnest($1::timestamptz[]) WITH ORDINALITY AS x(t, i)),
		labelled AS (
			SELECT n.i, l.stream_id, l.to_value FROM instants n CROSS JOIN LATERAL (
				SELECT DISTINCT ON (c.stream_id) c.stream_id, c.to_value FROM label_changes c
				WHERE c.label = $2 AND c.at <= n.t ORDER BY c.stream_id, c.seq DESC) l),
		amounts AS (
			SELECT n.i, v.stream_id,
				sum(CASE v.type WHEN 'OrderPlaced' THEN 1 ELSE -1 END * round((v.data->>'amount')::numeric * 100))::bigint AS net
			FROM instants n JOIN events v ON v.recorded_at <= n.t
			WHERE v.type IN ('OrderPlaced', 'OrderRefunded') GROUP BY n.i, v.stream_id)
		SELECT l.i, l.to_value, count(*), coalesce(sum(a.net), 0)::bigint
		FROM labelled l LEFT JOIN amounts a ON a.i = l.i AND a.stream_id = l.stream_id
		GROUP BY l.i, l.to_value`, ats, label)
	if err != nil {
		return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
	}
	defer rows.Close()
	type key struct {
		i     int64
		value string
	}
	figures := map[key]summaryCount{}
	for rows.Next() {
		var k key
		var c summaryCount
		var net pgtype.Numeric
		if err := rows.Scan(&k.i, &k.value, &c.customers, &net); err != nil {
			return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
		}
		c.net = totalOf(net)
		figures[k] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
	}
	ts := func(t time.Time) string { return t.In(rs.Location).Format(time.RFC3339Nano) }
	out := &Trend{Label: label, Interval: interval, Points: make([]TrendPoint, len(ats))}
	for i := range ats {
		p := TrendPoint{Start: ts(starts[i]), End: ts(ends[i]), At: ts(ats[i]), Values: make([]TrendValue, len(values))}
		for j, v := range values {
			f := figures[key{int64(i + 1), v.Value}]
			p.Values[j] = TrendValue{Value: v.Value, Display: v.Display, Customers: f.customers, NetAmount: f.net}
			p.Customers += f.customers
			p.NetAmount = p.NetAmount.Add(f.net)
		}
		out.Points[i] = p
	}
	return out, nil
}
