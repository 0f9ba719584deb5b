package server

// Tests of PROTOCOL.md §1 and §2 against a real server over loopback: the
// hierarchy, filters, auth, the publish answer, channel names, and that a
// standard parser reads our stream. Helpers here are prefixed "proto" so
// they cannot collide with other test files of the package.

import (
	"encoding/base64"
	"github.com/msgbus/msgbus/server/message"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// protoFraming is one way a subscriber receives the stream: HTTP/1.1, one
// part per chunk, or HTTP/1.0, bare parts until the connection closes.
type protoFraming struct {
	name   string
	http11 bool
}

var protoFramings = []protoFraming{{"HTTP/1.1", true}, {"HTTP/1.0", false}}

// stream returns parts as this framing puts them on the wire.
func (f protoFraming) stream(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if f.http11 {
			b.WriteString(chunkOf(p))
		} else {
			b.WriteString(p)
		}
	}
	return b.String()
}

// end returns the bytes a clean shutdown ends the stream with.
func (f protoFraming) end() string {
	if f.http11 {
		return chunkOf("--00MsgBus00--\r\n") + "0\r\n\r\n"
	}
	return "--00MsgBus00--\r\n"
}

// protoEachFraming runs one behaviour against both framings.
func protoEachFraming(t *testing.T, fn func(t *testing.T, f protoFraming)) {
	t.Helper()
	for _, f := range protoFramings {
		t.Run(f.name, func(t *testing.T) { fn(t, f) })
	}
}

// protoSubscribeAs opens a raw stream on path with extra request header
// lines (each ending in CRLF) and reads the multipart head.
func protoSubscribeAs(t *testing.T, ts *testServer, path string, http11 bool, headers string) *rawConn {
	t.Helper()
	if http11 {
		c := ts.dial(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+headers+"\r\n")
		c.expect(string(chunkedHead))
		c.withoutIDs(true)
		return c
	}
	c := ts.dial(t, "GET "+path+" HTTP/1.0\r\n"+headers+"\r\n")
	c.expect(string(plainHead))
	c.withoutIDs(false)
	return c
}

// protoBasic is an Authorization header line for HTTP Basic auth.
func protoBasic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n"
}

// protoRequest builds a raw HTTP/1.1 request with a Content-Length body.
func protoRequest(method, target, headers, body string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\n" +
		headers + "\r\n" + body
}

// protoReply is an answer read off a raw connection.
type protoReply struct {
	status int
	header http.Header
	body   string
}

// protoRead reads one response from c.
func protoRead(t *testing.T, c *rawConn) protoReply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return protoReply{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// protoDo sends request on a new connection and reads the answer.
func protoDo(t *testing.T, ts *testServer, request string) protoReply {
	t.Helper()
	c := ts.dial(t, request)
	defer c.Close()
	return protoRead(t, c)
}

// protoPublish POSTs body to target with extra header lines, failing
// unless the answer is 204, and returns the answer.
func protoPublish(t *testing.T, ts *testServer, target, headers, body string) protoReply {
	t.Helper()
	r := protoDo(t, ts, protoRequest("POST", target, headers, body))
	if r.status != http.StatusNoContent {
		t.Fatalf("POST %s: status %d (%q), want 204", target, r.status, r.body)
	}
	return r
}

// protoExpectStreams stops the server and checks that each subscriber got
// exactly want[i] (already framed) and then the end of the stream, and
// nothing else.
func protoExpectStreams(t *testing.T, ts *testServer, f protoFraming, conns []*rawConn, want []string) {
	t.Helper()
	ts.stop(t)
	for i, c := range conns {
		if got, w := c.readAll(), want[i]+f.end(); got != w {
			t.Errorf("subscriber %d stream:\n got %q\nwant %q", i, got, w)
		}
	}
}

func TestPublishReachesChannelAncestorsAndRootOnly(t *testing.T) {
	here := func(body string) string { return part("Content-Type: text/plain\r\n", body) }
	from := func(channel, body string) string {
		return part("Content-Location: /msgbus/"+channel+"\r\nContent-Type: text/plain\r\n", body)
	}
	publishes := []struct {
		channel, body string
		reached       int
	}{
		{"a/b/c", "m1", 4}, // a/b/c, a/b, a, root
		{"a/b", "m2", 3},   // a/b, a, root
		{"ab", "m3", 2},    // ab, root
		{"a/b/c/d", "m4", 5},
		{"a", "m5", 2},
	}
	subscribers := []struct {
		path string
		want []string
	}{
		{"/msgbus/a/b/c", []string{here("m1"), from("a/b/c/d", "m4")}},
		{"/msgbus/a/b", []string{from("a/b/c", "m1"), here("m2"), from("a/b/c/d", "m4")}},
		{"/msgbus/a", []string{from("a/b/c", "m1"), from("a/b", "m2"), from("a/b/c/d", "m4"), here("m5")}},
		{"/msgbus/", []string{from("a/b/c", "m1"), from("a/b", "m2"), from("ab", "m3"), from("a/b/c/d", "m4"), from("a", "m5")}},
		{"/msgbus/ab", []string{here("m3")}},
		{"/msgbus/a/b/c/d", []string{here("m4")}},
	}
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{})
		conns := make([]*rawConn, len(subscribers))
		want := make([]string, len(subscribers))
		for i, s := range subscribers {
			conns[i] = ts.subscribe(t, s.path, f.http11)
			want[i] = f.stream(s.want...)
		}
		ts.waitSubscribers(t, int64(len(subscribers)))
		for _, p := range publishes {
			r := protoPublish(t, ts, "/msgbus/"+p.channel, "Content-Type: text/plain\r\n", p.body)
			if got, want := r.header.Get("Msgbus-Subscribers"), itoa(p.reached); got != want {
				t.Errorf("publish to %s: Msgbus-Subscribers %q, want %q", p.channel, got, want)
			}
		}
		protoExpectStreams(t, ts, f, conns, want)
	})
}

// protoFilterMessages are published, in order, to /msgbus/f by the filter tests.
var protoFilterMessages = []struct{ typ, body string }{
	{"text/plain; charset=utf-8", "t0"},
	{"image/png", "i1"},
	{"application/json", "j2"},
	{"text/html", "h3"},
}

func TestTypeFilterFollowsOpenSSHPatternLists(t *testing.T) {
	cases := []struct {
		query string
		want  []int // indexes into protoFilterMessages
	}{
		{"?type=text/*", []int{0, 3}},                     // matches "text/plain; charset=utf-8" too
		{"?type=text/*,image/*", []int{0, 1, 3}},          // any positive entry
		{"?type=!image/*,*", []int{0, 2, 3}},              // everything but images
		{"?type=!image/*", nil},                           // negation alone matches nothing
		{"?type=*", []int{0, 1, 2, 3}},                    // no filter
		{"?type=", []int{0, 1, 2, 3}},                     // no filter
		{"", []int{0, 1, 2, 3}},                           // no filter
		{"?type=text/plain", []int{0}},                    // the media type alone: parameters dropped
		{"?type=image/???", []int{1}},                     // '?' is one byte
		{"?type=!text/*,application/*", []int{2}},         // negation order does not matter
		{"?type=text/*,!text/html", []int{0}},             // a negation beats a positive match
		{"?type=application/json,image/png", []int{1, 2}}, // exact entries
	}
	// How many of the cases' subscribers each message reaches.
	reached := make([]int, len(protoFilterMessages))
	for _, c := range cases {
		for _, i := range c.want {
			reached[i]++
		}
	}
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{})
		conns := make([]*rawConn, len(cases))
		want := make([]string, len(cases))
		for i, c := range cases {
			conns[i] = ts.subscribe(t, "/msgbus/f"+c.query, f.http11)
			var parts []string
			for _, m := range c.want {
				msg := protoFilterMessages[m]
				parts = append(parts, part("Content-Type: "+msg.typ+"\r\n", msg.body))
			}
			want[i] = f.stream(parts...)
		}
		ts.waitSubscribers(t, int64(len(cases)))
		for i, m := range protoFilterMessages {
			r := protoPublish(t, ts, "/msgbus/f", "Content-Type: "+m.typ+"\r\n", m.body)
			if got, want := r.header.Get("Msgbus-Subscribers"), itoa(reached[i]); got != want {
				t.Errorf("publish of %s: Msgbus-Subscribers %q, want %q (filtered-out subscribers are not reached)",
					m.typ, got, want)
			}
		}
		ts.stop(t)
		for i, c := range cases {
			if got, w := conns[i].readAll(), want[i]+f.end(); got != w {
				t.Errorf("GET /msgbus/f%s:\n got %q\nwant %q", c.query, got, w)
			}
		}
	})
}

func TestSenderFilterMatchesAuthenticatedUser(t *testing.T) {
	messages := []struct{ user, typ, body string }{
		{"alice", "text/plain", "a0"},
		{"bob", "text/plain", "b1"},
		{"alice", "image/png", "a2"},
		{"bob", "text/html", "b3"},
	}
	cases := []struct {
		query string
		want  []int
	}{
		{"?sender=alice", []int{0, 2}},
		{"?sender=!alice,*", []int{1, 3}},
		{"?sender=b?b", []int{1, 3}},
		{"?sender=!alice", nil},
		{"?sender=alice,bob", []int{0, 1, 2, 3}},
		{"?sender=carol", nil},
		{"?sender=alice&type=text/*", []int{0}},
		{"?sender=*&type=!text/plain,*", []int{2, 3}},
	}
	reached := make([]int, len(messages))
	for _, c := range cases {
		for _, i := range c.want {
			reached[i]++
		}
	}
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{Secret: "s3cret"})
		conns := make([]*rawConn, len(cases))
		want := make([]string, len(cases))
		for i, c := range cases {
			conns[i] = protoSubscribeAs(t, ts, "/msgbus/f"+c.query, f.http11, protoBasic("carol", "s3cret"))
			var parts []string
			for _, m := range c.want {
				msg := messages[m]
				parts = append(parts, part("From: "+msg.user+"\r\nContent-Type: "+msg.typ+"\r\n", msg.body))
			}
			want[i] = f.stream(parts...)
		}
		ts.waitSubscribers(t, int64(len(cases)))
		for i, m := range messages {
			r := protoPublish(t, ts, "/msgbus/f", protoBasic(m.user, "s3cret")+"Content-Type: "+m.typ+"\r\n", m.body)
			if got, want := r.header.Get("Msgbus-Subscribers"), itoa(reached[i]); got != want {
				t.Errorf("publish %d by %s: Msgbus-Subscribers %q, want %q", i, m.user, got, want)
			}
		}
		ts.stop(t)
		for i, c := range cases {
			if got, w := conns[i].readAll(), want[i]+f.end(); got != w {
				t.Errorf("GET /msgbus/f%s:\n got %q\nwant %q", c.query, got, w)
			}
		}
	})
}

func TestFromIsTheAuthenticatedUserAndCannotBeForged(t *testing.T) {
	cases := []struct {
		name     string
		secret   string
		subAuth  string // header lines of the subscriber
		pubHead  string // header lines of the publisher
		wantHead string // part header lines before Content-Length
	}{
		{"authenticated", "s3cret", protoBasic("carol", "s3cret"),
			protoBasic("alice", "s3cret") + "Content-Type: text/plain\r\n",
			"From: alice\r\nContent-Type: text/plain\r\n"},
		{"forged From header ignored", "s3cret", protoBasic("carol", "s3cret"),
			protoBasic("bob", "s3cret") + "From: alice\r\nContent-Type: text/plain\r\n",
			"From: bob\r\nContent-Type: text/plain\r\n"},
		{"anonymous has no From", "", "",
			"Content-Type: text/plain\r\n",
			"Content-Type: text/plain\r\n"},
		{"anonymous forged From header ignored", "", "",
			"From: alice\r\nContent-Type: text/plain\r\n",
			"Content-Type: text/plain\r\n"},
		{"user name from Basic auth without secret is not a sender", "", "",
			protoBasic("alice", "whatever") + "Content-Type: text/plain\r\n",
			"Content-Type: text/plain\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			protoEachFraming(t, func(t *testing.T, f protoFraming) {
				ts := startServer(t, Config{Secret: tc.secret})
				c := protoSubscribeAs(t, ts, "/msgbus/news", f.http11, tc.subAuth)
				ts.waitSubscribers(t, 1)
				protoPublish(t, ts, "/msgbus/news", tc.pubHead, "hi")
				protoExpectStreams(t, ts, f, []*rawConn{c}, []string{f.stream(part(tc.wantHead, "hi"))})
			})
		})
	}
}

func TestSecretRefusesRequestsWithoutTheRightPassword(t *testing.T) {
	cases := []struct {
		name    string
		request string
	}{
		{"GET without auth", "GET /msgbus/news HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"GET with wrong password", "GET /msgbus/news HTTP/1.1\r\nHost: x\r\n" + protoBasic("alice", "wrong") + "\r\n"},
		{"GET root without auth", "GET /msgbus/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"HTTP/1.0 GET with wrong password", "GET /msgbus/news HTTP/1.0\r\n" + protoBasic("alice", "s3cre") + "\r\n"},
		{"POST without auth", protoRequest("POST", "/msgbus/news", "Content-Type: text/plain\r\n", "x")},
		{"POST with wrong password", protoRequest("POST", "/msgbus/news", protoBasic("alice", "S3CRET"), "x")},
		{"PUT with empty password", protoRequest("PUT", "/msgbus/news", protoBasic("alice", ""), "x")},
		{"POST with secret as user name", protoRequest("POST", "/msgbus/news", protoBasic("s3cret", ""), "x")},
		{"POST with secret but not Basic", protoRequest("POST", "/msgbus/news", "Authorization: Bearer s3cret\r\n", "x")},
		{"POST with bad base64", protoRequest("POST", "/msgbus/news", "Authorization: Basic !!!\r\n", "x")},
	}
	ts := startServer(t, Config{Secret: "s3cret"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := protoDo(t, ts, tc.request)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (body %q)", r.status, r.body)
			}
			if got, want := r.header.Values("WWW-Authenticate"), []string{`Basic realm="msgbus"`}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if strings.Count(r.body, "\n") != 1 || !strings.HasSuffix(r.body, "\n") || len(strings.TrimSpace(r.body)) == 0 {
				t.Errorf("body %q, want one non-empty line", r.body)
			}
		})
	}
	if st := ts.Stats(); st.Subscribers != 0 || st.Published != 0 {
		t.Errorf("after refused requests: %d subscribers, %d published, want none", st.Subscribers, st.Published)
	}
}

func TestSecretAcceptsTheRightPassword(t *testing.T) {
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{Secret: "s3cret"})
		c := protoSubscribeAs(t, ts, "/msgbus/news", f.http11, protoBasic("carol", "s3cret"))
		ts.waitSubscribers(t, 1)
		r := protoPublish(t, ts, "/msgbus/news", protoBasic("alice", "s3cret")+"Content-Type: text/plain\r\n", "ok")
		if got := r.header.Get("Msgbus-Subscribers"); got != "1" {
			t.Errorf("Msgbus-Subscribers %q, want 1", got)
		}
		protoExpectStreams(t, ts, f, []*rawConn{c},
			[]string{f.stream(part("From: alice\r\nContent-Type: text/plain\r\n", "ok"))})
	})
}

// protoStdMessages are read back by a standard multipart parser. No body
// holds CRLF followed by the delimiter: mime/multipart ignores
// Content-Length and would end the part there.
var protoStdMessages = func() []struct{ typ, body string } {
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	return []struct{ typ, body string }{
		{"text/plain; charset=utf-8", "héllo, wörld"},
		{"application/octet-stream", string(bin)},
		{"text/plain", "x--00MsgBus00\r\nnot a boundary --00MsgBus00--\r\n\r\ny\r\n"},
		{"application/json", ""},
		{"image/png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
		{"text/plain", "\r\n"},
	}
}()

// protoCheckStdParse publishes protoStdMessages to /msgbus/news, stops the
// server, and reads body with mime/multipart using the boundary from
// contentType: every message, in order, then the end.
func protoCheckStdParse(t *testing.T, ts *testServer, contentType string, body io.Reader) {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	if mediaType != "multipart/x-mixed-replace" || params["boundary"] != "00MsgBus00" {
		t.Fatalf("Content-Type %q: media type %q boundary %q", contentType, mediaType, params["boundary"])
	}
	ts.waitSubscribers(t, 1)
	for _, m := range protoStdMessages {
		protoPublish(t, ts, "/msgbus/news", "Content-Type: "+m.typ+"\r\n", m.body)
	}
	// The last part ends only at the next delimiter: the closing one.
	ts.stop(t)
	mr := multipart.NewReader(body, params["boundary"])
	for i, m := range protoStdMessages {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d body: %v", i, err)
		}
		if cl := p.Header.Get("Content-Length"); cl != itoa(len(got)) {
			t.Errorf("part %d Content-Length %q, want %d", i, cl, len(got))
		}
		// A body holding the delimiter comes in base64, which the standard
		// library leaves to its caller.
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			if got, err = base64.StdEncoding.DecodeString(string(got)); err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
		}
		if string(got) != m.body {
			t.Errorf("part %d body %q, want %q", i, got, m.body)
		}
		if ct := p.Header.Get("Content-Type"); ct != m.typ {
			t.Errorf("part %d Content-Type %q, want %q", i, ct, m.typ)
		}
		if loc := p.Header.Values("Content-Location"); len(loc) != 0 {
			t.Errorf("part %d Content-Location %q on the subscribed channel", i, loc)
		}
	}
	if p, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("after %d parts: part %v, err %v, want io.EOF", len(protoStdMessages), p, err)
	}
}

func TestStdlibClientParsesChunkedStream(t *testing.T) {
	ts := startServer(t, Config{})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get(ts.URL("/msgbus/news"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
		t.Fatalf("status %d %s, want 200 HTTP/1.1", resp.StatusCode, resp.Proto)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
	}
	protoCheckStdParse(t, ts, resp.Header.Get("Content-Type"), resp.Body)
}

func TestStdlibParsesHTTP10Stream(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, "GET /msgbus/news HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.0" || !resp.Close || resp.ContentLength != -1 {
		t.Fatalf("status %d %s close=%v length=%d, want 200 HTTP/1.0 close-delimited",
			resp.StatusCode, resp.Proto, resp.Close, resp.ContentLength)
	}
	if len(resp.TransferEncoding) != 0 {
		t.Fatalf("Transfer-Encoding %q on HTTP/1.0", resp.TransferEncoding)
	}
	protoCheckStdParse(t, ts, resp.Header.Get("Content-Type"), resp.Body)
}

func TestPublishRequestBecomesPartVerbatim(t *testing.T) {
	cases := []struct {
		name    string
		request string
		want    string // the part on /msgbus/news
	}{
		{"POST", protoRequest("POST", "/msgbus/news", "Content-Type: text/plain\r\n", "hello"),
			part("Content-Type: text/plain\r\n", "hello")},
		{"PUT works like POST", protoRequest("PUT", "/msgbus/news", "Content-Type: text/plain\r\n", "hello"),
			part("Content-Type: text/plain\r\n", "hello")},
		{"query string ignored", protoRequest("POST", "/msgbus/news?type=image/png&channel=x", "Content-Type: text/plain\r\n", "q"),
			part("Content-Type: text/plain\r\n", "q")},
		{"missing Content-Type is octet-stream", protoRequest("POST", "/msgbus/news", "", "raw"),
			part("Content-Type: application/octet-stream\r\n", "raw")},
		{"empty body", protoRequest("POST", "/msgbus/news", "Content-Type: text/plain\r\n", ""),
			part("Content-Type: text/plain\r\n", "")},
		{"type parameters kept", protoRequest("POST", "/msgbus/news", "Content-Type: text/plain; charset=utf-8\r\n", "é"),
			part("Content-Type: text/plain; charset=utf-8\r\n", "é")},
		{"body holding the delimiter and CRLFs", protoRequest("POST", "/msgbus/news", "Content-Type: text/plain\r\n", "\r\n--00MsgBus00\r\n\r\n--00MsgBus00--\r\n"),
			wirePart("Content-Type: text/plain\r\n", "\r\n--00MsgBus00\r\n\r\n--00MsgBus00--\r\n")},
		{"chunked request body", "POST /msgbus/news HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
			part("Content-Type: text/plain\r\n", "hello")},
		{"HTTP/1.0 publisher", "POST /msgbus/news HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nv0",
			part("Content-Type: text/plain\r\n", "v0")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			protoEachFraming(t, func(t *testing.T, f protoFraming) {
				ts := startServer(t, Config{})
				c := ts.subscribe(t, "/msgbus/news", f.http11)
				ts.waitSubscribers(t, 1)
				r := protoDo(t, ts, tc.request)
				if r.status != http.StatusNoContent || r.body != "" {
					t.Fatalf("status %d body %q, want 204 and no body", r.status, r.body)
				}
				if got := r.header.Get("Msgbus-Subscribers"); got != "1" {
					t.Errorf("Msgbus-Subscribers %q, want 1", got)
				}
				protoExpectStreams(t, ts, f, []*rawConn{c}, []string{f.stream(tc.want)})
			})
		})
	}
}

// protoID parses a publish answer's Msgbus-Id.
func protoID(t *testing.T, r protoReply) message.ID {
	t.Helper()
	id, err := message.ParseID(r.header.Get("Msgbus-Id"))
	if err != nil {
		t.Fatalf("Msgbus-Id %q: %v", r.header.Get("Msgbus-Id"), err)
	}
	return id
}

func TestPublishAnswersIncreasingIDAndSubscribersReached(t *testing.T) {
	ts := startServer(t, Config{})
	publish := func(channel, typ string, wantReached int) message.ID {
		t.Helper()
		r := protoPublish(t, ts, "/msgbus/"+channel, "Content-Type: "+typ+"\r\n", "x")
		if got := r.header.Get("Msgbus-Subscribers"); got != itoa(wantReached) {
			t.Errorf("publish %s to %s: Msgbus-Subscribers %q, want %d", typ, channel, got, wantReached)
		}
		return protoID(t, r)
	}
	var ids []message.ID
	ids = append(ids, publish("x", "text/plain", 0)) // nobody
	ts.subscribe(t, "/msgbus/x", true)
	ts.subscribe(t, "/msgbus/x", false)
	ts.subscribe(t, "/msgbus/", true)
	ts.subscribe(t, "/msgbus/y", true)              // elsewhere: not reached
	ts.subscribe(t, "/msgbus/x?type=image/*", true) // filters text out
	ts.subscribe(t, "/msgbus/x/z", true)            // a child: not reached
	ts.waitSubscribers(t, 6)
	ids = append(ids, publish("x", "text/plain", 3))
	ids = append(ids, publish("x", "image/png", 4))
	ids = append(ids, publish("y", "text/plain", 2))
	ids = append(ids, publish("x/z", "text/plain", 4))
	ids = append(ids, publish("q", "text/plain", 1))
	for i := 1; i < len(ids); i++ {
		if !ids[i-1].Less(ids[i]) {
			t.Fatalf("Msgbus-Id not increasing: %v", ids)
		}
	}
}

func TestPublishersKeepAliveAndPipeline(t *testing.T) {
	bodies := []string{"one", "two", "three"}
	request := func(i int) string {
		return protoRequest("POST", "/msgbus/news", "Content-Type: text/plain\r\n", bodies[i])
	}
	cases := []struct {
		name string
		send func(t *testing.T, c *rawConn) []protoReply
	}{
		{"keep-alive", func(t *testing.T, c *rawConn) []protoReply {
			var rs []protoReply
			for i := range bodies {
				if _, err := io.WriteString(c, request(i)); err != nil {
					t.Fatal(err)
				}
				rs = append(rs, protoRead(t, c))
			}
			return rs
		}},
		{"pipelined in one write", func(t *testing.T, c *rawConn) []protoReply {
			var all string
			for i := range bodies {
				all += request(i)
			}
			if _, err := io.WriteString(c, all); err != nil {
				t.Fatal(err)
			}
			var rs []protoReply
			for range bodies {
				rs = append(rs, protoRead(t, c))
			}
			return rs
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			protoEachFraming(t, func(t *testing.T, f protoFraming) {
				ts := startServer(t, Config{})
				sub := ts.subscribe(t, "/msgbus/news", f.http11)
				ts.waitSubscribers(t, 1)
				pub := ts.dial(t, "")
				rs := tc.send(t, pub)
				var prev message.ID
				for i, r := range rs {
					if r.status != http.StatusNoContent {
						t.Fatalf("answer %d: status %d (%q), want 204", i, r.status, r.body)
					}
					if got := r.header.Get("Msgbus-Subscribers"); got != "1" {
						t.Errorf("answer %d: Msgbus-Subscribers %q, want 1", i, got)
					}
					if id := protoID(t, r); !prev.Less(id) {
						t.Errorf("answer %d: Msgbus-Id %v after %v, want answers in request order", i, id, prev)
					} else {
						prev = id
					}
				}
				var parts []string
				for _, b := range bodies {
					parts = append(parts, part("Content-Type: text/plain\r\n", b))
				}
				protoExpectStreams(t, ts, f, []*rawConn{sub}, []string{f.stream(parts...)})
			})
		})
	}
}

func TestPercentEncodedChannelNamesAreDeliveredAndEscaped(t *testing.T) {
	cases := []struct {
		name     string
		sub, pub string // request targets
		location string // the subscriber's Content-Location, "" for none
		rootLoc  string // the root subscriber's Content-Location
	}{
		{"UTF-8", "/msgbus/caf%C3%A9", "/msgbus/caf%C3%A9", "", "/msgbus/caf%C3%A9"},
		{"space", "/msgbus/a%20b", "/msgbus/a%20b", "", "/msgbus/a%20b"},
		{"lower-case escapes are the same channel", "/msgbus/caf%c3%a9", "/msgbus/caf%C3%A9", "", "/msgbus/caf%C3%A9"},
		{"needless escape is the same channel", "/msgbus/%61bc", "/msgbus/abc", "", "/msgbus/abc"},
		{"parent of an escaped child", "/msgbus/caf%C3%A9", "/msgbus/caf%C3%A9/a%20b", "/msgbus/caf%C3%A9/a%20b", "/msgbus/caf%C3%A9/a%20b"},
		{"question mark escaped in location", "/msgbus/q", "/msgbus/q/why%3F", "/msgbus/q/why%3F", "/msgbus/q/why%3F"},
		{"percent escaped in location", "/msgbus/p", "/msgbus/p/100%25", "/msgbus/p/100%25", "/msgbus/p/100%25"},
	}
	located := func(loc string) string {
		if loc == "" {
			return part("Content-Type: text/plain\r\n", "m")
		}
		return part("Content-Location: "+loc+"\r\nContent-Type: text/plain\r\n", "m")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			protoEachFraming(t, func(t *testing.T, f protoFraming) {
				ts := startServer(t, Config{})
				sub := ts.subscribe(t, tc.sub, f.http11)
				root := ts.subscribe(t, "/msgbus/", f.http11)
				ts.waitSubscribers(t, 2)
				r := protoPublish(t, ts, tc.pub, "Content-Type: text/plain\r\n", "m")
				if got := r.header.Get("Msgbus-Subscribers"); got != "2" {
					t.Errorf("Msgbus-Subscribers %q, want 2", got)
				}
				protoExpectStreams(t, ts, f, []*rawConn{sub, root},
					[]string{f.stream(located(tc.location)), f.stream(located(tc.rootLoc))})
			})
		})
	}
}
