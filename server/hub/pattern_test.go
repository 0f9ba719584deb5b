package hub

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

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
	}
	for _, tt := range tests {
		if got := glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
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
		{"text/plain", true, "text/plain; charset=utf-8", false},
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
		// Folding is of ASCII only, and a value must match a pattern made of
		// the same bytes, whatever they are.
		{"É", true, "É", true},
		{"\xff", true, "\xff", true},
		{"\u212a", true, "k", false}, // KELVIN SIGN is not ASCII K
	}
	for _, tt := range tests {
		p := ParsePatternList(tt.list, tt.fold)
		if got := p.Match(tt.s); got != tt.want {
			t.Errorf("ParsePatternList(%q, %v).Match(%q) = %v, want %v", tt.list, tt.fold, tt.s, got, tt.want)
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
		{"text/*", false},
		{"!image/*", false},
		{"*,!image/*", false},
	}
	for _, tt := range tests {
		if got := ParsePatternList(tt.list, true).MatchesAll(); got != tt.want {
			t.Errorf("ParsePatternList(%q).MatchesAll() = %v, want %v", tt.list, got, tt.want)
		}
	}
	if !(PatternList{}).MatchesAll() || !(PatternList{}).Match("x") {
		t.Fatal("the zero PatternList must match everything")
	}
}

func TestNewFilterIsNilWhenNothingIsFiltered(t *testing.T) {
	tests := []struct {
		types, senders string
		wantNil        bool
	}{
		{"", "", true},
		{"*", "", true},
		{"", "*", true},
		{"*", "*", true},
		{"text/*", "", false},
		{"", "alice", false},
	}
	for _, tt := range tests {
		if got := NewFilter(tt.types, tt.senders); (got == nil) != tt.wantNil {
			t.Errorf("NewFilter(%q, %q) = %v, want nil: %v", tt.types, tt.senders, got, tt.wantNil)
		}
	}
}

func TestFilterMatchesTypeAndSender(t *testing.T) {
	f := NewFilter("text/*", "alice,bob")
	tests := []struct {
		typ, sender string
		want        bool
	}{
		{"text/plain", "alice", true},
		{"TEXT/PLAIN", "bob", true},
		{"text/plain", "Alice", false}, // senders are case-sensitive
		{"text/plain", "", false},
		{"image/png", "alice", false},
	}
	for _, tt := range tests {
		m := &Message{Type: tt.typ, Sender: tt.sender}
		if got := f.Match(m); got != tt.want {
			t.Errorf("Match(type %q, sender %q) = %v, want %v", tt.typ, tt.sender, got, tt.want)
		}
	}
	var none *Filter
	if !none.Match(&Message{Type: "x"}) {
		t.Fatal("a nil *Filter must pass everything")
	}
}

// TestGlobIsNotExponential: a pattern of many stars against a long value
// that almost matches would take exponential time with naive backtracking.
func TestGlobIsNotExponential(t *testing.T) {
	pattern := strings.Repeat("*a", 30) + "b"
	s := strings.Repeat("a", 200)
	done := make(chan bool, 1)
	go func() {
		done <- glob(pattern, s) || ParsePatternList(pattern, true).Match(s)
	}()
	select {
	case got := <-done:
		if got {
			t.Fatalf("glob(%q, %q) = true, want false", pattern, s)
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
func refMatchList(list, s string, fold bool) bool {
	if list == "" || list == "*" {
		return true
	}
	if fold {
		list, s = asciiLower(list), asciiLower(s)
	}
	pos := false
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if neg, ok := strings.CutPrefix(e, "!"); ok {
			if neg != "" && refGlob(neg, s) {
				return false
			}
		} else if e != "" && refGlob(e, s) {
			pos = true
		}
	}
	return pos
}

var globSeeds = [][2]string{
	{"*", ""}, {"?", "a"}, {"text/*", "text/plain; charset=utf-8"}, {"a*b*c", "aXbYc"},
	{"*a*a*a", "aaaa"}, {"??*", "ab"}, {"*b", "*ab"}, {"", ""}, {"\xff*", "\xff\xfe"},
	{"?", "ü"}, {"*?*", ""}, {".*", "x"}, {"[a-z]", "b"},
}

// FuzzGlob compares glob with a regular-expression reference.
func FuzzGlob(f *testing.F) {
	for _, s := range globSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			t.Skip()
		}
		if got, want := glob(pattern, s), refGlob(pattern, s); got != want {
			t.Fatalf("glob(%q, %q) = %v, reference says %v", pattern, s, got, want)
		}
	})
}

// FuzzPatternList compares PatternList.Match, and glob underneath it, with
// the reference on random list/value pairs, with and without case folding.
func FuzzPatternList(f *testing.F) {
	for _, s := range globSeeds {
		f.Add(s[0], s[1], true)
	}
	for _, s := range [][2]string{
		{"!image/*,*", "image/png"}, {"!image/*", "text/plain"}, {"TEXT/*", "text/html"},
		{"text/*,,image/*", "Image/GIF"}, {" a , !b ", "a"}, {"É", "É"}, {"\u212a", "k"},
	} {
		f.Add(s[0], s[1], true)
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, list, s string, fold bool) {
		if len(list) > 64 || len(s) > 256 {
			t.Skip()
		}
		if list == "" || list == "*" || !strings.ContainsAny(list, ",!") {
			if got, want := glob(list, s), refGlob(list, s); got != want {
				t.Fatalf("glob(%q, %q) = %v, reference says %v", list, s, got, want)
			}
		}
		got := ParsePatternList(list, fold).Match(s)
		if want := refMatchList(list, s, fold); got != want {
			t.Fatalf("ParsePatternList(%q, %v).Match(%q) = %v, reference says %v", list, fold, s, got, want)
		}
	})
}
