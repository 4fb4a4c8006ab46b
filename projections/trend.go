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

// Trend computes the trend of label from the per-day deltas the projector
// keeps (segment_trend_days, trenddays.go): each point sums the days up to
// its instant's day, so it gives what as_of at that instant gives, summed
// over customers, without reading any customer's history. Each delta row is
// read once: it goes to the first interval ending on or after its day, and
// the intervals are then added up in order.
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
	out := &Trend{Label: label, Interval: interval, Points: make([]TrendPoint, len(ats))}
	if len(ats) == 0 {
		return out, nil
	}
	// bounds[i] is the first day after point i's: width_bucket counts the
	// bounds at or before a day, which is the index of its point.
	bounds := make([]string, len(ats))
	for i, at := range ats {
		bounds[i] = at.In(rs.Location).AddDate(0, 0, 1).Format(time.DateOnly)
	}
	last := ats[len(ats)-1].In(rs.Location).Format(time.DateOnly)
	rows, err := q.projector.pool.Query(ctx, `SELECT width_bucket(day, $3::text[]::date[]), value, sum(customers), sum(net_amount)
		FROM segment_trend_days WHERE label = $1 AND day <= $2::text::date GROUP BY 1, 2`, label, last, bounds)
	if err != nil {
		return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
	}
	defer rows.Close()
	perPoint := make([]map[string]summaryCount, len(ats))
	for rows.Next() {
		var i int
		var value string
		var c summaryCount
		var net pgtype.Numeric
		if err := rows.Scan(&i, &value, &c.customers, &net); err != nil {
			return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
		}
		c.net = totalOf(net)
		if i < 0 || i >= len(perPoint) {
			continue
		}
		if perPoint[i] == nil {
			perPoint[i] = map[string]summaryCount{}
		}
		perPoint[i][value] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment trend: %w", eventstore.MapError(err))
	}
	ts := func(t time.Time) string { return t.In(rs.Location).Format(time.RFC3339Nano) }
	held := map[string]summaryCount{}
	for i := range ats {
		for v, d := range perPoint[i] {
			h := held[v]
			held[v] = summaryCount{customers: h.customers + d.customers, net: h.net.Add(d.net)}
		}
		p := TrendPoint{Start: ts(starts[i]), End: ts(ends[i]), At: ts(ats[i]), Values: make([]TrendValue, len(values))}
		for j, v := range values {
			f := held[v.Value]
			p.Values[j] = TrendValue{Value: v.Value, Display: v.Display, Customers: f.customers, NetAmount: f.net}
			p.Customers += f.customers
			p.NetAmount = p.NetAmount.Add(f.net)
		}
		out.Points[i] = p
	}
	return out, nil
}
