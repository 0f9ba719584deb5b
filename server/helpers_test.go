package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
		return c
	}
	c := ts.dial(t, "GET "+path+" HTTP/1.0\r\n\r\n")
	c.expect(string(plainHead))
	return c
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
	for ts.Hub().Stats().Subscribers != n {
		if time.Now().After(deadline) {
			t.Fatalf("subscribers = %d, want %d", ts.Hub().Stats().Subscribers, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// part is the close-delimited bytes of one part.
func part(headers, body string) string {
	return "--00MsgBus00\r\n" + headers + "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body + "\r\n"
}

// chunkOf frames p as one HTTP/1.1 chunk.
func chunkOf(p string) string { return string(chunk([]byte(p), nil)) }

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
