package bustest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Conn is a raw TCP connection to a server, for byte-exact checks of
// what it writes.
type Conn struct {
	T testing.TB
	net.Conn
	R *bufio.Reader // reads the connection; WithoutIDs replaces it

	head *sessionFilter
}

// Session returns the Msgbus-Session header of the response head, which
// the reader drops so that byte-exact checks need not know the random
// session id; "" until the head was read, or when it had none.
func (c *Conn) Session() string { return c.head.session }

// sessionFilter reads a response and drops the Msgbus-Session line of
// its head.
type sessionFilter struct {
	src     *bufio.Reader
	inHead  bool
	pending []byte
	session string
}

func (f *sessionFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if !f.inHead {
			return f.src.Read(p)
		}
		line, err := f.src.ReadBytes('\n')
		if v, ok := bytes.CutPrefix(line, []byte("Msgbus-Session: ")); ok && bytes.HasSuffix(v, []byte("\r\n")) {
			f.session = string(bytes.TrimSpace(v))
			line = nil
		}
		if string(line) == "\r\n" {
			f.inHead = false
		}
		f.pending = line
		if err != nil {
			if len(line) == 0 {
				return 0, err
			}
			break
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// Dial opens a raw connection to addr and sends request verbatim. It is
// closed at the end of the test.
func Dial(t testing.TB, addr, request string) *Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return NewConn(t, c, c)
}

// NewConn makes a Conn of c, open already, that reads the response from r
// (c itself, or a reader over it).
func NewConn(t testing.TB, c net.Conn, r io.Reader) *Conn {
	head := &sessionFilter{src: bufio.NewReader(r), inHead: true}
	return &Conn{T: t, Conn: c, R: bufio.NewReader(head), head: head}
}

// ReadN reads exactly n bytes within a few seconds.
func (c *Conn) ReadN(n int) string {
	c.T.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.R, b); err != nil {
		c.T.Fatalf("reading %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// Expect reads len(want) bytes and fails unless they are want.
func (c *Conn) Expect(want string) {
	c.T.Helper()
	if got := c.ReadN(len(want)); got != want {
		c.T.Fatalf("stream bytes:\n got %q\nwant %q", got, want)
	}
}

// ReadAll reads until EOF within a few seconds.
func (c *Conn) ReadAll() string {
	c.T.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.R)
	if err != nil {
		c.T.Fatalf("reading to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

// WithoutIDs makes the rest of the stream read as if its parts had no
// Msgbus-Id header (the chunk sizes adjusted), so that byte-exact checks
// of framing need not know the ids, which come from the clock. The ids
// themselves are checked by the tests of PROTOCOL.md §6.
func (c *Conn) WithoutIDs(chunked bool) {
	pr, pw := io.Pipe()
	c.T.Cleanup(func() { pr.Close() }) // the copier's writes fail, it ends with the connection
	src := c.R
	go func() {
		var err error
		for err == nil {
			if chunked {
				err = copyChunkWithoutIDs(pw, src)
			} else {
				var line []byte
				if line, err = src.ReadBytes('\n'); len(line) > 0 && !bytes.HasPrefix(line, []byte("Msgbus-Id: ")) {
					if _, werr := pw.Write(line); werr != nil {
						err = werr
					}
				}
			}
		}
		pw.CloseWithError(err)
	}()
	c.R = bufio.NewReader(pr)
}

// copyChunkWithoutIDs copies one chunk from src to w, dropping its
// Msgbus-Id lines and resizing it.
func copyChunkWithoutIDs(w io.Writer, src *bufio.Reader) error {
	line, err := src.ReadString('\n')
	if err != nil {
		w.Write([]byte(line))
		return err
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(line), 16, 64)
	if perr != nil || n == 0 {
		w.Write([]byte(line)) // not a chunk size (or the last chunk): as is
		return nil
	}
	data := make([]byte, n+2)
	got, err := io.ReadFull(src, data)
	data = data[:got] // a stream cut mid-chunk: what came, resized the same
	if i := bytes.Index(data, []byte("\r\nMsgbus-Id: ")); i >= 0 {
		if j := bytes.Index(data[i+2:], []byte("\r\n")); j >= 0 {
			n -= uint64(j + 2)
			data = append(data[:i+2:i+2], data[i+2+j+2:]...)
		}
	}
	w.Write(append(strconv.AppendUint(nil, n, 16), "\r\n"...))
	if len(data) > 0 {
		if _, werr := w.Write(data); err == nil {
			err = werr
		}
	}
	return err
}
