package server

// Tests of Server-Sent Events (PROTOCOL.md §3): the framing byte for byte,
// ids, heartbeats, filters, the clean end on shutdown, Accept negotiation
// and the viewer page. Helpers are prefixed "sse".

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/viewer"
)

const sseAccept = "Accept: text/event-stream\r\n"

// sseSubscribe opens an SSE stream on path (HTTP/1.1 or 1.0) with extra
// header lines and reads the response head and the retry field.
func sseSubscribe(t *testing.T, ts *testServer, path string, http11 bool, headers string) *rawConn {
	t.Helper()
	if http11 {
		c := ts.dial(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+sseAccept+headers+"\r\n")
		c.expect("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
			"X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkOf("retry: 2000\n\n"))
		return c
	}
	c := ts.dial(t, "GET "+path+" HTTP/1.0\r\n"+sseAccept+headers+"\r\n")
	c.expect("HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n")
	return c
}

// sseFrame is how f puts one event on the wire.
func sseFrame(f protoFraming, event string) string {
	if f.http11 {
		return chunkOf(event)
	}
	return event
}

// sseEnd is how a clean shutdown ends the stream.
func sseEnd(f protoFraming) string {
	if f.http11 {
		return chunkOf(": server shutting down\n\n") + "0\r\n\r\n"
	}
	return ": server shutting down\n\n"
}

func TestSSEFramesEachMessageByteForByte(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00"
	cases := []struct {
		name, typ, body string
		want            string // the event after "id: N\n"
	}{
		{"one line", "text/plain", "hello",
			"data: Content-Type: text/plain\ndata:\ndata: hello\n\n"},
		{"several lines", "text/plain; charset=utf-8", "one\ntwo\n\nfour\n",
			"data: Content-Type: text/plain; charset=utf-8\ndata:\ndata: one\ndata: two\ndata: \ndata: four\ndata: \n\n"},
		{"empty", "text/plain", "",
			"data: Content-Type: text/plain\ndata:\ndata: \n\n"},
		{"lines that look like fields", "text/plain", "id: 7\n: comment\ndata: x",
			"data: Content-Type: text/plain\ndata:\ndata: id: 7\ndata: : comment\ndata: data: x\n\n"},
		{"JSON", "application/json", `{"a": "b"}`,
			"data: Content-Type: application/json\ndata:\ndata: {\"a\": \"b\"}\n\n"},
		{"CRLF goes base64, so it comes back exact", "text/plain", "a\r\nb\rc",
			"data: Content-Type: text/plain\ndata: Content-Transfer-Encoding: base64\ndata:\ndata: " +
				base64.StdEncoding.EncodeToString([]byte("a\r\nb\rc")) + "\n\n"},
		{"invalid UTF-8 text goes base64", "text/plain", "\xff\xfe",
			"data: Content-Type: text/plain\ndata: Content-Transfer-Encoding: base64\ndata:\ndata: //4=\n\n"},
		{"binary goes base64", "image/png", png,
			"data: Content-Type: image/png\ndata: Content-Transfer-Encoding: base64\ndata:\ndata: " +
				base64.StdEncoding.EncodeToString([]byte(png)) + "\n\n"},
		{"empty binary", "application/octet-stream", "",
			"data: Content-Type: application/octet-stream\ndata: Content-Transfer-Encoding: base64\ndata:\ndata: \n\n"},
	}
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{})
		c := sseSubscribe(t, ts, "/msgbus/news", f.http11, "")
		ts.waitSubscribers(t, 1)
		var want strings.Builder
		for _, tc := range cases {
			r := protoPublish(t, ts, "/msgbus/news", "Content-Type: "+tc.typ+"\r\n", tc.body)
			want.WriteString(sseFrame(f, "id: "+r.header.Get("Msgbus-Id")+"\n"+tc.want))
		}
		ts.stop(t)
		if got, w := c.readAll(), want.String()+sseEnd(f); got != w {
			t.Errorf("stream:\n got %q\nwant %q", got, w)
		}
	})
}

func TestSSENamesSenderAndChannelLikeMultipart(t *testing.T) {
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{Secret: "s3cret"})
		auth := protoBasic("alice", "s3cret")
		exact := sseSubscribe(t, ts, "/msgbus/a/b", f.http11, auth)
		parent := sseSubscribe(t, ts, "/msgbus/a", f.http11, auth)
		root := sseSubscribe(t, ts, "/msgbus/", f.http11, auth)
		ts.waitSubscribers(t, 3)
		r := protoPublish(t, ts, "/msgbus/a/b", auth+"Content-Type: text/plain\r\n", "hi")
		id := r.header.Get("Msgbus-Id")
		here := "id: " + id + "\ndata: From: alice\ndata: Content-Type: text/plain\ndata:\ndata: hi\n\n"
		there := "id: " + id + "\ndata: From: alice\ndata: Content-Location: /msgbus/a/b\n" +
			"data: Content-Type: text/plain\ndata:\ndata: hi\n\n"
		ts.stop(t)
		for _, s := range []struct {
			name string
			c    *rawConn
			want string
		}{{"a/b", exact, here}, {"a", parent, there}, {"root", root, there}} {
			if got, w := s.c.readAll(), sseFrame(f, s.want)+sseEnd(f); got != w {
				t.Errorf("subscriber of %s:\n got %q\nwant %q", s.name, got, w)
			}
		}
	})
}

func TestSSEIDsIncreaseInPublishOrder(t *testing.T) {
	ts := startServer(t, Config{})
	c := sseSubscribe(t, ts, "/msgbus/", true, "")
	ts.waitSubscribers(t, 1)
	const n = 20
	for i := range n {
		protoPublish(t, ts, "/msgbus/c"+itoa(i%3), "Content-Type: text/plain\r\n", itoa(i))
	}
	ts.stop(t)
	events := sseParse(t, sseUnchunk(t, c.readAll()))
	if len(events) != n {
		t.Fatalf("got %d events, want %d", len(events), n)
	}
	var last uint64
	for i, e := range events {
		id, err := strconv.ParseUint(e.id, 10, 64)
		if err != nil || id <= last {
			t.Fatalf("event %d: id %q after %d, want an increasing number", i, e.id, last)
		}
		last = id
		if _, body := sseSplit(e.data); body != itoa(i) {
			t.Errorf("event %d: body %q, want %q", i, body, itoa(i))
		}
	}
}

func TestSSEHeartbeatKeepsAQuietStreamAlive(t *testing.T) {
	defer func(d time.Duration) { sseHeartbeat = d }(sseHeartbeat)
	sseHeartbeat = 30 * time.Millisecond
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{})
		c := sseSubscribe(t, ts, "/msgbus/quiet", f.http11, "")
		start := time.Now()
		for range 3 {
			c.expect(sseFrame(f, ": hb\n\n"))
		}
		if d := time.Since(start); d < 2*sseHeartbeat {
			t.Errorf("3 heartbeats in %v, want about %v apart", d, sseHeartbeat)
		}
		// A message goes between heartbeats, and they carry on after it.
		ts.waitSubscribers(t, 1)
		protoPublish(t, ts, "/msgbus/quiet", "Content-Type: text/plain\r\n", "x")
		rest := ""
		for !strings.Contains(rest, "data: x\n") || !strings.HasSuffix(rest, sseFrame(f, ": hb\n\n")) {
			if len(rest) > 1000 {
				t.Fatalf("no message then heartbeat in %q", rest)
			}
			rest += c.readN(1)
		}
	})
}

func TestSSEHeartbeatStopsWithTheStream(t *testing.T) {
	defer func(d time.Duration) { sseHeartbeat = d }(sseHeartbeat)
	sseHeartbeat = 10 * time.Millisecond
	ts := startServer(t, Config{})
	c := sseSubscribe(t, ts, "/msgbus/gone", true, "")
	c.expect(chunkOf(": hb\n\n"))
	c.Close()
	ts.waitSubscribers(t, 0)
	// goleak (TestMain) finds a heartbeat still firing; the server's
	// streams must all be gone too.
	ts.stop(t)
}

func TestSSEFiltersAsMultipart(t *testing.T) {
	ts := startServer(t, Config{Secret: "k"})
	cases := []struct {
		query string
		want  []string
	}{
		{"?type=text/*", []string{"t1", "t3"}},
		{"?type=!text/*,*", []string{"i2"}},
		{"?sender=bob", []string{"i2", "t3"}},
		{"?sender=bob&type=text/plain", []string{"t3"}},
	}
	conns := make([]*rawConn, len(cases))
	for i, c := range cases {
		conns[i] = sseSubscribe(t, ts, "/msgbus/f"+c.query, true, protoBasic("carol", "k"))
	}
	ts.waitSubscribers(t, int64(len(cases)))
	protoPublish(t, ts, "/msgbus/f", protoBasic("alice", "k")+"Content-Type: text/plain\r\n", "t1")
	protoPublish(t, ts, "/msgbus/f", protoBasic("bob", "k")+"Content-Type: image/gif\r\n", "i2")
	protoPublish(t, ts, "/msgbus/f", protoBasic("bob", "k")+"Content-Type: text/plain\r\n", "t3")
	ts.stop(t)
	for i, c := range cases {
		var got []string
		for _, e := range sseParse(t, sseUnchunk(t, conns[i].readAll())) {
			h, body := sseSplit(e.data)
			if sseBase64(h) {
				b, _ := base64.StdEncoding.DecodeString(body)
				body = string(b)
			}
			got = append(got, body)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("GET /msgbus/f%s: got %q, want %q", c.query, got, c.want)
		}
	}
}

func TestSSEDroppedSubscriberIsCutWithoutGoodbye(t *testing.T) {
	if sseChunked.End(hub.ErrSlowConsumer) != nil || ssePlain.End(hub.ErrSlowConsumer) != nil {
		t.Fatal("End(ErrSlowConsumer) is not nil: a dropped stream would look cleanly ended")
	}
}

func TestSSEEncodesOncePerMessage(t *testing.T) {
	m := &hub.Message{ID: 9, Channel: "a/b", Type: "text/plain", Body: []byte("x\ny")}
	c := m.Frame(sseChunked, true)
	p := m.Frame(ssePlain, true)
	if &c[len(c)-3] != &p[len(p)-1] {
		t.Error("the HTTP/1.0 event is not a slice of the chunked frame")
	}
	if want := chunkOf(string(p)); string(c) != want {
		t.Errorf("chunked frame %q, want %q", c, want)
	}
	if cap(c)-len(c) > 32 {
		t.Errorf("frame capacity %d for length %d: the size estimate is off", cap(c), len(c))
	}
}

func TestNegotiatePicksByAccept(t *testing.T) {
	cases := []struct {
		accept string
		want   representation
	}{
		{"", wantMultipart},
		{"*/*", wantMultipart}, // curl, fetch, test-sub
		{"text/event-stream", wantSSE},
		{"text/event-stream;q=0.5, */*;q=0.1", wantSSE},
		{"TEXT/Event-Stream", wantSSE},
		{"text/event-stream;q=0", wantMultipart},
		// Chromium's and Firefox's navigations.
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8," +
			"application/signed-exchange;v=b3;q=0.7", wantViewer},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", wantViewer},
		{"text/html, */*", wantViewer}, // named beats wildcard on equal q
		// Chromium's and Firefox's <img src>.
		{"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", wantMultipart},
		{"image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", wantMultipart},
		{"text/html;q=0.5, multipart/x-mixed-replace", wantMultipart},
		{"text/html, multipart/x-mixed-replace", wantMultipart}, // a full tie keeps the original
		{"text/*", wantMultipart},
		{"text/html;q=0", wantMultipart},
		{"text/html;q=oops", wantViewer},
		{",,;;,text/html;;q=1;", wantViewer},
	}
	for _, c := range cases {
		if got := negotiate(c.accept); got != c.want {
			t.Errorf("negotiate(%q) = %d, want %d", c.accept, got, c.want)
		}
	}
}

func TestBrowserNavigationGetsTheViewer(t *testing.T) {
	ts := startServer(t, Config{MaxSubscribers: 1})
	get := func(accept string) protoReply {
		return protoDo(t, ts, "GET /msgbus/cam HTTP/1.1\r\nHost: x\r\nAccept: "+accept+"\r\nConnection: close\r\n\r\n")
	}
	r := get("text/html,application/xhtml+xml,*/*;q=0.8")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("viewer: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	if r.body != string(viewer.Page) || !strings.Contains(r.body, "new EventSource(") {
		t.Errorf("viewer body is not the viewer page")
	}
	for k, v := range map[string]string{
		"Vary": "Accept", "Cache-Control": "no-cache", "Content-Security-Policy": viewer.CSP,
		"X-Content-Type-Options": "nosniff",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("viewer %s: %q, want %q", k, got, v)
		}
	}
	// The page is not a subscriber: it is served at the subscriber limit.
	c := ts.subscribe(t, "/msgbus/cam", true)
	ts.waitSubscribers(t, 1)
	if r := get("text/html"); r.status != http.StatusOK {
		t.Errorf("viewer at the subscriber limit: status %d, want 200", r.status)
	}
	if r := get("text/event-stream"); r.status != http.StatusServiceUnavailable {
		t.Errorf("SSE at the subscriber limit: status %d, want 503", r.status)
	}
	c.Close()
}

func TestViewerPageRunsOnlyItsOwnScript(t *testing.T) {
	page := string(viewer.Page)
	if strings.Count(page, "<script>") != 1 || strings.Contains(page, "<script src") {
		t.Fatal("the viewer should have exactly one inline script")
	}
	js := page[strings.Index(page, "<script>")+len("<script>") : strings.Index(page, "</script>")]
	if !strings.Contains(viewer.CSP, "script-src '"+sseTestHash(js)+"'") {
		t.Errorf("CSP %q does not allow the page's script by hash", viewer.CSP)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("viewer script uses %s: messages must reach the page as text", bad)
		}
	}
}

// FuzzSSERoundTrip checks that what a spec-following EventSource makes of
// an event is the message: the headers, and the body byte for byte.
func FuzzSSERoundTrip(f *testing.F) {
	for _, s := range []struct{ typ, body string }{
		{"text/plain", "hello"}, {"text/plain", "a\nb\n"}, {"text/plain", ""}, {"text/plain", "\r\n\r"},
		{"image/png", "\x89PNG\r\n"}, {"application/json", "{}\n"}, {"text/html", "<b>x</b>\x00"},
		{"text/plain", "\xef\xbb\xbfbom"}, {"text/plain", "\xff"},
	} {
		f.Add(s.typ, s.body, true)
	}
	f.Fuzz(func(t *testing.T, typ, body string, located bool) {
		if strings.ContainsAny(typ, "\r\n\x00") || typ == "" {
			t.Skip()
		}
		m := &hub.Message{ID: 1, Channel: "a/b", Type: typ, Body: []byte(body)}
		frame := m.Frame(ssePlain, located)
		if !utf8.Valid(frame) {
			t.Fatalf("frame %q is not UTF-8", frame)
		}
		events := sseParse(t, string(frame))
		if len(events) != 1 {
			t.Fatalf("%q: %d events, want 1", frame, len(events))
		}
		h, got := sseSplit(events[0].data)
		if sseBase64(h) {
			b, err := base64.StdEncoding.DecodeString(got)
			if err != nil {
				t.Fatalf("base64: %v", err)
			}
			got = string(b)
		}
		if got != body {
			t.Fatalf("body %q came back as %q (frame %q)", body, got, frame)
		}
		if !slices.Contains(strings.Split(h, "\n"), "Content-Type: "+strings.ToValidUTF8(typ, "\uFFFD")) || located != strings.Contains(h, "Content-Location: /msgbus/a/b") {
			t.Fatalf("headers %q", h)
		}
	})
}

// sseDispatched is one dispatched event, as EventSource sees it.
type sseDispatched struct{ id, data string }

// sseParse reads a close-delimited event stream as the HTML standard's
// EventSource does (§9.2.6): CRLF, CR and LF end lines; "field: value"
// with one leading space dropped; comments ignored; an event dispatched at a
// blank line if its data buffer is not empty, its last LF removed.
func sseParse(t testing.TB, stream string) []sseDispatched {
	t.Helper()
	if !strings.HasSuffix(stream, "\n") {
		t.Fatalf("stream %q does not end with a line end", stream)
	}
	stream = strings.TrimPrefix(stream, "\ufeff")
	stream = strings.ReplaceAll(strings.ReplaceAll(stream, "\r\n", "\n"), "\r", "\n")
	var events []sseDispatched
	var data strings.Builder
	var id string
	for _, line := range strings.Split(strings.TrimSuffix(stream, "\n"), "\n") {
		if line == "" {
			if data.Len() > 0 {
				events = append(events, sseDispatched{id, strings.TrimSuffix(data.String(), "\n")})
			}
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data.WriteString(value + "\n")
		case "id":
			id = value
		}
	}
	return events
}

// sseSplit splits an event's data into its header lines and the body.
func sseSplit(data string) (head, body string) {
	head, body, _ = strings.Cut(data, "\n\n")
	return head, body
}

// sseUnchunk strips HTTP/1.1 chunked framing from the stream and the
// retry field.
func sseUnchunk(t *testing.T, s string) string {
	t.Helper()
	var out bytes.Buffer
	for s != "" {
		size, rest, ok := strings.Cut(s, "\r\n")
		n, err := strconv.ParseUint(size, 16, 32)
		if !ok || err != nil || uint64(len(rest)) < n+2 {
			t.Fatalf("bad chunk at %q", s)
		}
		out.WriteString(rest[:n])
		s = rest[n+2:]
	}
	return out.String()
}

func sseTestHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// sseBase64 reports whether an event's header lines mark its body base64.
func sseBase64(head string) bool {
	return slices.Contains(strings.Split(head, "\n"), "Content-Transfer-Encoding: base64")
}
