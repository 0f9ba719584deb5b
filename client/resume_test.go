package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
)

// publishN publishes "<prefix>0" ... to channel and returns the answers.
func publishN(t *testing.T, ctx context.Context, c *client.Client, channel, prefix string, n int) []client.Published {
	t.Helper()
	var ps []client.Published
	for i := range n {
		ps = append(ps, publish(t, ctx, c, channel, "text/plain", fmt.Appendf(nil, "%s%d", prefix, i)))
	}
	return ps
}

// wantMessages reads len(want) messages and checks their bodies, and
// their ids against ids when given.
func wantMessages(t *testing.T, sub *client.Subscription, want []string, ids []client.Published) {
	t.Helper()
	for i, w := range want {
		m := mustNext(t, sub)
		if string(m.Body) != w || ids != nil && m.ID != ids[i].ID {
			t.Fatalf("message %d: %q id %q, want %q (all: %q)", i, m.Body, m.ID, w, want)
		}
	}
}

// reconnections records OnReconnected calls.
func reconnections() (*client.SubscribeOptions, <-chan client.Reconnected) {
	ch := make(chan client.Reconnected, 16)
	return &client.SubscribeOptions{OnReconnected: func(r client.Reconnected) { ch <- r }}, ch
}

func TestSubscribeSinceAndLastReplayWhatTheServerRetained(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	ps := publishN(t, ctx, c, "log", "m", 5)

	since := subscribe(t, ctx, c, "log", &client.SubscribeOptions{Since: ps[1].ID})
	last := subscribe(t, ctx, c, "log", &client.SubscribeOptions{Last: 2})
	fresh := subscribe(t, ctx, c, "log", nil)
	for _, sub := range []*client.Subscription{since, last, fresh} {
		if !sub.Recovered() {
			t.Fatalf("Recovered() = false after a complete replay")
		}
	}
	if since.LastID() != ps[1].ID || fresh.LastID() != "" {
		t.Fatalf("LastID before any message: %q and %q, want the Since %q and none", since.LastID(), fresh.LastID(), ps[1].ID)
	}
	live := publish(t, ctx, c, "log", "text/plain", []byte("live"))

	// Replay, then live, with no gap and no duplicate.
	wantMessages(t, since, []string{"m2", "m3", "m4", "live"}, append(ps[2:5:5], live))
	wantMessages(t, last, []string{"m3", "m4", "live"}, append(ps[3:5:5], live))
	wantMessages(t, fresh, []string{"live"}, []client.Published{live})
	if since.LastID() != live.ID {
		t.Fatalf("LastID = %q, want %q", since.LastID(), live.ID)
	}
}

func TestRecoveredSaysWhenHistoryNoLongerHasEverything(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{HistorySize: 2})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	ps := publishN(t, ctx, c, "log", "m", 5)

	sub := subscribe(t, ctx, c, "log", &client.SubscribeOptions{Since: ps[0].ID})
	if sub.Recovered() {
		t.Fatal("Recovered() = true, but the server kept only the last 2 of the 4 after Since")
	}
	// What was retained after it is replayed all the same.
	wantMessages(t, sub, []string{"m3", "m4"}, ps[3:])

	// The newest id is still retained: nothing is missing after it.
	sub = subscribe(t, ctx, c, "log", &client.SubscribeOptions{Since: ps[4].ID})
	if !sub.Recovered() {
		t.Fatal("Recovered() = false resuming from the newest message")
	}
}

func TestSubscriptionResumesAfterANetworkBreakWithoutLoss(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	r := startRelay(t, ts.Addr)
	pub := newClient(t, client.Config{URL: ts.URL()})
	c := newClient(t, client.Config{URL: r.URL()})
	ctx := testContext(t)
	opts, back := reconnections()
	sub := subscribe(t, ctx, c, "news", opts)
	a := publish(t, ctx, pub, "news", "text/plain", []byte("a"))
	wantMessages(t, sub, []string{"a"}, []client.Published{a})

	// The network fails; the server goes on, and keeps what is published.
	r.cut(true)
	ps := publishN(t, ctx, pub, "news", "while down ", 3)
	r.heal()

	wantMessages(t, sub, []string{"while down 0", "while down 1", "while down 2"}, ps)
	d := publish(t, ctx, pub, "news", "text/plain", []byte("d"))
	wantMessages(t, sub, []string{"d"}, []client.Published{d})
	select {
	case rc := <-back:
		if !rc.Recovered || rc.Attempts < 1 {
			t.Fatalf("OnReconnected(%+v), want recovered", rc)
		}
	default:
		t.Fatal("no OnReconnected before the replayed messages")
	}
	if !sub.Recovered() || sub.LastID() != d.ID {
		t.Fatalf("Recovered() %v, LastID() %q; want true and %q", sub.Recovered(), sub.LastID(), d.ID)
	}
}

func TestSubscriptionResumesAcrossServerRestart(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL(), PublishAttempts: 1000})
	ctx := testContext(t)
	opts, back := reconnections()
	sub := subscribe(t, ctx, c, "news", opts)
	before := publish(t, ctx, c, "news", "text/plain", []byte("before"))
	wantMessages(t, sub, []string{"before"}, []client.Published{before})

	ts.stop(t)
	// Publish retries until the server is back: its message may reach
	// the new server before or after the subscription does. Either way it
	// is received, once.
	published := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "news", "text/plain", []byte("during"))
		published <- err
	}()
	startServer(t, addr, server.Config{})
	if err := <-published; err != nil {
		t.Fatalf("Publish while the server restarted: %v", err)
	}
	wantMessages(t, sub, []string{"during"}, nil)
	after := publish(t, ctx, c, "news", "text/plain", []byte("after"))
	wantMessages(t, sub, []string{"after"}, []client.Published{after})

	// A memory store forgot the id the subscription resumed from: the
	// server cannot promise that nothing is missing, and says so.
	rc := <-back
	if rc.Recovered || sub.Recovered() {
		t.Fatalf("after a restart without a durable store: OnReconnected(%+v), Recovered() %v; want not recovered",
			rc, sub.Recovered())
	}
}

func TestSubscriptionResumesAcrossDurableServerRestartRecovered(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{Store: dir, Logger: quietLogger()})
	if err != nil {
		t.Skipf("no durable store: %v", err)
	}
	ts := serve(t, "127.0.0.1:0", srv)
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL(), PublishAttempts: 1000})
	ctx := testContext(t)
	opts, back := reconnections()
	sub := subscribe(t, ctx, c, "news", opts)
	a := publish(t, ctx, c, "news", "text/plain", []byte("a"))
	wantMessages(t, sub, []string{"a"}, []client.Published{a})

	ts.stop(t)
	published := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "news", "text/plain", []byte("b"))
		published <- err
	}()
	startServer(t, addr, server.Config{Store: dir})
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	wantMessages(t, sub, []string{"b"}, nil)
	if rc := <-back; !rc.Recovered {
		t.Fatalf("OnReconnected(%+v), want recovered: the durable store still has %q", rc, a.ID)
	}
}

func TestNextContextBoundsTheWaitNotTheSubscription(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	sub := subscribe(t, ctx, c, "x", &client.SubscribeOptions{ReuseBody: true})

	wait, cancel := context.WithCancelCause(ctx)
	stop := errors.New("waited enough")
	go cancel(stop)
	if _, err := sub.Next(wait); err != stop {
		t.Fatalf("Next with a cancelled context = %v, want its cause", err)
	}
	// A deadline passes while the next message is on its way, or not:
	// either way the subscription goes on and loses nothing.
	short, cancel2 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel2()
	publish(t, ctx, c, "x", "text/plain", []byte("one"))
	m, err := sub.Next(short)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with a short deadline = %v", err)
	}
	if err != nil {
		m = mustNext(t, sub)
	}
	if string(m.Body) != "one" {
		t.Fatalf("got %q, want one", m.Body)
	}
	publish(t, ctx, c, "x", "text/plain", []byte("two"))
	if m := mustNext(t, sub); string(m.Body) != "two" {
		t.Fatalf("got %q, want two", m.Body)
	}
	sub.Close()
	if _, err := sub.Next(ctx); err != client.ErrClosed {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
}

func TestEveryReceiverSaysErrClosedAfterClose(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	open := map[string]func() (client.Receiver, error){
		"Subscribe": func() (client.Receiver, error) { return c.Subscribe(ctx, "x", nil) },
		"Sub":       func() (client.Receiver, error) { return c.Sub(ctx, "x", nil) },
		"Pull":      func() (client.Receiver, error) { return c.Pull(ctx, "x", nil) },
		"Bus":       func() (client.Receiver, error) { return c.Bus(ctx, "x", nil) },
	}
	for name, f := range open {
		r, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r.Close()
		if _, err := r.Next(ctx); !errors.Is(err, client.ErrClosed) || err.Error() != "client: closed" {
			t.Errorf("%s: Next after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestWebSocketSubResumesWithSince(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{HistorySize: 3})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	ps := publishN(t, ctx, c, "log", "m", 5)

	tests := []struct {
		opts      client.WSOptions
		want      string
		recovered bool
	}{
		{client.WSOptions{Since: ps[2].ID}, "m3 m4", true},
		{client.WSOptions{Since: ps[0].ID}, "m2 m3 m4", false}, // m1 is gone
		{client.WSOptions{Last: 1}, "m4", true},
	}
	for _, tt := range tests {
		sub, err := c.Sub(ctx, "log", &tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range strings.Count(tt.want, " ") + 1 {
			m, err := sub.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != "" {
				t.Fatalf("a WebSocket message with id %q: frames carry none", m.ID)
			}
			got = append(got, string(m.Body))
		}
		if g := strings.Join(got, " "); g != tt.want || sub.Recovered() != tt.recovered {
			t.Errorf("Sub(%+v): %q, Recovered() %v; want %q, %v", tt.opts, g, sub.Recovered(), tt.want, tt.recovered)
		}
		sub.Close()
	}
}
