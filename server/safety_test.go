package server

// Safe defaults (PROTOCOL.md §2, §4, §5): cross-site pages, CORS, request
// framing edge cases, WebSocket UTF-8, connection and log hygiene. Each
// test fails against the server as it was before these defaults.

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"

	"github.com/msgbus/msgbus/server/wire"
)

func TestCrossSitePagesCannotUseTheBusByDefault(t *testing.T) {
	ts := startServer(t, Config{})
	own := "http://" + ts.Addr
	sub := ts.wsConnect(t, "/sub/") // a backend: no Origin

	// Another site's page can neither open a WebSocket nor publish.
	for _, path := range []string{"/sub/", "/sub/x", "/bus/x", "/pub/x", "/pull/x", "/push/x"} {
		_, resp, err := ts.wsTryDial(t, path, originHeader("http://evil.example"))
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("WebSocket %s from another site: %v (%s), want 401", path, err, wsStatus(resp))
		}
	}
	for _, path := range []string{"/msgbus/x", "/pub/x", "/bus/x", "/push/x"} {
		for _, method := range []string{http.MethodPost, http.MethodPut} {
			if method == http.MethodPut && path != "/msgbus/x" {
				continue
			}
			r := ts.wsRequest(t, method, path, originHeader("http://evil.example"), "text/plain", "forged")
			if r.status != http.StatusUnauthorized || strings.TrimSpace(r.body) != "Origin check failed" {
				t.Errorf("%s %s from another site: %d %q, want 401 Origin check failed", method, path, r.status, r.body)
			}
		}
	}
	// A malformed Origin is another site too.
	for _, o := range []string{"null", "file://", "http://user@" + ts.Addr} {
		r := ts.wsRequest(t, http.MethodPost, "/msgbus/x", originHeader(o), "text/plain", "forged")
		if r.status != http.StatusUnauthorized {
			t.Errorf("POST with Origin %q: %d, want 401", o, r.status)
		}
	}

	// The server's own pages, curl and backends go on.
	ts.wsPost(t, "/msgbus/x", "text/plain", "from curl", http.StatusNoContent)
	sub.expectText("from curl")
	if r := ts.wsRequest(t, http.MethodPost, "/msgbus/x", originHeader(own), "text/plain", "from our page"); r.status != http.StatusNoContent {
		t.Fatalf("POST from the server's own origin: %d %q", r.status, r.body)
	}
	sub.expectText("from our page")
	c := ts.wsConnectAs(t, "/sub/x", originHeader(own))
	ts.wsPost(t, "/msgbus/x", "text/plain", "to our page", http.StatusNoContent)
	c.expectText("to our page")
	sub.expectText("to our page")

	// No CORS header: a cross-site page cannot read a stream either.
	raw := ts.dial(t, "GET /msgbus/x HTTP/1.1\r\nHost: "+ts.Addr+"\r\nOrigin: http://evil.example\r\n\r\n")
	raw.expect(string(chunkedHead))
}

func TestAllowedOriginsGetCORSAndPreflight(t *testing.T) {
	const app = "http://app.example:3000"
	ts := startServer(t, Config{AllowOrigins: []string{"app.example"}, Secret: "s3cret"})
	// A preflight carries no credentials: it is answered before auth.
	c := ts.dial(t, "OPTIONS /msgbus/news HTTP/1.1\r\nHost: "+ts.Addr+"\r\nOrigin: "+app+"\r\n"+
		"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type, authorization, idempotency-key\r\n\r\n")
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":   app,
		"Vary":                          "Origin",
		"Access-Control-Allow-Methods":  corsAllowMethods,
		"Access-Control-Allow-Headers":  corsAllowHeaders,
		"Access-Control-Expose-Headers": corsExposeHeaders,
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("preflight: %d, want 204", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("preflight %s: %q, want %q", k, got, v)
		}
	}
	for _, h := range []string{"Content-Type", "Authorization", "Last-Event-ID", "Idempotency-Key"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), h) {
			t.Errorf("preflight does not allow %s", h)
		}
	}
	for _, h := range []string{"Msgbus-Id", "Msgbus-Subscribers"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("%s is not exposed", h)
		}
	}

	// A publish from the page is answered with the same headers.
	hdr := originHeader(app)
	hdr.Set("Authorization", wsBasic("alice", "s3cret").Get("Authorization"))
	r := ts.wsRequest(t, http.MethodPost, "/msgbus/news", hdr, "text/plain", "hi")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Msgbus-Id") || r.header.Get("Vary") != "Origin" {
		t.Errorf("POST from an allowed origin: %d %v", r.status, r.header)
	}

	// Another origin gets neither a preflight nor CORS headers.
	c = ts.dial(t, "OPTIONS /msgbus/news HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n")
	resp, err = http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v, want 401 without CORS", resp.StatusCode, resp.Header)
	}
}

func TestHTTP10PublishWithoutContentLengthIs411(t *testing.T) {
	ts := startServer(t, Config{})
	sub := ts.subscribe(t, "/msgbus/x", true)
	c := ts.dial(t, "POST /msgbus/x HTTP/1.0\r\nContent-Type: text/plain\r\n\r\nlost?")
	c.Conn.Conn.(*net.TCPConn).CloseWrite()
	if got := c.readAll(); !strings.HasPrefix(got, "HTTP/1.0 411 ") && !strings.HasPrefix(got, "HTTP/1.1 411 ") {
		t.Fatalf("HTTP/1.0 POST without Content-Length: %q, want 411", got)
	}
	// With a length it is a message, and the next part is that one.
	c = ts.dial(t, "POST /msgbus/x HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nkept")
	if got := c.readAll(); !strings.Contains(got, " 204 ") {
		t.Fatalf("HTTP/1.0 POST with Content-Length: %q", got)
	}
	sub.expect(chunkOf(part("Content-Type: text/plain\r\n", "kept")))
}

func TestExpectContinueOverTheLimitIs413WithoutContinue(t *testing.T) {
	ts := startServer(t, Config{MaxMessageBytes: 1 << 20})
	c := ts.dial(t, "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
		"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("Expect: 100-continue with 2 MB announced: %d, want 413 at once", resp.StatusCode)
	}
	// Within the limit, the client is told to go on.
	c = ts.dial(t, "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
		"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	c.expect("HTTP/1.1 100 Continue\r\n\r\n")
	c.Write([]byte("ok"))
	if resp, err := http.ReadResponse(c.R, nil); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("after 100 Continue: %v %v", resp, err)
	}
}

func TestInvalidUTF8TextFrameClosesWith1007(t *testing.T) {
	ts := startServer(t, Config{})
	sub := ts.wsConnect(t, "/sub/")
	for _, path := range []string{"/pub/x", "/bus/x", "/push/x", "/sub/x", "/pull/x"} {
		c := ts.wsConnect(t, path)
		c.send(websocket.TextMessage, "bad \xff\xfe text")
		c.expectClose(wire.CloseInvalidPayload)
	}
	// Nothing of it was published, and the bus goes on.
	ts.wsPost(t, "/msgbus/x", "text/plain", "next", http.StatusNoContent)
	sub.expectText("next")
}

func TestUTF8CheckerAgreesWithUTF8ValidWhateverTheSplits(t *testing.T) {
	samples := []string{"", "plain", "héllo wörld", "日本語テキスト", "emoji 🎉🎉", "\xff", "a\xc3", "\xc3\x28",
		"\xe2\x82", "\xf0\x9f\x8e", "\xed\xa0\x80", "ok\xf4\x90\x80\x80", strings.Repeat("é", 100) + "\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range samples {
		for range 50 {
			var v utf8Checker
			rest := []byte(s)
			for len(rest) > 0 {
				n := 1 + rng.IntN(len(rest))
				v.Write(rest[:n])
				rest = rest[n:]
			}
			if got, want := v.valid(), utf8.ValidString(s); got != want {
				t.Fatalf("%q: valid = %v, want %v", s, got, want)
			}
		}
	}
}

func TestFormEncodedMessageReachesWebSocketAsText(t *testing.T) {
	ts := startServer(t, Config{})
	sub := ts.wsConnect(t, "/sub/x")
	ts.wsPost(t, "/msgbus/x", "application/x-www-form-urlencoded", "hello", http.StatusNoContent) // curl -d
	sub.expect(websocket.TextMessage, "hello")
}

func TestConnectionsPastMaxConnectionsAre503(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 3})
	var open []*rawConn
	for range 3 {
		c := ts.dial(t, "GET /msgbus/x HTTP/1.1\r\nHost: x\r\n\r\n")
		c.expect(string(chunkedHead))
		c.withoutIDs(true)
		open = append(open, c)
	}
	extra := ts.dial(t, "")
	if got := extra.readAll(); !strings.HasPrefix(got, "HTTP/1.1 503 ") || !strings.Contains(got, "--max-connections") {
		t.Fatalf("a fourth connection: %q, want 503 naming --max-connections", got)
	}
	// One leaves: a place is free again once the server has seen it go.
	open[0].Close()
	ts.waitSubscribers(t, 2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := ts.dial(t, "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
		got := c.readAll()
		if strings.Contains(got, " 204 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a connection closed: %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	open[1].expect(chunkOf(part("Content-Type: application/octet-stream\r\n", "x")))
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsNameSubscriptionsByTheirPath(t *testing.T) {
	var logs syncBuffer
	ts := startServer(t, Config{MaxQueueBytes: 16 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c, resp, err := ts.wsTryDialWith(t, wsDialSmallBuffer(), "/bus/pf", nil)
	if err != nil {
		t.Fatalf("peer: %v (%s)", err, wsStatus(resp))
	}
	defer c.Close()
	body := strings.Repeat("x", 8<<10)
	deadline := time.Now().Add(10 * time.Second)
	for ts.Stats().SlowDisconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the peer that never reads was not disconnected")
		}
		ts.wsPost(t, "/bus/pf", "text/plain", body, http.StatusNoContent)
	}
	got := logs.String()
	if !strings.Contains(got, `channel=/bus/pf`) || strings.Contains(got, "\\x00") {
		t.Fatalf("log does not name /bus/pf plainly:\n%s", got)
	}
}

var _ net.Conn = (*countedConn)(nil)

func TestFilterListsOverTheLimitsAre400(t *testing.T) {
	ts := startServer(t, Config{})
	many := strings.TrimSuffix(strings.Repeat("*?x,", 33), ",")
	long := strings.Repeat("a", 129)
	for _, q := range []string{"type=" + many, "sender=" + many, "type=" + long, "sender=" + long} {
		for _, path := range []string{"/msgbus/x?", "/msgbus/?"} {
			r := ts.wsRequest(t, http.MethodGet, path+q, nil, "", "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "?") {
				t.Errorf("GET %s%.20s…: %d %q, want 400 naming the limit", path, q, r.status, r.body)
			}
		}
		for _, path := range []string{"/sub/x?", "/bus/x?"} {
			_, resp, err := ts.wsTryDial(t, path+q, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("WebSocket %s%.20s…: %v (%s), want 400", path, q, err, wsStatus(resp))
			}
		}
	}
	// At the limits, a subscription is made.
	atLimit := strings.TrimSuffix(strings.Repeat(strings.Repeat("?", 127)+"*,", 32), ",")
	c := ts.dial(t, "GET /msgbus/x?type="+atLimit+" HTTP/1.1\r\nHost: x\r\n\r\n")
	c.expect(string(chunkedHead))
}

func TestWebSocketFrameCutMidwayIsNotPublished(t *testing.T) {
	ts := startServer(t, Config{})
	for _, tc := range []struct{ send, watch string }{{"/pub/t", "/sub/t"}, {"/bus/t", "/bus/t"}, {"/push/t", "/pull/t"}} {
		watcher := ts.wsConnect(t, tc.watch)
		c := ts.dial(t, "GET "+tc.send+" HTTP/1.1\r\nHost: "+ts.Addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		if resp, err := http.ReadResponse(c.R, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: handshake %v %v", tc.send, resp, err)
		}
		// A masked binary frame announcing 100 bytes, of which 10 arrive.
		frame := append([]byte{0x82, 0x80 | 100, 0, 0, 0, 0}, bytes.Repeat([]byte("A"), 10)...)
		c.Write(frame)
		c.Close()
		ts.wsPost(t, tc.send, "text/plain", "after", http.StatusNoContent)
		watcher.expectText("after") // the first it gets: nothing cut was published
		watcher.hangUp()
	}
}

func TestSameOriginNeedsAHostThatNamesThisMachine(t *testing.T) {
	ts := startServer(t, Config{})
	_, port, _ := net.SplitHostPort(ts.Addr)
	cases := []struct {
		host, origin string
		want         int
	}{
		// DNS rebinding: the attacker's name now resolves to 127.0.0.1,
		// and its page sends that name as Host and Origin alike.
		{"rebind.attacker.example:" + port, "http://rebind.attacker.example:" + port, http.StatusUnauthorized},
		{"localhost:" + port, "http://localhost:" + port, http.StatusNoContent},
		{"app.localhost:" + port, "http://app.localhost:" + port, http.StatusNoContent},
		{"127.0.0.1:" + port, "http://127.0.0.1:" + port, http.StatusNoContent},
		{"[::1]:" + port, "http://[::1]:" + port, http.StatusNoContent},
		// Behind a proxy that speaks TLS: no port in Host, https's in Origin.
		{"localhost", "https://localhost", http.StatusNoContent},
		{"localhost", "https://localhost:8443", http.StatusUnauthorized},
		{"localhost:" + port, "http://localhost:1" + port, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		c := ts.dial(t, "POST /msgbus/x HTTP/1.1\r\nHost: "+tc.host+"\r\nOrigin: "+tc.origin+"\r\n"+
			"Content-Length: 1\r\nConnection: close\r\n\r\nx")
		resp, err := http.ReadResponse(c.R, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("Host %s, Origin %s: %d, want %d", tc.host, tc.origin, resp.StatusCode, tc.want)
		}
	}
}

func TestErrorsReachAnAllowedPageWithCORS(t *testing.T) {
	const app = "http://app.example"
	ts := startServer(t, Config{AllowOrigins: []string{"app.example"}, MaxMessageBytes: 10, MaxSubscribers: 1})
	for _, tc := range []struct {
		name, request string
		want          int
	}{
		{"413", "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nOrigin: " + app + "\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100), 413},
		{"413 to Expect", "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nOrigin: " + app + "\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n", 413},
		{"400", "GET /msgbus/a%00 HTTP/1.1\r\nHost: x\r\nOrigin: " + app + "\r\n\r\n", 400},
	} {
		c := ts.dial(t, tc.request)
		resp, err := http.ReadResponse(c.R, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want || resp.Header.Get("Access-Control-Allow-Origin") != app {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q", tc.name, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// A stream refused at --max-subscribers, on its hijacked socket.
	first := ts.dial(t, "GET /msgbus/x HTTP/1.1\r\nHost: x\r\n\r\n")
	first.expect(string(chunkedHead))
	ts.waitSubscribers(t, 1)
	c := ts.dial(t, "GET /msgbus/x HTTP/1.1\r\nHost: x\r\nOrigin: "+app+"\r\n\r\n")
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("refused stream: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
