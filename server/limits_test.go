package server

// Tests of PROTOCOL.md §5 (limits and bad input) and of the error answers of
// §1 and §2, against a real server over loopback. Helpers here are prefixed
// "lim" so they cannot collide with other test files of the package.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/bustest"
)

// limReply is one answer read off a raw connection.
type limReply struct {
	status int
	header http.Header
	body   string
}

// limRead reads one response to a request of method from c.
func limRead(t *testing.T, c *rawConn, method string) limReply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.R, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return limReply{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// limCheckReason fails unless r has status and a one-line plain-text reason.
func limCheckReason(t *testing.T, r limReply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%q), want %d", r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	line, ok := strings.CutSuffix(r.body, "\n")
	if !ok || line == "" || strings.ContainsAny(line, "\r\n") {
		t.Errorf("body %q, want one non-empty line ending in a newline", r.body)
	}
}

// limExpectClosed fails unless the server closes c (EOF or reset) with
// nothing more to read.
func limExpectClosed(t *testing.T, c *rawConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.R)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open 5s after the answer (read %q)", b)
	}
	if len(b) > 0 {
		t.Errorf("read %q after the answer, want the connection closed", b)
	}
}

// limWatcher is a subscriber connected before the bad requests, to check
// that nothing already accepted is lost and later messages still arrive.
type limWatcher struct {
	ts  *testServer
	sub *rawConn
	n   int
}

func limWatch(t *testing.T, ts *testServer) *limWatcher {
	t.Helper()
	before := ts.Stats().Subscribers
	w := &limWatcher{ts: ts, sub: ts.subscribe(t, "/msgbus/watch", true)}
	ts.waitSubscribers(t, before+1)
	return w
}

// check publishes a fresh message and fails unless the watcher receives
// exactly it next.
func (w *limWatcher) check(t *testing.T) {
	t.Helper()
	w.n++
	body := fmt.Sprintf("still here %d", w.n)
	if resp := w.ts.publish(t, "/msgbus/watch", "text/plain", body); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish after the bad request: status %d, want 204", resp.StatusCode)
	}
	w.sub.expect(chunkOf(part("Content-Type: text/plain\r\n", body)))
}

func TestBadRequestsGetOneLineReasonAndLoseNothing(t *testing.T) {
	long := strings.Repeat("x", 256)
	cases := []struct {
		name    string
		request string
		status  int
		allow   string // the Allow header wanted, "" for none
	}{
		{"empty segment", "GET /msgbus/a//b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"empty segment on publish", "POST /msgbus/a//b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"trailing slash", "GET /msgbus/a/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"trailing slash on publish", "POST /msgbus/a/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"dot segment", "GET /msgbus/. HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"dot-dot segment", "GET /msgbus/.. HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"inner dot-dot segment", "POST /msgbus/a/../b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"encoded dot-dot", "GET /msgbus/%2e%2e HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"encoded dot-dot on publish", "POST /msgbus/a/%2E%2E HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"control character", "GET /msgbus/a%01b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"DEL character", "POST /msgbus/a%7F HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"invalid percent-encoding", "GET /msgbus/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"truncated percent-encoding", "POST /msgbus/a%2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"longer than 255 bytes", "GET /msgbus/" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"invalid UTF-8", "GET /msgbus/%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"publish to the root", "POST /msgbus/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"publish to the bare prefix", "POST /msgbus HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 400, ""},
		{"unknown path", "GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", 404, ""},
		{"site root without a web root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, ""},
		{"publish outside the bus", "POST /news HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 404, ""},
		{"DELETE", "DELETE /msgbus/x HTTP/1.1\r\nHost: x\r\n\r\n", 405, "GET, POST, PUT"},
		{"PATCH", "PATCH /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm", 405, "GET, POST, PUT"},
		{"malformed request line", "NONSENSE\r\n\r\n", 400, ""},
		{"request line without a target", "GET\r\nHost: x\r\n\r\n", 400, ""},
		{"header line without a colon", "GET /msgbus/x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, ""},
		{"bad Content-Length", "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\nm", 400, ""},
		{"publish with a control character in Content-Type", "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/\x01plain\r\nContent-Length: 1\r\n\r\nm", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			w := limWatch(t, ts)
			w.check(t) // accepted before the bad request
			method, _, _ := strings.Cut(tc.request, " ")
			c := ts.dial(t, tc.request)
			r := limRead(t, c, method)
			limCheckReason(t, r, tc.status)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			c.Close()
			if got := ts.Stats().Published; got != 1 {
				t.Errorf("hub published %d messages, want only the watcher's 1", got)
			}
			w.check(t)
		})
	}
}

func TestTooManySubscribersIs503UntilOneLeaves(t *testing.T) {
	ts := startServer(t, Config{MaxSubscribers: 2})
	w := limWatch(t, ts)
	other := ts.subscribe(t, "/msgbus/other", true)
	ts.waitSubscribers(t, 2)

	for _, http11 := range []bool{true, false} {
		req := "GET /msgbus/third HTTP/1.0\r\n\r\n"
		if http11 {
			req = "GET /msgbus/third HTTP/1.1\r\nHost: x\r\n\r\n"
		}
		c := ts.dial(t, req)
		limCheckReason(t, limRead(t, c, "GET"), http.StatusServiceUnavailable)
		c.Close()
	}
	w.check(t)

	other.Close()
	ts.waitSubscribers(t, 1)
	third := ts.subscribe(t, "/msgbus/third", true) // the freed slot
	ts.waitSubscribers(t, 2)
	if resp := ts.publish(t, "/msgbus/third", "text/plain", "hi"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish: status %d, want 204", resp.StatusCode)
	}
	third.expect(chunkOf(part("Content-Type: text/plain\r\n", "hi")))
	w.check(t)
}

func TestMessageOverLimitAnnouncedByContentLengthIs413BeforeTheBody(t *testing.T) {
	const max = 1024
	for _, size := range []int{max + 1, 10 * max, 1 << 30} {
		t.Run(itoa(size), func(t *testing.T) {
			ts := startServer(t, Config{MaxMessageBytes: max})
			w := limWatch(t, ts)
			w.check(t)
			// Only the head: the answer must come without the body.
			c := ts.dial(t, "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
				"Content-Length: "+itoa(size)+"\r\n\r\n")
			r := limRead(t, c, "POST")
			limCheckReason(t, r, http.StatusRequestEntityTooLarge)
			if !strings.Contains(r.body, itoa(max)) {
				t.Errorf("reason %q does not name the limit %d", r.body, max)
			}
			limExpectClosed(t, c)
			w.check(t)
		})
	}
}

func TestMessageAtLimitIsAccepted(t *testing.T) {
	const max = 1024
	ts := startServer(t, Config{MaxMessageBytes: max})
	w := limWatch(t, ts)
	body := strings.Repeat("b", max)
	if resp := ts.publish(t, "/msgbus/watch", "text/plain", body); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish of exactly %d bytes: status %d, want 204", max, resp.StatusCode)
	}
	w.sub.expect(chunkOf(part("Content-Type: text/plain\r\n", body)))
}

func TestChunkedMessageStreamingPastLimitIs413(t *testing.T) {
	const max, size = 1024, 256
	ts := startServer(t, Config{MaxMessageBytes: max})
	w := limWatch(t, ts)
	w.check(t)
	c := ts.dial(t, "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")

	// Read the answer as soon as it comes, while chunks keep going out.
	type answer struct {
		r   limReply
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(c.R, &http.Request{Method: "POST"})
		if err != nil {
			answered <- answer{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{r: limReply{status: resp.StatusCode, header: resp.Header, body: string(body)}, err: err}
	}()
	frame := itoa16(size) + "\r\n" + strings.Repeat("c", size) + "\r\n"
	sent := 0
	var got answer
send:
	for i := 0; ; i++ {
		if i == 64 {
			c.Close()
			<-answered
			t.Fatalf("no answer after %d body bytes (limit %d)", sent, max)
		}
		if _, err := io.WriteString(c, frame); err == nil {
			sent += size
		}
		select {
		case got = <-answered:
			break send
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got.err != nil {
		t.Fatalf("reading the answer after %d body bytes: %v", sent, got.err)
	}
	limCheckReason(t, got.r, http.StatusRequestEntityTooLarge)
	if sent > max+2*size {
		t.Errorf("answered after %d body bytes, want as soon as the chunks pass %d", sent, max)
	}
	limExpectClosed(t, c)
	w.check(t)
}

// itoa16 is n in hex, as a chunk size.
func itoa16(n int) string { return fmt.Sprintf("%x", n) }

func TestOversizedHeaderIs431(t *testing.T) {
	for _, max := range []int{0, 2048} {
		t.Run(itoa(max), func(t *testing.T) {
			ts := startServer(t, Config{MaxHeaderBytes: max})
			w := limWatch(t, ts)
			w.check(t)
			limit := max
			if limit == 0 {
				limit = DefaultMaxHeaderBytes
			}
			c := ts.dial(t, "GET /msgbus/watch HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("h", 2*limit)+"\r\n\r\n")
			limCheckReason(t, limRead(t, c, "GET"), http.StatusRequestHeaderFieldsTooLarge)
			c.Close()
			// A header under the limit still works.
			ok := ts.dial(t, "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nX-Fits: "+strings.Repeat("h", limit/2)+
				"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
			if r := limRead(t, ok, "POST"); r.status != http.StatusNoContent {
				t.Fatalf("publish with a header under the limit: status %d (%q), want 204", r.status, r.body)
			}
			w.sub.expect(chunkOf(part("Content-Type: text/plain\r\n", "ok")))
			w.check(t)
		})
	}
}

// limDialSmallBuffer connects with a small receive buffer, set before the
// handshake so the kernel's window stays small, and sends request.
func limDialSmallBuffer(t *testing.T, addr, request string) *rawConn {
	t.Helper()
	d := net.Dialer{Control: smallReceiveBuffer}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return &rawConn{bustest.NewConn(t, c, newLimReader(c))}
}

func TestSlowSubscriberIsDisconnectedWithoutBlockingPublisherOrOthers(t *testing.T) {
	// window is how far the publisher may run ahead of the reading
	// subscriber: well under the queue's 64 KiB, so that one keeps up
	// however the machine schedules it, while the one that never reads
	// falls behind for good.
	const n, size, window = 2000, 4 << 10, 8
	ts := startServer(t, Config{MaxQueueBytes: 64 << 10})
	slow := limDialSmallBuffer(t, ts.Addr, "GET /msgbus/flood HTTP/1.1\r\nHost: x\r\n\r\n")
	slow.expect(string(chunkedHead))
	slow.withoutIDs(true)
	fast := ts.subscribe(t, "/msgbus/flood", true)
	ts.waitSubscribers(t, 2)

	body := func(i int) string {
		s := fmt.Sprintf("message %06d ", i)
		return s + strings.Repeat(string(rune('a'+i%26)), size-len(s))
	}
	frame := func(i int) string { return chunkOf(part("Content-Type: text/plain\r\n", body(i))) }

	// The reading subscriber checks each frame in order.
	var received atomic.Int64
	fastDone := make(chan error, 1)
	go func() {
		fast.SetReadDeadline(time.Now().Add(60 * time.Second))
		for i := range n {
			want := frame(i)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(fast.R, got); err != nil {
				fastDone <- fmt.Errorf("message %d: %v", i, err)
				return
			}
			if string(got) != want {
				fastDone <- fmt.Errorf("message %d: got %.60q…, want %.60q…", i, got, want)
				return
			}
			received.Add(1)
		}
		fastDone <- nil
	}()
	// waitReader waits until the reading subscriber has message i-window.
	waitReader := func(i int) {
		deadline := time.Now().Add(bustest.Timeout)
		for received.Load() < int64(i-window) {
			select {
			case err := <-fastDone:
				t.Fatalf("reading subscriber after %d publishes: %v", i, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("reading subscriber stuck at %d messages after %d publishes", received.Load(), i)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}

	pub := ts.dial(t, "")
	var slowest time.Duration
	for i := range n {
		waitReader(i)
		start := time.Now()
		b := body(i)
		if _, err := io.WriteString(pub, "POST /msgbus/flood HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
			"Content-Length: "+itoa(len(b))+"\r\n\r\n"+b); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		r := limRead(t, pub, "POST")
		if r.status != http.StatusNoContent {
			t.Fatalf("publish %d: status %d (%q), want 204", i, r.status, r.body)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 2*time.Second {
		t.Errorf("slowest publish took %v, want the publisher never to wait for a slow subscriber", slowest)
	}
	if err := <-fastDone; err != nil {
		t.Fatalf("reading subscriber: %v", err)
	}
	if got := ts.Stats().SlowDisconnects; got != 1 {
		t.Errorf("SlowDisconnects = %d, want 1", got)
	}
	// Disconnected means the server lets go of it now, not once it reads.
	bustest.Until(t, func() string {
		return fmt.Sprintf("subscribers = %d after the slow one overflowed, want 1: the server still holds the slow connection",
			ts.Stats().Subscribers)
	}, func() bool { return ts.Stats().Subscribers == 1 })

	// Drained, the slow subscriber's stream is whole frames in order, cut
	// short by the server's close.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(slow.R)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("slow subscriber still connected after %d bytes", len(got))
	}
	var want bytes.Buffer
	for i := 0; want.Len() < len(got); i++ {
		want.WriteString(frame(i))
	}
	if !bytes.HasPrefix(want.Bytes(), got) {
		t.Errorf("slow subscriber's %d bytes are not a prefix of the published stream", len(got))
	}
	if len(got) >= len(frame(0))*n {
		t.Errorf("slow subscriber got all %d messages, want it cut off", n)
	}
	ts.waitSubscribers(t, 1)
}

func TestSubscriberThatLeavesMidStreamIsUnsubscribed(t *testing.T) {
	for _, http11 := range []bool{true, false} {
		t.Run(fmt.Sprint("HTTP/1.1=", http11), func(t *testing.T) {
			ts := startServer(t, Config{})
			w := limWatch(t, ts)
			leaver := ts.subscribe(t, "/msgbus/watch", http11)
			ts.waitSubscribers(t, 2)
			w.check(t)
			leaver.Close()
			ts.waitSubscribers(t, 1)
			w.check(t)
			if got := ts.Stats().Channels; got != 1 {
				t.Errorf("Channels = %d after the leaver left, want 1", got)
			}
		})
	}
}

func TestHalfSentPublishDeliversNothing(t *testing.T) {
	cases := []struct {
		name    string
		request string
	}{
		{"Content-Length body cut short", "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n" +
			"Content-Length: 100\r\n\r\n0123456789"},
		{"chunked body without its last chunk", "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n" +
			"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"},
		{"chunk cut short", "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n0123456789"},
		{"head cut short", "POST /msgbus/watch HTTP/1.1\r\nHost: x\r\nContent-Len"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			w := limWatch(t, ts)
			c := ts.dial(t, tc.request)
			time.Sleep(20 * time.Millisecond) // let the server read what came
			c.Close()
			time.Sleep(50 * time.Millisecond) // and see the close
			w.check(t)                        // the next part is the next complete publish
			if got := ts.Stats().Published; got != 1 {
				t.Errorf("hub published %d messages, want 1", got)
			}
		})
	}
}

func newLimReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// TestGoneSubscriberWithAFullSocketDoesNotHoldUpShutdown: a client that
// half-closes (counted as gone) while its socket is full must not leave a
// flusher blocked on it, which would hold Shutdown until its deadline.
func TestGoneSubscriberWithAFullSocketDoesNotHoldUpShutdown(t *testing.T) {
	ts := startServer(t, Config{MaxQueueBytes: 8 << 20})
	c := limDialSmallBuffer(t, ts.Addr, "GET /msgbus/full HTTP/1.1\r\nHost: x\r\n\r\n")
	ts.waitSubscribers(t, 1)
	body := strings.Repeat("x", 16<<10)
	for range 200 { // 3 MiB: far more than the socket buffers hold, less than the queue
		ts.publish(t, "/msgbus/full", "text/plain", body)
	}
	c.Conn.Conn.(*net.TCPConn).CloseWrite()
	ts.waitSubscribers(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v: a flusher stayed blocked on the gone client's socket", err)
	}
	ts.stop(t)
}
