package server

// Tests that no message can forge a part or a header of the multipart
// stream (PROTOCOL.md §2), on real sockets: a body holding the delimiter
// goes in base64, a user name is percent-encoded, a Content-Type must be
// printable ASCII; Python's email parser, which ignores Content-Length and
// scans for the boundary, sees exactly the parts sent. Helpers here are
// prefixed "framing".

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/multipart"
)

// framingForged are bodies that try to forge a part, or the end, for a
// parser that scans for the boundary.
var framingForged = []string{
	"hi\r\n--00MsgBus00\r\nFrom: admin\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nforged",
	"--00MsgBus00\r\nFrom: admin\r\nContent-Type: text/plain\r\n\r\nforged at the start",
	"lf\n--00MsgBus00\nFrom: admin\n\nforged with LF only",
	"cr\r--00MsgBus00\rFrom: admin\r\rforged with CR only",
	"nel\x85--00MsgBus00\x85From: admin\x85\x85forged after NEL",
	"ls\u2028--00MsgBus00\u2028From: admin\u2028\u2028forged after U+2028",
	"in a line --00MsgBus00-- too",
	"\r\n--00MsgBus00--\r\n",
}

// framingInnocent are bodies sent as they are.
var framingInnocent = []string{
	"hello",
	"",
	"\x00\xff\r\n--00MsgBus0\r\n-00MsgBus00\r\n00MsgBus00",
	"ends in a line end\r\n",
}

// wirePart is part(headers, body) as the server sends it: a body that holds
// the delimiter goes in base64, with Content-Transfer-Encoding after the
// given headers (which end with Content-Type). Tests that expect exact
// bytes for any body can use it in place of part.
func wirePart(headers, body string) string {
	if strings.Contains(body, "--"+multipart.Boundary) {
		return part(headers+"Content-Transfer-Encoding: base64\r\n", base64.StdEncoding.EncodeToString([]byte(body)))
	}
	return part(headers, body)
}

// framingPost publishes body to path as user (with the bus's secret, when
// user is not "") and checks the 204.
func framingPost(t *testing.T, ts *testServer, path, user, secret, typ, body string) {
	t.Helper()
	headers := "Content-Type: " + typ + "\r\n"
	if secret != "" {
		headers += protoBasic(user, secret)
	}
	if r := protoDo(t, ts, protoRequest("POST", path, headers, body)); r.status != http.StatusNoContent {
		t.Fatalf("POST %q as %q: status %d (%q), want 204", body, user, r.status, r.body)
	}
}

func TestFramingBodyHoldingTheDelimiterIsSentInBase64(t *testing.T) {
	ts := startServer(t, Config{})
	for _, http11 := range []bool{true, false} {
		sub := ts.subscribe(t, "/msgbus/news", http11)
		ts.waitSubscribers(t, 1)
		for _, body := range append(append([]string(nil), framingForged...), framingInnocent...) {
			framingPost(t, ts, "/msgbus/news", "", "", "text/plain", body)
			want := part("Content-Type: text/plain\r\n", body)
			if strings.Contains(body, "--00MsgBus00") {
				want = part("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
					base64.StdEncoding.EncodeToString([]byte(body)))
			}
			if w := wirePart("Content-Type: text/plain\r\n", body); w != want {
				t.Fatalf("wirePart = %q, want %q", w, want)
			}
			if http11 {
				want = chunkOf(want)
			}
			sub.expect(want)
		}
		sub.Close()
		ts.waitSubscribers(t, 0)
	}
}

// framingUsers are user names that try to forge a header line or end the
// header block, and how each goes on the From line. (An HTTP Basic user
// name cannot hold ":", so these forge "X-Admin" lines; the multipart tests
// try "From: admin" too.)
var framingUsers = []struct{ name, sent string }{
	{"alice", "alice"},
	{"eve\r\nX-Admin", "eve%0D%0AX-Admin"},
	{"eve\n\nforged body", "eve%0A%0Aforged body"},
	{"\x85X-Admin", "%85X-Admin"},
	{"eve\u2028X-Admin", "eve%E2%80%A8X-Admin"},
	{"eve\rX-Admin\x0b\x0c\x1c", "eve%0DX-Admin%0B%0C%1C"},
	{"zoë", "zo%C3%AB"},
	{"100%", "100%25"},
	{" pad\t", "%20pad%09"},
}

func TestFramingUserNameIsPercentEncoded(t *testing.T) {
	const secret = "s3cret"
	ts := startServer(t, Config{Secret: secret})
	for _, http11 := range []bool{true, false} {
		sub := protoSubscribeAs(t, ts, "/msgbus/news", http11, protoBasic("reader", secret))
		ts.waitSubscribers(t, 1)
		for _, u := range framingUsers {
			framingPost(t, ts, "/msgbus/news", u.name, secret, "text/plain", "x")
			want := part("From: "+u.sent+"\r\nContent-Type: text/plain\r\n", "x")
			if http11 {
				want = chunkOf(want)
			}
			sub.expect(want)
		}
		sub.Close()
		ts.waitSubscribers(t, 0)
	}
}

// framingMessage is one message as a parser of the stream sees it.
type framingMessage struct {
	Keys []string `json:"keys"` // the part's header names, in order
	From []string `json:"from"` // every From header of the part, as sent
	Type string   `json:"type"`
	CTE  string   `json:"cte"`
	Body []byte   `json:"body"` // decoded; base64 in JSON
}

// framingCapture publishes every forged and innocent body as every forging
// user to a plain HTTP/1.0 subscriber and returns the stream as received,
// response head included, up to the close that a clean shutdown sends, and
// the messages published, in order.
func framingCapture(t *testing.T) (stream []byte, sent []framingMessage) {
	t.Helper()
	const secret = "s3cret"
	ts := startServer(t, Config{Secret: secret})
	sub := ts.dial(t, "GET /msgbus/news HTTP/1.0\r\n"+protoBasic("reader", secret)+"\r\n")
	ts.waitSubscribers(t, 1)
	bodies := append(append([]string(nil), framingForged...), framingInnocent...)
	for i, body := range bodies {
		u := framingUsers[i%len(framingUsers)]
		framingPost(t, ts, "/msgbus/news", u.name, secret, "text/plain", body)
		sent = append(sent, framingMessage{From: []string{u.sent}, Type: "text/plain", Body: []byte(body)})
	}
	// Every message is queued (each publish answered 204): a clean
	// shutdown writes them, then the end, then closes.
	ts.stop(t)
	return []byte(sub.readAll()), sent
}

func TestFramingGoReaderGivesBackEveryMessage(t *testing.T) {
	stream, sent := framingCapture(t)
	_, body, ok := bytes.Cut(stream, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no response head in %q", stream)
	}
	r := multipart.NewReader(bytes.NewReader(body), multipart.Boundary)
	for i, m := range sent {
		p, err := r.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		user := framingUsers[i%len(framingUsers)].name
		if p.Header.From != user || p.Header.ContentType != m.Type || !bytes.Equal(p.Body, m.Body) {
			t.Fatalf("part %d: From %q type %q body %q, want %q %q %q", i, p.Header.From, p.Header.ContentType, p.Body, user, m.Type, m.Body)
		}
	}
	if p, err := r.NextPart(); err == nil {
		t.Fatalf("a part after the %d sent: %+v", len(sent), p)
	}
}

// framingPython parses a multipart stream (MIME headers, then the body) with
// Python's email package, under its old and its current policy, and prints
// each part as JSON.
const framingPython = `
import base64, email, email.policy, json, sys
raw = sys.stdin.buffer.read()
out = {}
for name, pol in (("compat32", email.policy.compat32), ("default", email.policy.default)):
    msg = email.message_from_bytes(raw, policy=pol)
    parts = []
    for p in (msg.get_payload() if msg.is_multipart() else []):
        body = p.get_payload(decode=True) or b""
        parts.append({"keys": list(p.keys()),
                      "from": [str(v) for k, v in p.raw_items() if k.lower() == "from"],
                      "type": str(p.get("Content-Type", "")),
                      "cte": str(p.get("Content-Transfer-Encoding", "")),
                      "body": base64.b64encode(body).decode()})
    out[name] = {"multipart": msg.is_multipart(), "parts": parts}
json.dump(out, sys.stdout)
`

func TestFramingPythonEmailSeesNoForgedPart(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	stream, sent := framingCapture(t)
	// Python reads a MIME message: the response head without its status
	// line is one (Content-Type names the boundary).
	_, mime, ok := bytes.Cut(stream, []byte("\r\n"))
	if !ok {
		t.Fatalf("no status line in %q", stream)
	}
	cmd := exec.Command(python, "-c", framingPython)
	cmd.Stdin = bytes.NewReader(mime)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("python3 did not finish")
	}
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var got map[string]struct {
		Multipart bool             `json:"multipart"`
		Parts     []framingMessage `json:"parts"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python3 output %q: %v", out, err)
	}
	for _, policy := range []string{"compat32", "default"} {
		g := got[policy]
		if !g.Multipart || len(g.Parts) != len(sent) {
			t.Fatalf("policy %s: multipart %v, %d parts, want %d, one per message", policy, g.Multipart, len(g.Parts), len(sent))
		}
		for i, p := range g.Parts {
			want := sent[i]
			keys := "Msgbus-Id From Content-Type Content-Length"
			if strings.Contains(string(want.Body), "--00MsgBus00") {
				keys = "Msgbus-Id From Content-Type Content-Transfer-Encoding Content-Length"
			}
			if got := strings.Join(p.Keys, " "); got != keys {
				t.Errorf("policy %s, part %d: headers %q, want %q", policy, i, got, keys)
			}
			if len(p.From) != 1 || p.From[0] != want.From[0] {
				t.Errorf("policy %s, part %d: From %q, want exactly [%q]", policy, i, p.From, want.From[0])
			}
			if p.Type != want.Type || !bytes.Equal(p.Body, want.Body) {
				t.Errorf("policy %s, part %d: type %q body %q (encoding %q), want %q %q",
					policy, i, p.Type, p.Body, p.CTE, want.Type, want.Body)
			}
		}
	}
}

func TestFramingContentTypeMustBePrintableASCII(t *testing.T) {
	ts := startServer(t, Config{})
	sub := ts.subscribe(t, "/msgbus/news", true)
	ts.waitSubscribers(t, 1)
	for _, typ := range []string{
		"text/plain;\tcharset=utf-8",
		"text/plain\x85From: admin",
		"text/plain; name=zo\xc3\xab",
		"text/plain\xe2\x80\xa8From: admin",
		"text/\x7fplain",
		"text/\x01plain",
	} {
		r := protoDo(t, ts, protoRequest("POST", "/msgbus/news", "Content-Type: "+typ+"\r\n", "bad"))
		limCheckReason(t, limReply(r), http.StatusBadRequest)
	}
	// Every printable byte is a valid type, sent as it is; and nothing of
	// the refused ones reached the subscriber before it.
	for _, typ := range []string{"text/plain; charset=utf-8", `a/b; x="!#$%&'()*+,-./:;<=>?@[\]^_{|}~"`} {
		framingPost(t, ts, "/msgbus/news", "", "", typ, "ok")
		sub.expect(chunkOf(part("Content-Type: "+typ+"\r\n", "ok")))
	}
}
