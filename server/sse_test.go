package server

// Tests of Server-Sent Events (PROTOCOL.md §3): the framing byte for byte,
// ids, heartbeats, filters, the clean end on shutdown, Accept negotiation
// and the viewer page. Helpers are prefixed "sse".

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"github.com/msgbus/msgbus/server/message"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msgbus/msgbus/server/viewer"
	"github.com/msgbus/msgbus/server/wire"
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
		{"one line", "text/plain", "hello", "data: hello\n\n"},
		{"several lines", "text/plain; charset=utf-8", "one\ntwo\n\nfour\n",
			"data: one\ndata: two\ndata: \ndata: four\ndata: \n\n"},
		{"CRLF and CR end lines as LF does", "text/plain", "a\r\nb\rc\r\n\r\rd\r",
			"data: a\ndata: b\ndata: c\ndata: \ndata: \ndata: d\ndata: \n\n"},
		{"empty", "text/plain", "", "data: \n\n"},
		{"lines that look like fields", "text/plain", "id: 7\n: comment\ndata: x\nevent: binary",
			"data: id: 7\ndata: : comment\ndata: data: x\ndata: event: binary\n\n"},
		{"JSON, as it is", "application/json", `{"a": "b"}`, "data: {\"a\": \"b\"}\n\n"},
		{"any type, when the body is UTF-8", "application/x-www-form-urlencoded", "hello", "data: hello\n\n"},
		{"UTF-8 beyond ASCII", "application/octet-stream", "héllo ✓ \U0001F600", "data: héllo ✓ \U0001F600\n\n"},
		{"invalid UTF-8 text goes binary", "text/plain", "\xff\xfe", "event: binary\ndata: //4=\n\n"},
		{"binary goes base64", "image/png", png,
			"event: binary\ndata: " + base64.StdEncoding.EncodeToString([]byte(png)) + "\n\n"},
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

func TestSSEParentAndRootGetTheSameEventAsTheChannel(t *testing.T) {
	protoEachFraming(t, func(t *testing.T, f protoFraming) {
		ts := startServer(t, Config{Secret: "s3cret"})
		auth := protoBasic("alice", "s3cret")
		exact := sseSubscribe(t, ts, "/msgbus/a/b", f.http11, auth)
		parent := sseSubscribe(t, ts, "/msgbus/a", f.http11, auth)
		root := sseSubscribe(t, ts, "/msgbus/", f.http11, auth)
		ts.waitSubscribers(t, 3)
		r := protoPublish(t, ts, "/msgbus/a/b", auth+"Content-Type: text/plain\r\n", "hi")
		want := sseFrame(f, "id: "+r.header.Get("Msgbus-Id")+"\ndata: hi\n\n") + sseEnd(f)
		ts.stop(t)
		for name, c := range map[string]*rawConn{"a/b": exact, "a": parent, "root": root} {
			if got := c.readAll(); got != want {
				t.Errorf("subscriber of %s:\n got %q\nwant %q", name, got, want)
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
	var last message.ID
	for i, e := range events {
		id, err := message.ParseID(e.id)
		if err != nil || !last.Less(id) {
			t.Fatalf("event %d: id %q after %v, want an increasing id", i, e.id, last)
		}
		last = id
		if e.data != itoa(i) {
			t.Errorf("event %d: data %q, want %q", i, e.data, itoa(i))
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
			got = append(got, e.data)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("GET /msgbus/f%s: got %q, want %q", c.query, got, c.want)
		}
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
// a message's event is the message: the body as EventSource reads text
// lines (CR and CRLF become LF), a binary body byte for byte, the envelope
// field for field; always exactly one event, with the message's id, in a
// valid UTF-8 stream, the HTTP/1.1 frame being the HTTP/1.0 one as a chunk.
func FuzzSSERoundTrip(f *testing.F) {
	for _, s := range []struct {
		typ, from, channel, body string
	}{
		{"text/plain", "", "news", "hello"},
		{"text/plain", "alice", "a/b", "a\nb\n"},
		{"text/plain", "", "a", ""},
		{"text/plain", "", "a", "\r\n\r"},
		{"text/plain", "", "a", "x\ry\r\nz\n\n"},
		{"image/png", "bob", "cam", "\x89PNG\r\n\x1a\n\x00"},
		{"application/json", "", "chat/lobby", `{"name":"a","text":"b\\n\"c\""}` + "\n"},
		{"text/html", "", "x", "<b>x</b>\x00\x01\x1f\x7f"},
		{"text/plain", "", "x", "\xef\xbb\xbfbom"},
		{"text/plain", "\xff\"q\\", "ünï/cødé", "\xff"},
		{"application/x-www-form-urlencoded", "", "news", "hello"},
		{"text/plain", "", "x", "data: x\n\nid: 3\n: c\nevent: e\n"},
		{"te\"xt/\\pl\tain", "a\u2028b", "x", "\u2028\u2029 \U0001F600"},
	} {
		for _, envelope := range []bool{false, true} {
			f.Add(s.typ, s.from, s.channel, []byte(s.body), uint64(42), int64(1795771567123), envelope, envelope)
		}
	}
	f.Add("", "", "", []byte(nil), uint64(0), int64(0), true, false)
	f.Add("x", "", "y", []byte("z"), uint64(1<<64-1), int64(-1), false, true)
	f.Fuzz(func(t *testing.T, typ, from, channel string, body []byte, id uint64, ms int64, envelope, located bool) {
		channel = strings.ToValidUTF8(channel, "?") // the hub's names are UTF-8
		ms %= 1 << 44                               // years 1413 to 2527
		m := &message.Message{ID: message.ID{Ms: uint64(ms), Seq: id}, Channel: channel, Type: typ, Sender: from, Body: body, Time: time.UnixMilli(ms)}
		chunked, _ := wire.SSE(true, envelope)
		plain, _ := wire.SSE(false, envelope)
		frame, c := m.Frame(plain, located), m.Frame(chunked, located)
		if string(c) != chunkOf(string(frame)) {
			t.Fatalf("chunked frame %q is not the HTTP/1.0 event %q as a chunk", c, frame)
		}
		if !utf8.Valid(frame) {
			t.Fatalf("event %q is not UTF-8", frame)
		}
		events := sseParse(t, string(frame))
		if len(events) != 1 {
			t.Fatalf("%q: %d events, want 1", frame, len(events))
		}
		e := events[0]
		if e.id != m.ID.String() {
			t.Fatalf("%q: id %q, want %v", frame, e.id, m.ID)
		}
		if envelope {
			if e.event != "message" {
				t.Fatalf("%q: event %q, want message", frame, e.event)
			}
			sseCheckEnvelope(t, e.data, m)
			return
		}
		switch {
		case !utf8.Valid(body):
			got, err := base64.StdEncoding.DecodeString(e.data)
			if e.event != "binary" || err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%q: event %q data %q (%v), want binary, the body %q in base64", frame, e.event, e.data, err, body)
			}
		case e.event != "message" || e.data != sseLines(string(body)):
			t.Fatalf("%q: event %q data %q, want message %q", frame, e.event, e.data, sseLines(string(body)))
		}
	})
}

// sseEnvelope is the envelope as a page gets it from JSON.parse.
type sseEnvelope struct {
	ID       string  `json:"id"`
	Channel  string  `json:"channel"`
	Type     string  `json:"type"`
	From     *string `json:"from"`
	Time     string  `json:"time"`
	Body     string  `json:"body"`
	Encoding string  `json:"encoding"`
}

// sseCheckEnvelope checks that data is m's envelope, exactly (PROTOCOL.md
// §6), and returns it.
func sseCheckEnvelope(t testing.TB, data string, m *message.Message) sseEnvelope {
	t.Helper()
	if strings.ContainsAny(data, "\r\n") {
		t.Fatalf("envelope %q is not one line", data)
	}
	var keys map[string]any
	if err := json.Unmarshal([]byte(data), &keys); err != nil {
		t.Fatalf("envelope %q: %v", data, err)
	}
	wantKeys := []string{"body", "channel", "encoding", "id", "time", "type"}
	if m.Sender != "" {
		wantKeys = append(wantKeys, "from")
		slices.Sort(wantKeys)
	}
	if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, wantKeys) {
		t.Fatalf("envelope %q has fields %q, want %q", data, got, wantKeys)
	}
	var env sseEnvelope
	json.Unmarshal([]byte(data), &env)
	if env.ID != m.ID.String() || env.Channel != m.Channel ||
		env.Type != strings.ToValidUTF8(m.Type, "\uFFFD") {
		t.Fatalf("envelope %q: id, channel or type is not the message's %d %q %q", data, m.ID, m.Channel, m.Type)
	}
	if m.Sender != "" && *env.From != strings.ToValidUTF8(m.Sender, "\uFFFD") {
		t.Fatalf("envelope %q: from is not the sender %q", data, m.Sender)
	}
	when, err := time.Parse(time.RFC3339Nano, env.Time)
	if err != nil || !sseTimeShape.MatchString(env.Time) || !when.Equal(m.Time.Truncate(time.Millisecond)) {
		t.Fatalf("envelope %q: time %q (%v), want %v in RFC 3339 UTC with milliseconds", data, env.Time, err, m.Time)
	}
	var body []byte
	switch env.Encoding {
	case "utf-8":
		body = []byte(env.Body)
		if !utf8.Valid(m.Body) {
			t.Fatalf("envelope %q: encoding utf-8 for a body that is not", data)
		}
	case "base64":
		if body, err = base64.StdEncoding.DecodeString(env.Body); err != nil || utf8.Valid(m.Body) {
			t.Fatalf("envelope %q: base64 body (%v) for a body that is UTF-8: %v", data, err, utf8.Valid(m.Body))
		}
	default:
		t.Fatalf("envelope %q: encoding %q", data, env.Encoding)
	}
	if !bytes.Equal(body, m.Body) {
		t.Fatalf("envelope %q: body %q, want %q", data, body, m.Body)
	}
	return env
}

var sseTimeShape = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// sseLines is s as EventSource gives back text lines: CRLF and CR are LF.
func sseLines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// sseDispatched is one dispatched event, as EventSource sees it.
type sseDispatched struct{ id, event, data string }

// sseParse reads a close-delimited event stream as the HTML standard's
// EventSource does (§9.2.6): CRLF, CR and LF end lines; "field: value"
// with one leading space dropped, a line without a colon a field with an
// empty value; comments ignored; an id holding NUL ignored; at a blank line
// an event is dispatched if its data buffer is not empty, its last LF
// removed, its type "message" unless an event field named it.
func sseParse(t testing.TB, stream string) []sseDispatched {
	t.Helper()
	if !strings.HasSuffix(stream, "\n") {
		t.Fatalf("stream %q does not end with a line end", stream)
	}
	stream = sseLines(strings.TrimPrefix(stream, "\ufeff"))
	var events []sseDispatched
	var data strings.Builder
	var id, event string
	for _, line := range strings.Split(strings.TrimSuffix(stream, "\n"), "\n") {
		if line == "" {
			if data.Len() > 0 {
				if event == "" {
					event = "message"
				}
				events = append(events, sseDispatched{id, event, strings.TrimSuffix(data.String(), "\n")})
			}
			data.Reset()
			event = ""
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data.WriteString(value + "\n")
		case "event":
			event = value
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		}
	}
	return events
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
