package load

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets of the latency histogram: exact below 64ns, then 32 per power of
// two (about 3% wide), up to 2^40 ns (18 minutes).
const (
	subBits    = 5
	subCount   = 1 << subBits
	maxExp     = 40
	numBuckets = 2*subCount + (maxExp-subBits-1)*subCount
	shards     = 64
)

// A Histogram counts latencies from many goroutines at once: each records
// into one of a few shards, chosen by the caller, with atomic adds, so that
// thousands of subscribers neither allocate nor contend on one counter.
type Histogram struct {
	shards [shards]struct {
		counts [numBuckets]atomic.Uint64
		max    atomic.Int64
	}
}

func bucket(ns int64) int {
	if ns < 0 {
		ns = 0
	}
	v := uint64(ns)
	if v < 2*subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v >> e is in [32, 64)
	i := (e+1)*subCount + int(v>>e) - subCount
	return min(i, numBuckets-1)
}

// lower returns the smallest value of bucket i.
func lower(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	e := i/subCount - 1
	return int64(uint64(i%subCount+subCount) << e)
}

// Record counts d in shard (any int; spread callers across shards).
func (h *Histogram) Record(shard int, d time.Duration) {
	s := &h.shards[uint(shard)%shards]
	s.counts[bucket(int64(d))].Add(1)
	for {
		m := s.max.Load()
		if int64(d) <= m || s.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Summary is a histogram's percentiles.
type Summary struct {
	Count              uint64
	P50, P90, P99, Max time.Duration
}

// Summary merges the shards. It may run while others record.
func (h *Histogram) Summary() Summary {
	var counts [numBuckets]uint64
	var s Summary
	for i := range h.shards {
		for b := range counts {
			n := h.shards[i].counts[b].Load()
			counts[b] += n
			s.Count += n
		}
		s.Max = max(s.Max, time.Duration(h.shards[i].max.Load()))
	}
	if s.Count == 0 {
		return s
	}
	pct := func(p float64) time.Duration {
		rank := uint64(p*float64(s.Count) + 0.5)
		rank = max(rank, 1)
		var seen uint64
		for b, n := range counts {
			seen += n
			if seen >= rank {
				// the bucket's middle, capped by the true maximum
				mid := (lower(b) + lower(b+1)) / 2
				return min(time.Duration(mid), s.Max)
			}
		}
		return s.Max
	}
	s.P50, s.P90, s.P99 = pct(0.50), pct(0.90), pct(0.99)
	return s
}
