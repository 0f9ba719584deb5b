package message

import (
	"strconv"
	"strings"
	"testing"
)

// BenchmarkGlob: one op is one match of a worst shape, at the length limit,
// against a value that nearly matches it, by the linear glob and by the
// backtracking glob it replaced (backtrackGlob, kept here to measure).
func BenchmarkGlob(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 8 << 10} {
		for k, p := range worstPatterns {
			s := strings.Repeat("a", size)
			g := compileGlob(p)
			name := "shape=" + strconv.Itoa(k) + "/len=" + strconv.Itoa(size)
			b.Run(name+"/linear", func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					g.match(s, nil, 0)
				}
			})
			b.Run(name+"/backtracking", func(b *testing.B) {
				if size > 1<<10 && testing.Short() {
					b.Skip("slow")
				}
				b.SetBytes(int64(size))
				for b.Loop() {
					backtrackGlob(p, s)
				}
			})
		}
	}
}

// backtrackGlob is the glob that PatternList used before the linear one:
// on a mismatch it retries from the most recent '*', O(len(pattern)·len(s)).
func backtrackGlob(pattern, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
