package hub

import "strings"

// A PatternList is an OpenSSH-style pattern list, as the original msgbus's
// ?type= and ?sender= filters: comma-separated globs where '*' matches any
// run of bytes (including '/') and '?' any one byte; an entry that starts
// with '!' excludes. A value matches when some positive entry matches and no
// negated entry does, so "!image/*" alone matches nothing and
// "!image/*,*" matches everything but images.
//
// The zero PatternList matches everything.
type PatternList struct {
	pos, neg []string
	fold     bool
	active   bool // false for the zero value, "" and "*": no filter at all
}

// ParsePatternList compiles list. An empty list or "*" matches everything.
// With fold, matching ignores ASCII case (media types are case-insensitive).
func ParsePatternList(list string, fold bool) PatternList {
	if list == "" || list == "*" {
		return PatternList{}
	}
	p := PatternList{fold: fold, active: true}
	if fold {
		list = lowerASCII(list)
	}
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if neg, ok := strings.CutPrefix(entry, "!"); ok {
			if neg != "" {
				p.neg = append(p.neg, neg)
			}
		} else if entry != "" {
			p.pos = append(p.pos, entry)
		}
	}
	return p
}

// MatchesAll reports whether the list lets every value through.
func (p PatternList) MatchesAll() bool {
	return !p.active
}

// Match reports whether s passes the list.
func (p PatternList) Match(s string) bool {
	if p.fold {
		s = lowerASCII(s)
	}
	return p.matchFolded(s)
}

// matchFolded is Match for an s already lowercased when the list folds.
func (p PatternList) matchFolded(s string) bool {
	if p.MatchesAll() {
		return true
	}
	for _, n := range p.neg {
		if glob(n, s) {
			return false
		}
	}
	for _, q := range p.pos {
		if glob(q, s) {
			return true
		}
	}
	return false
}

// glob matches s against a pattern of literal bytes, '*' and '?'. It runs in
// O(len(pattern)*len(s)) at worst: on a mismatch it only retries from the
// most recent '*', which suffices for patterns without character classes.
func glob(pattern, s string) bool {
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

// A Filter selects the messages a subscriber receives, by media type and
// by sender. A nil *Filter passes everything.
type Filter struct {
	Type   PatternList // matched against the full Content-Type, case-insensitively
	Sender PatternList // matched against the publisher's user name; anonymous is ""
}

// NewFilter compiles the ?type= and ?sender= pattern lists. It returns nil
// when neither filters anything, so the fan-out skips the check.
func NewFilter(types, senders string) *Filter {
	f := &Filter{Type: ParsePatternList(types, true), Sender: ParsePatternList(senders, false)}
	if f.Type.MatchesAll() && f.Sender.MatchesAll() {
		return nil
	}
	return f
}

// Match reports whether m passes f.
func (f *Filter) Match(m *Message) bool {
	if f == nil {
		return true
	}
	typeOK := f.Type.MatchesAll()
	if !typeOK && f.Type.fold {
		typeOK = f.Type.matchFolded(m.foldedType()) // folded once per message
	} else if !typeOK {
		typeOK = f.Type.Match(m.Type)
	}
	return typeOK && f.Sender.Match(m.Sender)
}
