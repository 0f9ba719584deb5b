package message

import (
	"errors"
	"math/bits"
	"slices"
	"strings"
)

// Limits on a pattern list, so that no list can make matching slow: a list
// costs at most MaxPatterns linear scans of its subject.
const (
	// MaxPatterns is the most patterns a list may hold.
	MaxPatterns = 32
	// MaxPatternBytes is the longest a pattern may be, not counting the
	// '!' that negates it. It keeps the matcher's state in 128 bits.
	MaxPatternBytes = 128
)

// Errors from ParsePatternList; ParseFilter wraps them in a *FilterError
// that names the query parameter.
var (
	ErrTooManyPatterns = errors.New("more than 32 patterns in a list")
	ErrPatternTooLong  = errors.New("a pattern longer than 128 bytes")
)

// A PatternList is an OpenSSH-style pattern list, as the original msgbus's
// ?type= and ?sender= filters: comma-separated globs where '*' matches any
// run of bytes (including '/') and '?' any one byte; an entry that starts
// with '!' excludes. A value matches when some positive entry matches and no
// negated entry does, so "!image/*" alone matches nothing and
// "!image/*,*" matches everything but images. Spaces around an entry and
// empty entries are ignored.
//
// Matching a value against one pattern takes time O(len(pattern) +
// len(value)), whatever both hold.
//
// The zero PatternList matches everything.
type PatternList struct {
	pos, neg []pattern // in canonical order, without duplicates
	fold     bool
	media    bool // a type list: see parseTypeList
	active   bool // false for the zero value, "" and "*": no filter at all
	midMin   int  // the least glob.min of a pattern with segments
}

// A pattern is one compiled entry of a list.
type pattern struct {
	src   string // as written, lowercased in a folding list, without '!'
	whole bool   // in a type list: has ';', so it sees the whole Content-Type
	glob  glob
}

// ParsePatternList compiles list. An empty list or "*" matches everything.
// With fold, matching ignores ASCII case (media types are case-insensitive).
// A list of more than MaxPatterns patterns fails with ErrTooManyPatterns, a
// pattern longer than MaxPatternBytes with ErrPatternTooLong.
func ParsePatternList(list string, fold bool) (PatternList, error) {
	return parseList(list, fold, false)
}

// parseTypeList compiles a ?type= list: folded, and a pattern without ';' is
// matched against the media type alone (parameters dropped), so "text/plain"
// matches "text/plain; charset=utf-8", while one with ';' is matched against
// the whole Content-Type.
func parseTypeList(list string) (PatternList, error) {
	return parseList(list, true, true)
}

func parseList(list string, fold, media bool) (PatternList, error) {
	if list == "" || list == "*" {
		return PatternList{}, nil
	}
	p := PatternList{fold: fold, media: media, active: true}
	if fold {
		list = lowerASCII(list)
	}
	n := 0
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		src, neg := strings.CutPrefix(entry, "!")
		if src == "" {
			continue
		}
		if n++; n > MaxPatterns {
			return PatternList{}, ErrTooManyPatterns
		}
		if len(src) > MaxPatternBytes {
			return PatternList{}, ErrPatternTooLong
		}
		pat := pattern{src: src, whole: media && strings.IndexByte(src, ';') >= 0}
		if neg {
			p.neg = append(p.neg, pat)
		} else {
			p.pos = append(p.pos, pat)
		}
	}
	if len(p.neg) == 0 && slices.ContainsFunc(p.pos, func(q pattern) bool { return normalizeGlob(q.src) == "*" }) {
		return PatternList{}, nil // "*,…" without exclusions lets everything through
	}
	p.neg, p.pos = canonical(p.neg), canonical(p.pos)
	p.midMin = MaxPatternBytes + 1
	for _, q := range slices.Concat(p.neg, p.pos) {
		if q.glob.mid != nil {
			p.midMin = min(p.midMin, q.glob.min)
		}
	}
	return p, nil
}

// canonical compiles ps, sorts them by the shortest value each can match,
// then by source, and drops duplicates: lists that differ only in order or
// repetition get one form, and match stops at the first pattern that needs
// more bytes than the value has.
func canonical(ps []pattern) []pattern {
	for i := range ps {
		ps[i].glob = compileGlob(ps[i].src)
	}
	slices.SortFunc(ps, func(a, b pattern) int {
		if a.glob.min != b.glob.min {
			return a.glob.min - b.glob.min
		}
		return strings.Compare(a.src, b.src)
	})
	return slices.CompactFunc(ps, func(a, b pattern) bool { return a.src == b.src })
}

// String returns the list in canonical form: negations first, each part
// sorted (by the shortest value a pattern can match, then bytewise),
// without duplicates, lowercased when folding; "*" for a list that
// matches everything, "," for one of no patterns (which matches nothing).
// Lists with the same String match the same values, and String parses back
// to the same list.
func (p PatternList) String() string {
	if !p.active {
		return "*"
	}
	if len(p.neg)+len(p.pos) == 0 {
		return ","
	}
	var b strings.Builder
	for i, q := range p.neg {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('!')
		b.WriteString(q.src)
	}
	for i, q := range p.pos {
		if i > 0 || len(p.neg) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q.src)
	}
	return b.String()
}

// MatchesAll reports whether the list lets every value through.
func (p PatternList) MatchesAll() bool {
	return !p.active
}

// Match reports whether s passes the list. In a type list (of a Filter), s
// is a whole Content-Type.
func (p PatternList) Match(s string) bool {
	if !p.active {
		return true
	}
	if p.fold {
		s = lowerASCII(s)
	}
	if p.media {
		start, end := mediaSpan(s)
		return p.match(s, start, end)
	}
	return p.match(s, 0, len(s))
}

// match matches whole (already folded when the list folds) and, for the
// patterns of a type list that see only the media type, whole[start:end].
func (p PatternList) match(whole string, start, end int) bool {
	if !p.active {
		return true
	}
	if len(whole) <= shortLen && p.midMin <= len(whole) {
		return p.matchShort(whole, start, end)
	}
	return p.eval(whole, start, end, nil)
}

// matchShort is match with a shortIndex of whole, for the segments.
func (p PatternList) matchShort(whole string, start, end int) bool {
	var x shortIndex
	x.build(whole)
	return p.eval(whole, start, end, &x)
}

// eval is match, with x indexing whole or nil.
func (p PatternList) eval(whole string, start, end int, x *shortIndex) bool {
	// Patterns come shortest first, and the media type is never longer
	// than whole.
	for k, list := range [2][]pattern{p.neg, p.pos} {
		for i := range list {
			q := &list[i]
			if q.glob.min > len(whole) {
				break
			}
			var ok bool
			if p.media && !q.whole {
				ok = q.glob.match(whole[start:end], x, start)
			} else {
				ok = q.glob.match(whole, x, 0)
			}
			if ok {
				return k == 1 // a negated pattern fails the value, a positive one passes it
			}
		}
	}
	return false
}

// mediaSpan returns where the media type of a Content-Type is: what comes
// before the first ';', without surrounding spaces and tabs.
func mediaSpan(contentType string) (start, end int) {
	end = len(contentType)
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		end = i
	}
	for end > 0 && (contentType[end-1] == ' ' || contentType[end-1] == '\t') {
		end--
	}
	for start < end && (contentType[start] == ' ' || contentType[start] == '\t') {
		start++
	}
	return start, end
}

// lowerASCII lowercases the ASCII letters of s, byte-wise, and leaves every
// other byte alone (media types are ASCII; anything else must match
// exactly). It allocates only when s has an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// A glob is a compiled pattern of literal bytes, '?' (any one byte) and '*'
// (any run of bytes). Its match takes time O(len(pattern) + len(s)).
//
// The pattern is first normalized: runs of '*' become one, and '?' moves
// before '*' ("*?" and "?*" match the same strings), so every '*' is
// followed by a literal byte or ends the pattern. A pattern with a '*' is
// then head*seg1*…*segN*tail: head must match the start of s and tail its
// end, each in one pass; the segments must occur in order, without
// overlapping, in what lies between. Finding each segment's leftmost
// occurrence, starting where the previous one ended, is correct: if any
// choice of occurrences matches, the leftmost-ending first segment leaves
// the most room for the rest. So the segments are found in one left to
// right pass over s, each with a bit-parallel Shift-Or search (segment
// bytes ≤ 128, so the state fits two words): a constant amount of work per
// byte of s whatever the segment holds, and never a step back. For an s of
// at most 64 bytes, a shortIndex of s finds them instead, in a constant
// amount of work per byte of the pattern.
type glob struct {
	min          int       // the fewest bytes s can have: every byte but the '*'s
	star         bool      // the pattern has a '*'; otherwise s must be exactly min long
	headQ, tailQ bool      // head, tail hold a '?'
	head, tail   string    // anchored at the start and the end of s; with no '*', head is all
	mid          *segments // seg1…segN, nil when none
	midSrc       string    // "seg1*…*segN", for shortIndex.find
}

// compileGlob compiles p, which must be at most MaxPatternBytes long.
func compileGlob(p string) glob {
	if len(p) > MaxPatternBytes {
		panic("glob pattern longer than MaxPatternBytes")
	}
	p = normalizeGlob(p)
	first := strings.IndexByte(p, '*')
	if first < 0 {
		return glob{min: len(p), head: p, headQ: strings.IndexByte(p, '?') >= 0}
	}
	last := strings.LastIndexByte(p, '*')
	g := glob{min: len(p) - strings.Count(p, "*"), head: p[:first], tail: p[last+1:], star: true}
	g.headQ = strings.IndexByte(g.head, '?') >= 0
	g.tailQ = strings.IndexByte(g.tail, '?') >= 0
	if first < last {
		g.midSrc = p[first+1 : last]
		g.mid = compileSegments(strings.Split(g.midSrc, "*"))
	}
	return g
}

// normalizeGlob collapses runs of '*' and moves each '?' before the '*' it
// follows: "a**?b*?" becomes "a?*b?*".
func normalizeGlob(p string) string {
	if !strings.Contains(p, "**") && !strings.Contains(p, "*?") {
		return p
	}
	b := make([]byte, 0, len(p))
	star := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*':
			star = true
		case c == '?':
			b = append(b, c)
		default:
			if star {
				b, star = append(b, '*'), false
			}
			b = append(b, c)
		}
	}
	if star {
		b = append(b, '*')
	}
	return string(b)
}

// match reports whether s matches g. x, if not nil, indexes a value that
// holds s at offset off, and finds the segments instead of their tables.
func (g *glob) match(s string, x *shortIndex, off int) bool {
	if !g.star {
		return len(s) == g.min && fixedMatch(g.head, s, g.headQ)
	}
	if len(s) < g.min {
		return false
	}
	rest := len(s) - len(g.tail)
	if !fixedMatch(g.head, s[:len(g.head)], g.headQ) || !fixedMatch(g.tail, s[rest:], g.tailQ) {
		return false
	}
	switch {
	case g.mid == nil:
		return true
	case x != nil:
		return x.find(g.midSrc, off+len(g.head), off+rest)
	}
	return g.mid.find(s[len(g.head):rest])
}

// fixedMatch matches p against s of the same length; q says p holds a '?'.
func fixedMatch(p, s string, q bool) bool {
	if !q {
		return p == s
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '?' && p[i] != s[i] {
			return false
		}
	}
	return true
}

// segments are the middle of a glob, searched for in order. The bytes of
// all segments, concatenated, are numbered 0 to n-1 (n < 128), so that one
// table of masks serves every segment: bit j%64 of miss[class[c]][j/64] is
// set when byte j is a literal other than c. Everything a search reads is
// in this one object unless the segments name more than 7 distinct bytes,
// so a filter of many short patterns costs few cache misses: about 500
// bytes, plus 16 per distinct literal byte past 7.
type segments struct {
	count  int
	start  [64]uint8 // number of each segment's first byte, then n
	first  [63]byte  // each segment's first byte: a literal, after normalization
	class  [256]uint8
	miss   [][2]uint64 // per class; missIn unless there are more classes
	missIn [8][2]uint64
}

func compileSegments(segs []string) *segments {
	g := &segments{count: len(segs)}
	classes := 1 // class 0: every byte no segment names
	n := 0
	for k, seg := range segs {
		g.start[k], g.first[k] = uint8(n), seg[0]
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c != '?' && g.class[c] == 0 {
				g.class[c] = uint8(classes)
				classes++
			}
		}
		n += len(seg)
	}
	g.start[len(segs)] = uint8(n)
	if classes <= len(g.missIn) {
		g.miss = g.missIn[:classes]
	} else {
		g.miss = make([][2]uint64, classes)
	}
	j := 0
	for _, seg := range segs {
		for i := 0; i < len(seg); i, j = i+1, j+1 {
			c := seg[i]
			if c == '?' {
				continue
			}
			for k := range classes {
				if k != int(g.class[c]) {
					g.miss[k][j/64] |= 1 << (j % 64)
				}
			}
		}
	}
	return g
}

// find reports whether the segments occur in s in order, without overlap.
func (g *segments) find(s string) bool {
	i := 0
	for k := range g.count {
		i = g.search(s, i, uint(g.start[k]), uint(g.start[k+1])-1, g.first[k])
		if i < 0 {
			return false
		}
	}
	return true
}

// maxShortSkips is how many times a segment search looks for the next
// possible start with IndexByte and gets less than 8 bytes further before
// it stops looking: past it, the subject is full of the segment's first
// byte and stepping byte by byte is cheaper than the calls.
const maxShortSkips = 16

// search finds the leftmost occurrence, in s from i on, of the segment made
// of bytes a…e, and returns the index after it, or -1. While no byte of the
// segment is matched, it skips to the next copy of the segment's first byte
// with IndexByte; from there it steps with Shift-Or until the segment is
// found or nothing of it is matched any more. Once skips keep landing close
// by, it stops skipping and steps to the end. Either way each byte of s is
// looked at a bounded number of times.
func (g *segments) search(s string, i int, a, e uint, first byte) int {
	short := 0
	for i < len(s) {
		if s[i] != first && short < maxShortSkips {
			j := strings.IndexByte(s[i:], first)
			if j < 0 {
				return -1
			}
			if j < 8 {
				short++
			}
			i += j
		}
		var found bool
		idle := short < maxShortSkips // stop when idle, to skip again
		switch {
		case e < 64:
			i, found = step1(s, i, &g.class, g.miss, 0, a, e, idle)
		case a >= 64:
			i, found = step1(s, i, &g.class, g.miss, 1, a-64, e-64, idle)
		default:
			i, found = step2(s, i, &g.class, g.miss, a, e-64, idle)
		}
		if found {
			return i
		}
	}
	return -1
}

// step1 runs Shift-Or from s[i] for a segment held in bits a…e of word w:
// bit j of d is clear while the segment's bytes a…j match the bytes just
// read. It returns the index after the segment and true when it completes,
// or false and len(s) when it does not; with idle, it returns false as soon
// as no partial match is left, with the index of the next byte.
// It is a function of its own, without calls, so that its state stays in
// registers.
//
//go:noinline
func step1(s string, i int, class *[256]uint8, miss [][2]uint64, w int, a, e uint, idle bool) (int, bool) {
	var (
		seg  = ^uint64(0) << a // bits of this segment and above; those below stay clear
		span = seg &^ (^uint64(0) << e << 1)
		end  = uint64(1) << e
		d    = seg // nothing matched yet
	)
	w &= 1
	// Four bytes a round: the segment completed at one of them when any
	// of the four states has the end bit clear.
	for ; i+4 <= len(s); i += 4 {
		b := s[i : i+4]
		d1 := d<<1 | miss[class[b[0]]][w]&seg
		d2 := d1<<1 | miss[class[b[1]]][w]&seg
		d3 := d2<<1 | miss[class[b[2]]][w]&seg
		d4 := d3<<1 | miss[class[b[3]]][w]&seg
		if d1&d2&d3&d4&end == 0 {
			switch {
			case d1&end == 0:
				return i + 1, true
			case d2&end == 0:
				return i + 2, true
			case d3&end == 0:
				return i + 3, true
			}
			return i + 4, true
		}
		d = d4
		if d&span == span && idle {
			return i + 4, false
		}
	}
	for i < len(s) {
		d = d<<1 | miss[class[s[i]]][w]&seg
		i++
		if d&end == 0 {
			return i, true
		}
		if d&span == span && idle {
			return i, false
		}
	}
	return i, false
}

// step2 is step1 for a segment from bit a of the low word to bit e of the
// high one.
//
//go:noinline
func step2(s string, i int, class *[256]uint8, miss [][2]uint64, a, e uint, idle bool) (int, bool) {
	var (
		seg    = ^uint64(0) << a
		span   = ^uint64(0) >> (63 - e) // the high word's bits up to e
		end    = uint64(1) << e
		d0, d1 = seg, ^uint64(0)
	)
	for ; i+4 <= len(s); i += 4 {
		b := s[i : i+4]
		m := &miss[class[b[0]]]
		h1 := d1<<1 | d0>>63 | m[1]
		l1 := d0<<1 | m[0]&seg
		m = &miss[class[b[1]]]
		h2 := h1<<1 | l1>>63 | m[1]
		l2 := l1<<1 | m[0]&seg
		m = &miss[class[b[2]]]
		h3 := h2<<1 | l2>>63 | m[1]
		l3 := l2<<1 | m[0]&seg
		m = &miss[class[b[3]]]
		h4 := h3<<1 | l3>>63 | m[1]
		l4 := l3<<1 | m[0]&seg
		if h1&h2&h3&h4&end == 0 {
			switch {
			case h1&end == 0:
				return i + 1, true
			case h2&end == 0:
				return i + 2, true
			case h3&end == 0:
				return i + 3, true
			}
			return i + 4, true
		}
		d0, d1 = l4, h4
		if d0 == seg && d1&span == span && idle {
			return i + 4, false
		}
	}
	for i < len(s) {
		m := &miss[class[s[i]]]
		d1 = d1<<1 | d0>>63 | m[1]
		d0 = d0<<1 | m[0]&seg
		i++
		if d1&end == 0 {
			return i, true
		}
		if d0 == seg && d1&span == span && idle {
			return i, false
		}
	}
	return i, false
}

// shortLen is the longest value a shortIndex takes: one bit per byte.
const shortLen = 64

// A shortIndex lists where each byte occurs in a value of at most shortLen
// bytes: bit i of at(c) is set when byte i of the value is c. Built once per
// value and list (in time linear in the value), it finds a glob's segments
// with one AND and shift per pattern byte, reading nothing of the pattern
// but its bytes: for the short values that most types and senders are, this
// is faster than the segments' Shift-Or, whose tables a filter of many
// patterns would bring from memory one by one.
type shortIndex struct {
	class [256]uint8           // 0 for bytes not in the value
	at    [shortLen + 1]uint64 // per class
}

func (x *shortIndex) build(v string) {
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		k := x.class[c]
		if k == 0 {
			n++
			k = uint8(n)
			x.class[c] = k
		}
		x.at[k] |= 1 << i
	}
}

// find reports whether the segments of mid ("seg1*…*segN", each starting
// with a literal) occur in order, without overlap, within bytes lo…hi-1 of
// the indexed value. For each segment, the set of places it may start is
// narrowed byte by byte; the leftmost one left is taken, as in
// segments.find.
func (x *shortIndex) find(mid string, lo, hi int) bool {
	window := ^uint64(0) >> (64 - hi) &^ (1<<lo - 1) // bits lo…hi-1
	for seg := range strings.SplitSeq(mid, "*") {
		starts := window &^ (1<<lo - 1)
		for j := 0; j < len(seg) && starts != 0; j++ {
			at := window // '?'
			if c := seg[j]; c != '?' {
				at &= x.at[x.class[c]]
			}
			starts &= at >> j
		}
		if starts == 0 {
			return false
		}
		lo = bits.TrailingZeros64(starts) + len(seg)
	}
	return true
}
