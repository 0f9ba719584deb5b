package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
)

// receiver is what a Peer, a Subscriber and a Puller have in common.
type receiver interface {
	Next(context.Context) (client.Message, error)
	Close() error
}

// wsNext returns the next message, failing the test after a while.
func wsNext(t *testing.T, r receiver) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

// wsNothing checks that no message arrives for a moment.
func wsNothing(t *testing.T, r receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if m, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %q, %v; want nothing", m.Body, err)
	}
}

// wsOpen opens a pattern and closes it at the end of the test.
func wsOpen[T interface{ Close() error }](t *testing.T, open func() (T, error)) T {
	t.Helper()
	v, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func send(t *testing.T, s interface {
	Send(context.Context, client.FrameType, []byte) error
}, ft client.FrameType, body string) {
	t.Helper()
	if err := s.Send(context.Background(), ft, []byte(body)); err != nil {
		t.Fatalf("Send(%q): %v", body, err)
	}
}

func wantBody(t *testing.T, m client.Message, typ, body string) {
	t.Helper()
	if m.Type != typ || string(m.Body) != body {
		t.Fatalf("message {%q %q}, want {%q %q}", m.Type, m.Body, typ, body)
	}
}

func TestBusPeerDoesNotHearItselfUnlessEcho(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	a := wsOpen(t, func() (*client.Peer, error) { return c.Bus(ctx, "room", nil) })
	b := wsOpen(t, func() (*client.Peer, error) { return c.Bus(ctx, "room", nil) })
	e := wsOpen(t, func() (*client.Peer, error) { return c.Bus(ctx, "room", &client.WSOptions{Echo: true}) })
	below := wsOpen(t, func() (*client.Peer, error) { return c.Bus(ctx, "room/below", nil) })

	send(t, a, client.TextFrame, "from a")
	wantBody(t, wsNext(t, b), client.TextType, "from a")
	wantBody(t, wsNext(t, e), client.TextType, "from a")
	send(t, e, client.BinaryFrame, "\x00from e")
	wantBody(t, wsNext(t, e), client.BinaryType, "\x00from e") // echo
	wantBody(t, wsNext(t, b), client.BinaryType, "\x00from e")
	// a did not hear itself: what it hears next is e.
	m := wsNext(t, a)
	wantBody(t, m, client.BinaryType, "\x00from e")
	if m.Channel != "room" || m.Sender != "" || m.ID != "" {
		t.Fatalf("message %+v: want channel room, no sender, no id", m)
	}

	// POST /bus/room reaches every peer; the bus has no hierarchy.
	resp, err := http.Post(ts.URL()+"/bus/room", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, p := range []*client.Peer{a, b, e} {
		wantBody(t, wsNext(t, p), client.TextType, `{"x":1}`)
	}
	wsNothing(t, below)
}

func TestPubReachesSubAndSubscribeWithTheHierarchy(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	wsSub := wsOpen(t, func() (*client.Subscriber, error) { return c.Sub(ctx, "news", nil) })
	root := wsOpen(t, func() (*client.Subscriber, error) { return c.Sub(ctx, "", nil) })
	images := wsOpen(t, func() (*client.Subscriber, error) { return c.Sub(ctx, "news", &client.WSOptions{Type: "image/*"}) })
	httpSub := subscribe(t, ctx, c, "news", nil)
	pub := wsOpen(t, func() (*client.Publisher, error) { return c.Pub(ctx, "news/sport", nil) })

	// Pub reaches /sub/ and /msgbus/ subscribers of the channel and above.
	send(t, pub, client.TextFrame, "goal")
	wantBody(t, wsNext(t, wsSub), client.TextType, "goal")
	wantBody(t, wsNext(t, root), client.TextType, "goal")
	if m := mustNext(t, httpSub); m.Channel != "news/sport" || m.Type != client.TextType || string(m.Body) != "goal" {
		t.Fatalf("HTTP subscriber got {%q %q %q}", m.Channel, m.Type, m.Body)
	}
	send(t, pub, client.BinaryFrame, "\xff\xfe")
	if m := mustNext(t, httpSub); m.Type != client.BinaryType || string(m.Body) != "\xff\xfe" {
		t.Fatalf("HTTP subscriber got {%q %q}", m.Type, m.Body)
	}

	wantBody(t, wsNext(t, wsSub), client.BinaryType, "\xff\xfe")
	wantBody(t, wsNext(t, root), client.BinaryType, "\xff\xfe")

	// Publish reaches Sub; textual types become text frames, others binary.
	tests := []struct{ typ, want string }{
		{"application/json", client.TextType},
		{"application/ld+json", client.TextType},
		{"text/html", client.TextType},
		{"image/png", client.BinaryType},
	}
	for _, tt := range tests {
		publish(t, ctx, c, "news/"+tt.typ, tt.typ, []byte(tt.typ))
	}
	for _, tt := range tests {
		m := wsNext(t, wsSub)
		wantBody(t, m, tt.want, tt.typ)
		if m.Channel != "news" {
			t.Fatalf("Channel %q: a frame does not say its channel; want the subscribed one", m.Channel)
		}
	}
	// The type filter applies; the binary Pub frame was application/octet-stream.
	wantBody(t, wsNext(t, images), client.BinaryType, "image/png")
	wsNothing(t, images)
}

func TestPushGoesRoundRobinAcrossPullers(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	p1 := wsOpen(t, func() (*client.Puller, error) { return c.Pull(ctx, "jobs", nil) })
	p2 := wsOpen(t, func() (*client.Puller, error) { return c.Pull(ctx, "jobs", nil) })
	push := wsOpen(t, func() (*client.Pusher, error) { return c.Push(ctx, "jobs", nil) })
	for _, s := range []string{"0", "1", "2", "3"} {
		send(t, push, client.TextFrame, s)
	}
	got := string(wsNext(t, p1).Body) + string(wsNext(t, p1).Body) + " " + string(wsNext(t, p2).Body) + string(wsNext(t, p2).Body)
	if got != "02 13" {
		t.Fatalf("pullers got %q, want %q", got, "02 13")
	}

	// When a puller leaves, the other takes every turn.
	if err := p1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ts.waitSubscribers(t, 1)
	send(t, push, client.TextFrame, "4")
	send(t, push, client.TextFrame, "5")
	if got := string(wsNext(t, p2).Body) + string(wsNext(t, p2).Body); got != "45" {
		t.Fatalf("remaining puller got %q, want 45", got)
	}
	if _, err := p1.Next(ctx); err != client.ErrClosed {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
}

func TestPushBacklogGoesToTheFirstPuller(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	push, err := c.Push(ctx, "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		send(t, push, client.TextFrame, s)
	}
	// Close returns once the server has handled every frame: all three wait.
	if err := push.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	first := wsOpen(t, func() (*client.Puller, error) { return c.Pull(ctx, "jobs", nil) })
	second := wsOpen(t, func() (*client.Puller, error) { return c.Pull(ctx, "jobs", nil) })
	for _, want := range []string{"a", "b", "c"} {
		wantBody(t, wsNext(t, first), client.TextType, want)
	}
	wsNothing(t, second)
}

func TestPushIntoAFullBacklogEndsWith1013(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{MaxBacklogMessages: 1})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	push, err := c.Push(ctx, "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, push, client.TextFrame, "kept")
	send(t, push, client.TextFrame, "refused") // written; the server refuses it
	const want = "client: push /push/jobs: closed 1013 (push backlog full: no puller is taking messages, try again later)"
	err = push.Close()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 1013 || !ce.Temporary() || err.Error() != want {
		t.Fatalf("Close = %v, want %q", err, want)
	}
	if err := push.Send(ctx, client.TextFrame, []byte("more")); !errors.As(err, &ce) || ce.Code != 1013 {
		t.Fatalf("Send after the close = %v, want the 1013", err)
	}

	// Without Close, a later Send reports it.
	push = wsOpen(t, func() (*client.Pusher, error) { return c.Push(ctx, "jobs", nil) })
	deadline := time.Now().Add(10 * time.Second)
	for err = nil; err == nil && time.Now().Before(deadline); {
		err = push.Send(ctx, client.TextFrame, []byte("again"))
	}
	if !errors.As(err, &ce) || ce.Code != 1013 {
		t.Fatalf("Send into the full backlog = %v, want the 1013", err)
	}
}

func TestTooLargeMessageEndsWith1009(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{MaxMessageBytes: 1000})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	big := bytes.Repeat([]byte("x"), 1001)

	pub := wsOpen(t, func() (*client.Publisher, error) { return c.Pub(ctx, "news", nil) })
	send(t, pub, client.TextFrame, string(big[:1000]))
	if err := pub.Send(ctx, client.BinaryFrame, big); err != nil {
		t.Fatalf("Send: %v", err) // written: the refusal comes after
	}
	err := pub.Close()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 1009 || ce.Temporary() ||
		err.Error() != "client: pub /pub/news: closed 1009 (message too large: the limit is 1000 bytes)" {
		t.Fatalf("Close = %v, want the 1009", err)
	}

	// A peer, which receives, gets the close through Next.
	peer := wsOpen(t, func() (*client.Peer, error) { return c.Bus(ctx, "room", nil) })
	send(t, peer, client.BinaryFrame, string(big))
	if _, err := peer.Next(ctx); !errors.As(err, &ce) || ce.Code != 1009 || ce.Path != "/bus/room" {
		t.Fatalf("Next = %v, want the 1009", err)
	}
}

func TestWebSocketHandshakeErrorsSayWhatHappened(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "hunter2", AllowOrigins: []string{"example.com"}})
	ctx := testContext(t)
	anon := newClient(t, client.Config{URL: ts.URL()})
	alice := newClient(t, client.Config{URL: "http://alice:hunter2@" + ts.Addr})
	bob := newClient(t, client.Config{URL: ts.URL(), User: "bob", Password: "hunter2"})
	origin := &client.WSOptions{Origin: "http://www.example.com:3000"}

	_, err := anon.Sub(ctx, "x", origin)
	wantStatus(t, err, 401, "client: sub /sub/x: 401 Unauthorized (unauthorized: use HTTP Basic auth")
	_, err = alice.Push(ctx, "a b", nil)
	wantStatus(t, err, 401, "client: push /push/a%20b: 401 Unauthorized (Origin check failed)")
	_, err = alice.Pull(ctx, "", origin)
	wantStatus(t, err, 404, "client: pull /pull/: 404 Not Found (not found: name a topic")
	_, err = alice.Bus(ctx, "a/../b", origin)
	wantStatus(t, err, 400, "client: bus /bus/a/../b: 400 Bad Request")

	// With auth and an allowed Origin, the sender filter sees the user.
	fromBob := wsOpen(t, func() (*client.Peer, error) {
		return alice.Bus(ctx, "room", &client.WSOptions{Origin: origin.Origin, Sender: "bob"})
	})
	alicePeer := wsOpen(t, func() (*client.Peer, error) { return alice.Bus(ctx, "room", origin) })
	bobPeer := wsOpen(t, func() (*client.Peer, error) { return bob.Bus(ctx, "room", origin) })
	send(t, alicePeer, client.TextFrame, "from alice")
	send(t, bobPeer, client.TextFrame, "from bob")
	wantBody(t, wsNext(t, fromBob), client.TextType, "from bob")

	ts.stop(t)
	_, err = alice.Sub(ctx, "x", origin)
	var oe *client.OpError
	if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), "client: sub /sub/x: dial tcp "+ts.Addr) {
		t.Fatalf("Sub with no server = %v, want an OpError for the dial", err)
	}
}

func TestCancelEndsNextAndLeavesNothing(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.Sub(ctx, "x", nil)
	if err != nil {
		t.Fatal(err)
	}

	// A Next whose own context ends leaves the connection open.
	wsNothing(t, sub)
	publish(t, testContext(t), c, "x", "text/plain", []byte("still here"))
	wantBody(t, wsNext(t, sub), client.TextType, "still here")

	// The Sub context ends the connection: a waiting Next returns.
	time.AfterFunc(20*time.Millisecond, cancel)
	next, nextCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer nextCancel()
	if _, err := sub.Next(next); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v, want context.Canceled", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close after cancel = %v", err)
	}
	ts.waitSubscribers(t, 0)

	// Cancelled before it connects.
	if _, err := c.Pull(ctx, "x", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull with a cancelled context = %v", err)
	}
	// Send with an ended context does not write.
	push := wsOpen(t, func() (*client.Pusher, error) { return c.Push(testContext(t), "x", nil) })
	if err := push.Send(ctx, client.TextFrame, []byte("late")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context = %v", err)
	}
	if err := push.Send(testContext(t), client.TextFrame, []byte("\xff")); err == nil ||
		err.Error() != "client: push /push/x: a text frame must be UTF-8: send binary" {
		t.Fatalf("Send of invalid UTF-8 as text = %v", err)
	}
	if err := push.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := push.Send(testContext(t), client.BinaryFrame, nil); err != client.ErrClosed {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestServerShutdownEndsWith1001(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	sub := wsOpen(t, func() (*client.Subscriber, error) { return c.Sub(ctx, "x", nil) })
	pull := wsOpen(t, func() (*client.Puller, error) { return c.Pull(ctx, "x", nil) })
	ts.stop(t)
	for _, r := range []receiver{sub, pull} {
		_, err := r.Next(ctx)
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != 1001 || !ce.Temporary() || !strings.HasSuffix(err.Error(), ": closed 1001 (server shutting down)") {
			t.Fatalf("Next after shutdown = %v, want the 1001", err)
		}
		if err2 := r.Close(); err2 != err {
			t.Fatalf("Close = %v, want %v", err2, err)
		}
	}
}

// fakeWS is a WebSocket server over https that pings every ping (none if
// zero) and sends "hello" after a while.
func fakeWS(t *testing.T, ping, hello time.Duration) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		go func() { // read, for pongs and the close
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
		tick := time.NewTicker(max(ping, time.Millisecond))
		defer tick.Stop()
		helloAt := time.After(hello)
		for {
			select {
			case <-tick.C:
				if ping > 0 {
					c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
				}
			case <-helloAt:
				c.WriteMessage(websocket.TextMessage, []byte("hello"))
			case <-stop:
				return
			}
		}
	}))
	t.Cleanup(func() { close(stop); ts.Close() })
	return ts
}

func TestPingsKeepAliveAndSilenceIsDeath(t *testing.T) {
	ctx := testContext(t)
	// The message comes after more than twice the read timeout, pings
	// every 20ms meanwhile: the timeout is wide enough that a loaded
	// machine under -race does not stall a live connection past it.
	alive := fakeWS(t, 20*time.Millisecond, 1200*time.Millisecond)
	// https maps to wss, with the TLS configuration of the HTTP client.
	c := newClient(t, client.Config{URL: alive.URL, HTTPClient: alive.Client()})
	sub := wsOpen(t, func() (*client.Subscriber, error) {
		return c.Sub(ctx, "x", &client.WSOptions{ReadTimeout: 500 * time.Millisecond})
	})
	wantBody(t, wsNext(t, sub), client.TextType, "hello")

	opts := &client.WSOptions{ReadTimeout: 100 * time.Millisecond}
	silent := fakeWS(t, 0, time.Hour)
	c = newClient(t, client.Config{URL: silent.URL, HTTPClient: silent.Client()})
	sub = wsOpen(t, func() (*client.Subscriber, error) { return c.Sub(ctx, "x", opts) })
	_, err := sub.Next(ctx)
	var oe *client.OpError
	if !errors.As(err, &oe) || err.Error() != "client: sub /sub/x: no frame from the server for 100ms: the connection is dead" {
		t.Fatalf("Next on a silent connection = %v", err)
	}
}
