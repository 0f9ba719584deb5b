package token

import (
	"errors"
	"fmt"
	"strings"

	"github.com/msgbus/msgbus/server/message"
)

// Rights are what a token lets a request do: which channels it may publish
// to and which it may subscribe to. Each is a pattern list of PROTOCOL.md §2
// matched against channel names, case-sensitively; the root is the empty
// name.
//
// A pattern is a glob where '*' matches any run of bytes, '/' included and
// the empty run too, and '?' any one byte (a character of n bytes takes n
// of them); an entry starting with '!' excludes. A channel is granted when some positive entry matches it and no
// negated one does. So "*" grants every channel and the root; "chat/*"
// grants "chat/a" and "chat/a/b" but neither "chat" nor the root;
// "!chat/secret,chat/*" grants "chat/a" but not "chat/secret" (while
// "chat/secret/x" still matches "chat/*": exclude "chat/secret/*" too to
// keep a subtree out); "@alice" grants exactly alice's address.
//
// The zero Rights grant nothing, and so does an empty list: a token without
// the "msgbus" claim names a user and may do nothing. A Rights value is
// immutable and safe for concurrent use.
type Rights struct {
	publish, subscribe grant
}

// A grant is one compiled list. The zero grant allows nothing (unlike the
// zero message.PatternList, which matches everything).
type grant struct {
	list message.PatternList
	some bool // the list has a positive entry and does not exclude "*"
}

func (g grant) allows(channel string) bool {
	return g.some && g.list.Match(channel)
}

// ParseRights compiles the publish and subscribe lists of a token. Each
// entry is one pattern (see Rights): it may not be empty nor "!" alone,
// contain ',' or start or end with a space, nor be longer than
// message.MaxPatternBytes (128) bytes, not counting a leading '!'; a list
// holds at most message.MaxPatterns (32) entries. Errors say which list and
// entry is wrong.
func ParseRights(publish, subscribe []string) (Rights, error) {
	var r Rights
	var err error
	if r.publish, err = parseGrant(publish); err != nil {
		return Rights{}, fmt.Errorf("publish %w", err)
	}
	if r.subscribe, err = parseGrant(subscribe); err != nil {
		return Rights{}, fmt.Errorf("subscribe %w", err)
	}
	return r, nil
}

// parseGrant compiles one list. Its errors read after the list's name.
func parseGrant(entries []string) (grant, error) {
	if len(entries) > message.MaxPatterns {
		return grant{}, fmt.Errorf("list has %d entries; at most %d", len(entries), message.MaxPatterns)
	}
	var g grant
	all := false // some entry excludes "*"
	for i, e := range entries {
		if err := checkPattern(e); err != nil {
			return grant{}, fmt.Errorf("entry %d %q: %w", i+1, clip(e), err)
		}
		src, neg := strings.CutPrefix(e, "!")
		if !neg {
			g.some = true
		} else if strings.Trim(src, "*") == "" {
			all = true
		}
	}
	if !g.some || all {
		return grant{}, nil
	}
	list, err := message.ParsePatternList(strings.Join(entries, ","), false)
	if err != nil { // checkPattern should have caught it
		return grant{}, fmt.Errorf("list: %w", err)
	}
	g.list = list
	return g, nil
}

// checkPattern checks one entry of a rights list; see ParseRights.
func checkPattern(e string) error {
	src, _ := strings.CutPrefix(e, "!")
	switch {
	case src == "":
		return errors.New("is empty")
	case len(src) > message.MaxPatternBytes:
		return fmt.Errorf("is longer than %d bytes", message.MaxPatternBytes)
	case strings.IndexByte(e, ',') >= 0:
		return errors.New("contains ','")
	case strings.TrimSpace(src) != src || strings.TrimSpace(e) != e:
		return errors.New("starts or ends with a space")
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CanPublish reports whether r lets a request publish to channel.
func (r Rights) CanPublish(channel string) bool {
	return r.publish.allows(channel)
}

// CanSubscribe reports whether r lets a request subscribe to channel; the
// root is the empty name.
func (r Rights) CanSubscribe(channel string) bool {
	return r.subscribe.allows(channel)
}

// IsZero reports whether r grants nothing: neither list has a positive
// entry, or each list that has one also excludes "*". (A list whose
// exclusions cover its positive entries in another way, such as
// "!a*,ab", grants nothing too but is not detected.)
func (r Rights) IsZero() bool {
	return !r.publish.some && !r.subscribe.some
}
