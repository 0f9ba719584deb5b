package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Memory is bounded as a whole (server/PROTOCOL.md §5): each case attacks the real
// binary the way an attacker did and reads the process's resident set from
// /proc. The bounds are several times what the server should hold and far
// below what it held before these limits (in parentheses).

// settledRSS waits for the server's resident set to stop shrinking (the
// Go runtime gives freed memory back in the background) and returns it,
// at most within a few seconds.
func settledRSS(t testing.TB, pid string) int {
	t.Helper()
	rss := rssKiB(t, pid)
	for range 40 {
		time.Sleep(100 * time.Millisecond)
		now := rssKiB(t, pid)
		if now >= rss-256 {
			return now
		}
		rss = now
	}
	return rss
}

// memoryCase runs attack against a fresh server and fails when the
// server's resident set grows by more than limitMiB.
func memoryCase(t *testing.T, limitMiB int, attack func(t *testing.T, addr string), flags ...string) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startMsgbus(t, addr, binary, append([]string{"-l", addr, "-m", "production", "--log-level", "error"}, flags...)...)
	pid := strconv.Itoa(p.cmd.Process.Pid)
	before := rssKiB(t, pid)
	attack(t, addr)
	after := settledRSS(t, pid)
	grew := (after - before) / 1024
	t.Logf("resident set %d MiB → %d MiB", before/1024, after/1024)
	if grew > limitMiB {
		t.Fatalf("the server's resident set grew by %d MiB, want at most %d", grew, limitMiB)
	}
}

// post sends one POST on the keep-alive connection c and returns the status.
func post(t *testing.T, c net.Conn, r *bufio.Reader, path, body string) int {
	t.Helper()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s",
		path, len(body), body)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func dialKeepAlive(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return c, bufio.NewReader(c)
}

func TestMemoryIsBoundedAsAWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and sends hundreds of megabytes")
	}
	megabyte := strings.Repeat("m", 1_000_000)

	// 17 × 1 MB to each of 40 push topics with no puller (661 MB): the
	// total backlog cap (64 MiB) answers 503 past it.
	t.Run("push backlogs", func(t *testing.T) {
		memoryCase(t, 250, func(t *testing.T, addr string) {
			c, r := dialKeepAlive(t, addr)
			refused := 0
			for topic := range 40 {
				for range 17 {
					switch status := post(t, c, r, "/push/t"+strconv.Itoa(topic), megabyte); status {
					case http.StatusNoContent:
					case http.StatusServiceUnavailable:
						refused++
					default:
						t.Fatalf("push: %d", status)
					}
				}
			}
			if refused == 0 {
				t.Fatal("680 MB of pushes were all accepted: no total cap")
			}
		})
	})

	// History past its limits: 100 × 1 MB to 100 channels, then 100,000
	// small messages to as many channels, against a 16 MB cap: what is
	// evicted is freed, index and all.
	t.Run("history", func(t *testing.T) {
		memoryCase(t, 80, func(t *testing.T, addr string) {
			c, r := dialKeepAlive(t, addr)
			for i := range 100 {
				if status := post(t, c, r, "/msgbus/big/"+strconv.Itoa(i), megabyte); status != http.StatusNoContent {
					t.Fatalf("publish: %d", status)
				}
			}
			for i := range 100_000 {
				if status := post(t, c, r, "/msgbus/small/"+strconv.Itoa(i), "s"); status != http.StatusNoContent {
					t.Fatalf("publish: %d", status)
				}
			}
		}, "--history-max-bytes", "16000000")
	})

	// 400 idle keep-alive publishers that each sent one 1 MB POST (432 MB),
	// with history off: what the publishers' connections hold.
	t.Run("idle publishers", func(t *testing.T) {
		memoryCase(t, 100, func(t *testing.T, addr string) {
			for range 400 {
				c, r := dialKeepAlive(t, addr)
				if status := post(t, c, r, "/msgbus/x", megabyte); status != http.StatusNoContent {
					t.Fatalf("publish: %d", status)
				}
			}
		}, "--history-size", "0")
	})

	// 100 WebSocket /pub/ senders that each sent one 1 MB frame (~1.7 MB
	// each).
	t.Run("WebSocket senders", func(t *testing.T) {
		memoryCase(t, 60, func(t *testing.T, addr string) {
			// Each sender follows its megabyte with a short text message;
			// when a subscriber of text alone has them all, the server has
			// read and handled every megabyte.
			sub, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/sub/x?type=text/*", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for range 100 {
				c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/pub/x", nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if err := c.WriteMessage(websocket.BinaryMessage, []byte(megabyte)); err != nil {
					t.Fatal(err)
				}
				if err := c.WriteMessage(websocket.TextMessage, []byte("sent")); err != nil {
					t.Fatal(err)
				}
			}
			sub.SetReadDeadline(time.Now().Add(30 * time.Second))
			for i := range 100 {
				if _, b, err := sub.ReadMessage(); err != nil || string(b) != "sent" {
					t.Fatalf("subscriber, message %d: %.20q, %v", i, b, err)
				}
			}
		}, "--history-size", "0")
	})
}
