package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/token"
)

// tokenSecret is the HS256 secret of the token tests' servers.
const tokenSecret = "the client tests' secret, 32+ bytes long"

// startTokenServer starts a server that takes tokens signed with
// tokenSecret, and returns it with a Verifier that mints them.
func startTokenServer(t *testing.T) (*testServer, *token.Verifier) {
	t.Helper()
	ts := startServer(t, "127.0.0.1:0", server.Config{TokenSecret: tokenSecret})
	v, err := token.NewVerifier(token.Config{Secret: tokenSecret})
	if err != nil {
		t.Fatal(err)
	}
	return ts, v
}

// mint returns a token for req, valid from now.
func mint(t *testing.T, v *token.Verifier, req token.Request, now time.Time) string {
	t.Helper()
	tok, _, err := v.Mint(req, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// slowRetries is a Config whose Publish, were it to retry, would wait at
// least five seconds first: a quick refusal shows it did not.
func slowRetries(url, tok string) client.Config {
	return client.Config{URL: url, Token: tok, PublishAttempts: 5, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second}
}

func TestTokenPublishesAndSubscribesAsItsSub(t *testing.T) {
	ts, v := startTokenServer(t)
	ctx := testContext(t)
	tok := mint(t, v, token.Request{Sub: "alice", Publish: []string{"news"}, Subscribe: []string{"news"}}, time.Now())
	c := newClient(t, client.Config{URL: ts.URL(), Token: tok})

	sub := subscribe(t, ctx, c, "news", nil)
	p, err := c.Publish(ctx, "news", "text/plain", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sender != "alice" || string(m.Body) != "hello" || m.ID != p.ID {
		t.Fatalf("got %+v, want hello from alice with id %q", m, p.ID)
	}
	page, err := c.History(ctx, "news", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Sender != "alice" {
		t.Fatalf("history: %+v, want the message from alice", page.Messages)
	}

	// The WebSocket handshakes carry it too.
	wsSub, err := c.Sub(ctx, "news", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wsSub.Close()
	pub, err := c.Pub(ctx, "news", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Send(ctx, client.TextFrame, []byte("over ws")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := wsSub.Next(ctx); err != nil || string(m.Body) != "over ws" {
		t.Fatalf("ws Next: %q, %v", m.Body, err)
	}
	if m, err := sub.Next(ctx); err != nil || string(m.Body) != "over ws" || m.Sender != "alice" {
		t.Fatalf("Next after a WebSocket publish: %+v, %v; want it from alice", m, err)
	}
}

func TestTokenWithoutTheRightIsForbidden(t *testing.T) {
	ts, v := startTokenServer(t)
	ctx := testContext(t)
	// bob may read news and nothing else, and publish nowhere.
	tok := mint(t, v, token.Request{Sub: "bob", Subscribe: []string{"news"}}, time.Now())
	c := newClient(t, slowRetries(ts.URL(), tok))

	start := time.Now()
	_, err := c.Publish(ctx, "news", "text/plain", []byte("hi"))
	if !errors.Is(err, client.ErrForbidden) || !strings.HasSuffix(err.Error(), "403 Forbidden (forbidden: the token may not publish to news)") {
		t.Fatalf("Publish without the right: %v, want ErrForbidden saying which right", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Publish took %v: a 403 was retried", d)
	}
	_, err = c.Subscribe(ctx, "sport", nil)
	if !errors.Is(err, client.ErrForbidden) || !strings.HasSuffix(err.Error(), "403 Forbidden (forbidden: the token may not subscribe to sport)") {
		t.Fatalf("Subscribe without the right: %v", err)
	}
	_, err = c.History(ctx, "sport", nil)
	if !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("History without the right: %v", err)
	}
	for _, dial := range []func() error{
		func() error { _, err := c.Pub(ctx, "news", nil); return err },
		func() error { _, err := c.Push(ctx, "news", nil); return err },
		func() error { _, err := c.Sub(ctx, "sport", nil); return err },
		func() error { _, err := c.Pull(ctx, "sport", nil); return err },
	} {
		if err := dial(); !errors.Is(err, client.ErrForbidden) {
			t.Errorf("WebSocket without the right: %v, want ErrForbidden", err)
		}
	}
	// What it may do, it does.
	sub := subscribe(t, ctx, c, "news", nil)
	sub.Close()
}

func TestExpiredOrBadTokenIsUnauthorizedAndNotRetried(t *testing.T) {
	ts, v := startTokenServer(t)
	ctx := testContext(t)
	all := token.Request{Sub: "carol", TTL: "1h", Publish: []string{"*"}, Subscribe: []string{"*"}}
	other, err := token.NewVerifier(token.Config{Secret: "not the server's secret, 32+ bytes"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
	}{
		{"expired", mint(t, v, all, time.Now().Add(-2*time.Hour))},
		{"wrongly signed", mint(t, other, all, time.Now())},
		{"not a JWT", "not.a.jwt"},
	} {
		c := newClient(t, slowRetries(ts.URL(), tc.token))
		start := time.Now()
		_, err := c.Publish(ctx, "news", "text/plain", []byte("hi"))
		if !errors.Is(err, client.ErrUnauthorized) || !strings.HasSuffix(err.Error(), ": get a new token)") {
			t.Errorf("%s: Publish: %v, want ErrUnauthorized saying to get a new token", tc.name, err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%s: Publish took %v: a 401 was retried", tc.name, d)
		}
		if _, err := c.Subscribe(ctx, "news", nil); !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("%s: Subscribe: %v, want ErrUnauthorized", tc.name, err)
		}
		if _, err := c.Bus(ctx, "room", nil); !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("%s: Bus: %v, want ErrUnauthorized", tc.name, err)
		}
	}

	// Without a token, a server with no anonymous rights asks for one.
	anon := newClient(t, client.Config{URL: ts.URL()})
	_, err = anon.Publish(ctx, "news", "text/plain", []byte("hi"))
	if !errors.Is(err, client.ErrUnauthorized) || !strings.HasSuffix(err.Error(), "401 Unauthorized (unauthorized: a token is needed to publish to news)") {
		t.Fatalf("Publish without a token: %v, want ErrUnauthorized saying the server wants one", err)
	}
}

// TestSubscriptionEndsWhenItsTokenExpires: the server ends the stream when
// the token expires, and the 401 of a reconnect ends the subscription
// rather than being tried again and again.
func TestSubscriptionEndsWhenItsTokenExpires(t *testing.T) {
	ts, v := startTokenServer(t)
	ctx := testContext(t)
	tok := mint(t, v, token.Request{Sub: "dave", TTL: "1s", Subscribe: []string{"news"}}, time.Now())
	c := newClient(t, client.Config{URL: ts.URL(), Token: tok, MinBackoff: 500 * time.Millisecond, MaxBackoff: time.Second})
	attempts := 0
	sub := subscribe(t, ctx, c, "news", &client.SubscribeOptions{OnReconnect: func(error, time.Duration) { attempts++ }})
	_, err := sub.Next(ctx)
	if !errors.Is(err, client.ErrUnauthorized) || !strings.HasSuffix(err.Error(), ": get a new token)") {
		t.Fatalf("Next once the token expired: %v, want ErrUnauthorized", err)
	}
	t.Logf("ended after %d reconnect attempts: %v", attempts, err)
}
