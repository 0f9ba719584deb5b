// Package wire holds the bytes msgbus puts on a subscriber's socket: the
// multipart stream (PROTOCOL.md §2), Server-Sent Events (§3) and WebSocket
// frames (§4). Each format is a message.Format, so the hub encodes a message
// once per format and every subscriber of that format shares the frame.
//
// wire knows nothing of HTTP routing or sockets: package server picks a
// format and its response head for a request, and writes the frames. It
// imports the hub only for the two reasons a stream ends (hub.ErrClosed,
// hub.ErrSlowConsumer), which message.Format's End is defined by.
package wire

import (
	"net/url"
	"strconv"
)

// BusPrefix is the URL path under which channels live. A part's
// Content-Location names a channel by it, so the server routes by the
// same constant.
const BusPrefix = "/msgbus/"

// chunk frames p as one HTTP/1.1 chunk, followed by tail.
func chunk(p, tail []byte) []byte {
	b := strconv.AppendUint(nil, uint64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	return append(b, tail...)
}

// busPath is the URL path of channel on the msgbus protocol, escaped for a
// header: "/msgbus/a%20b/c".
func busPath(channel string) string {
	return (&url.URL{Path: BusPrefix + channel}).EscapedPath()
}
