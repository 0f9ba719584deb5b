package message

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckChannelAcceptsOnlyWellFormedNames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"single segment", "news", nil},
		{"nested", "a/b/c", nil},
		{"spaces and punctuation", "a b/c-d_e.f/~!", nil},
		{"dots inside a segment", "a/.b/c../...", nil},
		{"UTF-8", "nachrichten/über/日本", nil},
		{"NBSP is not a control", "a\u00a0b", nil},
		{"exactly 255 bytes", strings.Repeat("x", 255), nil},
		{"255 bytes in segments", strings.Repeat("abcd/", 50) + "abcde", nil},
		{"empty", "", ErrChannelEmpty},
		{"256 bytes", strings.Repeat("x", 256), ErrChannelTooLong},
		{"256 bytes of UTF-8", strings.Repeat("ü", 128), ErrChannelTooLong},
		{"NUL", "a\x00b", ErrChannelControl},
		{"tab", "a\tb", ErrChannelControl},
		{"CR LF", "a\r\nb", ErrChannelControl},
		{"unit separator 0x1f", "a\x1fb", ErrChannelControl},
		{"DEL 0x7f", "a\x7fb", ErrChannelControl},
		{"C1 NEL U+0085", "a\u0085b", ErrChannelControl},
		{"C1 U+0080", "\u0080", ErrChannelControl},
		{"C1 U+009F", "a/\u009f", ErrChannelControl},
		{"invalid UTF-8 byte", "a\xffb", ErrChannelUTF8},
		{"truncated UTF-8", "a\xc3", ErrChannelUTF8},
		{"overlong UTF-8 slash", "a\xc0\xafb", ErrChannelUTF8},
		{"raw C1 byte is invalid UTF-8", "a\x85b", ErrChannelUTF8},
		{"empty middle segment", "a//b", ErrChannelSegment},
		{"leading slash", "/a", ErrChannelSegment},
		{"trailing slash", "a/", ErrChannelSegment},
		{"only a slash", "/", ErrChannelSegment},
		{"dot", ".", ErrChannelDotted},
		{"dot dot", "..", ErrChannelDotted},
		{"dot segment inside", "a/./b", ErrChannelDotted},
		{"dot dot segment inside", "a/../b", ErrChannelDotted},
		{"dot dot last", "a/b/..", ErrChannelDotted},
		{"dot first", "./a", ErrChannelDotted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckChannel(tt.in); got != tt.want {
				t.Fatalf("CheckChannel(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPrefixesWalksRootThenEachAncestorTopDown(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a", []string{"", "a"}},
		{"a/b/c", []string{"", "a", "a/b", "a/b/c"}},
		{"ab/c", []string{"", "ab", "ab/c"}},
	}
	for _, tt := range tests {
		var got []string
		Prefixes(tt.in, func(p string) { got = append(got, p) })
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Fatalf("Prefixes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzCheckChannel checks that CheckChannel never panics and that every name
// it accepts keeps the promise of server/PROTOCOL.md §1.
func FuzzCheckChannel(f *testing.F) {
	for _, s := range []string{
		"", "a", "a/b/c", ".", "..", "a/../b", "a//b", "/a", "a/", "\x7f", "\u0085",
		"\xff", "日本/語", strings.Repeat("x", 255), strings.Repeat("x", 256), "a/.b", "...",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckChannel(name)
		if err != nil {
			if !knownChannelError(err) {
				t.Fatalf("CheckChannel(%q) = %v, not one of the documented errors", name, err)
			}
			return
		}
		if name == "" || len(name) > MaxChannelBytes {
			t.Fatalf("accepted %q of %d bytes", name, len(name))
		}
		if !utf8.ValidString(name) {
			t.Fatalf("accepted invalid UTF-8 %q", name)
		}
		for _, r := range name {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) {
				t.Fatalf("accepted %q holding control character %U", name, r)
			}
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", name, seg)
			}
		}
	})
}

func knownChannelError(err error) bool {
	for _, e := range []error{ErrChannelEmpty, ErrChannelTooLong, ErrChannelUTF8,
		ErrChannelControl, ErrChannelSegment, ErrChannelDotted} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
