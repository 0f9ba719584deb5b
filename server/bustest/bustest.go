// Package bustest is the test harness the server, client and tools tests
// share: a real server on a loopback port, raw connections read byte for
// byte, and waits on events rather than on the clock.
//
// It does not import package server, whose own tests use it: it serves
// anything with Serve and Shutdown (a *server.Server), and counts
// subscribers through a func the caller gives (ts.Stats().Subscribers).
package bustest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// A Server is what Serve runs; *server.Server is one.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Running is a Server serving on a loopback port.
type Running struct {
	Addr string // host:port
	srv  Server
	done chan error // Serve's result; nil once stopped
}

// Serve serves srv on addr until the end of the test, when it is shut
// down and Serve must have returned. addr is "127.0.0.1:0" for any port, or
// the port of a server the test just stopped, which the kernel may take a
// moment to free.
func Serve(t testing.TB, srv Server, addr string) *Running {
	t.Helper()
	ln := Listen(t, addr)
	r := &Running{Addr: ln.Addr().String(), srv: srv, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ln) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Listen listens on addr, retrying for a second while the port is still
// taken (by a server the test just stopped).
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond) // a retry, not a check: the port frees when it frees
	}
	t.Fatal(err)
	return nil
}

// URL is the server's http URL for path.
func (r *Running) URL(path string) string { return "http://" + r.Addr + path }

// Stop shuts the server down and checks that Serve returned; stopping
// again does nothing.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	if r.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Errorf("Serve did not return after Shutdown")
	}
	r.done = nil
}

// Timeout is how long Until waits by default: long, because a loaded
// machine under -race is slow, and a passing test never waits it out.
const Timeout = 30 * time.Second

// Until waits for cond to hold, checking it often, and fails the test
// after Timeout with what describes the state (as nats-server's checkFor).
// It is the event-driven wait the tests use instead of sleeping a fixed
// time and then checking.
func Until(t testing.TB, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v: %s", Timeout, what())
		}
		time.Sleep(time.Millisecond)
	}
}

// Subscribers waits until count reports n subscribers, as a test does
// before publishing to subscribers that connect in the background.
func Subscribers(t testing.TB, count func() int64, n int64) {
	t.Helper()
	Until(t, func() string { return fmt.Sprintf("subscribers = %d, want %d", count(), n) },
		func() bool { return count() == n })
}
