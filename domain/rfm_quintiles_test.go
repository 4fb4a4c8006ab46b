package domain_test

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/segments-dev/segments/domain"
)

// boundariesBySorting is the definition: the values at positions ⌈k·n/5⌉
// (1-based) of the sorted values.
func boundariesBySorting(values []int64) [4]int64 {
	s := slices.Sorted(slices.Values(values))
	var out [4]int64
	for k := range out {
		out[k] = s[(int64(k+1)*int64(len(s))+4)/5-1]
	}
	return out
}

// boundariesByHistogram is what the recorder does: locate each boundary's
// bucket and rank in the histogram, then take the rank-th value inside the
// bucket's range (the index range scan).
func boundariesByHistogram(d domain.RFMDimension, values []int64) [4]int64 {
	counts := map[int64]int64{}
	for _, v := range values {
		counts[d.Bucket(v)]++
	}
	var hist []domain.RFMCount
	for _, k := range slices.Sorted(func(yield func(int64) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}) {
		hist = append(hist, domain.RFMCount{Key: k, Count: counts[k]})
	}
	ranks, _ := domain.RFMQuintileRanks(hist)
	var out [4]int64
	for i, r := range ranks {
		lo, hi := d.Range(hist[r.Bucket].Key)
		var in []int64
		for _, v := range values {
			if v >= lo && v < hi {
				in = append(in, v)
			}
		}
		slices.Sort(in)
		out[i] = in[r.Rank-1]
	}
	return out
}

func TestRFMQuintileRanks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hist  []domain.RFMCount
		want  [4]domain.RFMRank
		wantN int64
	}{
		{"empty", nil, [4]domain.RFMRank{}, 0},
		{"one customer: every boundary is its value", []domain.RFMCount{{7, 1}}, [4]domain.RFMRank{{0, 1}, {0, 1}, {0, 1}, {0, 1}}, 1},
		{"five values, one each", []domain.RFMCount{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}},
			[4]domain.RFMRank{{0, 1}, {1, 1}, {2, 1}, {3, 1}}, 5},
		{"ten in one bucket: ranks 2, 4, 6, 8", []domain.RFMCount{{100, 10}},
			[4]domain.RFMRank{{0, 2}, {0, 4}, {0, 6}, {0, 8}}, 10},
		{"most have one order: three boundaries at 1", []domain.RFMCount{{1, 70}, {2, 20}, {5, 10}},
			[4]domain.RFMRank{{0, 20}, {0, 40}, {0, 60}, {1, 10}}, 100},
		{"empty buckets are passed over", []domain.RFMCount{{1, 0}, {2, 3}, {3, 0}, {4, 3}},
			[4]domain.RFMRank{{1, 2}, {1, 3}, {3, 1}, {3, 2}}, 6},
		{"seven: positions 2, 3, 5, 6", []domain.RFMCount{{1, 2}, {2, 2}, {3, 3}},
			[4]domain.RFMRank{{0, 2}, {1, 1}, {2, 1}, {2, 2}}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := domain.RFMQuintileRanks(tc.hist)
			if got != tc.want || n != tc.wantN {
				t.Errorf("ranks %v over %d, want %v over %d", got, n, tc.want, tc.wantN)
			}
		})
	}
}

func TestRFMBuckets(t *testing.T) {
	m := domain.RFMMonetaryDim
	for _, tc := range []struct{ v, key, lo, hi int64 }{
		{0, 0, 0, 1}, {999, 999, 999, 1000}, {1000, 1000, 1000, 1010}, {1234, 1230, 1230, 1240},
		{99_999, 99_900, 99_900, 100_000}, {123_456_789, 123_000_000, 123_000_000, 124_000_000},
	} {
		lo, hi := m.Range(m.Bucket(tc.v))
		if k := m.Bucket(tc.v); k != tc.key || lo != tc.lo || hi != tc.hi {
			t.Errorf("monetary %d: bucket %d [%d, %d), want %d [%d, %d)", tc.v, k, lo, hi, tc.key, tc.lo, tc.hi)
		}
	}
	r := domain.RFMRecencyDim
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for _, v := range []int64{day, day + 1, day + 86_400_000_000 - 1, -1, -86_400_000_000} {
		lo, hi := r.Range(r.Bucket(v))
		if v < lo || v >= hi || hi-lo != 86_400_000_000 {
			t.Errorf("recency %d: bucket [%d, %d)", v, lo, hi)
		}
	}
}

// TestRFMBoundariesFromHistogramsAreTheSortedQuintiles: for any values, the
// boundaries located through the histogram are those of sorting them.
func TestRFMBoundariesFromHistogramsAreTheSortedQuintiles(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		d := rapid.SampledFrom([]domain.RFMDimension{domain.RFMRecencyDim, domain.RFMFrequencyDim, domain.RFMMonetaryDim}).Draw(rt, "dim")
		gen := map[domain.RFMDimension]*rapid.Generator[int64]{
			domain.RFMRecencyDim:   rapid.Int64Range(1_700_000_000_000_000, 1_700_000_000_000_000+5*86_400_000_000),
			domain.RFMFrequencyDim: rapid.Int64Range(1, 6),
			domain.RFMMonetaryDim:  rapid.OneOf(rapid.Int64Range(0, 2_000), rapid.Int64Range(0, 10_000_000)),
		}[d]
		values := rapid.SliceOfN(gen, 1, 200).Draw(rt, "values")
		if got, want := boundariesByHistogram(d, values), boundariesBySorting(values); got != want {
			rt.Fatalf("histogram %v, sorting %v", got, want)
		}
	})
}

// TestRFMChangedIsExactlyTheCustomersWhoseScoresChange: a value is in the
// changed ranges exactly when its score differs between the two days.
func TestRFMChangedIsExactlyTheCustomersWhoseScoresChange(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cuts := func(label string) *domain.RFMCuts {
			b := rapid.SliceOfN(rapid.Int64Range(0, 20), 4, 4).Draw(rt, label)
			slices.Sort(b)
			return &domain.RFMCuts{Customers: 10, Frequency: [4]int64(b)}
		}
		prev, next := cuts("prev"), cuts("next")
		ch := domain.RFMChanged(prev, next, domain.RFMFrequencyDim)
		score := func(c *domain.RFMCuts, v int64) int {
			n := 1
			for _, b := range c.Frequency {
				if v > b {
					n++
				}
			}
			return n
		}
		for v := int64(-1); v <= 22; v++ {
			in := false
			for _, r := range ch.Ranges {
				in = in || (v > r[0] && v <= r[1])
			}
			if ch.All || in != (score(prev, v) != score(next, v)) {
				rt.Fatalf("value %d: in changed ranges %v = %v, scores %d → %d", v, ch.Ranges, in, score(prev, v), score(next, v))
			}
		}
	})
	if !domain.RFMChanged(nil, &domain.RFMCuts{Customers: 1}, domain.RFMRecencyDim).All {
		t.Error("the first day must change every customer with orders")
	}
}

func TestRFMDayInstantsAreMidnightInTheRulesZone(t *testing.T) {
	book := domain.DefaultRuleBook()
	loc := book.Latest().Location
	at := time.Date(2026, 5, 1, 23, 30, 0, 0, loc)
	if got, want := book.RFMDayStart(at), time.Date(2026, 5, 1, 0, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("day start %v, want %v", got, want)
	}
	if got, want := book.RFMNextDay(at), time.Date(2026, 5, 2, 0, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("next day %v, want %v", got, want)
	}
	h := (&domain.RFMHistory{}).With(domain.RFMCuts{Seq: 1, At: book.RFMDayStart(at), Next: book.RFMNextDay(at)})
	if !h.Covers(at) || h.Covers(book.RFMNextDay(at)) || (&domain.RFMHistory{}).Covers(at) {
		t.Error("a history covers the instants before its last day's next day only")
	}
}
