package client_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/msgbus/msgbus/client"
)

// A JWT-shaped token; the raw listener below does not check it.
const fakeToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

func TestNewRefusesTokenWithBasicAuth(t *testing.T) {
	for _, cfg := range []client.Config{
		{URL: "http://h", Token: fakeToken, User: "alice"},
		{URL: "http://h", Token: fakeToken, Password: "hunter2"},
		{URL: "http://alice:hunter2@h", Token: fakeToken},
	} {
		_, err := client.New(cfg)
		if err == nil || !strings.Contains(err.Error(), "Token and User/Password (Basic auth) are both set") {
			t.Errorf("New(%+v) = %v, want an error naming both", cfg, err)
		}
	}
}

func TestNewRefusesWhatIsNotABearerToken(t *testing.T) {
	for _, tc := range []struct {
		token string
		want  string // in the error; "" for none
	}{
		{fakeToken, ""},
		{"abc-_~+/.9==", ""},
		{"Bearer " + fakeToken, `starts with "Bearer "`},
		{fakeToken + "\n", "a space or control character (a trailing newline?)"},
		{"a b", "a space or control character"},
		{"a,b", "holds ','"},
		{"é", "a non-ASCII byte"},
		{"==", "only = signs"},
		{"a=b", "holds '='"},
	} {
		_, err := client.New(client.Config{URL: "http://h", Token: tc.token})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("New with Token %q = %v, want an error with %q", tc.token, err, tc.want)
		}
	}
}

func TestStatusErrorMatchesErrUnauthorizedAndErrForbidden(t *testing.T) {
	for _, tc := range []struct {
		code                    int
		unauthorized, forbidden bool
	}{
		{401, true, false},
		{403, false, true},
		{400, false, false},
		{404, false, false},
		{503, false, false},
	} {
		err := fmt.Errorf("wrapped: %w", &client.StatusError{Op: "publish", Path: "/msgbus/x", StatusCode: tc.code})
		if got := errors.Is(err, client.ErrUnauthorized); got != tc.unauthorized {
			t.Errorf("%d: errors.Is(err, ErrUnauthorized) = %v", tc.code, got)
		}
		if got := errors.Is(err, client.ErrForbidden); got != tc.forbidden {
			t.Errorf("%d: errors.Is(err, ErrForbidden) = %v", tc.code, got)
		}
	}
}

// headServer is a raw HTTP/1.1 server on a 127.0.0.1 socket: it keeps the
// head of every request and answers it with what answer writes, then
// closes the connection.
type headServer struct {
	ln     net.Listener
	answer func(req *http.Request) string
	wg     sync.WaitGroup

	mu    sync.Mutex
	heads []*http.Request // bodies already read
}

func startHeadServer(t *testing.T, answer func(req *http.Request) string) *headServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &headServer{ln: ln, answer: answer}
	hs.wg.Add(1)
	go hs.accept()
	t.Cleanup(func() { ln.Close(); hs.wg.Wait() })
	return hs
}

func (hs *headServer) URL() string { return "http://" + hs.ln.Addr().String() }

func (hs *headServer) accept() {
	defer hs.wg.Done()
	for {
		conn, err := hs.ln.Accept()
		if err != nil {
			return
		}
		hs.wg.Add(1)
		go func() {
			defer hs.wg.Done()
			defer conn.Close()
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			hs.mu.Lock()
			hs.heads = append(hs.heads, req)
			hs.mu.Unlock()
			io.WriteString(conn, hs.answer(req))
		}()
	}
}

// requests returns the heads received for method and path.
func (hs *headServer) requests(method, path string) []*http.Request {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var rs []*http.Request
	for _, r := range hs.heads {
		if r.Method == method && r.URL.Path == path {
			rs = append(rs, r)
		}
	}
	return rs
}

func reply(status, headers, body string) string {
	return "HTTP/1.1 " + status + "\r\n" + headers + fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(body)) + body
}

const (
	invalidToken = "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
	wantToken    = "WWW-Authenticate: Bearer\r\n"
)

// tokenAnswers is the raw server's side of TestTokenIsSentOnEveryRequest:
// it lets publish, history and the first subscribe on x through, refuses
// the token on "expired", refuses the right on "denied" and on every
// WebSocket handshake, and refuses a subscribe's reconnect as a server
// does once the token has expired.
func tokenAnswers() func(req *http.Request) string {
	var mu sync.Mutex
	subscribes := 0
	return func(req *http.Request) string {
		switch p := req.URL.Path; {
		case p == "/msgbus/expired":
			return reply("401 Unauthorized", invalidToken, "unauthorized\n")
		case p == "/msgbus/said":
			return reply("401 Unauthorized", invalidToken, "unauthorized: token is expired: get a new token\n")
		case p == "/msgbus/denied":
			if req.Header.Get("Authorization") == "" {
				return reply("401 Unauthorized", wantToken, "unauthorized\n")
			}
			return reply("403 Forbidden", "", "forbidden: no right to publish\n")
		case req.Method == http.MethodPost && p == "/msgbus/x":
			return reply("200 OK", "Msgbus-Id: 1-0\r\nMsgbus-Subscribers: 0\r\n", "")
		case p == "/msgbus/x":
			mu.Lock()
			subscribes++
			n := subscribes
			mu.Unlock()
			if n == 1 { // a stream that breaks at once
				return "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\nConnection: close\r\n\r\n"
			}
			return reply("401 Unauthorized", invalidToken, "")
		case p == "/history/x":
			return reply("200 OK", "Content-Type: application/json\r\n", `{"messages":[],"more":false}`)
		case req.Header.Get("Upgrade") == "websocket":
			return reply("403 Forbidden", "", "forbidden\n")
		}
		return reply("404 Not Found", "", "not found\n")
	}
}

func TestTokenIsSentOnEveryRequest(t *testing.T) {
	hs := startHeadServer(t, tokenAnswers())
	ctx := testContext(t)
	c := newClient(t, client.Config{URL: hs.URL(), Token: fakeToken})

	if _, err := c.Publish(ctx, "x", "text/plain", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.History(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The stream breaks; the reconnect carries the token too, and its 401
	// ends the subscription instead of being retried.
	_, err = sub.Next(ctx)
	if !errors.Is(err, client.ErrUnauthorized) ||
		err.Error() != "client: subscribe /msgbus/x: 401 Unauthorized: "+
			"the server refused the token (expired, or not signed by a key it trusts): get a new one" {
		t.Fatalf("Next after a refused reconnect: %v, want ErrUnauthorized saying to get a new token", err)
	}
	sub.Close()

	wsRights := map[string]string{
		"bus":  "to use this bus topic (its msgbus.publish and msgbus.subscribe patterns)",
		"pub":  "to publish here (its msgbus.publish patterns)",
		"sub":  "to subscribe here (its msgbus.subscribe patterns)",
		"push": "to publish here (its msgbus.publish patterns)",
		"pull": "to subscribe here (its msgbus.subscribe patterns)",
	}
	for _, ws := range []struct {
		op   string
		dial func() error
	}{
		{"bus", func() error { _, err := c.Bus(ctx, "x", nil); return err }},
		{"pub", func() error { _, err := c.Pub(ctx, "x", nil); return err }},
		{"sub", func() error { _, err := c.Sub(ctx, "x", nil); return err }},
		{"push", func() error { _, err := c.Push(ctx, "x", nil); return err }},
		{"pull", func() error { _, err := c.Pull(ctx, "x", nil); return err }},
	} {
		err := ws.dial()
		want := "client: " + ws.op + " /" + ws.op + "/x: 403 Forbidden (forbidden): the token lacks the right " + wsRights[ws.op]
		if !errors.Is(err, client.ErrForbidden) || err.Error() != want {
			t.Errorf("%s: %v, want ErrForbidden: %q", ws.op, err, want)
		}
	}

	for _, rq := range []struct{ method, path string }{
		{"POST", "/msgbus/x"}, {"GET", "/history/x"}, {"GET", "/msgbus/x"},
		{"GET", "/bus/x"}, {"GET", "/pub/x"}, {"GET", "/sub/x"}, {"GET", "/push/x"}, {"GET", "/pull/x"},
	} {
		heads := hs.requests(rq.method, rq.path)
		want := 1
		if rq.path == "/msgbus/x" && rq.method == "GET" {
			want = 2 // the subscribe and its reconnect
		}
		if len(heads) != want {
			t.Errorf("%s %s: %d requests, want %d", rq.method, rq.path, len(heads), want)
		}
		for _, h := range heads {
			if got := h.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+fakeToken {
				t.Errorf("%s %s: Authorization %q, want [Bearer <token>]", rq.method, rq.path, got)
			}
		}
	}
}

func TestPublishDoesNotRetryARefusedToken(t *testing.T) {
	hs := startHeadServer(t, tokenAnswers())
	ctx := testContext(t)
	c := newClient(t, client.Config{URL: hs.URL(), Token: fakeToken, PublishAttempts: 5})
	anon := newClient(t, client.Config{URL: hs.URL(), PublishAttempts: 5})

	for _, tc := range []struct {
		c       *client.Client
		channel string
		is      error
		want    string
	}{
		{c, "expired", client.ErrUnauthorized, "client: publish /msgbus/expired: 401 Unauthorized (unauthorized): " +
			"the server refused the token (expired, or not signed by a key it trusts): get a new one"},
		// A reason that speaks of the token says it all.
		{c, "said", client.ErrUnauthorized, "client: publish /msgbus/said: 401 Unauthorized (unauthorized: token is expired: get a new token)"},
		{c, "denied", client.ErrForbidden, "client: publish /msgbus/denied: 403 Forbidden (forbidden: no right to publish): " +
			"the token lacks the right to publish here (its msgbus.publish patterns)"},
		{anon, "denied", client.ErrUnauthorized, "client: publish /msgbus/denied: 401 Unauthorized (unauthorized): " +
			"the server wants a token"},
	} {
		before := len(hs.requests("POST", "/msgbus/"+tc.channel))
		_, err := tc.c.Publish(ctx, tc.channel, "text/plain", []byte("hi"))
		if !errors.Is(err, tc.is) || err.Error() != tc.want {
			t.Errorf("Publish to %s: %v, want %v: %q", tc.channel, err, tc.is, tc.want)
		}
		if n := len(hs.requests("POST", "/msgbus/"+tc.channel)) - before; n != 1 {
			t.Errorf("Publish to %s sent %d requests, want 1: a refusal is not retried", tc.channel, n)
		}
	}
}
