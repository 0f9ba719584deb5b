package server

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/msgbus/msgbus/server/bustest"
	"github.com/msgbus/msgbus/server/wire"
)

// testServer is a real Server on 127.0.0.1:0.
type testServer struct {
	*Server
	*bustest.Running // Addr, URL
}

// startServer starts a Server with cfg and shuts it down at the end of the
// test, checking that Serve returned.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testServer{Server: srv, Running: bustest.Serve(t, srv, "127.0.0.1:0")}
}

// stop shuts the server down (idempotent) and waits for Serve to return.
func (ts *testServer) stop(t testing.TB) { t.Helper(); ts.Running.Stop(t) }

// rawConn is a raw TCP connection to the server for byte-exact checks.
type rawConn struct{ *bustest.Conn }

// dial opens a raw connection and sends request verbatim.
func (ts *testServer) dial(t testing.TB, request string) *rawConn {
	t.Helper()
	return &rawConn{bustest.Dial(t, ts.Addr, request)}
}

func (c *rawConn) expect(want string)      { c.T.Helper(); c.Expect(want) }
func (c *rawConn) readN(n int) string      { c.T.Helper(); return c.ReadN(n) }
func (c *rawConn) readAll() string         { c.T.Helper(); return c.ReadAll() }
func (c *rawConn) withoutIDs(chunked bool) { c.WithoutIDs(chunked) }

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
	bustest.Subscribers(t, func() int64 { return ts.Stats().Subscribers }, n)
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
