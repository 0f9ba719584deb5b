package load

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestStampRoundTripsAndPads(t *testing.T) {
	for _, s := range []Stamp{{}, {Run: 1<<64 - 1, Worker: 1<<32 - 1, Seq: 1<<64 - 1, Sent: 1<<63 - 1}, {Run: 0xabc, Worker: 3, Seq: 42, Sent: time.Now().UnixNano()}} {
		for _, size := range []int{0, StampLen, 1000} {
			b := Append([]byte("keep"), s, size)
			if string(b[:4]) != "keep" || len(b)-4 < size || len(b)-4 > max(size, StampLen) {
				t.Fatalf("Append(%+v, %d) = %q", s, size, b)
			}
			got, ok := Parse(b[4:])
			if !ok || got != s {
				t.Fatalf("Parse(%q) = %+v, %v, want %+v", b[4:], got, ok, s)
			}
		}
	}
	for _, bad := range []string{"", "LOAD", "LOAD 1 2 3", "LOAD 1 2 3 4", "LOAD g 2 3 4\n", "LOAD 1 99999999999 3 4\n", "hello"} {
		if _, ok := Parse([]byte(bad)); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	b := Append(nil, Stamp{Run: 1, Seq: 2, Sent: 3}, 100)
	if n := testing.AllocsPerRun(100, func() { Parse(b) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func TestTrackerTellsLossDuplicatesAndReordering(t *testing.T) {
	var tr Tracker
	add := func(worker uint32, seqs ...uint64) {
		for _, q := range seqs {
			tr.Add(Stamp{Run: 7, Worker: worker, Seq: q})
		}
	}
	add(0, 0, 1, 2, 3)
	add(1, 0, 1)
	if tr.Distinct != 6 || tr.Missing+tr.Reordered+tr.Duplicated != 0 {
		t.Fatalf("in order: %+v", tr)
	}
	add(0, 6)    // 4 and 5 missing
	add(0, 4)    // late
	add(0, 4, 6) // duplicates
	add(1, 1)    // duplicate
	if tr.Distinct != 8 || tr.Missing != 1 || tr.Reordered != 1 || tr.Duplicated != 3 {
		t.Fatalf("got %+v", tr)
	}
	add(0, 10000) // far ahead, then one from beyond the window
	add(0, 5)
	if tr.Missing != 10000-7 || tr.Reordered != 2 {
		t.Fatalf("got %+v", tr)
	}
}

func TestHistogramPercentilesAreWithinTheBucketWidth(t *testing.T) {
	var h Histogram
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		h.Record(i, time.Duration(1+rng.IntN(1000))*time.Microsecond)
	}
	s := h.Summary()
	check := func(name string, got, want time.Duration) {
		if got < want*95/100 || got > want*105/100 {
			t.Errorf("%s = %v, want about %v", name, got, want)
		}
	}
	check("p50", s.P50, 500*time.Microsecond)
	check("p90", s.P90, 900*time.Microsecond)
	check("p99", s.P99, 990*time.Microsecond)
	if s.Count != 100000 || s.Max != 1000*time.Microsecond {
		t.Fatalf("%+v", s)
	}
	for v := int64(0); v < 1<<20; v += 1 + v/7 {
		if b := bucket(v); lower(b) > v || lower(b+1) <= v {
			t.Fatalf("value %d in bucket %d [%d, %d)", v, b, lower(b), lower(b+1))
		}
	}
}
