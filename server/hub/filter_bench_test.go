package hub

import (
	"fmt"
	"github.com/msgbus/msgbus/server/message"
	"strings"
	"testing"
)

// Content-Types for the filter benchmarks: a common one, and one of 8 KiB
// (headers may be that long) whose media type nearly matches every
// maximalTypes pattern, so that each pattern scans it to the end.
var (
	normalType = "text/plain; charset=utf-8"
	longType   = "text/" + strings.Repeat("a", 8<<10-len("text/; charset=utf-8")) + "; charset=utf-8"
)

// maximalTypes returns a ?type= list at both limits: MaxPatterns patterns
// of MaxPatternBytes bytes. The first MaxPatterns-1 are negations that no
// benchmark type matches, so all are evaluated, each a shape that costs a
// backtracking glob O(len(pattern)·len(value)), and all but the "*?x*?x…"
// shape make the linear glob scan longType to its end; the last, "text/*…"
// (sorted last), lets every benchmark message through, so filtered
// subscribers get as many messages as plain ones. id, 0 to 9999, makes the
// list distinct from other ids' without changing its cost.
func maximalTypes(id int) string {
	n := fmt.Sprintf("%04d", id)
	shapes := []func(k int) string{
		func(k int) string { // one 126-byte segment, never completed in a run of a
			return "*" + strings.Repeat("a", message.MaxPatternBytes-8) + n + string(rune('b'+k%20)) + "*"
		},
		func(k int) string { // a segment with '?', never completed
			return "*" + strings.Repeat("a?", (message.MaxPatternBytes-8)/2) + n + string(rune('b'+k%20)) + "*"
		},
		func(k int) string { // many segments
			return strings.Repeat("*?x", (message.MaxPatternBytes-6)/3) + "*" + n + string(rune('b'+k%20))
		},
		func(k int) string { // segments within one word, never completed
			return strings.Repeat("*"+strings.Repeat("a", 24)+"b", 4) + "*" + n + string(rune('b'+k%20)) + "*"
		},
	}
	entries := make([]string, 0, message.MaxPatterns)
	for k := range message.MaxPatterns - 1 {
		p := shapes[k%len(shapes)](k)
		entries = append(entries, "!"+p+strings.Repeat("*", message.MaxPatternBytes-len(p)))
	}
	entries = append(entries, "text/"+strings.Repeat("*", message.MaxPatternBytes-len("text/")))
	return strings.Join(entries, ",")
}

// scanningTypes returns a ?type= list of MaxPatterns short patterns, which
// a common Content-Type does not rule out by length, so each one scans it:
// MaxPatterns-1 negations (half of them, with ';', see the whole type) and
// "text/*". For normalType, the costliest filters per byte of list.
func scanningTypes(id int) string {
	n := fmt.Sprintf("%04d", id)
	entries := make([]string, 0, message.MaxPatterns)
	for k := range message.MaxPatterns - 1 {
		c := string(rune('b' + k%20))
		if k%2 == 0 {
			entries = append(entries, "!*t?"+c+n+"*")
		} else {
			entries = append(entries, "!*;*t?"+c+n+"*")
		}
	}
	return strings.Join(append(entries, "text/*"), ",")
}

func TestMaximalTypesIsAtTheLimitsAndPassesTheBenchmarkTypes(t *testing.T) {
	for _, id := range []int{0, 1, 9999} {
		list := maximalTypes(id)
		entries := strings.Split(list, ",")
		if len(entries) != message.MaxPatterns {
			t.Fatalf("%d entries, want %d", len(entries), message.MaxPatterns)
		}
		for _, e := range entries {
			if n := len(strings.TrimPrefix(e, "!")); n != message.MaxPatternBytes {
				t.Fatalf("pattern %.20q… has %d bytes, want %d", e, n, message.MaxPatternBytes)
			}
		}
		f := benchFilter(t, list, "")
		for _, typ := range []string{normalType, longType} {
			if !f.Match(&message.Message{Type: typ}) {
				t.Fatalf("maximalTypes(%d) does not pass %.30q…", id, typ)
			}
		}
	}
	if benchFilter(t, maximalTypes(1), "") == benchFilter(t, maximalTypes(2), "") {
		t.Fatal("maximalTypes(1) and (2) are the same filter")
	}
	list := scanningTypes(3)
	if n := len(strings.Split(list, ",")); n != message.MaxPatterns {
		t.Fatalf("scanningTypes: %d entries, want %d", n, message.MaxPatterns)
	}
	for _, typ := range []string{normalType, longType} {
		if !benchFilter(t, list, "").Match(&message.Message{Type: typ}) {
			t.Fatalf("scanningTypes does not pass %.30q…", typ)
		}
	}
}

// benchFilter parses a list for the benchmarks.
func benchFilter(b testing.TB, types string, _ ...string) *message.Filter {
	f, err := message.ParseFilter(types, "")
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkFilteredFanOut: one op is one Publish, of a 100-byte body to
// channel "bench", to 1000 subscribers of the root, each with no filter,
// all with the same maximal filter, each with its own maximal filter, or
// each with its own scanningTypes filter; for a common Content-Type and for
// an 8 KiB one. Every subscriber gets
// every message, and writers take their queues every drainEvery publishes,
// as in BenchmarkFanOut.
func BenchmarkFilteredFanOut(b *testing.B) {
	const n = 1000
	filters := []struct {
		name   string
		filter func(i int) string
	}{
		{"none", func(int) string { return "" }},
		{"same-maximal", func(int) string { return maximalTypes(0) }},
		{"distinct-maximal", maximalTypes},
		{"distinct-scanning", scanningTypes},
	}
	types := []struct{ name, typ string }{{"type=normal", normalType}, {"type=8KiB", longType}}
	for _, fl := range filters {
		for _, ty := range types {
			b.Run("filter="+fl.name+"/"+ty.name, func(b *testing.B) {
				h := newTestHub(Config{MaxQueueBytes: 1 << 30})
				subs := make([]*benchSub, n)
				for i := range subs {
					s, err := h.Subscribe("", SubscribeOptions{
						Format: partFormat{}, Filter: benchFilter(b, fl.filter(i)), Wake: func() {},
					})
					if err != nil {
						b.Fatal(err)
					}
					subs[i] = &benchSub{s: s, spare: make([][]byte, 0, 2*drainEvery)}
				}
				msg := func() *message.Message {
					return &message.Message{Channel: "bench", Type: ty.typ, Sender: "bench", Body: benchBody}
				}
				pub(h, msg()) // prime the queues, as fanOutHub does
				for _, s := range subs {
					s.take()
					s.spare = make([][]byte, 0, 2*drainEvery)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if got := pub(h, msg()); got != n {
						b.Fatalf("Publish reached %d, want %d", got, n)
					}
					if i%drainEvery == drainEvery-1 {
						for _, s := range subs {
							s.take()
						}
					}
				}
			})
		}
	}
}
