package server

// Tests of PROTOCOL.md §4 (the WebSocket patterns) against a real server
// over loopback, with a real WebSocket client (gorilla/websocket, not the
// fasthttp fork the server upgrades with). Helpers here are prefixed "ws"
// so they cannot collide with other test files of the package.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsTimeout bounds every read a test waits on.
const wsTimeout = 5 * time.Second

// wsClient is one WebSocket connection to the test server.
type wsClient struct {
	t    testing.TB
	path string
	*websocket.Conn
}

// wsTryDial opens a WebSocket on path with the extra request header h
// (nil for none), returning the handshake's response. A connection made is
// closed at the end of the test.
func (ts *testServer) wsTryDial(t testing.TB, path string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return ts.wsTryDialWith(t, &websocket.Dialer{HandshakeTimeout: wsTimeout}, path, h)
}

func (ts *testServer) wsTryDialWith(t testing.TB, d *websocket.Dialer, path string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	c, resp, err := d.Dial("ws://"+ts.Addr+path, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// wsConnect opens a WebSocket on path, failing the test unless the
// handshake succeeds. A receiving pattern is subscribed once it returns.
func (ts *testServer) wsConnect(t testing.TB, path string) *wsClient {
	t.Helper()
	return ts.wsConnectAs(t, path, nil)
}

func (ts *testServer) wsConnectAs(t testing.TB, path string, h http.Header) *wsClient {
	t.Helper()
	c, resp, err := ts.wsTryDial(t, path, h)
	if err != nil {
		t.Fatalf("WebSocket %s: %v (%s)", path, err, wsStatus(resp))
	}
	return &wsClient{t: t, path: path, Conn: c}
}

// wsStatus describes a handshake response for failure messages.
func wsStatus(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("status %d, body %q", resp.StatusCode, b)
}

// wsBody reads a refused handshake's response body.
func wsBody(resp *http.Response) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// wsTypeName names a WebSocket message type in failure messages.
func wsTypeName(typ int) string {
	switch typ {
	case websocket.TextMessage:
		return "text"
	case websocket.BinaryMessage:
		return "binary"
	}
	return fmt.Sprint("type ", typ)
}

// send writes one message of type typ.
func (c *wsClient) send(typ int, body string) {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(wsTimeout))
	if err := c.WriteMessage(typ, []byte(body)); err != nil {
		c.t.Fatalf("%s: sending: %v", c.path, err)
	}
}

// read returns the next message, failing the test after wsTimeout.
func (c *wsClient) read() (int, string) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(wsTimeout))
	typ, b, err := c.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s: reading: %v", c.path, err)
	}
	return typ, string(b)
}

// expect reads the next message and fails unless it is body, of type typ.
func (c *wsClient) expect(typ int, body string) {
	c.t.Helper()
	gotTyp, got := c.read()
	if gotTyp != typ || got != body {
		c.t.Fatalf("%s: got %s %q, want %s %q", c.path, wsTypeName(gotTyp), got, wsTypeName(typ), body)
	}
}

// expectText is expect for a text message.
func (c *wsClient) expectText(body string) {
	c.t.Helper()
	c.expect(websocket.TextMessage, body)
}

// expectClose reads until the connection ends, within wsTimeout, and fails
// unless the server closed it with a close frame of code. Data messages
// before the close are returned.
func (c *wsClient) expectClose(code int) []string {
	c.t.Helper()
	var got []string
	c.SetReadDeadline(time.Now().Add(wsTimeout))
	for range 10000 {
		_, b, err := c.ReadMessage()
		if err == nil {
			got = append(got, string(b))
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("%s: connection ended with %v, want a close frame with code %d (after %q)", c.path, err, code, got)
		}
		if ce.Code != code {
			c.t.Fatalf("%s: close code %d (%q), want %d", c.path, ce.Code, ce.Text, code)
		}
		return got
	}
	c.t.Fatalf("%s: no close after %d messages", c.path, len(got))
	return nil
}

// hangUp ends the connection with the closing handshake: it sends a close
// frame and reads until the server's answer, so every frame sent before
// has been handled by the server when it returns. It fails the test unless
// the server answers with a close frame and no data message.
func (c *wsClient) hangUp() {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(wsTimeout))
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(wsTimeout)); err != nil {
		c.t.Fatalf("%s: sending close: %v", c.path, err)
	}
	if got := c.expectClose(websocket.CloseNormalClosure); len(got) != 0 {
		c.t.Fatalf("%s: got %q before the close answer, want nothing", c.path, got)
	}
	c.Close()
}

// wsPublishSync sends one message on a fresh /pub/ or /push/ connection
// and hangs up, so the message is published when it returns.
func (ts *testServer) wsPublishSync(t testing.TB, path string, typ int, body string) {
	t.Helper()
	c := ts.wsConnect(t, path)
	c.send(typ, body)
	c.hangUp()
}

// wsReply is an HTTP answer with its body read.
type wsReply struct {
	status int
	header http.Header
	body   string
}

// wsRequest sends one HTTP request with header h (nil for none).
func (ts *testServer) wsRequest(t testing.TB, method, path string, h http.Header, contentType, body string) wsReply {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return wsReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// wsPost POSTs body and fails unless the answer is want.
func (ts *testServer) wsPost(t testing.TB, path, contentType, body string, want int) wsReply {
	t.Helper()
	r := ts.wsRequest(t, http.MethodPost, path, nil, contentType, body)
	if r.status != want {
		t.Fatalf("POST %s: status %d (%q), want %d", path, r.status, r.body, want)
	}
	return r
}

// wsBasic is an Authorization header for HTTP Basic auth.
func wsBasic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// wsAllBytes is every byte value, twice, in both directions.
func wsAllBytes() string {
	b := make([]byte, 0, 512)
	for i := range 256 {
		b = append(b, byte(i))
	}
	for i := range 256 {
		b = append(b, byte(255-i))
	}
	return string(b)
}

// --- Bus ---------------------------------------------------------------

func TestBusPeerMessageReachesEveryOtherPeerButNotTheSender(t *testing.T) {
	ts := startServer(t, Config{})
	a := ts.wsConnect(t, "/bus/t")
	b := ts.wsConnect(t, "/bus/t")
	c := ts.wsConnect(t, "/bus/t")
	echo := ts.wsConnect(t, "/bus/t?echo=1")
	stranger := ts.wsConnect(t, "/bus/other")

	a.send(websocket.TextMessage, "from a")
	for _, p := range []*wsClient{b, c, echo} {
		p.expectText("from a")
	}
	echo.send(websocket.BinaryMessage, "from echo\x00\xff")
	for _, p := range []*wsClient{a, b, c, echo} {
		p.expect(websocket.BinaryMessage, "from echo\x00\xff")
	}

	// The marker reaches all four: for a, it comes right after the echo
	// peer's message, so a never got its own.
	r := ts.wsPost(t, "/bus/t", "text/plain", "marker", http.StatusNoContent)
	if got := r.header.Get("Msgbus-Subscribers"); got != "4" {
		t.Errorf("POST /bus/t reached %q peers, want 4", got)
	}
	for _, p := range []*wsClient{a, b, c, echo} {
		p.expectText("marker")
	}
	// The stranger's first message is its own topic's marker.
	ts.wsPost(t, "/bus/other", "text/plain", "other marker", http.StatusNoContent)
	stranger.expectText("other marker")
}

func TestBusTopicsAreASeparateNamespace(t *testing.T) {
	ts := startServer(t, Config{})
	root := ts.subscribe(t, "/msgbus/", true)
	same := ts.subscribe(t, "/msgbus/t", true)
	subRoot := ts.wsConnect(t, "/sub/")
	subT := ts.wsConnect(t, "/sub/t")
	peer := ts.wsConnect(t, "/bus/t")
	sender := ts.wsConnect(t, "/bus/t")

	sender.send(websocket.TextMessage, "bus only")
	peer.expectText("bus only")
	r := ts.wsPost(t, "/bus/t", "text/plain", "posted to bus", http.StatusNoContent)
	if got := r.header.Get("Msgbus-Subscribers"); got != "2" {
		t.Errorf("POST /bus/t reached %q subscribers, want 2 (the bus peers only)", got)
	}
	peer.expectText("posted to bus")

	// Pub/sub's next message is the marker, not a bus message; and the
	// bus peer's next is the bus's, not the marker.
	ts.wsPost(t, "/msgbus/t", "text/plain", "marker", http.StatusNoContent)
	root.expect(chunkOf(part("Content-Location: /msgbus/t\r\nContent-Type: text/plain\r\n", "marker")))
	same.expect(chunkOf(part("Content-Type: text/plain\r\n", "marker")))
	subRoot.expectText("marker")
	subT.expectText("marker")
	ts.wsPost(t, "/bus/t", "text/plain", "bus marker", http.StatusNoContent)
	peer.expectText("bus marker")
	sender.expectText("posted to bus")
	sender.expectText("bus marker")
}

// --- Pub/sub -----------------------------------------------------------

// wsInHierarchy reports whether a subscriber of sub receives what is
// published to ch: ch itself, a descendant, or anything for the root.
func wsInHierarchy(sub, ch string) bool {
	return sub == "" || sub == ch || strings.HasPrefix(ch, sub+"/")
}

func TestPubSubFollowsTheHierarchySegmentWise(t *testing.T) {
	ts := startServer(t, Config{})
	channels := []string{"a/b/c", "a/b", "a", "", "ab", "a/bc", "a/b/c/d", "b"}
	subs := map[string]*wsClient{}
	for _, ch := range channels {
		subs[ch] = ts.wsConnect(t, "/sub/"+ch)
	}
	multi := ts.subscribe(t, "/msgbus/a", true) // pub/sub is the same thing as /msgbus/

	type msg struct{ ch, body string }
	var sent []msg
	pubWS := func(ch, body string) {
		ts.wsPublishSync(t, "/pub/"+ch, websocket.TextMessage, body)
		sent = append(sent, msg{ch, body})
	}
	pubWS("a/b/c", "deep")
	pubWS("a", "top")
	pubWS("ab", "ab")
	pubWS("a/bc", "a/bc")
	ts.wsPost(t, "/pub/a/b", "text/plain", "posted mid", http.StatusNoContent)
	sent = append(sent, msg{"a/b", "posted mid"})
	// Each subscriber's own marker ends what it may receive.
	for i, ch := range channels {
		mch := ch
		if mch == "" {
			mch = "zz"
		}
		ts.wsPost(t, "/msgbus/"+mch, "text/plain", fmt.Sprint("end ", i), http.StatusNoContent)
		sent = append(sent, msg{mch, fmt.Sprint("end ", i)})
	}

	for i, ch := range channels {
		// What it must get up to its own marker, which it reads last.
		var want []string
		for _, m := range sent {
			if wsInHierarchy(ch, m.ch) {
				want = append(want, m.body)
			}
			if m.body == fmt.Sprint("end ", i) {
				break
			}
		}
		var got []string
		for len(got) < len(want) {
			_, body := subs[ch].read()
			got = append(got, body)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("/sub/%s got %q, want %q", ch, got, want)
		}
	}
	for _, m := range sent {
		if wsInHierarchy("a", m.ch) {
			loc := ""
			if m.ch != "a" {
				loc = "Content-Location: /msgbus/" + m.ch + "\r\n"
			}
			ctype := "text/plain"
			if m.ch != "a/b" && !strings.HasPrefix(m.body, "end") {
				ctype = wsTextType
			}
			multi.expect(chunkOf(part(loc+"Content-Type: "+ctype+"\r\n", m.body)))
		}
	}
}

func TestPubSubIgnoresWhatASubscriberSends(t *testing.T) {
	ts := startServer(t, Config{})
	talker := ts.wsConnect(t, "/sub/x")
	other := ts.wsConnect(t, "/sub/x")
	multi := ts.subscribe(t, "/msgbus/x", true)
	pub := ts.wsConnect(t, "/pub/x")

	talker.send(websocket.TextMessage, "junk")
	talker.send(websocket.BinaryMessage, "binary junk")
	talker.hangUp() // the server read both before answering the close, and sent nothing back

	ts.wsPost(t, "/msgbus/x", "text/plain", "marker", http.StatusNoContent)
	other.expectText("marker")
	multi.expect(chunkOf(part("Content-Type: text/plain\r\n", "marker")))

	// A publisher receives nothing: its first message would be the marker.
	pub.hangUp()
}

func TestSubFiltersByTypeAsOnMsgbus(t *testing.T) {
	ts := startServer(t, Config{})
	textOnly := ts.wsConnect(t, "/sub/?type=text/*")
	noImages := ts.wsConnect(t, "/sub/x?type=!image/*,*")
	images := ts.wsConnect(t, "/sub/x?type=image/png")

	ts.wsPost(t, "/msgbus/x", "image/png", "png", http.StatusNoContent)
	ts.wsPost(t, "/msgbus/x", "application/json", "{}", http.StatusNoContent)
	ts.wsPost(t, "/msgbus/x", "text/plain; charset=utf-8", "txt", http.StatusNoContent)

	textOnly.expectText("txt")
	noImages.expectText("{}")
	noImages.expectText("txt")
	images.expect(websocket.BinaryMessage, "png")
	ts.wsPost(t, "/msgbus/x", "image/png", "png 2", http.StatusNoContent)
	images.expect(websocket.BinaryMessage, "png 2")
}

func TestSubFiltersBySenderAsOnMsgbus(t *testing.T) {
	ts := startServer(t, Config{Secret: "s3cret"})
	fromAlice := ts.wsConnectAs(t, "/sub/x?sender=alice", wsBasic("reader", "s3cret"))
	notAlice := ts.wsConnectAs(t, "/sub/?sender=!alice,*", wsBasic("reader", "s3cret"))

	for _, user := range []string{"bob", "alice", "carol"} {
		r := ts.wsRequest(t, http.MethodPost, "/msgbus/x", wsBasic(user, "s3cret"), "text/plain", "by "+user)
		if r.status != http.StatusNoContent {
			t.Fatalf("POST as %s: status %d (%q)", user, r.status, r.body)
		}
	}
	// A WebSocket publisher's user name is its sender too.
	pub := ts.wsConnectAs(t, "/pub/x", wsBasic("alice", "s3cret"))
	pub.send(websocket.TextMessage, "by alice on ws")
	pub.hangUp()

	fromAlice.expectText("by alice")
	fromAlice.expectText("by alice on ws")
	notAlice.expectText("by bob")
	notAlice.expectText("by carol")
}

// --- Bridge ------------------------------------------------------------

func TestHTTPPublishReachesWebSocketSubscriberByteExact(t *testing.T) {
	ts := startServer(t, Config{})
	sub := ts.wsConnect(t, "/sub/x")
	cases := []struct {
		ctype string
		body  string
		want  int
	}{
		{"text/plain", "hello, world", websocket.TextMessage},
		{"text/plain; charset=utf-8", "h\u00e9llo \u2603", websocket.TextMessage},
		{"TEXT/PLAIN", "upper case type", websocket.TextMessage},
		{"text/html", "<b>hi</b>\r\n", websocket.TextMessage},
		{"application/json", `{"a":[1,2]}`, websocket.TextMessage},
		{"application/json; charset=utf-8", `{"b":null}`, websocket.TextMessage},
		{"application/ld+json", `{"@id":"x"}`, websocket.TextMessage},
		{"text/plain", "", websocket.TextMessage},
		{"image/png", wsAllBytes(), websocket.BinaryMessage},
		{"application/octet-stream", "\x00\x01\x02", websocket.BinaryMessage},
		{"application/xml", "<x/>", websocket.BinaryMessage},
		{"", "no type at all", websocket.BinaryMessage},
		{"text/plain", "invalid \xff\xfe utf-8", websocket.BinaryMessage},
		{"application/json", "\xc3\x28", websocket.BinaryMessage},
		{"text/plain", strings.Repeat("long ", 20000), websocket.TextMessage}, // a 64-bit length frame
		{"image/png", strings.Repeat("\x89", 300), websocket.BinaryMessage},   // a 16-bit length frame
	}
	for _, tc := range cases {
		ts.wsPost(t, "/msgbus/x", tc.ctype, tc.body, http.StatusNoContent)
		typ, got := sub.read()
		if typ != tc.want || got != tc.body {
			t.Errorf("POST %q %.40q: got %s %.40q (%d bytes), want %s (%d bytes)",
				tc.ctype, tc.body, wsTypeName(typ), got, len(got), wsTypeName(tc.want), len(tc.body))
		}
	}
}

func TestWebSocketPublishReachesMultipartSubscriberByteExact(t *testing.T) {
	for _, f := range []struct {
		name   string
		http11 bool
	}{{"HTTP/1.1", true}, {"HTTP/1.0", false}} {
		t.Run(f.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			sub := ts.subscribe(t, "/msgbus/x", f.http11)
			root := ts.subscribe(t, "/msgbus/", true)
			pub := ts.wsConnect(t, "/pub/x")
			wire := func(p string) string {
				if f.http11 {
					return chunkOf(p)
				}
				return p
			}
			cases := []struct {
				typ   int
				body  string
				ctype string
			}{
				{websocket.TextMessage, "h\u00e9llo", "text/plain; charset=utf-8"},
				{websocket.TextMessage, "", "text/plain; charset=utf-8"},
				{websocket.BinaryMessage, wsAllBytes(), "application/octet-stream"},
				{websocket.BinaryMessage, "--00MsgBus00\r\n", "application/octet-stream"},
			}
			for _, tc := range cases {
				pub.send(tc.typ, tc.body)
				sub.expect(wire(wirePart("Content-Type: "+tc.ctype+"\r\n", tc.body)))
				root.expect(chunkOf(wirePart("Content-Location: /msgbus/x\r\nContent-Type: "+tc.ctype+"\r\n", tc.body)))
			}
		})
	}
}

// --- Push/pull ---------------------------------------------------------

func TestPushGoesRoundRobinInConnectOrderAsPullersLeaveAndJoin(t *testing.T) {
	ts := startServer(t, Config{})
	a := ts.wsConnect(t, "/pull/t")
	b := ts.wsConnect(t, "/pull/t")
	c := ts.wsConnect(t, "/pull/t")
	pullers := map[string]*wsClient{"A": a, "B": b, "C": c}

	n := 0
	push := func(want string) {
		t.Helper()
		n++
		body := fmt.Sprint("m", n)
		r := ts.wsPost(t, "/push/t", "text/plain", body, http.StatusNoContent)
		if got := r.header.Get("Msgbus-Subscribers"); got != "1" {
			t.Errorf("POST /push/t %s reached %q pullers, want 1", body, got)
		}
		pullers[want].expectText(body)
	}
	for _, p := range []string{"A", "B", "C", "A"} {
		push(p)
	}
	// B's turn is next; B leaves, so C has it.
	b.hangUp()
	delete(pullers, "B")
	ts.waitSubscribers(t, 2)
	for _, p := range []string{"C", "A", "C"} {
		push(p)
	}
	// D joins the end of the rotation.
	pullers["D"] = ts.wsConnect(t, "/pull/t")
	for _, p := range []string{"D", "A", "C", "D"} {
		push(p)
	}
	// A WebSocket pusher takes the same turns.
	pusher := ts.wsConnect(t, "/push/t")
	pusher.send(websocket.BinaryMessage, "ws 1")
	pullers["A"].expect(websocket.BinaryMessage, "ws 1")
	pusher.send(websocket.TextMessage, "ws 2")
	pullers["C"].expectText("ws 2")
	pusher.hangUp()
}

func TestPushLosesNothingWhenPullersLeaveMidRotation(t *testing.T) {
	ts := startServer(t, Config{})
	var pullers []*wsClient
	for range 4 {
		pullers = append(pullers, ts.wsConnect(t, "/pull/t"))
	}
	const perRound = 12
	got := map[string]int{}
	total := 0
	live := pullers
	for round := range 3 {
		for i := range perRound {
			ts.wsPost(t, "/push/t", "text/plain", fmt.Sprintf("r%d-%d", round, i), http.StatusNoContent)
		}
		// Each live puller got an equal share; read them all.
		for _, p := range live {
			for range perRound / len(live) {
				_, body := p.read()
				got[body]++
				total++
			}
		}
		// Then one leaves, and the others share the next round.
		live[0].hangUp()
		live = live[1:]
		ts.waitSubscribers(t, int64(len(live)))
	}
	if total != 3*perRound || len(got) != 3*perRound {
		t.Fatalf("pullers got %d messages, %d distinct, want %d each exactly once: %v", total, len(got), 3*perRound, got)
	}
	for body, k := range got {
		if k != 1 {
			t.Errorf("%s delivered %d times, want once", body, k)
		}
	}
}

func TestPushWithoutPullerWaitsForTheFirstPuller(t *testing.T) {
	ts := startServer(t, Config{})
	r := ts.wsPost(t, "/push/t", "text/plain", "p1", http.StatusNoContent)
	if got := r.header.Get("Msgbus-Subscribers"); got != "0" {
		t.Errorf("POST /push/t without pullers reached %q, want 0", got)
	}
	ts.wsPost(t, "/push/t", "image/png", "p2\x00", http.StatusNoContent)
	ts.wsPublishSync(t, "/push/t", websocket.TextMessage, "p3 from ws")
	ts.wsPublishSync(t, "/push/t", websocket.BinaryMessage, "p4\xff")
	ts.wsPost(t, "/push/t", "application/json", `"p5"`, http.StatusNoContent)

	first := ts.wsConnect(t, "/pull/t")
	second := ts.wsConnect(t, "/pull/t")
	first.expectText("p1")
	first.expect(websocket.BinaryMessage, "p2\x00")
	first.expectText("p3 from ws")
	first.expect(websocket.BinaryMessage, "p4\xff")
	first.expectText(`"p5"`)
	// The backlog is gone: the next two pushes take turns, starting with
	// the first puller (the second's first message is its own turn).
	ts.wsPost(t, "/push/t", "text/plain", "p6", http.StatusNoContent)
	ts.wsPost(t, "/push/t", "text/plain", "p7", http.StatusNoContent)
	first.expectText("p6")
	second.expectText("p7")
}

func TestFullBacklogIs503AndClose1013(t *testing.T) {
	ts := startServer(t, Config{MaxBacklogMessages: 3})
	for i := range 3 {
		ts.wsPost(t, "/push/t", "text/plain", fmt.Sprint("p", i), http.StatusNoContent)
	}
	r := ts.wsPost(t, "/push/t", "text/plain", "one too many", http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", r.header)
	}
	pusher := ts.wsConnect(t, "/push/t")
	pusher.send(websocket.TextMessage, "one too many, on ws")
	pusher.expectClose(1013)

	// What was accepted waits, what was refused is not there.
	puller := ts.wsConnect(t, "/pull/t")
	for i := range 3 {
		puller.expectText(fmt.Sprint("p", i))
	}
	ts.wsPost(t, "/push/t", "text/plain", "after", http.StatusNoContent)
	puller.expectText("after")
	// Other topics have backlogs of their own.
	ts.wsPost(t, "/push/other", "text/plain", "o", http.StatusNoContent)
}

func TestPatternRoutesRefuseWhatTheyDoNotServe(t *testing.T) {
	ts := startServer(t, Config{})
	for _, path := range []string{"/sub/x", "/pull/x", "/sub/", "/pull/", "/bus/", "/pub/", "/push/", "/bus", "/push"} {
		r := ts.wsRequest(t, http.MethodPost, path, nil, "text/plain", "x")
		if r.status != http.StatusNotFound {
			t.Errorf("POST %s: status %d (%q), want 404", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/bus/", "/pub/", "/push/", "/pull/", "/bus", "/pub", "/push", "/pull"} {
		_, resp, err := ts.wsTryDial(t, path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("WebSocket %s: %v (%s), want 404", path, err, wsStatus(resp))
		}
	}
	// The root subscription works, on both spellings.
	for _, path := range []string{"/sub/", "/sub"} {
		root := ts.wsConnect(t, path)
		ts.wsPost(t, "/msgbus/some/where", "text/plain", "to root", http.StatusNoContent)
		root.expectText("to root")
		root.hangUp()
		ts.waitSubscribers(t, 0)
	}
}

func TestPlainGetOnAWebSocketPathIs426(t *testing.T) {
	ts := startServer(t, Config{})
	for _, path := range []string{"/bus/t", "/pub/t", "/sub/t", "/sub/", "/push/t", "/pull/t", "/pub/a/b/c"} {
		r := ts.wsRequest(t, http.MethodGet, path, nil, "", "")
		if r.status != http.StatusUpgradeRequired {
			t.Errorf("GET %s: status %d (%q), want 426", path, r.status, r.body)
		}
		if !strings.EqualFold(r.header.Get("Upgrade"), "websocket") {
			t.Errorf("GET %s: Upgrade %q, want websocket", path, r.header.Get("Upgrade"))
		}
	}
	ts.waitSubscribers(t, 0)
}

// --- Limits ------------------------------------------------------------

func TestWebSocketFrameOverLimitClosesWith1009(t *testing.T) {
	for _, path := range []string{"/pub/x", "/bus/x", "/push/x", "/sub/x", "/pull/x"} {
		t.Run(path, func(t *testing.T) {
			ts := startServer(t, Config{MaxMessageBytes: 1000})
			c := ts.wsConnect(t, path)
			c.send(websocket.BinaryMessage, strings.Repeat("x", 1001))
			c.expectClose(1009)
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		ts := startServer(t, Config{MaxMessageBytes: 1000})
		sub := ts.wsConnect(t, "/sub/x")
		peer := ts.wsConnect(t, "/bus/x")
		pub := ts.wsConnect(t, "/pub/x")
		bus := ts.wsConnect(t, "/bus/x")
		body := strings.Repeat("y", 1000)
		pub.send(websocket.BinaryMessage, body)
		sub.expect(websocket.BinaryMessage, body)
		bus.send(websocket.TextMessage, body)
		peer.expectText(body)
	})
}

// wsDialSmallBuffer is a Dialer whose sockets have a small receive buffer,
// set before connecting, so a client that does not read fills up soon.
func wsDialSmallBuffer() *websocket.Dialer {
	d := net.Dialer{Control: smallReceiveBuffer}
	return &websocket.Dialer{HandshakeTimeout: wsTimeout, NetDial: d.Dial}
}

func TestSlowWebSocketSubscriberIsClosedAndOthersGetEverything(t *testing.T) {
	const n, size, window = 2000, 4 << 10, 8
	ts := startServer(t, Config{MaxQueueBytes: 64 << 10})
	slowConn, resp, err := ts.wsTryDialWith(t, wsDialSmallBuffer(), "/sub/flood", nil)
	if err != nil {
		t.Fatalf("slow subscriber: %v (%s)", err, wsStatus(resp))
	}
	slow := &wsClient{t: t, path: "/sub/flood (slow)", Conn: slowConn}
	fast := ts.wsConnect(t, "/sub/flood")

	body := func(i int) string {
		s := fmt.Sprintf("message %06d ", i)
		return s + strings.Repeat(string(rune('a'+i%26)), size-len(s))
	}
	var received atomic.Int64
	fastDone := make(chan error, 1)
	go func() {
		fast.SetReadDeadline(time.Now().Add(60 * time.Second))
		for i := range n {
			_, b, err := fast.ReadMessage()
			if err != nil {
				fastDone <- fmt.Errorf("message %d: %v", i, err)
				return
			}
			if string(b) != body(i) {
				fastDone <- fmt.Errorf("message %d: got %.30q…, want %.30q…", i, b, body(i))
				return
			}
			received.Add(1)
		}
		fastDone <- nil
	}()
	waitReader := func(i int) {
		deadline := time.Now().Add(wsTimeout)
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
	pub := ts.wsConnect(t, "/pub/flood")
	for i := range n {
		waitReader(i)
		pub.send(websocket.TextMessage, body(i))
	}
	select {
	case err := <-fastDone:
		if err != nil {
			t.Fatalf("reading subscriber: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("reading subscriber got %d of %d messages", received.Load(), n)
	}
	if got := ts.Stats().SlowDisconnects; got != 1 {
		t.Errorf("SlowDisconnects = %d, want 1", got)
	}
	ts.waitSubscribers(t, 1)

	// Drained, the slow subscriber has whole messages in order, then the
	// end of the connection (a 1008 close frame, or the cut).
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		_, b, err := slow.ReadMessage()
		if err == nil {
			if string(b) != body(i) {
				t.Fatalf("slow subscriber's message %d: got %.30q…, want %.30q…", i, b, body(i))
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow subscriber still connected after %d messages", i)
		}
		// 1006 is the client's name for a connection cut without a close
		// frame, which a socket too full for the goodbye gets.
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != 1008 && ce.Code != websocket.CloseAbnormalClosure {
			t.Errorf("slow subscriber closed with %d (%q), want 1008", ce.Code, ce.Text)
		}
		return
	}
	t.Errorf("slow subscriber got all %d messages, want it cut off", n)
}

func TestTooManyWebSocketSubscribersIs503(t *testing.T) {
	ts := startServer(t, Config{MaxSubscribers: 1})
	first := ts.wsConnect(t, "/sub/x")
	for _, path := range []string{"/sub/x", "/sub/", "/pull/x", "/bus/x"} {
		_, resp, err := ts.wsTryDial(t, path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("second subscriber on %s: %v (%s), want 503", path, err, wsStatus(resp))
		}
	}
	ts.wsPost(t, "/msgbus/x", "text/plain", "still served", http.StatusNoContent)
	first.expectText("still served")
	first.hangUp()
	ts.waitSubscribers(t, 0)
	ts.wsConnect(t, "/sub/x") // the slot is free again
}

// --- Closing -----------------------------------------------------------

func TestShutdownClosesWebSocketSubscribersWith1001(t *testing.T) {
	ts := startServer(t, Config{})
	var clients []*wsClient
	for _, path := range []string{"/sub/x", "/sub/", "/bus/t", "/pull/t"} {
		clients = append(clients, ts.wsConnect(t, path))
	}
	ts.wsPost(t, "/msgbus/x", "text/plain", "before", http.StatusNoContent)
	clients[0].expectText("before")
	clients[1].expectText("before")
	ts.stop(t)
	for _, c := range clients {
		if got := c.expectClose(1001); len(got) != 0 {
			t.Errorf("%s: got %q before the close, want nothing", c.path, got)
		}
	}
}

func TestShutdownEndsWebSocketSenders(t *testing.T) {
	ts := startServer(t, Config{})
	var clients []*wsClient
	for _, path := range []string{"/pub/x", "/push/t"} {
		clients = append(clients, ts.wsConnect(t, path))
	}
	ts.stop(t)
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(wsTimeout))
	}
	for _, c := range clients {
		_, _, err := c.ReadMessage()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: still open after shutdown", c.path)
		}
	}
}

func TestPeerCloseIsAnsweredWithAValidCloseFrame(t *testing.T) {
	ts := startServer(t, Config{})
	for _, path := range []string{"/sub/x", "/bus/t", "/pull/t", "/pub/x"} {
		t.Run(path, func(t *testing.T) {
			c := ts.wsConnect(t, path)
			// An empty close frame has no status; the answer must not send
			// 1005 on the wire (RFC 6455 §7.4.1), which a client refuses.
			if err := c.WriteControl(websocket.CloseMessage, nil, time.Now().Add(wsTimeout)); err != nil {
				t.Fatal(err)
			}
			c.expectClose(websocket.CloseNoStatusReceived)
		})
	}
	ts.waitSubscribers(t, 0)
}

// --- Races -------------------------------------------------------------

func TestConnectDisconnectStormDuringPublishAndPush(t *testing.T) {
	ts := startServer(t, Config{})
	const workers, perWorker = 4, 50
	paths := []string{"/sub/storm", "/pull/storm", "/sub/", "/sub/storm/x", "/bus/storm", "/pull/storm"}

	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		defer close(pubErr)
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range []string{"/msgbus/storm/x", "/push/storm", "/bus/storm"} {
				req, _ := http.NewRequest(http.MethodPost, ts.URL(p), strings.NewReader(fmt.Sprint("m", i)))
				req.Header.Set("Content-Type", "text/plain")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					pubErr <- fmt.Errorf("POST %s: %v", p, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok := resp.StatusCode == http.StatusNoContent ||
					(p == "/push/storm" && resp.StatusCode == http.StatusServiceUnavailable)
				if !ok {
					pubErr <- fmt.Errorf("POST %s: status %d", p, resp.StatusCode)
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &websocket.Dialer{HandshakeTimeout: wsTimeout}
			for i := range perWorker {
				path := paths[(w+i)%len(paths)]
				c, resp, err := d.Dial("ws://"+ts.Addr+path, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %v (%s)", path, err, wsStatus(resp))
					continue
				}
				switch i % 3 {
				case 0: // read a little, then drop the connection
					c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
					c.ReadMessage()
					c.Close()
				case 1: // the closing handshake
					c.WriteControl(websocket.CloseMessage,
						websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					c.SetReadDeadline(time.Now().Add(wsTimeout))
					for range 100000 {
						if _, _, err := c.ReadMessage(); err != nil {
							break
						}
					}
					c.Close()
				default: // drop at once
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-pubErr; err != nil {
		t.Error(err)
	}
	ts.waitSubscribers(t, 0)
	if got := ts.Stats().Channels; got != 0 {
		t.Errorf("Channels = %d after everyone left, want 0", got)
	}
	// The server still serves.
	sub := ts.wsConnect(t, "/sub/storm")
	ts.wsPost(t, "/msgbus/storm", "text/plain", "after the storm", http.StatusNoContent)
	sub.expectText("after the storm")
	puller := ts.wsConnect(t, "/pull/storm2")
	ts.wsPost(t, "/push/storm2", "text/plain", "pushed after", http.StatusNoContent)
	puller.expectText("pushed after")
}
