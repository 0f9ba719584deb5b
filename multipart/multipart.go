// Package multipart frames msgbus messages as parts of a
// multipart/x-mixed-replace stream. The server builds each part once per
// message with NewFrame (or AppendPart) and shares the bytes among
// subscribers; Writer wraps the same framing in the shape of
// mime/multipart.Writer for tools and tests; Reader reads it back.
//
// No message can forge a part or a header, even for a parser that ignores
// Content-Length and scans for the boundary (browsers, Python's email): a
// body that holds the delimiter is sent in base64, and no header value can
// put a line break, or any byte outside printable ASCII, on the wire (see
// Header). Reader undoes both, so a client sees what was published.
package multipart

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Boundary is the original msgbus's boundary, kept so old clients work.
const Boundary = "00MsgBus00"

// ContentType is the stream's media type with Boundary.
const ContentType = "multipart/x-mixed-replace;boundary=" + Boundary

// Errors, prefixed with the package name like mime/multipart's.
var (
	ErrInvalidBoundary = errors.New("multipart: invalid boundary")
	ErrInvalidHeader   = errors.New("multipart: header value is not printable ASCII")
)

// A Header is what a part says about its body. Empty fields are left out,
// except ContentType, which is always written.
//
// No field can break its header line, whatever it holds: AppendPart
// percent-encodes every byte outside printable ASCII (0x20-0x7E), so a CR,
// LF, NEL (0x85) or U+2028 never reaches the stream raw. From is a user
// name, which may hold anything, so AppendPart also encodes its "%" (and a
// space at its start or end, which a reader would trim) and Reader decodes
// it: a client sees the real name. ContentType and ContentLocation are not
// decoded by the Reader; Valid says whether they go out unchanged.
type Header struct {
	ID              string // the message's id (Msgbus-Id): printable ASCII, written as is
	From            string // the publisher's user name; any bytes
	ContentLocation string // the channel's URL path, already URL-escaped
	ContentType     string // printable ASCII, see ValidContentType
}

// Valid reports whether AppendPart writes h's values as they are:
// ContentType and ContentLocation printable ASCII (0x20-0x7E, no tab). From
// is always valid: it is percent-encoded on the wire and decoded by Reader.
// A server refuses a publish whose type is not valid (400) rather than
// send it altered.
func (h Header) Valid() bool {
	return ValidContentType(h.ContentType) && printable(h.ContentLocation) && printable(h.ID)
}

// ValidContentType reports whether t can be a part's Content-Type:
// printable ASCII only (0x20-0x7E; no tab, no control character, no byte
// above 0x7E), so no byte of it can end or split a header line for any
// reader. The empty type is valid (the server substitutes its default
// before it publishes).
func ValidContentType(t string) bool { return printable(t) }

func printable(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// How a header value is escaped on the wire.
const (
	escapeBytes = iota // bytes outside 0x20-0x7E become %XX
	escapeName         // also "%" and a space at either end (From)
)

// mustEscape reports whether v[i] goes out as %XX under mode.
func mustEscape(v string, i, mode int) bool {
	c := v[i]
	if c < 0x20 || c > 0x7e {
		return true
	}
	if mode != escapeName {
		return false
	}
	return c == '%' || c == ' ' && (i == 0 || i == len(v)-1)
}

// escapedLen returns the length of v escaped under mode.
func escapedLen(v string, mode int) int {
	n := len(v)
	for i := 0; i < len(v); i++ {
		if mustEscape(v, i, mode) {
			n += 2
		}
	}
	return n
}

// appendEscaped appends v escaped under mode.
func appendEscaped(dst []byte, v string, mode int) []byte {
	const hex = "0123456789ABCDEF"
	i := 0
	for i < len(v) && !mustEscape(v, i, mode) {
		i++
	}
	dst = append(dst, v[:i]...) // the common case: nothing to escape
	for ; i < len(v); i++ {
		if mustEscape(v, i, mode) {
			dst = append(dst, '%', hex[v[i]>>4], hex[v[i]&0xf])
		} else {
			dst = append(dst, v[i])
		}
	}
	return dst
}

// A Frame is one part, planned: its header, its body, and whether the body
// goes in base64. NewFrame scans the body once, so a caller can learn the
// part's length (for a chunk header) before writing it without a second
// scan. The server builds every message's part this way, once per message.
type Frame struct {
	boundary string
	h        Header
	body     []byte
	base64   bool
	n        int
}

// NewFrame plans the part for h and body. A body that holds the delimiter
// "--"+boundary anywhere (not only at a line start: the original msgbus's
// clients find it anywhere) is sent as Content-Transfer-Encoding: base64,
// whose alphabet has no "-", so no parser that scans for the boundary and
// ignores Content-Length can be fed a forged part. The frame refers to body
// until Append; it does not copy it.
func NewFrame(boundary string, h Header, body []byte) Frame {
	f := Frame{boundary: boundary, h: h, body: body, base64: holdsDelimiter(boundary, body)}
	f.n = partLen(boundary, h, len(body), f.base64)
	return f
}

// partLen returns the length of the part for h and a body of n bytes, sent
// in base64 or not.
func partLen(boundary string, h Header, n int, b64 bool) int {
	if b64 {
		n = base64.StdEncoding.EncodedLen(n)
	}
	l := 2 + len(boundary) + 2 // --boundary CRLF
	if h.ID != "" {
		l += len("Msgbus-Id: ") + escapedLen(h.ID, escapeBytes) + 2
	}
	if h.From != "" {
		l += len("From: ") + escapedLen(h.From, escapeName) + 2
	}
	if h.ContentLocation != "" {
		l += len("Content-Location: ") + escapedLen(h.ContentLocation, escapeBytes) + 2
	}
	l += len("Content-Type: ") + escapedLen(h.ContentType, escapeBytes) + 2
	if b64 {
		l += len(cteBase64)
	}
	l += len("Content-Length: ") + digits(n) + 2
	return l + 2 + n + 2 // CRLF body CRLF
}

const cteBase64 = "Content-Transfer-Encoding: base64\r\n"

// dashBoundary is "--"+Boundary, the delimiter a body must not hold.
var dashBoundary = []byte("--" + Boundary)

// holdsDelimiter reports whether body holds "--"+boundary anywhere.
func holdsDelimiter(boundary string, body []byte) bool {
	if boundary == Boundary {
		return bytes.Contains(body, dashBoundary)
	}
	return bytes.Contains(body, []byte("--"+boundary))
}

// Len returns the number of bytes Append writes.
func (f Frame) Len() int { return f.n }

// Base64 reports whether the body goes in base64.
func (f Frame) Base64() bool { return f.base64 }

// Append appends the part to dst:
//
//	--boundary CRLF
//	[From: h.From, escaped CRLF]
//	[Content-Location: h.ContentLocation CRLF]
//	Content-Type: h.ContentType CRLF
//	[Content-Transfer-Encoding: base64 CRLF]
//	Content-Length: length of the body as sent CRLF
//	CRLF
//	body, or its base64 on one line CRLF
//
// The base64 is not broken into 76-character lines as RFC 2045 asks of
// mail: Content-Length frames it, and decoders (Go's, Python's email,
// browsers') take long lines.
func (f Frame) Append(dst []byte) []byte {
	dst = append(dst, "--"...)
	dst = append(dst, f.boundary...)
	dst = append(dst, "\r\n"...)
	if f.h.ID != "" {
		dst = append(dst, "Msgbus-Id: "...)
		dst = appendEscaped(dst, f.h.ID, escapeBytes)
		dst = append(dst, "\r\n"...)
	}
	if f.h.From != "" {
		dst = append(dst, "From: "...)
		dst = appendEscaped(dst, f.h.From, escapeName)
		dst = append(dst, "\r\n"...)
	}
	if f.h.ContentLocation != "" {
		dst = append(dst, "Content-Location: "...)
		dst = appendEscaped(dst, f.h.ContentLocation, escapeBytes)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Type: "...)
	dst = appendEscaped(dst, f.h.ContentType, escapeBytes)
	dst = append(dst, "\r\n"...)
	if f.base64 {
		dst = append(dst, cteBase64...)
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(base64.StdEncoding.EncodedLen(len(f.body))), 10)
		dst = append(dst, "\r\n\r\n"...)
		dst = base64.StdEncoding.AppendEncode(dst, f.body)
	} else {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(f.body)), 10)
		dst = append(dst, "\r\n\r\n"...)
		dst = append(dst, f.body...)
	}
	return append(dst, "\r\n"...)
}

// AppendPart appends the part NewFrame(boundary, h, body) plans to dst.
// Any Header is safe to pass: no value can break its line (see Header), and
// a body holding the delimiter goes in base64.
func AppendPart(dst []byte, boundary string, h Header, body []byte) []byte {
	return NewFrame(boundary, h, body).Append(dst)
}

// PartLen returns the length of the part AppendPart writes for h and a body
// of n bytes that does not hold "--"+boundary.
//
// Deprecated: a body that holds the delimiter goes in base64 and its part
// is longer than PartLen says. Use NewFrame(boundary, h, body).Len, which
// knows.
func PartLen(boundary string, h Header, n int) int {
	return partLen(boundary, h, n, false)
}

// digits returns the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// AppendEnd appends the closing delimiter, "--boundary--" CRLF.
func AppendEnd(dst []byte, boundary string) []byte {
	dst = append(dst, "--"...)
	dst = append(dst, boundary...)
	return append(dst, "--\r\n"...)
}

// CheckBoundary reports whether b is a boundary RFC 2046 allows: 1 to 70
// characters from its set, not ending in a space.
func CheckBoundary(b string) error {
	if len(b) < 1 || len(b) > 70 || strings.HasSuffix(b, " ") {
		return ErrInvalidBoundary
	}
	for _, c := range []byte(b) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("'()+_,-./:=? ", c) >= 0:
		default:
			return ErrInvalidBoundary
		}
	}
	return nil
}

// A Writer writes a multipart/x-mixed-replace body to w, one part per
// WritePart. The first error sticks: later calls return it.
type Writer struct {
	w        io.Writer
	boundary string
	buf      []byte
	err      error
}

// NewWriter returns a Writer with Boundary.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, boundary: Boundary}
}

// Boundary returns the Writer's boundary.
func (w *Writer) Boundary() string { return w.boundary }

// SetBoundary replaces the boundary. It must be called before the first
// part and fails with ErrInvalidBoundary on a boundary RFC 2046 forbids.
func (w *Writer) SetBoundary(b string) error {
	if err := CheckBoundary(b); err != nil {
		return err
	}
	w.boundary = b
	return nil
}

// WritePart writes one part with header h and body in a single Write. It
// refuses with ErrInvalidHeader, writing nothing, a header that is not
// Valid, rather than send its type or location altered.
func (w *Writer) WritePart(h Header, body []byte) error {
	if w.err != nil {
		return w.err
	}
	if !h.Valid() {
		return ErrInvalidHeader
	}
	w.buf = AppendPart(w.buf[:0], w.boundary, h, body)
	_, w.err = w.w.Write(w.buf)
	return w.err
}

// Close writes the closing delimiter. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	_, w.err = w.w.Write(AppendEnd(nil, w.boundary))
	if w.err == nil {
		w.err = errors.New("multipart: writer closed")
		return nil
	}
	return w.err
}
