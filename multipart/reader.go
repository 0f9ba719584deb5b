package multipart

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxPartBytes is the largest body a Reader accepts when
// Reader.MaxPartBytes is zero: well above the server's default 1 MiB
// message limit, low enough that a broken stream cannot exhaust memory.
const DefaultMaxPartBytes = 64 << 20

// maxLineBytes caps one header or delimiter line.
const maxLineBytes = 64 << 10

// Errors of the Reader. Framing errors that carry the offending bytes are
// *FormatError values instead.
var (
	ErrPartTooLarge = errors.New("multipart: part larger than the reader's MaxPartBytes")
	ErrLineTooLong  = errors.New("multipart: header line too long")
)

// A FormatError says how a stream broke the framing, quoting what it found.
type FormatError struct {
	What string // what was wrong, e.g. "expected boundary"
	Got  string // the offending line, cut short
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("multipart: %s, got %q", e.What, e.Got)
}

func formatError(what string, got []byte) error {
	if len(got) > 64 {
		got = got[:64]
	}
	return &FormatError{What: what, Got: string(got)}
}

// A Part is one message read from a stream.
type Part struct {
	Header Header
	// ContentLength is the part's announced body length, or -1 when the
	// part had no Content-Length header (the original C msgbus left it out
	// on HTTP/1.1) and its body was found by scanning for the boundary. For
	// a part sent in base64 it counts the base64 bytes, not len(Body).
	ContentLength int
	// TransferEncoding is the part's Content-Transfer-Encoding, lower-cased,
	// or "" when it had none. A server sends a body that holds the
	// delimiter as "base64"; Body is then already decoded.
	TransferEncoding string
	// Body is the part's body, as published. It is the Reader's buffer:
	// valid only until the next call to NextPart.
	Body []byte
}

// A Reader reads the parts of a multipart/x-mixed-replace stream as msgbus
// servers send it, one NextPart at a time, without reading ahead more than
// its buffer.
//
// It reads the framing of this server (CRLF line ends, Content-Length on
// every part, the body followed by CRLF) with a fast path that reads exactly
// Content-Length bytes, whatever the body holds. It also reads the original
// C msgbus's framing: LF-only line ends, and on HTTP/1.1 no Content-Length,
// the body running up to the next "--boundary" (which the C server wrote
// right after the body, with no line end in between). Without a length, a
// body that holds "--boundary" followed by a line end is cut there: that
// ambiguity is why this server always sends Content-Length.
//
// For a part without Content-Length, a CRLF right before the delimiter is
// taken as part of the delimiter (RFC 2046) when the part's header lines
// ended in CRLF; when they ended in bare LF (the C server), the body is
// everything up to the boundary, as the C client library read it.
//
// Header values are trimmed of surrounding spaces and tabs; header names are
// matched case-insensitively; headers other than Msgbus-Id, From,
// Content-Location, Content-Type, Content-Transfer-Encoding and
// Content-Length are ignored. A stream without Msgbus-Id lines (the
// original C msgbus, or a server without ids) leaves Header.ID empty.
// Lines before the first delimiter (a preamble) and blank lines between
// parts are skipped.
//
// A part in Content-Transfer-Encoding base64 (how this server sends a body
// that holds the delimiter) is decoded, so Body is what was published; a
// part in an encoding other than base64, 7bit, 8bit or binary fails with a
// FormatError. From is percent-decoded, as AppendPart encodes it; a "%" not
// followed by two hex digits (the original server sent names raw) stays
// as it is.
type Reader struct {
	// MaxPartBytes caps a part's body as sent (for a base64 part, its
	// base64); a larger one fails NextPart with ErrPartTooLarge. Zero means
	// DefaultMaxPartBytes (64 MiB).
	MaxPartBytes int

	br      *bufio.Reader
	dash    []byte // "--" + boundary
	started bool   // the first delimiter has been read
	inPart  bool   // a delimiter was consumed: a part's headers come next
	done    bool   // the closing delimiter was read
	line    []byte // a header line that did not fit br's buffer
	buf     []byte // the body as sent
	dec     []byte // the decoding of a base64 body
	part    Part

	// The last values seen, so a stream whose parts repeat a header value
	// (the usual case) costs no allocation per part. fromRaw is From as
	// sent, from its decoding.
	id, from, fromRaw, loc, typ, cte string
}

// NewReader returns a Reader of the stream r with boundary. The boundary is
// not checked: a Reader reads whatever a server sends.
func NewReader(r io.Reader, boundary string) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, 4096)
	}
	return &Reader{br: br, dash: []byte("--" + boundary)}
}

// NextPart reads the next part. It returns io.EOF at the closing delimiter
// and when the stream ends cleanly between two parts (an HTTP/1.0 stream
// ends by closing the connection), and io.ErrUnexpectedEOF when it ends
// inside a part.
//
// The returned Part, its Body included, belongs to the Reader and is valid
// only until the next call to NextPart.
func (r *Reader) NextPart() (*Part, error) {
	if r.done {
		return nil, io.EOF
	}
	if !r.inPart {
		if err := r.readDelimiter(); err != nil {
			return nil, err
		}
	}
	r.inPart = false
	crlf, err := r.readHeader()
	if err != nil {
		return nil, err
	}
	if r.part.ContentLength >= 0 {
		err = r.readBodyFast(r.part.ContentLength)
	} else {
		err = r.scanBody(crlf)
	}
	if err != nil {
		return nil, err
	}
	r.part.Body = r.buf
	if err := r.decodeBody(); err != nil {
		return nil, err
	}
	return &r.part, nil
}

// decodeBody undoes the part's Content-Transfer-Encoding.
func (r *Reader) decodeBody() error {
	switch r.part.TransferEncoding {
	case "", "7bit", "8bit", "binary":
		return nil
	case "base64":
	default:
		return formatError("unsupported Content-Transfer-Encoding", []byte(r.part.TransferEncoding))
	}
	enc := base64.StdEncoding
	if n := enc.DecodedLen(len(r.buf)); cap(r.dec) < n {
		r.dec = make([]byte, n)
	}
	n, err := enc.Decode(r.dec[:cap(r.dec)], r.buf)
	if err != nil {
		return formatError("bad base64 body", r.buf)
	}
	r.part.Body = r.dec[:n]
	return nil
}

func (r *Reader) maxPart() int {
	if r.MaxPartBytes > 0 {
		return r.MaxPartBytes
	}
	return DefaultMaxPartBytes
}

// readDelimiter skips blank lines (and, before the first part, a preamble)
// up to a delimiter line. It sets done and returns io.EOF at the closing
// delimiter.
func (r *Reader) readDelimiter() error {
	skipped := 0
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				return io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		line = trimSpace(line)
		switch r.delimiter(line) {
		case delimPart:
			r.started = true
			return nil
		case delimEnd:
			r.done = true
			return io.EOF
		}
		if len(line) == 0 {
			continue
		}
		skipped += len(line)
		if r.started {
			return formatError("expected boundary", line)
		}
		if skipped > r.maxPart() {
			return formatError("no boundary in the preamble", line)
		}
	}
}

const (
	delimNone = iota
	delimPart
	delimEnd
)

// delimiter classifies a trimmed line.
func (r *Reader) delimiter(line []byte) int {
	if !bytes.HasPrefix(line, r.dash) {
		return delimNone
	}
	switch rest := line[len(r.dash):]; {
	case len(rest) == 0:
		return delimPart
	case string(rest) == "--":
		return delimEnd
	}
	return delimNone
}

// readHeader reads header lines up to the blank line into r.part, and
// reports whether they ended in CRLF.
func (r *Reader) readHeader() (crlf bool, err error) {
	r.part.Header = Header{}
	r.part.ContentLength = -1
	r.part.TransferEncoding = ""
	r.part.Body = nil
	r.buf = r.buf[:0]
	for first := true; ; first = false {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && first && len(line) == 0 {
				// The C server's streams end right after a delimiter.
				return false, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
		if bytes.HasSuffix(line, []byte("\r\n")) {
			crlf = true
		}
		line = trimEOL(line)
		if len(line) == 0 {
			return crlf, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return false, formatError("malformed header line", line)
		}
		value = trimSpace(value)
		switch {
		case equalFold(name, "Msgbus-Id"):
			// Opaque: taken as sent, like Content-Location. Every part has
			// its own, so this allocates unless a part repeats the last.
			r.id = intern(r.id, value)
			r.part.Header.ID = r.id
		case equalFold(name, "Content-Type"):
			r.typ = intern(r.typ, value)
			r.part.Header.ContentType = r.typ
		case equalFold(name, "From"):
			if string(value) != r.fromRaw {
				r.fromRaw = string(value)
				r.from = unescapeName(value)
			}
			r.part.Header.From = r.from
		case equalFold(name, "Content-Transfer-Encoding"):
			r.cte = internLower(r.cte, value)
			r.part.TransferEncoding = r.cte
		case equalFold(name, "Content-Location"):
			r.loc = intern(r.loc, value)
			r.part.Header.ContentLocation = r.loc
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok {
				return false, formatError("bad Content-Length", value)
			}
			r.part.ContentLength = n
		}
	}
}

// readBodyFast reads a body of exactly n bytes.
func (r *Reader) readBodyFast(n int) error {
	if n > r.maxPart() {
		return ErrPartTooLarge
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	// The line end after the body is left for the next NextPart, which
	// skips it with the blank lines before a delimiter: waiting for it here
	// could hold back a complete part.
	return nil
}

// scanBody reads a body without Content-Length: everything up to the next
// delimiter, which it consumes.
func (r *Reader) scanBody(crlf bool) error {
	body := r.buf[:0]
	limit := r.maxPart()
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(body)+len(chunk) > limit+len(r.dash)+4 {
			return ErrPartTooLarge
		}
		body = append(body, chunk...)
		r.buf = body
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if n, end := r.delimiterSuffix(body); n > 0 {
			body = body[:len(body)-n]
			if crlf {
				body = bytes.TrimSuffix(body, []byte("\r\n"))
			}
			if len(body) > limit {
				return ErrPartTooLarge
			}
			r.buf = body
			r.inPart = !end
			r.done = end
			return nil
		}
	}
}

// delimiterSuffix reports the length of the delimiter line that ends b, if
// b ends in one: "--boundary" or "--boundary--", then CRLF or LF. The
// delimiter need not start a line (the C server wrote it right after the
// body).
func (r *Reader) delimiterSuffix(b []byte) (n int, end bool) {
	t := trimEOL(b)
	eol := len(b) - len(t)
	switch {
	case eol == 0:
		return 0, false
	case bytes.HasSuffix(t, r.dash):
		return len(r.dash) + eol, false
	case bytes.HasSuffix(t, []byte("--")) && bytes.HasSuffix(t[:len(t)-2], r.dash):
		return len(r.dash) + 2 + eol, true
	}
	return 0, false
}

// readLine returns the next line with its line end. The slice is valid until
// the next read. At the end of the stream it returns what is left and io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	r.line = append(r.line[:0], line...)
	for err == bufio.ErrBufferFull {
		line, err = r.br.ReadSlice('\n')
		r.line = append(r.line, line...)
		if len(r.line) > maxLineBytes {
			return nil, ErrLineTooLong
		}
	}
	return r.line, err
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// equalFold compares an ASCII header name with want, ignoring case.
func equalFold(b []byte, want string) bool {
	if len(b) != len(want) {
		return false
	}
	for i := range len(b) {
		c, w := b[i], want[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= w && w <= 'Z' {
			w += 'a' - 'A'
		}
		if c != w {
			return false
		}
	}
	return true
}

// intern returns last when it equals b, else b as a new string.
func intern(last string, b []byte) string {
	if string(b) == last {
		return last
	}
	return string(b)
}

// internLower returns last, which is lower-case, when it equals b but for
// ASCII case, else b lower-cased as a new string.
func internLower(last string, b []byte) string {
	if equalFold(b, last) {
		return last
	}
	return string(bytes.ToLower(b))
}

// unescapeName decodes a From value as AppendPart encodes it: "%XX" with
// two hex digits is the byte XX; any other "%" is kept.
func unescapeName(b []byte) string {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseLength parses a decimal Content-Length, refusing signs, spaces and
// values too large for an int.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
