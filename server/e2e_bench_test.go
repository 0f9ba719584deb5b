package server

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/msgbus/msgbus/server/bustest"
	"github.com/msgbus/msgbus/server/message"
	"github.com/msgbus/msgbus/server/wire"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEndToEnd measures the whole bus over loopback, client included:
// subscribers hold HTTP/1.1 streams on one channel while four keep-alive
// publishers POST 100-byte messages. Each op is one message published and
// delivered to every subscriber. It reports deliveries/s and the publish
// round trip (request written → 204 read) at p50 and p99.
//
//	go test -run XXX -bench EndToEnd -benchtime 20000x ./server/
//
// With MSGBUS_BENCH_ADDR=host:port it measures a server already running
// there instead (another msgbus process, or another bus speaking the same
// protocol), so that client and server are separate processes; with
// MSGBUS_BENCH_PID too (a pid, or several comma-separated), it reports
// those processes' CPU time per delivery (user+system, from /proc) and
// their resident memory. Another server frames messages its own way: give
// the bytes a 100-byte message takes on its stream in
// MSGBUS_BENCH_FRAME_BYTES. With MSGBUS_BENCH_REDIS=redis://host:port the
// in-process server runs on the Redis engine; MSGBUS_BENCH_PUBLISHERS=N
// runs N publishers instead of four; MSGBUS_BENCH_TOKEN=<jwt> makes every
// subscriber and publish present that token to the server at
// MSGBUS_BENCH_ADDR.
func BenchmarkEndToEnd(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchEndToEnd(b, subs, benchPublishers(), false, false) })
	}
}

// BenchmarkEndToEndWebSocket is BenchmarkEndToEnd with WebSocket
// subscribers on /sub/bench instead of multipart streams.
func BenchmarkEndToEndWebSocket(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchEndToEnd(b, subs, benchPublishers(), true, false) })
	}
}

// BenchmarkEndToEndTokens is BenchmarkEndToEnd at 1,000 subscribers with
// tokens off and on, in the same run: with tokens on, every subscriber and
// every publish presents a token (verified once per request or stream), and
// every stream is a session of a user with a personal address.
//
//	go test -run XXX -bench EndToEndTokens -benchtime 20000x -count 3 ./server/
func BenchmarkEndToEndTokens(b *testing.B) {
	for _, tokens := range []bool{false, true} {
		b.Run(fmt.Sprintf("tokens=%v", tokens), func(b *testing.B) { benchEndToEnd(b, 1000, benchPublishers(), false, tokens) })
	}
}

// benchPublishers is how many publishers the end-to-end benchmarks run:
// four, or MSGBUS_BENCH_PUBLISHERS.
func benchPublishers() int {
	if n, err := strconv.Atoi(os.Getenv("MSGBUS_BENCH_PUBLISHERS")); err == nil && n > 0 {
		return n
	}
	return 4
}

// benchSubscribe opens a stream on /msgbus/bench, or a WebSocket on
// /sub/bench, and reads the response head, whatever its headers: another
// server's may differ.
func benchSubscribe(b *testing.B, ts *testServer, websocket bool, authz string) *rawConn {
	req := "GET /msgbus/bench HTTP/1.1\r\nHost: bench\r\n" + authz + "\r\n"
	if websocket {
		req = "GET /sub/bench HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + authz +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	}
	c := ts.dial(b, req)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := c.R.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") && !strings.Contains(status, " 101 ") {
		b.Fatalf("subscribing: %q %v", status, err)
	}
	for {
		line, err := c.R.ReadString('\n')
		if err != nil {
			b.Fatalf("subscribing: %v", err)
		}
		if line == "\r\n" {
			return c
		}
	}
}

func benchEndToEnd(b *testing.B, subs, publishers int, websocket, tokens bool) {
	var ts *testServer
	authz := ""
	if addr := os.Getenv("MSGBUS_BENCH_ADDR"); addr != "" {
		ts = &testServer{Running: &bustest.Running{Addr: addr}}
		if tok := os.Getenv("MSGBUS_BENCH_TOKEN"); tok != "" {
			authz = "Authorization: Bearer " + tok + "\r\n" // a server run with tokens on
		}
	} else {
		// MSGBUS_BENCH_REDIS=redis://… runs the in-process server on
		// the Redis engine (for a profile of a node with Redis).
		cfg := Config{MaxQueueBytes: 8 << 20, Redis: os.Getenv("MSGBUS_BENCH_REDIS")}
		if tokens {
			cfg.TokenSecret = testSecret
			authz = "Authorization: Bearer " + mint(b, "bench", []string{"*"}, []string{"*"}, time.Now(), "1h") + "\r\n"
		}
		ts = startServer(b, cfg)
	}
	body := strings.Repeat("x", 100)
	format, _ := wire.Multipart(true)
	if websocket {
		format = wire.WebSocket
	}
	// Ids ("<ms>-<seq>") make frames a digit or two longer now and then:
	// this is the shortest, with a one-digit seq, so a subscriber that has
	// N of them in bytes has all N messages but for a few rare long ids.
	frameLen := int64(len(format.Encode(&message.Message{ID: message.ID{Ms: uint64(time.Now().UnixMilli())},
		Channel: "bench", Type: "text/plain", Body: []byte(body)}, false)))
	if n, err := strconv.ParseInt(os.Getenv("MSGBUS_BENCH_FRAME_BYTES"), 10, 64); err == nil {
		frameLen = n // another server frames a message its own way
	}

	// Subscribers count bytes; every frame has the same length, so bytes
	// tell how many messages arrived without parsing in the hot loop.
	want := int64(b.N) * frameLen
	var wg sync.WaitGroup
	var short, leastGot atomic.Int64
	leastGot.Store(want)
	conns := make([]net.Conn, subs)
	for i := range conns {
		c := benchSubscribe(b, ts, websocket, authz)
		conns[i] = c.Conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := int64(c.R.Buffered())
			c.R.Discard(c.R.Buffered())
			buf := make([]byte, 64<<10)
			for got < want {
				c.SetReadDeadline(time.Now().Add(10 * time.Second)) // give up after 10 s of silence
				n, err := c.Read(buf)
				got += int64(n)
				if err != nil {
					break
				}
			}
			if got < want {
				short.Add(1)
				for least := leastGot.Load(); got < least && !leastGot.CompareAndSwap(least, got); least = leastGot.Load() {
				}
			}
		}()
	}
	// Each head was written after its subscription was made: all are live.

	req := []byte("POST /msgbus/bench HTTP/1.1\r\nHost: bench\r\n" + authz + "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + body)
	latencies := make([][]time.Duration, publishers)
	pid := os.Getenv("MSGBUS_BENCH_PID")
	cpuBefore := procCPU(b, pid)
	b.ReportAllocs()
	b.ResetTimer()
	var pwg sync.WaitGroup
	for p := range publishers {
		n := b.N / publishers
		if p < b.N%publishers {
			n++
		}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			latencies[p] = publishLoop(b, ts.Addr, req, n)
		}()
	}
	pwg.Wait()
	wg.Wait()
	b.StopTimer()
	if pid != "" {
		cpu := procCPU(b, pid) - cpuBefore
		b.ReportMetric(float64(cpu.Nanoseconds())/(float64(b.N)*float64(subs)), "server-cpu-ns/delivery")
		b.ReportMetric(float64(procRSS(b, pid))/1024, "server-rss-KiB")
	}
	if s := short.Load(); s > 0 {
		b.Fatalf("%d of %d subscribers missed messages: the worst got %d of %d bytes (%d-byte frames)",
			s, subs, leastGot.Load(), want, frameLen)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-publish-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-publish-µs")
	}
	for _, c := range conns {
		c.Close()
	}
}

// publishLoop sends n publishes on one keep-alive connection, one at a
// time, and returns each round trip.
func publishLoop(b *testing.B, addr string, req []byte, n int) []time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return nil
	}
	defer c.Close()
	r := bufio.NewReader(c)
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			b.Error(err)
			return lat
		}
		if err := readPublishAnswer(r); err != nil {
			b.Error(err)
			return lat
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// readPublishAnswer reads one 2xx response to a publish: ours is a
// bodiless 204, another server's may have a body of known length.
func readPublishAnswer(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 2")) {
		rest, _ := io.ReadAll(io.LimitReader(r, 200))
		return fmt.Errorf("publish answered %q%q", line, rest)
	}
	length := 0
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			_, err = r.Discard(length)
			return err
		}
		if k, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
}

// procCPU returns the user+system CPU time so far of the processes in
// pids (comma-separated: nginx's workers, say), or 0 when pids is "".
func procCPU(b *testing.B, pids string) time.Duration {
	var total time.Duration
	for pid := range strings.SplitSeq(pids, ",") {
		if pid == "" {
			continue
		}
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		// The command name, in parentheses, may hold spaces: count fields after it.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return total
}

// procRSS returns the resident set of the processes in pids, in bytes.
func procRSS(b *testing.B, pids string) int64 {
	var total int64
	for pid := range strings.SplitSeq(pids, ",") {
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}
