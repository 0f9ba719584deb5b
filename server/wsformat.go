package server

import (
	"encoding/binary"
	"github.com/msgbus/msgbus/server/message"
	"strings"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/hub"
)

// WebSocket framing (RFC 6455 §5.2), server to client, so unmasked. The
// frames are built here rather than by the websocket library's writer so
// that each message is framed once and the same bytes go to every
// WebSocket subscriber, written in batches by the flush pool like
// multipart parts.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// Close codes (RFC 6455 §7.4.1).
const (
	closeGoingAway       = 1001
	closeInvalidPayload  = 1007
	closePolicyViolation = 1008
	closeTooBig          = 1009
	closeTryAgainLater   = 1013
)

// ws is the Format of WebSocket subscribers: one frame per message, text
// for textual types, binary for the rest, as PROTOCOL.md §4 maps them.
var ws message.Format = wsFormat{}

type wsFormat struct{}

func (wsFormat) Encode(m *message.Message, _ bool) []byte {
	op := byte(opBinary)
	if isTextType(m.Type) && utf8.Valid(m.Body) {
		op = opText
	}
	return wsFrame(op, m.Body)
}

var (
	wsShutdownFrame = wsClose(closeGoingAway, "server shutting down")
	wsSlowFrame     = wsClose(closePolicyViolation, "too slow: fell more than the queue limit behind")
)

// End says goodbye with a close frame: 1001 on shutdown, 1008 when the
// subscriber was too slow.
func (wsFormat) End(err error) []byte {
	switch err {
	case hub.ErrClosed:
		return wsShutdownFrame
	case hub.ErrSlowConsumer:
		return wsSlowFrame
	}
	return nil
}

// Redeliverable keeps a departed puller's control frames (pings, pongs,
// its close) from reaching another puller: only messages move on.
func (wsFormat) Redeliverable(frame []byte) bool {
	op := frame[0] & 0x0F
	return op == opText || op == opBinary
}

var _ hub.Redeliverer = wsFormat{}

// isTextType reports whether a message of media type t goes to a
// WebSocket as a text frame (when its body is UTF-8): text/*,
// application/json, any +json type, and the form encoding that curl -d
// sends, which is text too.
func isTextType(t string) bool {
	t = strings.ToLower(strings.TrimSpace(t))
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	return strings.HasPrefix(t, "text/") || t == "application/json" || strings.HasSuffix(t, "+json") ||
		t == "application/x-www-form-urlencoded"
}

// wsFrame returns a final, unmasked frame with opcode op and payload p.
func wsFrame(op byte, p []byte) []byte {
	b := make([]byte, 0, 10+len(p))
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// wsClose returns a close frame with code and reason (cut to the 123 bytes
// a control frame allows).
func wsClose(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return wsFrame(opClose, append(p, reason...))
}
