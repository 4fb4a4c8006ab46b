package projections

import "context"

// DocumentFormat is the first byte of the documents this version writes, for
// the external tests that read stored rows.
const DocumentFormat = docBinaryV5

// SummaryByRecount is the summary aggregated from every customer row on
// read, as it was computed before the counters (and independently of
// segment_counter_keys): the reference the counters must equal.
func (q *Queries) SummaryByRecount(ctx context.Context) (*Summary, error) {
	rows, err := q.projector.pool.Query(ctx, `
		SELECT 'value_tier', value_tier, count(*), sum(net_amount) FROM customer_projections GROUP BY value_tier
		UNION ALL SELECT 'activity', activity, count(*), sum(net_amount) FROM customer_projections GROUP BY activity
		UNION ALL SELECT 'need_orientation', need_orientation, count(*), sum(net_amount) FROM customer_projections GROUP BY need_orientation
		UNION ALL SELECT 'lifecycle', lifecycle, count(*), sum(net_amount) FROM customer_projections GROUP BY lifecycle
		UNION ALL SELECT 'segment', value_tier || '/' || activity, count(*), sum(net_amount) FROM customer_projections GROUP BY 2
		UNION ALL SELECT 'tag', t, count(*), sum(net_amount) FROM customer_projections, unnest(tags) AS t GROUP BY t
		UNION ALL SELECT 'dim', d, count(*), sum(net_amount) FROM customer_projections, unnest(dims) AS d GROUP BY d
		UNION ALL SELECT 'buyers', '', count(*), sum(net_amount) FROM customer_projections WHERE orders > 0
		UNION ALL SELECT 'repurchase', '', count(*), sum(net_amount) FROM customer_projections WHERE orders > 1
		UNION ALL SELECT 'nps', nps, count(*), sum(net_amount) FROM customer_projections WHERE nps <> '' GROUP BY nps
		UNION ALL SELECT 'rfm_segment', rfm_segment, count(*), sum(net_amount) FROM customer_projections WHERE rfm_segment <> '' GROUP BY rfm_segment
		UNION ALL SELECT 'total', '', count(*), coalesce(sum(net_amount), 0) FROM customer_projections`)
	if err != nil {
		return nil, err
	}
	counts, err := scanSummaryCounts(rows)
	if err != nil {
		return nil, err
	}
	return q.summaryOf(counts), nil
}

// CounterShards is how many shards of segment_counters hold rows.
func (q *Queries) CounterShards(ctx context.Context) (n int, err error) {
	err = q.projector.pool.QueryRow(ctx, "SELECT count(DISTINCT shard) FROM segment_counters").Scan(&n)
	return n, err
}
