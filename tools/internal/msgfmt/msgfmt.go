// Package msgfmt holds how the msgbus tools name, print and type messages:
// the plural of a count, the type a message is given when none is named,
// msgdump's header line and JSON object, and what may go to a terminal.
package msgfmt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/msgbus/msgbus/client"
)

// Types InferType gives.
const (
	TypeJSON   = "application/json"
	TypeText   = "text/plain; charset=utf-8"
	TypeBinary = "application/octet-stream"
)

// Count returns n and the noun, in its plural unless n is 1:
// Count(1, "subscriber") is "1 subscriber", Count(0, "subscriber")
// "0 subscribers", Count(2, "delivery") "2 deliveries". The plural follows
// the regular English rules (-s, -es, -ies), enough for the tools' nouns.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + plural(noun)
}

func plural(noun string) string {
	switch {
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"), strings.HasSuffix(noun, "z"),
		strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	}
	return noun + "s"
}

// InferType returns the media type of a message whose publisher named none:
//   - a JSON object or array: application/json (a bare number, string or
//     true is left to the text rule: "42" reads as text as well);
//   - a format http.DetectContentType recognises by its first bytes (PNG,
//     JPEG, GIF, WebP, PDF, gzip, zip, audio, video, and HTML or XML when
//     the body is valid UTF-8): that type;
//   - text (valid UTF-8 without NUL and the other control bytes that mark
//     binary data): text/plain; charset=utf-8;
//   - anything else: application/octet-stream.
func InferType(b []byte) string {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(b) {
		return TypeJSON
	}
	sniffed := http.DetectContentType(b)
	mt, _, _ := strings.Cut(sniffed, ";")
	switch {
	case strings.HasPrefix(sniffed, "text/plain; charset=utf-16"):
		return sniffed // a byte order mark says so
	case mt == "text/plain" || mt == TypeBinary:
		// The sniffer reads 512 bytes; the rules here read them all.
	case strings.HasPrefix(mt, "text/"):
		if utf8.Valid(b) {
			return sniffed // text/html or text/xml; charset=utf-8
		}
		return TypeBinary
	default:
		return sniffed
	}
	if IsText(b) {
		return TypeText
	}
	return TypeBinary
}

// IsText reports whether b is valid UTF-8 without the control bytes that
// mark binary data (NUL and the C0 controls other than tab, line feed,
// form feed, carriage return and escape, as the WHATWG sniffing rules
// say).
func IsText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\f' && c != '\r' && c != 0x1b {
			return false
		}
	}
	return utf8.Valid(b)
}

// Escape percent-encodes the bytes of s that would break a space-separated
// key=value line or a terminal: space, control bytes, bytes outside ASCII
// and "%" itself, as %XX. url.PathUnescape (or any percent-decoder) gives s
// back.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; needsEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func needsEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '%' }

// HeaderLine returns msgdump's line about m, without a line end:
//
//	channel=news type=text/plain;%20charset=utf-8 from=alice size=12
//
// Keys are always in this order; from is empty for an anonymous
// publisher; id=<id> is added at the end when the stream carries the id.
// Values are Escape'd, so the line splits on spaces, each field at its
// first "=", and a percent-decoder gives the values back.
func HeaderLine(m client.Message) string {
	line := "channel=" + Escape(m.Channel) + " type=" + Escape(m.Type) + " from=" + Escape(m.Sender) +
		" size=" + strconv.Itoa(len(m.Body))
	if m.ID != "" {
		line += " id=" + Escape(m.ID)
	}
	return line
}

// A JSONMessage is a message as msgdump --json prints it: the shape of a
// message of the server's /history answer.
type JSONMessage struct {
	// ID is the message's id, an opaque token; empty (and left out) when
	// the stream does not carry it.
	ID      string `json:"id,omitempty"`
	Channel string `json:"channel"`
	Type    string `json:"type"`
	// From is the publisher's user name, left out for an anonymous one.
	From string `json:"from,omitempty"`
	// Time is when the message was received, RFC 3339 with milliseconds.
	Time string `json:"time"`
	// Body is the body itself when Encoding is "utf-8", its standard
	// base64 when Encoding is "base64".
	Body     string `json:"body"`
	Encoding string `json:"encoding"`
}

// TimeFormat is RFC 3339 with milliseconds, as the server's history.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// NewJSONMessage returns m as JSON, received at t. A body that is valid
// UTF-8 is kept as text ("utf-8"), any other is base64.
func NewJSONMessage(m client.Message, t time.Time) JSONMessage {
	j := JSONMessage{Channel: m.Channel, Type: m.Type, From: m.Sender, Time: t.UTC().Format(TimeFormat)}
	j.ID = m.ID
	if utf8.Valid(m.Body) {
		j.Body, j.Encoding = string(m.Body), "utf-8"
	} else {
		j.Body, j.Encoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return j
}

// ForTerminal returns what msgdump shows of a body on a terminal, where
// raw bytes could garble the screen or drive it with escape sequences. It
// reports false when the body is not valid UTF-8: such a body is shown as
// a hex dump instead. A UTF-8 body is returned with every control
// character other than tab and line feed (and carriage return before a line
// feed) written as a Go escape, such as \x1b or \u009b.
func ForTerminal(b []byte) ([]byte, bool) {
	if !utf8.Valid(b) {
		return nil, false
	}
	clean := true
	for i, r := range string(b) {
		if !safeRune(r, b, i) {
			clean = false
			break
		}
	}
	if clean {
		return b, true
	}
	out := make([]byte, 0, len(b)+16)
	for i, r := range string(b) {
		if safeRune(r, b, i) {
			out = utf8.AppendRune(out, r)
		} else if r < 0x80 {
			out = fmt.Appendf(out, `\x%02x`, r)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out, true
}

func safeRune(r rune, b []byte, i int) bool {
	switch {
	case r == '\t' || r == '\n':
		return true
	case r == '\r':
		return i+1 < len(b) && b[i+1] == '\n'
	}
	return !unicode.IsControl(r)
}
