package message

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxChannelBytes is the longest channel name the hub accepts.
const MaxChannelBytes = 255

// Errors returned by CheckChannel. Each is a one-line reason fit to show a client.
var (
	ErrChannelEmpty   = errors.New("channel name is empty")
	ErrChannelTooLong = errors.New("channel name is longer than 255 bytes")
	ErrChannelUTF8    = errors.New("channel name is not valid UTF-8")
	ErrChannelControl = errors.New("channel name holds a control character")
	ErrChannelSegment = errors.New("channel name has an empty segment")
	ErrChannelDotted  = errors.New(`channel name has a "." or ".." segment`)
)

// CheckChannel reports whether name is a valid channel: non-empty, at most
// MaxChannelBytes, UTF-8, no control characters, and '/'-separated segments
// that are neither empty nor "." or "..". The root, which every channel
// reaches, is not a channel; subscribe to it with the empty name.
func CheckChannel(name string) error {
	switch {
	case name == "":
		return ErrChannelEmpty
	case len(name) > MaxChannelBytes:
		return ErrChannelTooLong
	case !utf8.ValidString(name):
		return ErrChannelUTF8
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ErrChannelControl
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return ErrChannelSegment
		case ".", "..":
			return ErrChannelDotted
		}
	}
	return nil
}

// Prefixes calls fn for the root ("") and then for every ancestor of channel
// and for channel itself, top down: "a/b/c" yields "", "a", "a/b", "a/b/c".
// The strings are substrings of channel, so the walk allocates nothing.
func Prefixes(channel string, fn func(prefix string)) {
	fn("")
	for i := 0; i < len(channel); i++ {
		if channel[i] == '/' {
			fn(channel[:i])
		}
	}
	fn(channel)
}
