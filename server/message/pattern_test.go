package message

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// globMatch compiles pattern and matches s against it. For an s short
// enough, it checks that the shortIndex path agrees with the segments' one,
// also when s is the middle of a longer indexed value.
func globMatch(t testing.TB, pattern, s string) bool {
	t.Helper()
	g := compileGlob(pattern)
	got := g.match(s, nil, 0)
	junk := strings.NewReplacer("*", "", "?", "").Replace(pattern)
	junk = junk[:min(len(junk), 8)]
	for _, pad := range [][2]string{{"", ""}, {junk, junk}, {"ab", junk + "x"}} {
		v := pad[0] + s + pad[1]
		if len(v) > shortLen {
			continue
		}
		var x shortIndex
		x.build(v)
		if short := g.match(s, &x, len(pad[0])); short != got {
			t.Errorf("glob %q, value %q: %v with a shortIndex of %q, %v without", pattern, s, short, v, got)
		}
	}
	return got
}

func TestGlobMatchesOpenSSHWildcards(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything/at all", true},
		{"?", "a", true},
		{"?", "", false},
		{"?", "ab", false},
		{"??", "ab", true},
		{"a?c", "abc", true},
		{"a?c", "a/c", true},
		{"a?c", "ac", false},
		{"text/*", "text/plain; charset=utf-8", true},
		{"text/*", "text/", true},
		{"text/*", "text", false},
		{"text/*", "texts/plain", false},
		{"text/plain", "text/plain; charset=utf-8", false},
		{"*/json", "application/json", true},
		{"*+json", "application/ld+json", true},
		{"*+json", "application/json", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
		{"*a", "aaa", true},
		{"*ab", "aab", true},
		{"*ab", "aba", false},
		{"**", "", true},
		{"*?", "", false},
		{"*?", "x", true},
		{"a*", "a*", true},
		{"*", "*", true},
		// A '*' in the value is an ordinary byte; the pattern's '*' is still a wildcard.
		{"*b", "*ab", true},
		{"*c", "*abc", true},
		{"x*", "x", true},
		{"[a]", "[a]", true}, // no character classes
		{"[a]", "a", false},
		{"\\*", "\\anything", true}, // no escapes
		{"ü", "ü", true},
		{"?", "ü", false}, // '?' is one byte, and ü is two
		{"??", "ü", true},
		// Head and tail must not overlap.
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"a*a", "a", false},
		// Middle segments: in order, without overlap, between head and tail.
		{"*ab*ba*", "aba", false},
		{"*ab*ba*", "abba", true},
		{"*ab*ab*", "abab", true},
		{"*ab*ab*", "aab", false},
		{"x*ab*y", "xaby", true},
		{"x*ab*y", "xay", false},
		{"x*ab*y", "abxy", false}, // the segment is outside head…tail
		{"*a*b*c*", "cba", false},
		{"*a*b*c*", "xaxbxcx", true},
		// A segment found leftmost must not hide a later, overlapping one.
		{"*aab*", "aaab", true},
		{"*abab*", "abaabab", true},
		{"*a?a*", "aba", true},
		{"*a?b*", "aab", true},
		{"*a?b*", "aaab", true},
		{"*aa?*b", "aaab", true},
		// '?' next to '*': "*?" and "?*" are the same pattern.
		{"*?x", "x", false},
		{"*?x", "ax", true},
		{"*??*", "a", false},
		{"*??*", "ab", true},
		{"*?*?*", "ab", true},
		{"a*?b*?c", "a1b2c", true},
		{"a*?b*?c", "abc", false},
		{"*?x*?x", "axax", true},
		{"*?x*?x", "xx", false},
	}
	for _, tt := range tests {
		if got := globMatch(t, tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if want := refGlob(tt.pattern, tt.s); want != tt.want {
			t.Errorf("refGlob(%q, %q) = %v, the table says %v", tt.pattern, tt.s, want, tt.want)
		}
	}
}

// TestGlobSegmentsAcrossTheWordBoundary: the segments of a long pattern
// share a 128-bit state, and one may straddle bit 64.
func TestGlobSegmentsAcrossTheWordBoundary(t *testing.T) {
	a60, b10 := strings.Repeat("a", 60), strings.Repeat("b", 10)
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*" + a60 + "*" + b10 + "*", "x" + a60 + "y" + b10 + "z", true},      // second segment in bits 60…69
		{"*" + a60 + "*" + b10 + "*", "x" + a60 + "y" + b10[1:] + "z", false}, // one b short
		{"*" + a60 + "*" + b10 + "*", b10 + a60, false},                       // out of order
		{"*" + strings.Repeat("ab?", 30) + "*", strings.Repeat("abx", 31), true},
		{"*" + strings.Repeat("ab?", 30) + "*", strings.Repeat("abx", 29) + "aab", false},
		{"*" + strings.Repeat("a", 126) + "*", strings.Repeat("a", 126), true},
		{"*" + strings.Repeat("a", 126) + "*", strings.Repeat("a", 125), false},
		{"*" + strings.Repeat("a", 125) + "b*", strings.Repeat("a", 300) + "b", true},
		{"*" + strings.Repeat("a", 125) + "b*", strings.Repeat("a", 124) + "b" + strings.Repeat("a", 200), false},
		{"*" + a60 + "*" + strings.Repeat("?", 60) + "x*", a60 + strings.Repeat("y", 60) + "x", true},
		{"*" + a60 + "*" + strings.Repeat("?", 60) + "x*", a60 + strings.Repeat("y", 59) + "x", false},
		{"*" + strings.Repeat("?x*", 42), strings.Repeat("ax", 42), true},
		{"*" + strings.Repeat("?x*", 42), strings.Repeat("ax", 41) + "xa", false},
		// Past maxShortSkips, the search steps instead of skipping.
		{"*xy*", strings.Repeat("xAA", 40) + "xy", true},
		{"*xy*", strings.Repeat("xAA", 40) + "x", false},
		{"*" + a60 + "xy*", strings.Repeat(a60+"xA", 40) + a60 + "xy", true},
		{"*" + a60 + "xy*", strings.Repeat(a60+"xA", 40) + a60 + "x", false},
	}
	for _, tt := range tests {
		if got := globMatch(t, tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if want := refGlob(tt.pattern, tt.s); want != tt.want {
			t.Errorf("refGlob(%q, %q) = %v, the table says %v", tt.pattern, tt.s, want, tt.want)
		}
	}
}

// TestGlobAgreesWithRegexpOnSmallAlphabets: random patterns over a, b, '?'
// and '*', short and up to the length limit (so that segments straddle the
// 64-bit word), against values of a and b, where near misses are common.
func TestGlobAgreesWithRegexpOnSmallAlphabets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	runs := 20000
	if testing.Short() {
		runs = 2000
	}
	for range runs {
		var pattern string
		switch r.IntN(3) {
		case 0:
			pattern = pick("ab?*", r.IntN(12))
		case 1:
			pattern = pick("aab?*", r.IntN(MaxPatternBytes+1))
		default: // few stars, long segments
			pattern = pick("aaaaaaaaaaaaaaab???*", r.IntN(MaxPatternBytes+1))
		}
		s := pick("ab", r.IntN(300))
		if r.IntN(4) == 0 { // a value built from the pattern, nearly matching
			s = strings.NewReplacer("*", pick("ab", r.IntN(4)), "?", "a").Replace(pattern)
			if s != "" && r.IntN(2) == 0 {
				i := r.IntN(len(s))
				s = s[:i] + pick("ab", 1) + s[i+1:]
			}
		}
		if got, want := globMatch(t, pattern, s), refGlob(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, reference says %v", pattern, s, got, want)
		}
	}
}

func TestNormalizeGlobMovesQuestionMarksBeforeStars(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""}, {"*", "*"}, {"**", "*"}, {"*?", "?*"}, {"a**?b*?", "a?*b?*"},
		{"*?*?*", "??*"}, {"?*?x", "??*x"}, {"*a*", "*a*"},
	}
	for _, tt := range tests {
		if got := normalizeGlob(tt.in); got != tt.want {
			t.Errorf("normalizeGlob(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func mustList(t testing.TB, list string, fold bool) PatternList {
	t.Helper()
	p, err := ParsePatternList(list, fold)
	if err != nil {
		t.Fatalf("ParsePatternList(%q): %v", list, err)
	}
	return p
}

func TestPatternListMatchesAsOpenSSHPatternLists(t *testing.T) {
	tests := []struct {
		list string
		fold bool
		s    string
		want bool
	}{
		{"", true, "image/png", true},
		{"", false, "", true},
		{"*", true, "anything", true},
		{"*", false, "", true},
		{"text/*", true, "text/plain; charset=utf-8", true},
		{"text/*", true, "image/png", false},
		{"text/plain", true, "text/plain; charset=utf-8", false}, // a plain list sees the whole value
		{"image/???", true, "image/png", true},
		{"image/???", true, "image/jpeg", false},
		{"!image/*,*", true, "text/plain", true},
		{"!image/*,*", true, "image/png", false},
		{"*,!image/*", true, "image/png", false},
		{"*,!image/*", true, "", true},
		{"!image/*", true, "text/plain", false},
		{"!image/*", true, "image/png", false},
		{"!image/*", true, "", false},
		{"text/*,image/*", true, "image/gif", true},
		{"text/*,image/*", true, "application/json", false},
		{"text/*,,image/*", true, "image/gif", true},
		{",text/*,", true, "text/html", true},
		{",text/*,", true, "", false},
		{",", true, "", false}, // a list with no pattern matches nothing
		{" text/* , image/* ", true, "image/gif", true},
		{"TEXT/*", true, "text/plain", true},
		{"text/*", true, "Text/Plain", true},
		{"Text/*,!TEXT/HTML", true, "text/html; charset=UTF-8", true},
		{"Text/*,!TEXT/HTML*", true, "text/HTML; charset=UTF-8", false},
		{"TEXT/*", false, "text/plain", false},
		{"Alice", false, "alice", false},
		{"Alice", false, "Alice", true},
		{"?*", false, "", false}, // anonymous senders are ""
		{"!bob,*", false, "", true},
		{"*,*", false, "x", true},
		{"(x,*", false, "y", true}, // "*" need not sort first
		{"!", false, "", false},    // a bare '!' is no pattern
		// Folding is of ASCII only, and a value must match a pattern made of
		// the same bytes, whatever they are.
		{"É", true, "É", true},
		{"\xff", true, "\xff", true},
		{"\u212a", true, "k", false}, // KELVIN SIGN is not ASCII K
	}
	for _, tt := range tests {
		p := mustList(t, tt.list, tt.fold)
		if got := p.Match(tt.s); got != tt.want {
			t.Errorf("ParsePatternList(%q, %v).Match(%q) = %v, want %v", tt.list, tt.fold, tt.s, got, tt.want)
		}
	}
}

func TestTypeListMatchesTheMediaTypeUnlessThePatternHasParameters(t *testing.T) {
	tests := []struct {
		list, contentType string
		want              bool
	}{
		{"text/plain", "text/plain; charset=utf-8", true},
		{"text/*", "text/plain; charset=utf-8", true},
		{"application/json", "application/json; charset=utf-8", true},
		{"application/json", "Application/JSON ; charset=utf-8", true},
		{"application/json", " application/json", true}, // spaces around the media type
		{"application/json", "application/json\t;q=1", true},
		{"text/plain", "text/plain-x; charset=utf-8", false},
		{"*utf-8", "text/plain; charset=utf-8", false}, // no ';': the media type alone
		{"*;*utf-8", "text/plain; charset=utf-8", true},
		{"text/plain; charset=utf-8", "text/plain; charset=UTF-8", true},
		{"text/plain; charset=utf-8", "text/plain;charset=utf-8", false}, // the whole, as written
		{"text/plain;*", "text/plain", false},
		{"text/plain;*", "text/plain;", true},
		{"!text/plain,*", "text/plain; charset=utf-8", false},
		{"!text/plain;*,*", "text/plain", true},
		{"!text/plain;*,*", "text/plain; format=flowed", false},
		{"", "; charset=utf-8", true},
		{"?*", "; charset=utf-8", false}, // the media type is ""
		{"image/*", "", false},
	}
	for _, tt := range tests {
		p, err := parseTypeList(tt.list)
		if err != nil {
			t.Fatalf("parseTypeList(%q): %v", tt.list, err)
		}
		if got := p.Match(tt.contentType); got != tt.want {
			t.Errorf("type list %q, Content-Type %q: %v, want %v", tt.list, tt.contentType, got, tt.want)
		}
	}
}

func TestPatternListMatchesAllOnlyWithoutFilter(t *testing.T) {
	tests := []struct {
		list string
		want bool
	}{
		{"", true},
		{"*", true},
		{"*,*", true},
		{" * ,text/*", true},
		{",", false},
		{"text/*", false},
		{"!image/*", false},
		{"*,!image/*", false},
	}
	for _, tt := range tests {
		if got := mustList(t, tt.list, true).MatchesAll(); got != tt.want {
			t.Errorf("ParsePatternList(%q).MatchesAll() = %v, want %v", tt.list, got, tt.want)
		}
	}
	if !(PatternList{}).MatchesAll() || !(PatternList{}).Match("x") {
		t.Fatal("the zero PatternList must match everything")
	}
}

func TestPatternListStringIsCanonical(t *testing.T) {
	tests := []struct {
		list string
		fold bool
		want string
	}{
		{"", true, "*"},
		{"*", false, "*"},
		{"*,*", false, "*"},
		{",", false, ","},
		{" , ,! ", false, ","},
		{"b, a ,!d,!c,a", false, "!c,!d,a,b"},
		{"Text/*,!IMAGE/*", true, "!image/*,text/*"},
		{"Alice", false, "Alice"},
		{"!!x", false, "!!x"},
	}
	for _, tt := range tests {
		if got := mustList(t, tt.list, tt.fold).String(); got != tt.want {
			t.Errorf("ParsePatternList(%q, %v).String() = %q, want %q", tt.list, tt.fold, got, tt.want)
		}
		// The canonical form parses back to itself.
		if got := mustList(t, mustList(t, tt.list, tt.fold).String(), tt.fold).String(); got != tt.want {
			t.Errorf("reparsed %q: String() = %q, want %q", tt.want, got, tt.want)
		}
	}
}

func TestParsePatternListRefusesOversizedLists(t *testing.T) {
	long := strings.Repeat("x", MaxPatternBytes)
	list := func(n int, p string) string { return strings.TrimSuffix(strings.Repeat(p+",", n), ",") }
	tests := []struct {
		list string
		want error
	}{
		{list(MaxPatterns, "a"), nil},
		{list(MaxPatterns+1, "a"), ErrTooManyPatterns},
		{list(MaxPatterns+1, "a") + ",,, ,", ErrTooManyPatterns},
		{list(MaxPatterns, "a") + ",,, ,!,", nil}, // empty entries and a bare '!' are no patterns
		{list(MaxPatterns, "!a"), nil},
		{list(MaxPatterns/2, "!a") + "," + list(MaxPatterns/2+1, "a"), ErrTooManyPatterns},
		{long, nil},
		{"!" + long, nil}, // the '!' does not count
		{" " + long + " ", nil},
		{long + "x", ErrPatternTooLong},
		{"a,!" + long + "x", ErrPatternTooLong},
		{list(MaxPatterns, long), nil},
		{list(1900, "*?x"), ErrTooManyPatterns},
	}
	for _, tt := range tests {
		for _, fold := range []bool{false, true} {
			_, err := ParsePatternList(tt.list, fold)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParsePatternList(%.40q… (%d bytes), %v) = %v, want %v", tt.list, len(tt.list), fold, err, tt.want)
			}
		}
	}
}

// worstPatterns are the shapes that made the backtracking glob slow, each
// at the length limit.
var worstPatterns = []string{
	strings.Repeat("*?x", MaxPatternBytes/3) + "*",
	"*" + strings.Repeat("a", MaxPatternBytes-3) + "b*",
	strings.Repeat("*a", MaxPatternBytes/2-1) + "*b",
	"*" + strings.Repeat("a?", MaxPatternBytes/2-2) + "b*",
	strings.Repeat("*aab", MaxPatternBytes/4-1) + "*c",
	"*a" + strings.Repeat("?", MaxPatternBytes-4) + "b*",
	strings.Repeat("*"+strings.Repeat("a", 29)+"b", 4) + "*", // segments within one word
}

// TestGlobTakesLinearTime: each worst shape against an 8 KiB value that
// almost matches it. The backtracking glob took up to 46 ms for one such
// match; a linear one takes microseconds, even under the race detector.
func TestGlobTakesLinearTime(t *testing.T) {
	for _, p := range worstPatterns {
		g := compileGlob(p)
		for _, s := range []string{strings.Repeat("a", 8<<10), strings.Repeat("ax", 4<<10), strings.Repeat("aab", 3<<10)} {
			// The best of five rounds: a busy machine slows some rounds,
			// never all of them by a hundredfold.
			const runs = 20
			d := time.Hour
			for range 5 {
				start := time.Now()
				for range runs {
					g.match(s, nil, 0)
				}
				d = min(d, time.Since(start)/runs)
			}
			if d > 2*time.Millisecond {
				t.Errorf("pattern %.20q… against %d bytes of %.6q…: %v per match, want linear time", p, len(s), s, d)
			}
		}
	}
}

// TestGlobIsNotExponential: a pattern of many stars against a long value
// that almost matches would take exponential time with naive backtracking.
func TestGlobIsNotExponential(t *testing.T) {
	pattern := strings.Repeat("*a", 30) + "b"
	s := strings.Repeat("a", 200)
	done := make(chan bool, 1)
	go func() {
		done <- globMatch(t, pattern, s) || mustList(t, pattern, true).Match(s)
	}()
	select {
	case got := <-done:
		if got {
			t.Fatalf("globMatch(%q, %q) = true, want false", pattern, s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("glob on a pathological pattern did not finish in 5s")
	}
}

// refGlob is the reference for glob: the pattern as an anchored regular
// expression, each byte a rune (Latin-1) so that '?' is one byte, as in glob.
func refGlob(pattern, s string) bool {
	var re strings.Builder
	re.WriteString(`\A`)
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			re.WriteString(`(?s:.*)`)
		case '?':
			re.WriteString(`(?s:.)`)
		default:
			re.WriteString(regexp.QuoteMeta(string(rune(c))))
		}
	}
	re.WriteString(`\z`)
	return regexp.MustCompile(re.String()).MatchString(bytesAsRunes(s))
}

func bytesAsRunes(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// refMatchList is the reference for PatternList.Match, as documented:
// entries trimmed, empty ones ignored, negations first, ASCII case folding.
// With media (a type list), a pattern without ';' sees only the media type.
func refMatchList(list, s string, fold, media bool) bool {
	if list == "" || list == "*" {
		return true
	}
	if fold {
		list, s = asciiLower(list), asciiLower(s)
	}
	mt := s
	if i := strings.Index(s, ";"); i >= 0 {
		mt = s[:i]
	}
	mt = strings.Trim(mt, " \t")
	subject := func(p string) string {
		if media && !strings.Contains(p, ";") {
			return mt
		}
		return s
	}
	pos := false
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if neg, ok := strings.CutPrefix(e, "!"); ok {
			if neg != "" && refGlob(neg, subject(neg)) {
				return false
			}
		} else if e != "" && refGlob(e, subject(e)) {
			pos = true
		}
	}
	return pos
}

var globSeeds = [][2]string{
	{"*", ""}, {"?", "a"}, {"text/*", "text/plain; charset=utf-8"}, {"a*b*c", "aXbYc"},
	{"*a*a*a", "aaaa"}, {"??*", "ab"}, {"*b", "*ab"}, {"", ""}, {"\xff*", "\xff\xfe"},
	{"?", "ü"}, {"*?*", ""}, {".*", "x"}, {"[a-z]", "b"},
	{"*aab*", "aaab"}, {"*a?b*", "aaab"}, {"*?x*?x", "axax"}, {"ab*ba", "aba"},
	{"*ab*ba*", "abba"}, {"x*?*y", "xy"}, {"*a*?*a", "aa"},
	{"*" + strings.Repeat("a", 62) + "*bcd*", strings.Repeat("a", 63) + "bcd"},
	{"*" + strings.Repeat("a?", 40) + "*", strings.Repeat("ab", 41)},
	{strings.Repeat("*?x", 42) + "*", strings.Repeat("ax", 42)},
	{"*" + strings.Repeat("a", 125) + "*", strings.Repeat("a", 125)},
}

// FuzzGlob compares glob with a regular-expression reference.
func FuzzGlob(f *testing.F) {
	for _, s := range globSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > MaxPatternBytes || len(s) > 1024 {
			t.Skip()
		}
		if got, want := globMatch(t, pattern, s), refGlob(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, reference says %v", pattern, s, got, want)
		}
	})
}

// FuzzPatternList compares PatternList.Match, and glob underneath it, with
// the reference on random list/value pairs, with and without case folding,
// as a plain list and as a type list.
func FuzzPatternList(f *testing.F) {
	for _, s := range globSeeds {
		f.Add(s[0], s[1], true)
	}
	for _, s := range [][2]string{
		{"!image/*,*", "image/png"}, {"!image/*", "text/plain"}, {"TEXT/*", "text/html"},
		{"text/*,,image/*", "Image/GIF"}, {" a , !b ", "a"}, {"É", "É"}, {"\u212a", "k"},
		{"text/plain", "text/plain; charset=utf-8"}, {"*;*utf-8,!*x*", "Text/Plain ; Charset=UTF-8"},
		{"application/json", " application/json\t; x=y"}, {"?*", "; a=b"}, {"*,!a;b", "a;b"},
	} {
		f.Add(s[0], s[1], true)
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, list, s string, fold bool) {
		if len(list) > 256 || len(s) > 1024 {
			t.Skip()
		}
		if len(list) <= MaxPatternBytes {
			if got, want := globMatch(t, list, s), refGlob(list, s); got != want {
				t.Fatalf("globMatch(%q, %q) = %v, reference says %v", list, s, got, want)
			}
		}
		p, err := ParsePatternList(list, fold)
		if err != nil {
			t.Skip() // past the limits; TestParsePatternListRefusesOversizedLists
		}
		if got, want := p.Match(s), refMatchList(list, s, fold, false); got != want {
			t.Fatalf("ParsePatternList(%q, %v).Match(%q) = %v, reference says %v", list, fold, s, got, want)
		}
		// The canonical form is the same list.
		if c := mustList(t, p.String(), fold); c.Match(s) != p.Match(s) || c.String() != p.String() {
			t.Fatalf("ParsePatternList(%q, %v): canonical form %q matches %q differently", list, fold, p.String(), s)
		}
		tl, err := parseTypeList(list)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tl.Match(s), refMatchList(list, s, true, true); got != want {
			t.Fatalf("type list %q, Content-Type %q: %v, reference says %v", list, s, got, want)
		}
	})
}
