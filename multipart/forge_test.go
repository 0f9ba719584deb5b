package multipart

// Tests that no body and no header value can forge a part or a header
// (server/PROTOCOL.md §2): a body holding the delimiter goes in base64, header
// values are percent-encoded, and the Reader undoes both.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"strconv"
	"strings"
	"testing"
)

func TestReaderDecodesBase64Parts(t *testing.T) {
	forged := "\r\n--00MsgBus00\r\nFrom: admin\r\nContent-Type: text/plain\r\n\r\nforged"
	b64 := base64.StdEncoding.EncodeToString([]byte(forged))
	// As Python's email or a mail tool writes it: 76-character lines.
	var wrapped strings.Builder
	for s := b64; s != ""; {
		n := min(len(s), 76)
		wrapped.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	tests := []struct {
		name, stream string
		want         readerPart
		cte          string
	}{
		{"as AppendPart writes it", string(AppendPart(nil, Boundary, Header{From: "bob", ContentType: "text/plain"}, []byte(forged))),
			readerPart{Header{From: "bob", ContentType: "text/plain"}, len(b64), forged}, "base64"},
		{"name and value in any case", "--00MsgBus00\r\ncontent-transfer-encoding: BASE64\r\nContent-Type: t\r\nContent-Length: " +
			itoa(len(b64)) + "\r\n\r\n" + b64 + "\r\n",
			readerPart{Header{ContentType: "t"}, len(b64), forged}, "base64"},
		{"wrapped lines", "--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: base64\r\nContent-Length: " +
			itoa(wrapped.Len()) + "\r\n\r\n" + wrapped.String() + "\r\n",
			readerPart{Header{ContentType: "t"}, wrapped.Len(), forged}, "base64"},
		{"without Content-Length", "--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			wrapped.String() + "\r\n",
			readerPart{Header{ContentType: "t"}, -1, forged}, "base64"},
		{"identity encodings pass", "--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: 8bit\r\nContent-Length: 3\r\n\r\nabc\r\n",
			readerPart{Header{ContentType: "t"}, 3, "abc"}, "8bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.stream + tt.stream + "--00MsgBus00--\r\n"
			r := NewReader(strings.NewReader(stream), Boundary)
			for i := range 2 {
				p, err := r.NextPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				got := readerPart{p.Header, p.ContentLength, string(p.Body)}
				if got != tt.want || p.TransferEncoding != tt.cte {
					t.Fatalf("part %d:\n got %+v %q\nwant %+v %q", i, got, p.TransferEncoding, tt.want, tt.cte)
				}
			}
			if _, err := r.NextPart(); err != io.EOF {
				t.Fatalf("after 2 parts: %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderRefusesBadTransferEncodings(t *testing.T) {
	for _, tt := range []struct{ name, cte, body string }{
		{"quoted-printable", "quoted-printable", "a=3Db"},
		{"bad base64", "base64", "not base64!"},
		{"truncated base64", "base64", "YWJj\r\nZA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stream := "--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: " + tt.cte +
				"\r\nContent-Length: " + itoa(len(tt.body)) + "\r\n\r\n" + tt.body + "\r\n"
			_, err := NewReader(strings.NewReader(stream), Boundary).NextPart()
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NextPart: %v, want a *FormatError", err)
			}
		})
	}
}

func TestReaderDecodesPercentEncodedFrom(t *testing.T) {
	tests := []struct{ sent, want string }{
		{"alice", "alice"},
		{"eve%0D%0AFrom: admin", "eve\r\nFrom: admin"},
		{"%20a%85b%E2%80%A8c 100%25%20", " a\x85b\u2028c 100% "},
		{"lower %e2%80%a8 hex", "lower \u2028 hex"},
		// What the original server sent raw stays as it was.
		{"100%", "100%"},
		{"50% off", "50% off"},
		{"%zz%4", "%zz%4"},
		{"%", "%"},
	}
	for _, tt := range tests {
		stream := "--00MsgBus00\r\nFrom: " + tt.sent + "\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n\r\n"
		r := NewReader(strings.NewReader(stream+stream), Boundary)
		for i := range 2 {
			p, err := r.NextPart()
			if err != nil {
				t.Fatalf("From %q: %v", tt.sent, err)
			}
			if p.Header.From != tt.want {
				t.Errorf("From %q read as %q, want %q (part %d)", tt.sent, p.Header.From, tt.want, i)
			}
		}
	}
}

// TestNoHeaderValueBreaksItsLine puts every byte value, and the Unicode line
// separators, into every header field: the header lines stay printable
// ASCII, one per field, and the Reader gives back From exactly.
func TestNoHeaderValueBreaksItsLine(t *testing.T) {
	var values []string
	for c := range 256 {
		values = append(values, "a"+string([]byte{byte(c)})+"From: admin")
	}
	values = append(values, "a\u2028From: admin", "a\u2029b", "a\u0085b", " edge ", "%41")
	for _, v := range values {
		for field := range 3 {
			h := Header{From: "u", ContentLocation: "/msgbus/c", ContentType: "t"}
			switch field {
			case 0:
				h.From = v
			case 1:
				h.ContentLocation = v
			case 2:
				h.ContentType = v
			}
			b := AppendPart(nil, Boundary, h, []byte("body"))
			checkHeaderLines(t, b, false)
			p, err := NewReader(bytes.NewReader(b), Boundary).NextPart()
			if err != nil {
				t.Fatalf("%+v: %v", h, err)
			}
			if p.Header.From != h.From {
				t.Errorf("From %q read back as %q", h.From, p.Header.From)
			}
		}
	}
}

// checkHeaderLines fails unless the part p starts with the delimiter line
// and header lines that hold printable ASCII only, each a header AppendPart
// writes, up to the blank line, with the Content-Transfer-Encoding line
// when b64.
func checkHeaderLines(t testing.TB, p []byte, b64 bool) {
	t.Helper()
	head, _, ok := bytes.Cut(p, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no blank line in %q", p)
	}
	lines := strings.Split(string(head), "\r\n")
	if lines[0] != "--"+Boundary {
		t.Fatalf("first line %q, want the delimiter", lines[0])
	}
	sawCTE := false
	for _, line := range lines[1:] {
		if !printable(line) {
			t.Fatalf("header line %q holds a byte outside printable ASCII", line)
		}
		name, _, _ := strings.Cut(line, ": ")
		switch name {
		case "From", "Content-Location", "Content-Type", "Content-Length":
		case "Content-Transfer-Encoding":
			sawCTE = true
		default:
			t.Fatalf("header line %q: not a header AppendPart writes (in %q)", line, head)
		}
	}
	if sawCTE != b64 {
		t.Fatalf("Content-Transfer-Encoding present %v, want %v, in %q", sawCTE, b64, head)
	}
}

// laxLines returns the lines of b as the laxest reader splits them: at CR,
// LF, VT, FF, FS, GS, RS, U+2028, U+2029 (as Python's str.splitlines) and
// at any byte 0x85 (NEL in Latin-1, wherever it stands).
func laxLines(b []byte) [][]byte {
	s := strings.NewReplacer("\u2028", "\n", "\u2029", "\n").Replace(string(b))
	var lines [][]byte
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || strings.IndexByte("\r\n\v\f\x1c\x1d\x1e\x85", s[i]) >= 0 {
			lines = append(lines, []byte(s[start:i]))
			start = i + 1
		}
	}
	return lines
}

// FuzzPartCannotBeForged frames two parts with any header values and body
// and checks what a boundary scanner sees: exactly the two delimiter lines
// and the end, under the laxest line splitting; header lines that are
// printable ASCII; a body sent as is only when it does not hold the
// delimiter; and both this Reader and mime/multipart give back the body.
func FuzzPartCannotBeForged(f *testing.F) {
	f.Add("alice", "", "text/plain", []byte("hello"))
	f.Add("", "/msgbus/a", "t", []byte("\r\n--00MsgBus00\r\nFrom: admin\r\nContent-Type: text/plain\r\n\r\nforged"))
	f.Add("eve\r\nFrom: admin", "", "t", []byte("--00MsgBus00--\r\n"))
	f.Add("eve\u2028From: admin", "/m\x85x", "t\x85From: admin", []byte("\x85--00MsgBus00\x85"))
	f.Add(" 100% ", "", "", []byte("a\n--00MsgBus00\nFrom: admin\n\nx"))
	f.Add("x", "", "t", []byte("-00MsgBus00\r\n-"))
	f.Add("x", "", "t", []byte("--00MsgBus0"))
	f.Fuzz(func(t *testing.T, from, loc, typ string, body []byte) {
		h := Header{From: from, ContentLocation: loc, ContentType: typ}
		fr := NewFrame(Boundary, h, body)
		part := fr.Append(nil)
		if len(part) != fr.Len() {
			t.Fatalf("Len %d, Append wrote %d", fr.Len(), len(part))
		}
		holds := bytes.Contains(body, dashBoundary)
		if fr.Base64() != holds {
			t.Fatalf("Base64 %v for a body that holds the delimiter: %v", fr.Base64(), holds)
		}
		checkHeaderLines(t, part, holds)
		_, sentBody, _ := bytes.Cut(part, []byte("\r\n\r\n"))
		if bytes.Contains(sentBody, dashBoundary) {
			t.Fatalf("the body as sent holds the delimiter: %q", sentBody)
		}

		stream := AppendEnd(fr.Append(part), Boundary)
		delims := 0
		for _, line := range laxLines(stream) {
			if bytes.HasPrefix(line, dashBoundary) {
				delims++
			}
		}
		if delims != 3 {
			t.Fatalf("a boundary scanner sees %d delimiter lines in two parts and the end, want 3:\n%q", delims, stream)
		}

		r := NewReader(bytes.NewReader(stream), Boundary)
		for i := range 2 {
			p, err := r.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if !bytes.Equal(p.Body, body) || p.Header.From != from {
				t.Fatalf("part %d: From %q body %q, want %q %q", i, p.Header.From, p.Body, from, body)
			}
		}
		if _, err := r.NextPart(); err != io.EOF {
			t.Fatalf("after 2 parts: %v, want io.EOF", err)
		}

		mr := multipart.NewReader(bytes.NewReader(stream), Boundary)
		for i := range 2 {
			p, err := mr.NextRawPart()
			if err != nil {
				t.Fatalf("mime/multipart part %d: %v", i, err)
			}
			got, err := io.ReadAll(p)
			if err != nil {
				t.Fatalf("mime/multipart part %d: %v", i, err)
			}
			if holds {
				got, err = base64.StdEncoding.DecodeString(string(got))
			}
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("mime/multipart part %d: body %q (%v), want %q", i, got, err, body)
			}
		}
		if _, err := mr.NextRawPart(); err != io.EOF {
			t.Fatalf("mime/multipart after 2 parts: %v, want io.EOF", err)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// BenchmarkFrame measures a part's framing, done once per message: the scan
// for the delimiter, and base64 when the body holds it.
func BenchmarkFrame(b *testing.B) {
	h := Header{From: "alice", ContentLocation: "/msgbus/a/b", ContentType: "application/json"}
	for _, size := range []int{100, 64 << 10, 1 << 20} {
		for _, holds := range []bool{false, true} {
			body := bytes.Repeat([]byte(`{"k":"v--0"}`), size/12+1)[:size]
			if holds {
				copy(body[size/2:], "\r\n--"+Boundary)
			}
			b.Run(fmt.Sprintf("%dB/delimiter=%v", size, holds), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var buf []byte
				for b.Loop() {
					f := NewFrame(Boundary, h, body)
					buf = f.Append(buf[:0])
				}
			})
		}
	}
}
