package server

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/hub"
)

// Server-Sent Events (PROTOCOL.md §3), for browsers' EventSource. One event
// per message:
//
//	id: 42
//	data: From: alice                        (when the publisher authenticated)
//	data: Content-Location: /msgbus/a/b      (when not the subscribed channel)
//	data: Content-Type: text/plain
//	data: Content-Transfer-Encoding: base64  (when the body is not sent as text)
//	data:
//	data: <body, one data line per LF-separated line>
//
// So the event's data, as EventSource hands it to the page, is the message
// as a MIME part: the part headers of the multipart stream, in the same order,
// a blank line and the body. There is no "event:" field: EventSource can only
// listen for event names it knows in advance, and a subscriber of a parent or
// of the root receives channels it cannot know, so every event is a plain
// "message" and its channel is in Content-Location, as in the multipart
// stream. The SSE fields (id, event, data, retry) have no room for a type or
// a sender, which the viewer needs.
//
// The body goes verbatim when EventSource can give it back byte for byte:
// a type that reaches a WebSocket as text (text/*, JSON), valid UTF-8 and no
// CR (EventSource reads CR and CRLF as line ends, so "a\r\nb" would come
// back as "a\nb"). Anything else is base64 on one data line, marked by
// Content-Transfer-Encoding: base64, so images and binary arrive intact.
//
// Like the multipart part, the event is built once per message and shared;
// on HTTP/1.1 each event is one chunk, on HTTP/1.0 the bare event is a slice
// of the chunked frame and the stream ends when the connection closes.
var (
	sseChunked hub.Format = sseChunkedFormat{}
	ssePlain   hub.Format = ssePlainFormat{}
)

// sseRetry is the reconnection delay the stream asks of EventSource, once,
// at the start: after a restart, a browser is back within this.
const sseRetry = "2000"

// sseHeartbeat is how often an SSE stream sends a comment line, so proxies
// and browsers see a live connection on a quiet channel. A variable so the
// tests can shorten it; it is read when a stream starts.
var sseHeartbeat = 15 * time.Second

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
)

type sseChunkedFormat struct{}

// chunkRoom is what the chunked frame reserves before the event for its
// size line: up to 16 hex digits and CRLF.
const chunkRoom = 16 + 2

// Encode builds "<hex size>\r\n<event>\r\n" in one allocation: the event is
// written after room for the size line, which is filled in once the size is
// known.
func (sseChunkedFormat) Encode(m *hub.Message, located bool) []byte {
	e := sseEvent{m: m, located: located, text: sseText(m),
		from: strings.ToValidUTF8(m.Sender, "\uFFFD"), typ: strings.ToValidUTF8(m.Type, "\uFFFD")}
	b := make([]byte, chunkRoom, chunkRoom+e.cap()+2)
	b = e.append(b)
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
	if err == hub.ErrClosed {
		return sseChunkedEnd
	}
	return nil
}

// heartbeat is the comment frame a stream of this format sends when idle.
func (sseChunkedFormat) heartbeat() []byte { return sseChunkedHB }

type ssePlainFormat struct{}

// Encode slices the event out of the chunked frame.
func (ssePlainFormat) Encode(m *hub.Message, located bool) []byte {
	c := m.Frame(sseChunked, located)
	return c[bytes.IndexByte(c, '\n')+1 : len(c)-2]
}

func (ssePlainFormat) End(err error) []byte {
	if err == hub.ErrClosed {
		return sseGoodbye
	}
	return nil
}

func (ssePlainFormat) heartbeat() []byte { return sseBeat }

// sseText reports whether m's body goes as text data lines rather than
// base64: see the package comment above.
func sseText(m *hub.Message) bool {
	return isTextType(m.Type) && bytes.IndexByte(m.Body, '\r') < 0 && utf8.Valid(m.Body)
}

// An sseEvent is what one event is made of. The sender and type are
// made valid UTF-8, as the whole stream must be (EventSource would replace
// bad bytes anyway).
type sseEvent struct {
	m         *hub.Message
	located   bool
	text      bool // the body goes as text lines, not base64
	from, typ string
}

// cap is at least the length of the event (the id is counted at its
// longest), so the frame takes one allocation.
func (e *sseEvent) cap() int {
	m := e.m
	n := len("id: ") + 20 + 1
	if e.from != "" {
		n += len("data: From: ") + len(e.from) + 1
	}
	if e.located {
		n += len("data: Content-Location: ") + len(busPath(m.Channel)) + 1
	}
	n += len("data: Content-Type: ") + len(e.typ) + 1
	n += len("data:\n")
	if e.text {
		lines := bytes.Count(m.Body, []byte{'\n'}) + 1
		n += lines*len("data: \n") + len(m.Body) - (lines - 1)
	} else {
		n += len("data: Content-Transfer-Encoding: base64\n")
		n += len("data: \n") + base64.StdEncoding.EncodedLen(len(m.Body))
	}
	return n + 1
}

// append appends the event to b, ending with its blank line.
func (e *sseEvent) append(b []byte) []byte {
	m := e.m
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, '\n')
	if e.from != "" {
		b = append(append(append(b, "data: From: "...), e.from...), '\n')
	}
	if e.located {
		b = append(append(append(b, "data: Content-Location: "...), busPath(m.Channel)...), '\n')
	}
	b = append(append(append(b, "data: Content-Type: "...), e.typ...), '\n')
	if !e.text {
		b = append(b, "data: Content-Transfer-Encoding: base64\n"...)
		b = append(b, "data:\n"...)
		b = append(b, "data: "...)
		b = base64.StdEncoding.AppendEncode(b, m.Body)
		return append(b, "\n\n"...)
	}
	b = append(b, "data:\n"...)
	body := m.Body
	for {
		line, rest, more := bytes.Cut(body, []byte{'\n'})
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
		if !more {
			break
		}
		body = rest
	}
	return append(b, '\n')
}

// A heartbeatFormat's streams send its heartbeat frame every sseHeartbeat
// while they live, through the subscription's queue so that the stream's
// one writer writes it.
type heartbeatFormat interface {
	hub.Format
	heartbeat() []byte
}

// A heartbeat is a stream's timer; stop it when the stream ends.
type heartbeat struct {
	mu sync.Mutex
	t  *time.Timer // nil once stopped
}

// startHeartbeat starts sub's heartbeat if its format has one, else
// returns nil.
func startHeartbeat(f hub.Format, sub *hub.Subscription) *heartbeat {
	hf, ok := f.(heartbeatFormat)
	if !ok {
		return nil
	}
	frame, every := hf.heartbeat(), sseHeartbeat
	h := &heartbeat{}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.t = time.AfterFunc(every, func() {
		if !sub.Send(frame) {
			return // the subscription has ended
		}
		h.mu.Lock()
		if h.t != nil {
			h.t.Reset(every)
		}
		h.mu.Unlock()
	})
	return h
}

// stop ends the heartbeat; a nil heartbeat is fine.
func (h *heartbeat) stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.t != nil {
		h.t.Stop()
		h.t = nil
	}
	h.mu.Unlock()
}
