// Package multipart frames msgbus messages as parts of a
// multipart/x-mixed-replace stream. The server builds each part once per
// message with AppendPart and shares the bytes among subscribers; Writer
// wraps the same framing in the shape of mime/multipart.Writer for tools and
// tests.
package multipart

import (
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
	ErrInvalidHeader   = errors.New("multipart: header value holds a control character")
)

// A Header is what a part says about its body. Empty fields are left out,
// except ContentType, which is always written.
type Header struct {
	From            string // the publisher's user name
	ContentLocation string // the channel's URL path, when not the subscribed one
	ContentType     string
}

// Valid reports whether every field can go on a header line: no control
// characters (CR and LF above all, which would forge headers).
func (h Header) Valid() bool {
	return validValue(h.From) && validValue(h.ContentLocation) && validValue(h.ContentType)
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// PartLen returns the length of the part AppendPart writes for h and a body
// of n bytes, so a caller can size a chunk header before the part.
func PartLen(boundary string, h Header, n int) int {
	l := 2 + len(boundary) + 2 // --boundary CRLF
	if h.From != "" {
		l += len("From: ") + len(h.From) + 2
	}
	if h.ContentLocation != "" {
		l += len("Content-Location: ") + len(h.ContentLocation) + 2
	}
	l += len("Content-Type: ") + len(h.ContentType) + 2
	l += len("Content-Length: ") + digits(n) + 2
	return l + 2 + n + 2 // CRLF body CRLF
}

// digits returns the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// AppendPart appends one part to dst:
//
//	--boundary CRLF
//	[From: h.From CRLF]
//	[Content-Location: h.ContentLocation CRLF]
//	Content-Type: h.ContentType CRLF
//	Content-Length: len(body) CRLF
//	CRLF
//	body CRLF
//
// The caller must have checked h.Valid.
func AppendPart(dst []byte, boundary string, h Header, body []byte) []byte {
	dst = append(dst, "--"...)
	dst = append(dst, boundary...)
	dst = append(dst, "\r\n"...)
	if h.From != "" {
		dst = append(dst, "From: "...)
		dst = append(dst, h.From...)
		dst = append(dst, "\r\n"...)
	}
	if h.ContentLocation != "" {
		dst = append(dst, "Content-Location: "...)
		dst = append(dst, h.ContentLocation...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Type: "...)
	dst = append(dst, h.ContentType...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	dst = append(dst, body...)
	return append(dst, "\r\n"...)
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

// WritePart writes one part with header h and body in a single Write.
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
