// Package load is what test-pub and test-sub share: the stamp each load
// message starts with, the sequence checks and the latency histogram.
package load

import (
	"strconv"
	"time"
)

// A Stamp identifies a load message: which test-pub run and worker sent it,
// its place in that worker's sequence, and when it was sent.
type Stamp struct {
	Run    uint64 // random per test-pub run
	Worker uint32 // the publishing worker within the run
	Seq    uint64 // from 0, per worker, in publish order
	Sent   int64  // time.Now().UnixNano() just before the publish
}

// prefix starts every load message, so test-sub can tell them from others.
const prefix = "LOAD "

// StampLen is the length of the longest stamp Append writes: the smallest
// useful message size.
const StampLen = len(prefix) + 16 + 1 + 10 + 1 + 20 + 1 + 19 + 1

// Append appends s as one text line, "LOAD <run hex> <worker> <seq>
// <sent>\n", then pads with 'x' up to size bytes in all: text, so a load
// message reads well in msgdump or a browser.
func Append(dst []byte, s Stamp, size int) []byte {
	start := len(dst)
	dst = append(dst, prefix...)
	dst = strconv.AppendUint(dst, s.Run, 16)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(s.Worker), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, s.Seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, s.Sent, 10)
	dst = append(dst, '\n')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// Parse reads the stamp at the start of b, without allocating. ok is false
// for a message that is not a load message.
func Parse(b []byte) (s Stamp, ok bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return s, false
	}
	b = b[len(prefix):]
	var w, sent uint64
	if s.Run, b, ok = field(b, 16, ' '); !ok {
		return s, false
	}
	if w, b, ok = field(b, 10, ' '); !ok || w > 1<<32-1 {
		return s, false
	}
	if s.Seq, b, ok = field(b, 10, ' '); !ok {
		return s, false
	}
	if sent, _, ok = field(b, 10, '\n'); !ok || sent > 1<<63-1 {
		return s, false
	}
	s.Worker, s.Sent = uint32(w), int64(sent)
	return s, true
}

// field parses an unsigned number in base up to end and returns the rest.
func field(b []byte, base uint64, end byte) (n uint64, rest []byte, ok bool) {
	for i, c := range b {
		var d uint64
		switch {
		case c == end && i > 0:
			return n, b[i+1:], true
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		default:
			return 0, nil, false
		}
		if i >= 20 {
			return 0, nil, false
		}
		n = n*base + d
	}
	return 0, nil, false
}

// Latency returns how long ago s was sent, as seen at now.
func (s Stamp) Latency(now time.Time) time.Duration {
	return time.Duration(now.UnixNano() - s.Sent)
}
