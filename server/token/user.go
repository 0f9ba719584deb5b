package token

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxUserBytes is the longest user name a token may carry.
const MaxUserBytes = 128

// checkUser reports why name cannot be a user name, or nil. A user name is
// what a token's "sub" holds: 1 to MaxUserBytes bytes of UTF-8 without
// control, format (such as bidi overrides and zero-width characters) or
// space characters, without U+FFFD (which JSON decoding puts in place of
// bytes that are not UTF-8), and without '/', ',', '*' or '?'. The rules keep the
// user's address "@name" a single channel segment of §1 ('/' would make
// "@a/b" a child of "@a", whose sessions would see its messages), and make
// "@name" a pattern that matches that address alone, so that rights can
// name it; names that look alike cannot differ by invisible characters.
func checkUser(name string) error {
	switch {
	case name == "":
		return errors.New("is empty")
	case len(name) > MaxUserBytes:
		return fmt.Errorf("is longer than %d bytes", MaxUserBytes)
	}
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '/' || c == ',' || c == '*' || c == '?' {
				return fmt.Errorf("holds %q", c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && n == 1 {
			return errors.New("is not UTF-8")
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("holds %U", r)
		}
		i += n
	}
	return nil
}
