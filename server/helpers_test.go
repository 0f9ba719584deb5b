package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/wire"
)

// testServer is a real Server on 127.0.0.1:0.
type testServer struct {
	*Server
	Addr string // host:port
	done chan error
}

// startServer starts a Server with cfg and shuts it down at the end of the
// test, checking that Serve returned.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, Addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (idempotent) and waits for Serve to return.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	if ts.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case <-ts.done:
	case <-time.After(5 * time.Second):
		t.Errorf("Serve did not return after Shutdown")
	}
	ts.done = nil
}

// URL returns the server's http URL for path.
func (ts *testServer) URL(path string) string { return "http://" + ts.Addr + path }

// rawConn is a raw TCP connection to the server for byte-exact checks.
type rawConn struct {
	t testing.TB
	net.Conn
	r *bufio.Reader
}

// dial opens a raw connection and sends request verbatim.
func (ts *testServer) dial(t testing.TB, request string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

// readN reads exactly n bytes within a few seconds.
func (c *rawConn) readN(n int) string {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("reading %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// expect reads len(want) bytes and fails unless they are want.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	if got := c.readN(len(want)); got != want {
		c.t.Fatalf("stream bytes:\n got %q\nwant %q", got, want)
	}
}

// readAll reads until EOF within a few seconds.
func (c *rawConn) readAll() string {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("reading to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

// subscribe opens a raw HTTP/1.1 (or 1.0) stream on path and reads the
// response head, failing unless it is the multipart head.
func (ts *testServer) subscribe(t testing.TB, path string, http11 bool) *rawConn {
	t.Helper()
	if http11 {
		c := ts.dial(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		c.expect(string(chunkedHead))
		c.withoutIDs(true)
		return c
	}
	c := ts.dial(t, "GET "+path+" HTTP/1.0\r\n\r\n")
	c.expect(string(plainHead))
	c.withoutIDs(false)
	return c
}

// withoutIDs makes the rest of the stream read as if its parts had no
// Msgbus-Id header (the chunk sizes adjusted), so that byte-exact checks
// of framing need not know the ids, which come from the clock. The ids
// themselves are checked by the tests of PROTOCOL.md §6.
func (c *rawConn) withoutIDs(chunked bool) {
	pr, pw := io.Pipe()
	c.t.Cleanup(func() { pr.Close() }) // the copier's writes fail, it ends with the connection
	src := c.r
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
	c.r = bufio.NewReader(pr)
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

// publish POSTs body to path with contentType ("" sends none) and returns
// the response, failing on a transport error.
func (ts *testServer) publish(t testing.TB, path, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// waitSubscribers waits until the hub has n subscribers.
func (ts *testServer) waitSubscribers(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ts.Stats().Subscribers != n {
		if time.Now().After(deadline) {
			t.Fatalf("subscribers = %d, want %d", ts.Stats().Subscribers, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// part is the close-delimited bytes of one part.
func part(headers, body string) string {
	return "--00MsgBus00\r\n" + headers + "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body + "\r\n"
}

// chunkOf frames p as one HTTP/1.1 chunk.
func chunkOf(p string) string { return strconv.FormatInt(int64(len(p)), 16) + "\r\n" + p + "\r\n" }

// The response heads of a multipart stream, HTTP/1.1 and 1.0.
var (
	_, chunkedHead = wire.Multipart(true)
	_, plainHead   = wire.Multipart(false)
)

func itoa(n int) string { return strconv.Itoa(n) }

// smallReceiveBuffer is a net.Dialer Control that gives the socket a small
// receive buffer before it connects, so the kernel's window stays small and
// a client that does not read fills up soon.
func smallReceiveBuffer(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}
