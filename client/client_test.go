package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/bustest"
)

// testServer is a real server on 127.0.0.1.
type testServer struct {
	*server.Server
	*bustest.Running
}

// startServer starts a server with cfg on addr ("127.0.0.1:0" for any
// port) and stops it at the end of the test.
func startServer(t *testing.T, addr string, cfg server.Config) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, addr, srv)
}

// serve serves srv on addr until the end of the test.
func serve(t *testing.T, addr string, srv *server.Server) *testServer {
	t.Helper()
	return &testServer{Server: srv, Running: bustest.Serve(t, srv, addr)}
}

// stop shuts the server down (idempotent) and waits for Serve to return.
func (ts *testServer) stop(t *testing.T) { t.Helper(); ts.Running.Stop(t) }

// URL is the server's base URL.
func (ts *testServer) URL() string { return ts.Running.URL("") }

// waitSubscribers waits until the server has n subscribers.
func (ts *testServer) waitSubscribers(t *testing.T, n int64) {
	t.Helper()
	bustest.Subscribers(t, func() int64 { return ts.Stats().Subscribers }, n)
}

// waitAttempts waits for n more reconnect attempts, each a value on
// attempts (sent by OnReconnect), rather than sleeping and hoping.
func waitAttempts(t *testing.T, attempts <-chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-attempts:
		case <-time.After(bustest.Timeout):
			t.Fatal("no reconnect attempt")
		}
	}
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, ctx context.Context, c *client.Client, channel string, opts *client.SubscribeOptions) *client.Subscription {
	t.Helper()
	sub, err := c.Subscribe(ctx, channel, opts)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// result is one Next's answer.
type result struct {
	m   client.Message
	err error
}

// nextWithin calls Next on another goroutine and fails the test unless it
// answers within d.
func nextWithin(t *testing.T, sub *client.Subscription, d time.Duration) (client.Message, error) {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		m, err := sub.Next(context.Background())
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(d):
		sub.Close()
		<-ch
		t.Fatalf("Next did not answer within %v", d)
		return client.Message{}, nil
	}
}

func mustNext(t *testing.T, sub *client.Subscription) client.Message {
	t.Helper()
	m, err := nextWithin(t, sub, 10*time.Second)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func publish(t *testing.T, ctx context.Context, c *client.Client, channel, typ string, body []byte) client.Published {
	t.Helper()
	p, err := c.Publish(ctx, channel, typ, body)
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	return p
}

func TestPublishAndSubscribeRoundTripTextAndBinary(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	sub := subscribe(t, ctx, c, "news", nil)

	binary := make([]byte, 70000)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	copy(binary[100:], "\r\n--00MsgBus00\r\n")
	tests := []struct {
		typ, wantType string
		body          []byte
	}{
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8", []byte("hello, wörld")},
		{"application/octet-stream", "application/octet-stream", binary},
		{"", client.DefaultType, []byte{}},
		{"text/html", "text/html", []byte("<h1>--00MsgBus00--</h1>\n")},
		// Bodies holding the delimiter line, which the server may send as
		// Content-Transfer-Encoding: base64: the Message is the body as
		// published, whatever the part's encoding.
		{"text/plain", "text/plain", []byte("forged\r\n--00MsgBus00\r\nFrom: mallory\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi\r\n")},
		{"text/plain", "text/plain", []byte("--00MsgBus00--\r\n")},
		{"text/plain", "text/plain", []byte("--00MsgBus00\n--00MsgBus00")},
	}
	for i, tt := range tests {
		p := publish(t, ctx, c, "news", tt.typ, tt.body)
		if p.Subscribers != 1 || p.ID == "" {
			t.Fatalf("publish %d: %+v, want an id and 1 subscriber", i, p)
		}
		m := mustNext(t, sub)
		if m.Channel != "news" || m.Type != tt.wantType || m.Sender != "" || !bytes.Equal(m.Body, tt.body) || m.ID != p.ID {
			t.Fatalf("message %d = {%q %q %q %d bytes id %q}, want {news %q \"\" %d bytes id %q}",
				i, m.Channel, m.Type, m.Sender, len(m.Body), m.ID, tt.wantType, len(tt.body), p.ID)
		}
	}
}

func TestPublishReturnsDistinctIDsAndSubscriberCounts(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	first := publish(t, ctx, c, "a/b", "text/plain", []byte("nobody"))
	if first.Subscribers != 0 {
		t.Fatalf("with no subscriber: %+v", first)
	}
	subscribe(t, ctx, c, "a", nil)
	subscribe(t, ctx, c, "a/b", nil)
	subscribe(t, ctx, c, "", nil)
	second := publish(t, ctx, c, "a/b", "text/plain", []byte("three"))
	// Ids are opaque: the client only checks that there is a new one.
	if second.Subscribers != 3 || second.ID == "" || second.ID == first.ID {
		t.Fatalf("after %+v: %+v, want another id and 3 subscribers", first, second)
	}
}

func TestSubscriptionNamesTheChannelOfEachMessage(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	root := subscribe(t, ctx, c, "", nil)
	parent := subscribe(t, ctx, c, "a b", nil)
	for _, ch := range []string{"a b", "a b/c?d", "a b/ü/%", "a b"} {
		publish(t, ctx, c, ch, "text/plain", []byte(ch))
		for _, sub := range []*client.Subscription{root, parent} {
			if m := mustNext(t, sub); m.Channel != ch || string(m.Body) != ch {
				t.Fatalf("subscriber of %q: message on %q with body %q, want %q", sub.Channel(), m.Channel, m.Body, ch)
			}
		}
	}
}

func TestSubscribeFiltersByTypeAndSender(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "hunter2"})
	alice := newClient(t, client.Config{URL: "http://alice:hunter2@" + ts.Addr})
	bob := newClient(t, client.Config{URL: ts.URL(), User: "bob", Password: "hunter2"})
	ctx := testContext(t)
	images := subscribe(t, ctx, alice, "chat", &client.SubscribeOptions{Type: "image/*"})
	notImages := subscribe(t, ctx, alice, "chat", &client.SubscribeOptions{Type: "!image/*,*"})
	fromBob := subscribe(t, ctx, alice, "chat", &client.SubscribeOptions{Sender: "bob"})
	bobsText := subscribe(t, ctx, alice, "chat", &client.SubscribeOptions{Type: "text/*", Sender: "b?b"})

	publish(t, ctx, alice, "chat", "image/png", []byte("1"))
	publish(t, ctx, bob, "chat", "image/png", []byte("2"))
	publish(t, ctx, alice, "chat", "text/plain", []byte("3"))
	publish(t, ctx, bob, "chat", "text/plain; charset=utf-8", []byte("4"))
	publish(t, ctx, bob, "chat", "application/json", []byte("5"))
	tests := []struct {
		sub  *client.Subscription
		want string
	}{
		{images, "alice 1, bob 2"},
		{notImages, "alice 3, bob 4, bob 5"},
		{fromBob, "bob 2, bob 4, bob 5"},
		{bobsText, "bob 4"},
	}
	for i, tt := range tests {
		var got []string
		for range strings.Count(tt.want, ",") + 1 {
			m := mustNext(t, tt.sub)
			got = append(got, m.Sender+" "+string(m.Body))
		}
		if g := strings.Join(got, ", "); g != tt.want {
			t.Fatalf("subscription %d got %q, want %q", i, g, tt.want)
		}
	}
}

func TestSenderIsTheUserName(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "hunter2"})
	ctx := testContext(t)
	watcher := newClient(t, client.Config{URL: ts.URL(), Password: "hunter2"})
	sub := subscribe(t, ctx, watcher, "chat", nil)
	// The server percent-encodes a From's bytes outside printable ASCII,
	// and "%"; Sender is the name as the publisher gave it, decoded once.
	for _, user := range []string{"alice", "zoë", "100%", "a%41", "a b"} {
		c := newClient(t, client.Config{URL: ts.URL(), User: user, Password: "hunter2"})
		publish(t, ctx, c, "chat", "text/plain", []byte(user))
		if m := mustNext(t, sub); m.Sender != user || string(m.Body) != user {
			t.Fatalf("message from %q: Sender %q, body %q", user, m.Sender, m.Body)
		}
	}
}

func TestReuseBodySharesOneBuffer(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	sub := subscribe(t, ctx, c, "x", &client.SubscribeOptions{ReuseBody: true})
	publish(t, ctx, c, "x", "", []byte("first"))
	publish(t, ctx, c, "x", "", []byte("other"))
	a := mustNext(t, sub)
	if string(a.Body) != "first" {
		t.Fatalf("first body %q", a.Body)
	}
	b := mustNext(t, sub)
	if string(b.Body) != "other" || string(a.Body) != "other" {
		t.Fatalf("bodies %q and %q: want both the buffer's %q", a.Body, b.Body, "other")
	}
}

func TestErrorsSayWhatHappened(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "hunter2"})
	ctx := testContext(t)
	anon := newClient(t, client.Config{URL: ts.URL()})
	authed := newClient(t, client.Config{URL: ts.URL(), User: "u", Password: "hunter2"})

	_, err := anon.Subscribe(ctx, "x", nil)
	wantStatus(t, err, 401, "client: subscribe /msgbus/x: 401 Unauthorized (unauthorized: use HTTP Basic auth with the bus's secret as password)")
	_, err = anon.Publish(ctx, "x", "text/plain", []byte("hi"))
	wantStatus(t, err, 401, "client: publish /msgbus/x: 401 Unauthorized")
	_, err = authed.Publish(ctx, "", "text/plain", []byte("hi"))
	wantStatus(t, err, 400, "client: publish /msgbus/: 400 Bad Request (name a channel to publish to, as in /msgbus/news)")
	_, err = authed.Subscribe(ctx, "a/../b", nil)
	wantStatus(t, err, 400, "client: subscribe /msgbus/a/../b: 400 Bad Request")

	// Nothing listens on a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	gone := newClient(t, client.Config{URL: "http://" + addr})
	_, err = gone.Publish(ctx, "x", "text/plain", nil)
	var oe *client.OpError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNREFUSED) ||
		!strings.HasPrefix(err.Error(), "client: publish /msgbus/x: dial tcp "+addr) {
		t.Fatalf("publish to nothing: %v, want an OpError for connection refused", err)
	}
	_, err = gone.Subscribe(ctx, "x", nil)
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), "client: subscribe /msgbus/x: dial tcp") {
		t.Fatalf("subscribe to nothing: %v", err)
	}
}

func wantStatus(t *testing.T, err error, code int, prefix string) {
	t.Helper()
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != code || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("err = %v, want a %d StatusError starting %q", err, code, prefix)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8888", "ftp://h", "http://", "http://h/msgbus/x", "http://h?x=1", "http://h:bad port"} {
		if _, err := client.New(client.Config{URL: u}); err == nil || !strings.HasPrefix(err.Error(), "client: server URL") {
			t.Errorf("New(%q) = %v, want a server URL error", u, err)
		}
	}
	c, err := client.New(client.Config{URL: "https://user:pw@example.com:4444/"})
	if err != nil || c.URL() != "https://example.com:4444" {
		t.Fatalf("New: %v, URL %q", err, c.URL())
	}
}

func TestSubscriptionReconnectsAfterServerRestart(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	var reasons []error
	attempts := make(chan struct{}, 100)
	sub := subscribe(t, ctx, c, "news", &client.SubscribeOptions{
		OnReconnect: func(err error, wait time.Duration) {
			reasons = append(reasons, err)
			select {
			case attempts <- struct{}{}:
			default: // the test has seen enough
			}
		},
	})
	publish(t, ctx, c, "news", "text/plain", []byte("before"))
	if m := mustNext(t, sub); string(m.Body) != "before" {
		t.Fatalf("got %q", m.Body)
	}

	ts.stop(t)
	got := make(chan result, 1)
	go func() { // Next reconnects while the server is down and back
		m, err := sub.Next(context.Background())
		got <- result{m, err}
	}()
	waitAttempts(t, attempts, 2) // the break, and a refused attempt
	ts2 := startServer(t, addr, server.Config{})
	ts2.waitSubscribers(t, 1)
	publish(t, ctx, c, "news", "text/plain", []byte("after"))
	select {
	case r := <-got:
		if r.err != nil || string(r.m.Body) != "after" {
			t.Fatalf("after the restart: %q, %v", r.m.Body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message after the restart")
	}
	if len(reasons) == 0 || !strings.Contains(reasons[0].Error(), "client: subscribe /msgbus/news: the server ended the stream") {
		t.Fatalf("OnReconnect reasons: %v", reasons)
	}
}

func TestOnReconnectedSaysWhenTheStreamIsBack(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL(), MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	ctx := testContext(t)
	var events []string
	var back client.Reconnected
	attempts := make(chan struct{}, 1000)
	sub := subscribe(t, ctx, c, "news", &client.SubscribeOptions{
		OnReconnect: func(err error, wait time.Duration) {
			events = append(events, "reconnect")
			select {
			case attempts <- struct{}{}:
			default: // the test has seen enough
			}
		},
		OnReconnected: func(r client.Reconnected) {
			events = append(events, "reconnected")
			back = r
		},
	})
	publish(t, ctx, c, "news", "text/plain", []byte("before"))
	mustNext(t, sub)
	if len(events) != 0 {
		t.Fatalf("events before any break: %v", events)
	}

	ts.stop(t)
	got := make(chan result, 1)
	go func() {
		m, err := sub.Next(context.Background())
		got <- result{m, err}
	}()
	waitAttempts(t, attempts, 1)
	down := time.Now()           // the client knows the server is down
	waitAttempts(t, attempts, 2) // refused attempts meanwhile
	outage := time.Since(down)
	ts2 := startServer(t, addr, server.Config{})
	ts2.waitSubscribers(t, 1)
	publish(t, ctx, c, "news", "text/plain", []byte("after"))
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no message after the restart")
	}
	if r.err != nil || string(r.m.Body) != "after" {
		t.Fatalf("after the restart: %q, %v", r.m.Body, r.err)
	}
	// One "reconnected", last, after as many "reconnect"s as it took.
	if n := len(events); n < 3 || events[n-1] != "reconnected" || strings.Count(strings.Join(events, " "), "reconnected") != 1 {
		t.Fatalf("events %v, want several reconnects then one reconnected", events)
	}
	// The restarted server (memory history) does not know the id the
	// subscription resumed from: it cannot promise that nothing is missing.
	if back.Attempts != len(events)-1 || back.Down < outage || back.Down > 10*time.Second || back.Recovered {
		t.Fatalf("OnReconnected(%+v) after events %v, want %d attempts, at least %v, not recovered",
			back, events, len(events)-1, outage)
	}
}

func TestSubscriptionEndsWhenTheServerRefusesForGood(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL()})
	sub := subscribe(t, testContext(t), c, "news", nil)
	ts.stop(t)
	startServer(t, addr, server.Config{Secret: "now there is one"})
	_, err := nextWithin(t, sub, 10*time.Second)
	wantStatus(t, err, 401, "client: subscribe /msgbus/news: 401 Unauthorized")
	if _, err2 := sub.Next(context.Background()); err2 != err {
		t.Fatalf("second Next = %v, want the same %v", err2, err)
	}
}

func TestCancelEndsTheSubscription(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})

	ctx, cancel := context.WithCancel(context.Background())
	sub := subscribe(t, ctx, c, "x", nil)
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := nextWithin(t, sub, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v, want context.Canceled", err)
	}

	sub = subscribe(t, testContext(t), c, "x", nil)
	time.AfterFunc(20*time.Millisecond, func() { sub.Close() })
	if _, err := nextWithin(t, sub, 5*time.Second); err != client.ErrClosed {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}

	// Cancelled while waiting to reconnect.
	ctx, cancel = context.WithCancel(context.Background())
	slow := newClient(t, client.Config{URL: ts.URL(), MinBackoff: time.Hour, MaxBackoff: time.Hour})
	sub = subscribe(t, ctx, slow, "x", nil)
	ts.stop(t)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := nextWithin(t, sub, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next cancelled in backoff = %v, want context.Canceled", err)
	}
	ts.waitSubscribers(t, 0)
}

func TestBackoffGrowsWithJitterUpToTheMaximum(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL(), MinBackoff: 8 * time.Millisecond, MaxBackoff: 32 * time.Millisecond})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	var waits []time.Duration
	var reasons []error
	sub := subscribe(t, ctx, c, "x", &client.SubscribeOptions{OnReconnect: func(err error, wait time.Duration) {
		waits = append(waits, wait)
		reasons = append(reasons, err)
		if len(waits) == 6 {
			cancel()
		}
	}})
	ts.stop(t) // and nothing comes back: every attempt is refused
	if _, err := nextWithin(t, sub, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v, want context.Canceled", err)
	}
	bounds := [][2]time.Duration{{4, 8}, {8, 16}, {16, 32}, {16, 32}, {16, 32}, {16, 32}}
	if len(waits) != len(bounds) {
		t.Fatalf("waits %v", waits)
	}
	for i, w := range waits {
		lo, hi := bounds[i][0]*time.Millisecond, bounds[i][1]*time.Millisecond
		if w < lo || w > hi {
			t.Fatalf("wait %d = %v, want within [%v, %v] (all: %v)", i, w, lo, hi, waits)
		}
	}
	if !errors.Is(reasons[1], syscall.ECONNREFUSED) {
		t.Fatalf("second reason %v, want connection refused", reasons[1])
	}
}
