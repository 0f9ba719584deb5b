package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleSubscriberMemory measures what an idle subscriber costs the
// server: it runs the msgbus binary, connects 10,000 subscribers (HTTP/1.1
// multipart streams, or WebSockets on /sub/) spread over 100 channels, and
// reports the growth of the process's resident set per subscriber. b.N is
// ignored; run it once:
//
//	go test -run XXX -bench IdleSubscriberMemory -benchtime 1x ./msgbus/
func BenchmarkIdleSubscriberMemory(b *testing.B) {
	b.Run("multipart", func(b *testing.B) {
		benchIdleMemory(b, "GET /msgbus/idle/%d HTTP/1.1\r\nHost: bench\r\n\r\n")
	})
	b.Run("websocket", func(b *testing.B) {
		benchIdleMemory(b, "GET /sub/idle/%d HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	})
}

func benchIdleMemory(b *testing.B, request string) {
	const subscribers = 10000
	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	p := startMsgbus(b, addr, binary, "-l", addr, "-m", "production", "--log-level", "warn")
	pid := strconv.Itoa(p.cmd.Process.Pid)
	before := rssKiB(b, pid)
	conns := make([]net.Conn, 0, subscribers)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range subscribers {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatalf("subscriber %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, request, i%100)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReaderSize(c, 256)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatalf("subscriber %d: reading the head: %v", i, err)
			}
			if line == "\r\n" {
				break
			}
		}
	}
	time.Sleep(time.Second) // let the server settle (the GC returns what setup used)
	after := rssKiB(b, pid)
	b.ReportMetric(float64(after-before)*1024/subscribers, "server-RSS-bytes/subscriber")
	b.ReportMetric(float64(after), "server-RSS-KiB")
}

// rssKiB returns the resident set of process pid in KiB.
func rssKiB(b testing.TB, pid string) int {
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			return kb
		}
	}
	b.Fatal("no VmRSS in /proc/" + pid + "/status")
	return 0
}
