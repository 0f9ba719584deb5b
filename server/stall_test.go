package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// partCounter counts the part delimiters in what it is written, across
// writes.
type partCounter struct {
	carry []byte
	parts atomic.Int64
}

var delimiter = []byte("--00MsgBus00\r\n")

func (c *partCounter) Write(p []byte) (int, error) {
	buf := append(c.carry, p...)
	c.parts.Add(int64(bytes.Count(buf, delimiter)))
	keep := min(len(buf), len(delimiter)-1)
	c.carry = append(c.carry[:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

// TestStalledCrowdDoesNotCostAHealthySubscriber: 200 subscribers of a
// parent channel that never read (an attacker's, with ordinary socket
// buffers) and one reader of the child; 300 publishes of 64 KiB to the child.
// The stalled ones fall behind and go; the reader gets every message. Before
// TCP_NOTSENT_LOWAT the stalled sockets took megabytes each while the
// reader, last on the ready list, was dropped as too slow with nothing read.
func TestStalledCrowdDoesNotCostAHealthySubscriber(t *testing.T) {
	const stalled, n, size = 200, 300, 64 << 10
	ts := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for range stalled {
		c, err := net.Dial("tcp", ts.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /msgbus/st HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	resp, err := http.Get(ts.URL("/msgbus/st/good"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ts.waitSubscribers(t, stalled+1)

	var got partCounter
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(&got, resp.Body)
		readDone <- err
	}()
	body := strings.Repeat("x", size)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		if r := ts.publish(t, "/msgbus/st/good", "text/plain", body); r.StatusCode != http.StatusNoContent {
			t.Fatalf("publish %d: %s", i, r.Status)
		}
		select {
		case err := <-readDone:
			t.Fatalf("the reading subscriber was cut after %d of %d publishes, having read %d parts: %v",
				i+1, n, got.parts.Load(), err)
		case <-tick.C:
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for got.parts.Load() < n {
		select {
		case err := <-readDone:
			t.Fatalf("the reading subscriber was cut with %d of %d parts: %v", got.parts.Load(), n, err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reading subscriber has %d of %d parts", got.parts.Load(), n)
		}
	}
	if slow := ts.Stats().SlowDisconnects; slow < stalled {
		t.Errorf("%d slow disconnects, want the %d stalled subscribers", slow, stalled)
	}
}

// TestStalledPullersDoNotStarveAReadingOne: pullers that never read hold
// pushes until the topic's limit is reached; they are then dropped, what
// they held goes to the puller that reads, and pushing goes on.
func TestStalledPullersDoNotStarveAReadingOne(t *testing.T) {
	const stalled, n, size = 3, 200, 16 << 10
	ts := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxBacklogBytes: 512 << 10, PullerStall: 200 * time.Millisecond})
	for range stalled {
		if _, resp, err := ts.wsTryDialWith(t, wsDialSmallBuffer(), "/pull/jobs", nil); err != nil {
			t.Fatalf("stalled puller: %v (%s)", err, wsStatus(resp))
		}
	}
	reader := ts.wsConnect(t, "/pull/jobs")
	got := make(chan string, 4*n)
	go func() {
		for {
			_, b, err := reader.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			got <- string(b[:8])
		}
	}()
	ts.waitSubscribers(t, stalled+1)
	pad := strings.Repeat("x", size-8)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < n; {
		r := ts.wsRequest(t, http.MethodPost, "/push/jobs", nil, "text/plain", fmt.Sprintf("%08d", i)+pad)
		switch {
		case r.status == http.StatusNoContent:
			i++
		case r.status != http.StatusServiceUnavailable:
			t.Fatalf("push %d: %d %q", i, r.status, r.body)
		case time.Now().After(deadline):
			t.Fatalf("push %d still refused after 20 s: stalled pullers starve the reading one", i)
		default:
			time.Sleep(10 * time.Millisecond) // 503 with Retry-After: back off
		}
	}
	// What the stalled pullers' sockets took before they filled (their
	// kernel buffers: about 128 KiB unsent and a small window, some 10
	// messages each) is lost with them, as nobody can tell whether it was
	// read. Everything else reaches the reader.
	want := n - stalled*20
	seen := make(map[string]bool)
	for len(seen) < want {
		select {
		case id, ok := <-got:
			if !ok {
				t.Fatalf("the reading puller was closed with %d of %d messages", len(seen), n)
			}
			seen[id] = true // at least once: a moved push may come twice
		case <-time.After(10 * time.Second):
			t.Fatalf("the reading puller has %d of %d accepted messages, want at least %d", len(seen), n, want)
		}
	}
	if slow := ts.Stats().SlowDisconnects; slow == 0 {
		t.Error("no stalled puller was dropped")
	}
}
