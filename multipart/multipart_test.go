package multipart

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestAppendPartWritesExactBytes(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		body string
		want string
	}{
		{"type only", Header{ContentType: "text/plain"}, "hi",
			"--00MsgBus00\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi\r\n"},
		{"empty body", Header{ContentType: "application/octet-stream"}, "",
			"--00MsgBus00\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\n\r\n\r\n"},
		{"from", Header{From: "alice", ContentType: "text/plain"}, "x",
			"--00MsgBus00\r\nFrom: alice\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx\r\n"},
		{"location", Header{ContentLocation: "/msgbus/a/b", ContentType: "image/png"}, "png",
			"--00MsgBus00\r\nContent-Location: /msgbus/a/b\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\npng\r\n"},
		{"all", Header{From: "bob", ContentLocation: "/msgbus/x", ContentType: "text/html; charset=utf-8"}, "<p>\r\n--00MsgBus0",
			"--00MsgBus00\r\nFrom: bob\r\nContent-Location: /msgbus/x\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Content-Length: 16\r\n\r\n<p>\r\n--00MsgBus0\r\n"},
		{"empty type is still written", Header{}, "",
			"--00MsgBus00\r\nContent-Type: \r\nContent-Length: 0\r\n\r\n\r\n"},

		// A body that holds the delimiter anywhere goes in base64.
		{"forged part after CRLF", Header{From: "bob", ContentType: "text/plain"}, "<p>\r\n--00MsgBus00\r\nFrom: admin",
			"--00MsgBus00\r\nFrom: bob\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n" +
				"Content-Length: 40\r\n\r\nPHA+DQotLTAwTXNnQnVzMDANCkZyb206IGFkbWlu\r\n"},
		{"delimiter at the start", Header{ContentType: "t"}, "--00MsgBus00",
			"--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: base64\r\nContent-Length: 16\r\n\r\n" +
				"LS0wME1zZ0J1czAw\r\n"},
		{"delimiter inside a line", Header{ContentType: "t"}, "a--00MsgBus00--b",
			"--00MsgBus00\r\nContent-Type: t\r\nContent-Transfer-Encoding: base64\r\nContent-Length: 24\r\n\r\n" +
				"YS0tMDBNc2dCdXMwMC0tYg==\r\n"},
		{"boundary without its dashes stays", Header{ContentType: "t"}, "-00MsgBus00 00MsgBus00",
			"--00MsgBus00\r\nContent-Type: t\r\nContent-Length: 22\r\n\r\n-00MsgBus00 00MsgBus00\r\n"},

		// No header value can break its line.
		{"from percent-encoded", Header{From: "eve\r\nFrom: admin", ContentType: "t"}, "",
			"--00MsgBus00\r\nFrom: eve%0D%0AFrom: admin\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n\r\n"},
		{"from NEL, U+2028, % and edge spaces", Header{From: " a\x85b\u2028c 100% ", ContentType: "t"}, "",
			"--00MsgBus00\r\nFrom: %20a%85b%E2%80%A8c 100%25%20\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n\r\n"},
		{"invalid type escaped, not sent raw", Header{ContentType: "t\r\nFrom: admin\t%"}, "",
			"--00MsgBus00\r\nContent-Type: t%0D%0AFrom: admin%09%\r\nContent-Length: 0\r\n\r\n\r\n"},
		{"invalid location escaped", Header{ContentLocation: "/msgbus/a\nb%20", ContentType: "t"}, "",
			"--00MsgBus00\r\nContent-Location: /msgbus/a%0Ab%20\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendPart(nil, Boundary, tt.h, []byte(tt.body)))
			if got != tt.want {
				t.Fatalf("AppendPart =\n%q\nwant\n%q", got, tt.want)
			}
			prefix := "prefix"
			if got := string(AppendPart([]byte(prefix), Boundary, tt.h, []byte(tt.body))); got != prefix+tt.want {
				t.Fatalf("AppendPart did not append to dst: %q", got)
			}
			f := NewFrame(Boundary, tt.h, []byte(tt.body))
			if n := f.Len(); n != len(tt.want) {
				t.Fatalf("Frame.Len = %d, want %d", n, len(tt.want))
			}
			if got := string(f.Append(nil)); got != tt.want {
				t.Fatalf("Frame.Append =\n%q\nwant\n%q", got, tt.want)
			}
			if wantB64 := strings.Contains(tt.want, "base64"); f.Base64() != wantB64 {
				t.Fatalf("Frame.Base64 = %v, want %v", f.Base64(), wantB64)
			}
			if !f.Base64() {
				if n := PartLen(Boundary, tt.h, len(tt.body)); n != len(tt.want) {
					t.Fatalf("PartLen = %d, want %d", n, len(tt.want))
				}
			}
		})
	}
}

func TestAppendEndWritesClosingDelimiter(t *testing.T) {
	if got := string(AppendEnd([]byte("x"), "b")); got != "x--b--\r\n" {
		t.Fatalf("AppendEnd = %q", got)
	}
}

func TestPartLenIsTheLengthAppendPartWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	bodyLens := []int{0, 1, 9, 10, 99, 100, 999, 1000, 65535, 1 << 20}
	for i := range 2000 {
		h := Header{ContentType: str(40)}
		if rng.IntN(2) == 0 {
			h.From = str(20)
		}
		if rng.IntN(2) == 0 {
			h.ContentLocation = str(60)
		}
		boundary := str(70)
		n := rng.IntN(3000)
		if i < len(bodyLens) {
			n = bodyLens[i]
		}
		body := make([]byte, n)
		if got, want := PartLen(boundary, h, n), len(AppendPart(nil, boundary, h, body)); got != want {
			t.Fatalf("PartLen(%q, %+v, %d) = %d, AppendPart wrote %d", boundary, h, n, got, want)
		}
		// Bodies that may hold the delimiter: Frame.Len knows.
		const alphabet = "-0MsgBus\r\nx"
		for i := range body {
			body[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(4) == 0 && n >= 2+len(boundary) {
			copy(body[rng.IntN(n-1-len(boundary)):], "--"+boundary)
		}
		f := NewFrame(boundary, h, body)
		if got, want := f.Len(), len(f.Append(nil)); got != want {
			t.Fatalf("NewFrame(%q, %+v, %q).Len() = %d, Append wrote %d", boundary, h, body, got, want)
		}
	}
}

func TestCheckBoundaryFollowsRFC2046(t *testing.T) {
	tests := []struct {
		b  string
		ok bool
	}{
		{Boundary, true},
		{"a", true},
		{strings.Repeat("x", 70), true},
		{strings.Repeat("x", 71), false},
		{"", false},
		{"with space inside", true},
		{"trailing space ", false},
		{" ", false},
		{"'()+_,-./:=?", true},
		{"AZaz09", true},
		{"semi;colon", false},
		{"quote\"", false},
		{"at@", false},
		{"cr\r", false},
		{"lf\n", false},
		{"tab\t", false},
		{"nul\x00", false},
		{"ü", false},
		{"star*", false},
	}
	for _, tt := range tests {
		err := CheckBoundary(tt.b)
		if (err == nil) != tt.ok {
			t.Errorf("CheckBoundary(%q) = %v, want ok %v", tt.b, err, tt.ok)
		}
		if err != nil && err != ErrInvalidBoundary {
			t.Errorf("CheckBoundary(%q) = %v, want ErrInvalidBoundary", tt.b, err)
		}
	}
}

func TestHeaderValidWantsPrintableASCIITypeAndLocation(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want bool
	}{
		{"empty", Header{}, true},
		{"plain", Header{From: "alice", ContentLocation: "/msgbus/a", ContentType: "text/plain; charset=utf-8"}, true},
		{"every printable byte", Header{ContentType: printableASCII, ContentLocation: printableASCII}, true},
		{"tab in type", Header{ContentType: "text/plain;\tcharset=utf-8"}, false},
		{"CR in type", Header{ContentType: "text/plain\rX-Evil: 1"}, false},
		{"LF in type", Header{ContentType: "text/plain\nX-Evil: 1"}, false},
		{"UTF-8 in type", Header{ContentType: "text/plain; name=zoë"}, false},
		{"NEL in type", Header{ContentType: "text/plain\x85From: admin"}, false},
		{"DEL in type", Header{ContentType: "a\x7f"}, false},
		{"ESC in type", Header{ContentType: "\x1b[31m"}, false},
		{"LF in location", Header{ContentLocation: "/msgbus/a\n"}, false},
		{"UTF-8 in location", Header{ContentLocation: "/msgbus/zoë"}, false},
		// From may hold anything: AppendPart percent-encodes it.
		{"CRLF in from", Header{From: "a\r\nX-Evil: 1"}, true},
		{"UTF-8 in from", Header{From: "zoë\u2028"}, true},
		{"NUL in from", Header{From: "a\x00"}, true},
	}
	for _, tt := range tests {
		if got := tt.h.Valid(); got != tt.want {
			t.Errorf("%s: %+v.Valid() = %v, want %v", tt.name, tt.h, got, tt.want)
		}
	}
}

// printableASCII holds every byte from 0x20 to 0x7E.
var printableASCII = func() string {
	var b []byte
	for c := byte(0x20); c <= 0x7e; c++ {
		b = append(b, c)
	}
	return string(b)
}()

func TestValidContentTypeIsPrintableASCIIOnly(t *testing.T) {
	for c := range 256 {
		typ := "text/x" + string(rune(0)) + "y"
		typ = typ[:6] + string([]byte{byte(c)}) + typ[7:]
		want := c >= 0x20 && c <= 0x7e
		if got := ValidContentType(typ); got != want {
			t.Errorf("ValidContentType(%q) = %v, want %v", typ, got, want)
		}
	}
	for _, typ := range []string{"", "application/octet-stream", "text/plain; charset=utf-8", "multipart/form-data; boundary=\"a b\""} {
		if !ValidContentType(typ) {
			t.Errorf("ValidContentType(%q) = false, want true", typ)
		}
	}
	for _, typ := range []string{"text/plain\u2028", "text/plain\xc2\x85", "\t", "text/plain\r\n"} {
		if ValidContentType(typ) {
			t.Errorf("ValidContentType(%q) = true, want false", typ)
		}
	}
}

// failWriter fails every write after the first ok ones.
type failWriter struct {
	ok     int
	writes int
	buf    bytes.Buffer
}

var errWrite = errors.New("write failed")

func (w *failWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.ok {
		return 0, errWrite
	}
	return w.buf.Write(p)
}

func TestWriterErrorIsSticky(t *testing.T) {
	fw := &failWriter{ok: 1}
	w := NewWriter(fw)
	h := Header{ContentType: "text/plain"}
	if err := w.WritePart(h, []byte("one")); err != nil {
		t.Fatalf("first WritePart: %v", err)
	}
	if err := w.WritePart(h, []byte("two")); err != errWrite {
		t.Fatalf("second WritePart: %v, want %v", err, errWrite)
	}
	if err := w.WritePart(h, []byte("three")); err != errWrite {
		t.Fatalf("third WritePart: %v, want the sticky %v", err, errWrite)
	}
	if err := w.Close(); err != errWrite {
		t.Fatalf("Close: %v, want the sticky %v", err, errWrite)
	}
	if fw.writes != 2 {
		t.Fatalf("%d writes reached the writer after it failed, want none", fw.writes-2)
	}
	if want := string(AppendPart(nil, Boundary, h, []byte("one"))); fw.buf.String() != want {
		t.Fatalf("wrote %q, want %q", fw.buf.String(), want)
	}
}

func TestWriterWritesPartsAndCloseWritesTheEnd(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if w.Boundary() != Boundary {
		t.Fatalf("Boundary() = %q", w.Boundary())
	}
	h := Header{From: "a", ContentType: "text/plain"}
	if err := w.WritePart(h, []byte("1")); err != nil {
		t.Fatal(err)
	}
	// An invalid header is refused, writes nothing, and does not stick.
	if err := w.WritePart(Header{ContentType: "a\r\nb"}, nil); err != ErrInvalidHeader {
		t.Fatalf("WritePart with CRLF in a header: %v, want ErrInvalidHeader", err)
	}
	if err := w.WritePart(h, []byte("2")); err != nil {
		t.Fatalf("WritePart after a refused header: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := string(AppendEnd(AppendPart(AppendPart(nil, Boundary, h, []byte("1")), Boundary, h, []byte("2")), Boundary))
	if buf.String() != want {
		t.Fatalf("wrote %q, want %q", buf.String(), want)
	}
	n := buf.Len()
	if err := w.WritePart(h, []byte("3")); err == nil {
		t.Fatal("WritePart after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if buf.Len() != n {
		t.Fatalf("wrote %q after Close", buf.String()[n:])
	}
}

func TestSetBoundaryValidatesAndIsUsed(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.SetBoundary("bad;boundary"); err != ErrInvalidBoundary {
		t.Fatalf("SetBoundary(bad): %v", err)
	}
	if w.Boundary() != Boundary {
		t.Fatalf("a refused boundary was kept: %q", w.Boundary())
	}
	if err := w.SetBoundary("other"); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePart(Header{ContentType: "t"}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "--other\r\n") {
		t.Fatalf("part does not use the new boundary: %q", buf.String())
	}
}

// FuzzRoundTrip writes parts with Writer and reads them back with the
// standard library's mime/multipart reader, which ignores Content-Length and
// ends a body at the first "\r\n--00MsgBus00": a boundary scanner. Whatever
// the body holds, it must see exactly the parts written, and the body back
// once it undoes the base64 that a body holding the delimiter is sent in.
// textproto trims spaces and tabs around header values, so the type is
// compared trimmed; From is percent-encoded, edge spaces included, and comes
// back exact.
func FuzzRoundTrip(f *testing.F) {
	f.Add("text/plain", "", []byte("hello"), uint8(1))
	f.Add("text/plain; charset=utf-8", "alice", []byte(""), uint8(3))
	f.Add("application/octet-stream", "bob", []byte("\r\n--00MsgBus0\r\n--\r\n"), uint8(2))
	f.Add("image/png", "zoë", []byte("\x89PNG\r\n\x1a\n\x00"), uint8(0))
	f.Add(" padded ", "\ttab", []byte("x--00MsgBus00--\r\n"), uint8(4))
	f.Add("text/plain", "", []byte("--00MsgBus00--\r\n"), uint8(0))
	f.Add("text/plain", "", []byte("x\r\n--00MsgBus00\r\n"), uint8(1))
	f.Add("text/plain", "eve\r\nFrom: admin", []byte("\r\n--00MsgBus00\r\nFrom: admin\r\n\r\nforged"), uint8(1))
	f.Add("text/plain", " 100% \u2028\x85", []byte("--00MsgBus00"), uint8(2))
	f.Fuzz(func(t *testing.T, contentType, from string, body []byte, n uint8) {
		h := Header{From: from, ContentType: contentType}
		if !h.Valid() || strings.Trim(contentType, " \t") == "" {
			t.Skip()
		}
		parts := int(n%4) + 1
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for i := range parts {
			ph := h
			if i%2 == 1 {
				ph.ContentLocation = "/msgbus/a/b"
			}
			if err := w.WritePart(ph, body); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		encoded := bytes.Contains(body, []byte("--"+Boundary))
		r := multipart.NewReader(&buf, Boundary)
		for i := range parts {
			p, err := r.NextRawPart()
			if err != nil {
				t.Fatalf("part %d of %d: %v\n%q", i, parts, err, buf.String())
			}
			got, err := io.ReadAll(p)
			if err != nil {
				t.Fatalf("part %d body: %v", i, err)
			}
			sentLen := len(got)
			if cte := p.Header.Get("Content-Transfer-Encoding"); cte == "base64" {
				if got, err = base64.StdEncoding.DecodeString(string(got)); err != nil {
					t.Fatalf("part %d: bad base64: %v", i, err)
				}
			} else if cte != "" {
				t.Fatalf("part %d: Content-Transfer-Encoding %q", i, cte)
			} else if encoded {
				t.Fatalf("part %d: a body holding the delimiter was sent as is", i)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("part %d body %q, want %q", i, got, body)
			}
			gotFrom, err := url.PathUnescape(p.Header.Get("From"))
			if err != nil || gotFrom != from {
				t.Fatalf("part %d From %q (%q decoded, %v), want %q", i, p.Header.Get("From"), gotFrom, err, from)
			}
			checks := []struct{ key, want string }{
				{"Content-Type", strings.Trim(contentType, " \t")},
				{"Content-Length", strconv.Itoa(sentLen)},
				{"Content-Location", ""},
			}
			if i%2 == 1 {
				checks[2].want = "/msgbus/a/b"
			}
			for _, c := range checks {
				if got := p.Header.Get(c.key); got != c.want {
					t.Fatalf("part %d %s = %q, want %q", i, c.key, got, c.want)
				}
			}
		}
		if _, err := r.NextRawPart(); err != io.EOF {
			t.Fatalf("after %d parts: %v, want io.EOF", parts, err)
		}
	})
}
