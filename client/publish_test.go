package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
)

func TestPublishRetriedAfterALostAnswerIsPublishedOnce(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	p := startPublishProxy(t, ts.Addr, func(i int) fault {
		if i == 0 {
			return loseAnswer // the server publishes; its answer never arrives
		}
		return forward
	})
	c := newClient(t, client.Config{URL: p.URL()})
	watcher := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	sub := subscribe(t, ctx, watcher, "news", nil)

	got := publish(t, ctx, c, "news", "text/plain", []byte("once"))
	keys := p.Keys()
	if len(keys) != 2 || len(keys[0]) != 32 || keys[0] != keys[1] {
		t.Fatalf("Idempotency-Keys sent: %q, want the same random key twice", keys)
	}
	m := mustNext(t, sub)
	// (The repeat's answer has the first's id; its Msgbus-Subscribers is
	// the server's business: see PROTOCOL.md §6.)
	if string(m.Body) != "once" || m.ID != got.ID {
		t.Fatalf("received %q id %q; Publish answered %+v", m.Body, m.ID, got)
	}
	// Not twice: the next message is the next one published.
	publish(t, ctx, c, "news", "text/plain", []byte("next"))
	if m := mustNext(t, sub); string(m.Body) != "next" {
		t.Fatalf("after the retried publish: %q, want next (a duplicate?)", m.Body)
	}
	if keys := p.Keys(); len(keys) != 3 || keys[2] == keys[0] {
		t.Fatalf("keys %q: want a new key for a new publish", keys)
	}
}

func TestPublishRetriesABusyServerAfterRetryAfter(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	p := startPublishProxy(t, ts.Addr, func(i int) fault {
		if i < 2 {
			return busy
		}
		return forward
	})
	p.retryAfter = "1"
	c := newClient(t, client.Config{URL: p.URL(), MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	ctx := testContext(t)

	// A deadline sooner than Retry-After: Publish does not wait in vain.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := c.Publish(short, "news", "text/plain", []byte("hi"))
	wantStatus(t, err, 503, "client: publish /msgbus/news: 503 Service Unavailable (busy)")
	if short.Err() != nil {
		t.Fatalf("Publish returned %v only once its context had ended", err)
	}

	start := time.Now()
	got := publish(t, ctx, c, "news", "text/plain", []byte("hi"))
	if waited := time.Since(start); waited < time.Second || got.ID == "" {
		t.Fatalf("published %+v after %v: want an id, after the server's Retry-After of 1s", got, waited)
	}
	if keys := p.Keys(); len(keys) != 3 || keys[1] != keys[2] || keys[0] == keys[1] {
		t.Fatalf("keys %q: want one per Publish, the same on its retry", keys)
	}
}

func TestPublishGivesUpAfterItsAttempts(t *testing.T) {
	// A server that takes every connection and closes it at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })

	c := newClient(t, client.Config{URL: "http://" + ln.Addr().String(), PublishAttempts: 3})
	_, err = c.Publish(testContext(t), "x", "text/plain", []byte("hi"))
	var oe *client.OpError
	if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), "client: publish /msgbus/x: ") {
		t.Fatalf("Publish = %v, want an OpError", err)
	}
	if n := len(accepted); n != 3 {
		t.Fatalf("%d connections, want 3 attempts", n)
	}

	// A refusal other than 503 is not retried.
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "s"})
	p := startPublishProxy(t, ts.Addr, func(int) fault { return forward })
	c = newClient(t, client.Config{URL: p.URL()})
	_, err = c.Publish(testContext(t), "x", "text/plain", []byte("hi"))
	wantStatus(t, err, 401, "client: publish /msgbus/x: 401 Unauthorized")
	if n := len(p.Keys()); n != 1 {
		t.Fatalf("%d requests for a 401, want 1", n)
	}
}

func TestPublishWaitsForARestartingServer(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	addr := ts.Addr
	c := newClient(t, client.Config{URL: ts.URL(), PublishAttempts: 1000})
	ctx := testContext(t)
	ts.stop(t)

	// Refused while the server is down; published once it is back.
	published := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "news", "text/plain", []byte("hi"))
		published <- err
	}()
	ts2 := startServer(t, addr, server.Config{})
	if err := <-published; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	page, err := c.History(ctx, "news", nil)
	if err != nil || len(page.Messages) != 1 || string(page.Messages[0].Body) != "hi" {
		t.Fatalf("history after the restart: %+v, %v; want the message once", page, err)
	}
	_ = ts2

	// With ctx cancelled, the retries end at once.
	ts2.stop(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Publish(cctx, "news", "text/plain", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v", err)
	}
	if _, err := newClient(t, client.Config{URL: "http://" + addr, PublishAttempts: 2}).Publish(ctx, "x", "", nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Publish to a stopped server = %v, want connection refused", err)
	}
}
