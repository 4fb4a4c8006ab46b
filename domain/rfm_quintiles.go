package domain

import "time"

// The daily RFM quintile boundaries from histograms (docs/ANALYTICS.md,
// "Recorded days"). The read model keeps, for each of recency, frequency and
// monetary, how many customers with orders fall in each bucket of values;
// the boundaries are located in those histograms and, where a bucket is
// wider than one value, refined by an index range scan inside the bucket.
// Nothing here grows with the number of customers.

// RFMDimension is one of the three RFM measures.
type RFMDimension byte

// The dimensions, by the letter the histograms record.
const (
	RFMRecencyDim   RFMDimension = 'r' // last order instant, Unix microseconds
	RFMFrequencyDim RFMDimension = 'f' // order count
	RFMMonetaryDim  RFMDimension = 'm' // net amount in fen
)

// rfmDayMicros is one day in microseconds.
const rfmDayMicros = 86_400_000_000

// Bucket is the histogram bucket of value v: recency by UTC day, frequency
// by value, monetary by its three leading decimal digits (values below
// 1,000 fen by value). The SQL function rfm_histogram_keys computes the
// same keys (a test holds them equal).
func (d RFMDimension) Bucket(v int64) int64 {
	switch d {
	case RFMRecencyDim:
		q := v / rfmDayMicros
		if v%rfmDayMicros < 0 {
			q--
		}
		return q
	case RFMMonetaryDim:
		if v < 1000 {
			return v
		}
		w := monetaryWidth(v)
		return v - v%w
	default:
		return v
	}
}

// Range is the values [lo, hi) of the bucket with key k.
func (d RFMDimension) Range(k int64) (lo, hi int64) {
	switch d {
	case RFMRecencyDim:
		return k * rfmDayMicros, (k + 1) * rfmDayMicros
	case RFMMonetaryDim:
		if k < 1000 {
			return k, k + 1
		}
		return k, k + monetaryWidth(k)
	default:
		return k, k + 1
	}
}

// monetaryWidth is 10^(digits(v) − 3) for v ≥ 1000.
func monetaryWidth(v int64) int64 {
	w := int64(1)
	for x := v; x >= 1000; x /= 10 {
		w *= 10
	}
	return w
}

// RFMCount is one histogram bucket: Count customers have values in the
// bucket Key (RFMDimension.Bucket).
type RFMCount struct{ Key, Count int64 }

// RFMRank locates one boundary: the Rank-th smallest value (from 1) of the
// histogram's bucket at index Bucket.
type RFMRank struct {
	Bucket int
	Rank   int64
}

// RFMQuintileRanks locates the 20, 40, 60 and 80 % boundaries in hist
// (buckets in ascending key order, counts not negative) and returns n, the
// customers counted. Boundary k (1–4) is the value at position ⌈k·n/5⌉ of
// the sorted values (percentile_disc: the smallest value with at least
// k/5 of the values at or below it). With n = 0 there are no boundaries.
func RFMQuintileRanks(hist []RFMCount) (ranks [4]RFMRank, n int64) {
	for _, c := range hist {
		n += c.Count
	}
	if n == 0 {
		return ranks, 0
	}
	k, seen := 0, int64(0)
	for i, c := range hist {
		for k < 4 {
			pos := (int64(k+1)*n + 4) / 5
			if pos > seen+c.Count {
				break
			}
			ranks[k] = RFMRank{Bucket: i, Rank: pos - seen}
			k++
		}
		seen += c.Count
	}
	return ranks, n
}

// RFMChange is the set of values whose score differs between two days'
// boundaries of one dimension: All, or the union of the ranges (Lo, Hi].
type RFMChange struct {
	All    bool
	Ranges [][2]int64
}

// RFMChanged is the set of values of dimension whose scores under next
// differ from those under prev (nil: no earlier day, or one over no
// customers — every customer with orders). A value v scores 1 + #{k: v >
// c_k}; the scores differ exactly when v lies between prev_k and next_k
// for some k (both arrays ascending): in (min, max] of the pair.
func RFMChanged(prev, next *RFMCuts, d RFMDimension) RFMChange {
	if prev == nil || prev.Customers == 0 || next.Customers == 0 {
		return RFMChange{All: true}
	}
	a, b := prev.dimension(d), next.dimension(d)
	var out RFMChange
	for k := range a {
		lo, hi := min(a[k], b[k]), max(a[k], b[k])
		if lo == hi {
			continue
		}
		// Ascending boundaries give ascending ranges; merge touching ones.
		if n := len(out.Ranges); n > 0 && out.Ranges[n-1][1] >= lo {
			out.Ranges[n-1][1] = max(out.Ranges[n-1][1], hi)
			continue
		}
		out.Ranges = append(out.Ranges, [2]int64{lo, hi})
	}
	return out
}

func (c *RFMCuts) dimension(d RFMDimension) *[4]int64 {
	switch d {
	case RFMRecencyDim:
		return &c.Recency
	case RFMFrequencyDim:
		return &c.Frequency
	default:
		return &c.Monetary
	}
}

// RFMDayStart is the daily instant of RFM recomputation at or before t:
// midnight of t's date in the time zone of the rules in force at t.
func (b *RuleBook) RFMDayStart(t time.Time) time.Time {
	loc := b.At(t).Location
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// RFMNextDay is the first daily instant after t.
func (b *RuleBook) RFMNextDay(t time.Time) time.Time {
	s := b.RFMDayStart(t)
	y, m, d := s.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, s.Location())
}
