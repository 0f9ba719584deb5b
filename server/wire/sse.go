package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// Server-Sent Events (PROTOCOL.md §3), for browsers' EventSource: one event
// per message, its id the message id. By default the event is the body, so
// that JSON.parse(ev.data) works on a JSON message:
//
//	id: 42
//	data: <body, one data line per line>
//
// when the body is valid UTF-8, whatever its type; the lines are split where
// EventSource splits them (LF, CR and CRLF each end one), so a body's CRLF
// arrives as LF. Any other body goes base64 on one data line, as an event
// named "binary", which a page that wants it listens for:
//
//	id: 43
//	event: binary
//	data: iVBORw0KGgo=
//
// Text events have no "event:" field: EventSource only hands a page the
// event names it listens for, and a subscriber of a parent or of the root
// cannot know them all, so they are all plain "message" events.
//
// With ?envelope=json every event's data is one line of JSON, the message
// as /history gives it (PROTOCOL.md §6), for pages that need its channel,
// type or sender:
//
//	id: 44
//	data: {"id":"44","channel":"a/b","type":"text/plain","from":"alice","time":"2026-11-28T09:26:07.123Z","body":"hi","encoding":"utf-8"}
//
// Each format's event is built once per message and shared by all its
// subscribers; on HTTP/1.1 each event is one chunk, on HTTP/1.0 the bare
// event is a slice of the chunked frame and the stream ends when the
// connection closes. No event says where the message came from except
// the envelope's channel, so a parent's subscribers share the exact
// subscribers' frame.
var (
	sseChunked         message.Format = sseChunkedFormat{}
	ssePlain           message.Format = ssePlainFormat{}
	sseEnvelopeChunked message.Format = sseChunkedFormat{envelope: true}
	sseEnvelopePlain   message.Format = ssePlainFormat{envelope: true}
)

// SSE returns the Format of an SSE subscription and the response head to
// queue before its first event: HTTP/1.1 chunked or HTTP/1.0 close-
// delimited, bodies as they are or in the JSON envelope (?envelope=json).
func SSE(http11, envelope bool) (message.Format, []byte) {
	switch {
	case http11 && envelope:
		return sseEnvelopeChunked, sseChunkedHead
	case http11:
		return sseChunked, sseChunkedHead
	case envelope:
		return sseEnvelopePlain, ssePlainHead
	}
	return ssePlain, ssePlainHead
}

// sseRetry is the reconnection delay the stream asks of EventSource, once,
// at the start: after a restart, a browser is back within this.
const sseRetry = "2000"

var (
	sseChunkedHead = []byte("HTTP/1.1 200 OK\r\n" + sseHeadFields +
		"Transfer-Encoding: chunked\r\n\r\n" + string(chunk([]byte("retry: "+sseRetry+"\n\n"), nil)))
	ssePlainHead = []byte("HTTP/1.0 200 OK\r\n" + sseHeadFields +
		"Connection: close\r\n\r\n" + "retry: " + sseRetry + "\n\n")
	// X-Accel-Buffering: nginx would otherwise hold events back.
	sseHeadFields = "Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\n"
)

var (
	sseBeat       = []byte(": hb\n\n")
	sseChunkedHB  = chunk(sseBeat, nil)
	sseGoodbye    = []byte(": server shutting down\n\n")
	sseChunkedEnd = chunk(sseGoodbye, []byte("0\r\n\r\n"))
	// A logged-out or expired stream says so in an "end" event, so that a
	// page can stop its EventSource rather than reconnect.
	sseLoggedOut        = []byte("event: end\ndata: session ended\n\n")
	sseChunkedLoggedOut = chunk(sseLoggedOut, []byte("0\r\n\r\n"))
	sseExpired          = []byte("event: end\ndata: token expired\n\n")
	sseChunkedExpired   = chunk(sseExpired, []byte("0\r\n\r\n"))
)

// sseChunkedFormat frames each event as one HTTP/1.1 chunk; envelope says
// whether the event's data is the JSON envelope or the body itself.
type sseChunkedFormat struct{ envelope bool }

// chunkRoom is what the chunked frame reserves before the event for its
// size line: up to 16 hex digits and CRLF.
const chunkRoom = 16 + 2

// Encode builds "<hex size>\r\n<event>\r\n" in one allocation: the event is
// written after room for the size line, which is filled in once the size is
// known. The event does not depend on located, so a located subscriber
// shares the other's frame.
func (f sseChunkedFormat) Encode(m *message.Message, located bool) []byte {
	if located {
		return m.Frame(f, false)
	}
	text := utf8.Valid(m.Body)
	var data []byte
	n := sseBodyLen(m.Body, text)
	if f.envelope {
		data = envelopeOf(m, text)
		n = len("data: \n\n") + len(data)
	}
	b := make([]byte, chunkRoom, chunkRoom+len("id: \n")+41+n+2)
	b = append(b, "id: "...)
	b = m.ID.Append(b)
	b = append(b, '\n')
	if f.envelope {
		b = append(b, "data: "...)
		b = append(b, data...)
		b = append(b, "\n\n"...)
	} else {
		b = appendSSEBody(b, m.Body, text)
	}
	var size [chunkRoom]byte
	line := append(strconv.AppendUint(size[:0], uint64(len(b)-chunkRoom), 16), "\r\n"...)
	start := chunkRoom - len(line)
	copy(b[start:], line)
	return append(b, "\r\n"...)[start:]
}

// End closes the stream cleanly on shutdown: a comment and the last chunk.
// EventSource reconnects after the retry delay either way; a dropped
// subscriber's stream is just cut.
func (sseChunkedFormat) End(err error) []byte {
	switch err {
	case hub.ErrClosed:
		return sseChunkedEnd
	case hub.ErrSessionEnded:
		return sseChunkedLoggedOut
	case hub.ErrTokenExpired:
		return sseChunkedExpired
	}
	return nil
}

func (sseChunkedFormat) heartbeat() []byte { return sseChunkedHB }

// ssePlainFormat is sseChunkedFormat's HTTP/1.0 twin.
type ssePlainFormat struct{ envelope bool }

// Encode slices the event out of the chunked frame.
func (f ssePlainFormat) Encode(m *message.Message, located bool) []byte {
	c := m.Frame(sseChunkedFormat(f), located)
	return c[bytes.IndexByte(c, '\n')+1 : len(c)-2]
}

func (ssePlainFormat) End(err error) []byte {
	switch err {
	case hub.ErrClosed:
		return sseGoodbye
	case hub.ErrSessionEnded:
		return sseLoggedOut
	case hub.ErrTokenExpired:
		return sseExpired
	}
	return nil
}

func (ssePlainFormat) heartbeat() []byte { return sseBeat }

// sseBodyLen is at least the length of what appendSSEBody appends.
func sseBodyLen(body []byte, text bool) int {
	if !text {
		return len("event: binary\ndata: \n\n") + base64.StdEncoding.EncodedLen(len(body))
	}
	// Every line break is at least one byte, which the data line drops.
	breaks := bytes.Count(body, []byte{'\n'}) + bytes.Count(body, []byte{'\r'})
	return len(body) + (breaks+1)*len("data: \n") + 1
}

// appendSSEBody appends the data of body's event to b, and the blank line
// that ends it: a data line per line when body is text (valid UTF-8), else
// an event named binary with the body in base64.
func appendSSEBody(b, body []byte, text bool) []byte {
	if !text {
		b = append(b, "event: binary\ndata: "...)
		b = base64.StdEncoding.AppendEncode(b, body)
		return append(b, "\n\n"...)
	}
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(body, "\r\n")
		if i < 0 {
			b = append(b, body...)
			break
		}
		b = append(b, body[:i]...)
		b = append(b, '\n')
		if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
			i++ // CRLF is one line end
		}
		body = body[i+1:]
	}
	return append(b, "\n\n"...)
}

// An envelope is a message as one JSON object, the same as /history lists
// (PROTOCOL.md §6): {"id","channel","type","from","time","body","encoding"},
// "from" left out for an anonymous publisher, "time" RFC 3339 in UTC with
// milliseconds, the body as a string when it is valid UTF-8 (encoding
// "utf-8"), else in base64 (encoding "base64"). The id is a string: ids are
// opaque tokens to clients. Strings that are not valid UTF-8 (a type, a
// sender) get one U+FFFD for each run of bad bytes.
type envelope struct {
	ID       string `json:"id"`
	Channel  string `json:"channel"`
	Type     string `json:"type"`
	From     string `json:"from,omitempty"`
	Time     string `json:"time"`
	Body     string `json:"body"`
	Encoding string `json:"encoding"`
}

// envelopeTime is RFC 3339 with milliseconds, for UTC times.
const envelopeTime = "2006-01-02T15:04:05.000Z07:00"

// envelopeOf returns m's envelope, on one line (control characters are
// escaped in JSON strings); text says whether m.Body is valid UTF-8.
func envelopeOf(m *message.Message, text bool) []byte {
	e := envelope{ID: m.ID.String(), Channel: m.Channel,
		Type: strings.ToValidUTF8(m.Type, "\uFFFD"), From: strings.ToValidUTF8(m.Sender, "\uFFFD"),
		Time: m.Time.UTC().Format(envelopeTime), Encoding: "utf-8"}
	if text {
		e.Body = string(m.Body)
	} else {
		e.Body, e.Encoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(e) // cannot fail: strings only
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Heartbeat returns the frame a stream of format f sends when it has been
// quiet a while, so that proxies and browsers see it live (an SSE comment),
// or nil when f has none. The server queues it like a message, so that the
// stream's one writer writes it.
func Heartbeat(f message.Format) []byte {
	if hf, ok := f.(interface{ heartbeat() []byte }); ok {
		return hf.heartbeat()
	}
	return nil
}

// Envelope returns m as one line of JSON, as an SSE ?envelope=json event
// carries it and /history lists it (PROTOCOL.md §6): one encoding for both,
// so a page reads history and live events alike.
func Envelope(m *message.Message) []byte { return envelopeOf(m, utf8.Valid(m.Body)) }
