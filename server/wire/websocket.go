package wire

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// WebSocket framing (RFC 6455 §5.2), server to client, so unmasked. The
// frames are built here rather than by the websocket library's writer so
// that each message is framed once and the same bytes go to every
// WebSocket subscriber, written in batches by the flush pool like
// multipart parts.
//
// The server queues its own control frames (pings, pongs, its close) on a
// subscriber's queue too, so that one writer writes the socket: hence the
// exported opcodes and WSFrame, WSClose.
const (
	opText   = 0x1
	opBinary = 0x2
	OpClose  = 0x8
	OpPing   = 0x9
	OpPong   = 0xA
)

// Close codes (RFC 6455 §7.4.1) the server ends a WebSocket with.
const (
	CloseGoingAway       = 1001 // shutdown
	CloseInvalidPayload  = 1007 // a text frame that is not UTF-8
	ClosePolicyViolation = 1008 // too slow (End), or a send the token has no right for
	CloseTooBig          = 1009 // a message over --max-message-bytes
	CloseTryAgainLater   = 1013 // a publish the engine could not take
	CloseSessionEnded    = 4000 // an operator logged the session out (PROTOCOL.md §8)
	CloseTokenExpired    = 4001 // the token expired: reconnect with a new one
)

// WebSocket is the Format of WebSocket subscribers: one frame per message,
// text for textual types, binary for the rest, as PROTOCOL.md §4 maps them.
// It is a hub.Redeliverer: only message frames move to another puller.
var WebSocket message.Format = wsFormat{}

type wsFormat struct{}

func (wsFormat) Encode(m *message.Message, _ bool) []byte {
	op := byte(opBinary)
	if isTextType(m.Type) && utf8.Valid(m.Body) {
		op = opText
	}
	return WSFrame(op, m.Body)
}

var (
	wsShutdownFrame = WSClose(CloseGoingAway, "server shutting down")
	wsSlowFrame     = WSClose(ClosePolicyViolation, "too slow: fell more than the queue limit behind")
	wsLoggedOut     = WSClose(CloseSessionEnded, "session ended")
	wsExpired       = WSClose(CloseTokenExpired, "token expired")
)

// End says goodbye with a close frame: 1001 on shutdown, 1008 when the
// subscriber was too slow, 4000 on a logout, 4001 when its token expired.
func (wsFormat) End(err error) []byte {
	switch err {
	case hub.ErrClosed:
		return wsShutdownFrame
	case hub.ErrSlowConsumer:
		return wsSlowFrame
	case hub.ErrSessionEnded:
		return wsLoggedOut
	case hub.ErrTokenExpired:
		return wsExpired
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

// WSFrame returns a final, unmasked frame with opcode op and payload p.
func WSFrame(op byte, p []byte) []byte {
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

// WSClose returns a close frame with code and reason (cut to the 123 bytes
// a control frame allows).
func WSClose(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return WSFrame(OpClose, append(p, reason...))
}
