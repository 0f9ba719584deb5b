package wire

import (
	"bytes"
	"strconv"

	"github.com/msgbus/msgbus/multipart"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// Multipart returns the Format of a multipart subscription and the response
// head to queue before its first part, for an HTTP/1.1 (chunked) or HTTP/1.0
// (close-delimited) request. The head goes through the subscription's queue
// like the parts, so the stream's one writer writes both.
func Multipart(http11 bool) (message.Format, []byte) {
	if http11 {
		return chunked, chunkedHead
	}
	return plain, plainHead
}

// The two framings of the multipart stream. An HTTP/1.1 subscriber gets each
// part as one chunk; an HTTP/1.0 one gets the bare part, the stream ending
// when the connection closes. The bare part is a slice of the chunked frame,
// so a message's body is copied once for both.
var (
	chunked message.Format = chunkedFormat{}
	plain   message.Format = plainFormat{}
)

// Response heads, queued before the first part.
var (
	chunkedHead = []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Type: " + multipart.ContentType + "\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n")
	plainHead = []byte("HTTP/1.0 200 OK\r\n" +
		"Content-Type: " + multipart.ContentType + "\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n\r\n")
)

type chunkedFormat struct{}

// Encode builds "<hex size>\r\n<part>\r\n" in one allocation and one scan
// of the body. The part is safe whatever the message holds: multipart
// percent-encodes the sender's name and sends a body that holds the
// delimiter in base64 (PROTOCOL.md §2).
func (chunkedFormat) Encode(m *message.Message, located bool) []byte {
	h := multipart.Header{ID: m.ID.String(), From: m.Sender, ContentType: m.Type}
	if located {
		h.ContentLocation = busPath(m.Channel)
	}
	f := multipart.NewFrame(multipart.Boundary, h, m.Body)
	n := f.Len()
	b := make([]byte, 0, 16+2+n+2)
	b = strconv.AppendUint(b, uint64(n), 16)
	b = append(b, "\r\n"...)
	b = f.Append(b)
	return append(b, "\r\n"...)
}

var chunkedEnd = chunk(multipart.AppendEnd(nil, multipart.Boundary), []byte("0\r\n\r\n"))

// End closes the multipart body on shutdown, a logout or an expired token;
// a dropped subscriber's stream is cut, so it cannot be mistaken for a
// clean end.
func (chunkedFormat) End(err error) []byte {
	if endsCleanly(err) {
		return chunkedEnd
	}
	return nil
}

// endsCleanly reports whether a stream ended for err closes its body: the
// server chose to end it (shutdown, a logout, an expired token), rather
// than lost the subscriber or the messages in between.
func endsCleanly(err error) bool {
	return err == hub.ErrClosed || err == hub.ErrSessionEnded || err == hub.ErrTokenExpired
}

type plainFormat struct{}

// Encode slices the part out of the chunked frame.
func (plainFormat) Encode(m *message.Message, located bool) []byte {
	c := m.Frame(chunked, located)
	return c[bytes.IndexByte(c, '\n')+1 : len(c)-2]
}

var plainEnd = multipart.AppendEnd(nil, multipart.Boundary)

func (plainFormat) End(err error) []byte {
	if endsCleanly(err) {
		return plainEnd
	}
	return nil
}
