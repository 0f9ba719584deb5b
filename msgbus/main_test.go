package main

// Tests of the msgbus command: the binary is built once and run as a real
// process on a free loopback port.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binary is the msgbus command built for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msgbus-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "msgbus")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a running msgbus.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done
	addr   string
}

// freePort finds a port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startMsgbus runs name with args, which must make it listen on addr, and
// waits until it accepts connections. The process is killed at the end of
// the test if it still runs.
func startMsgbus(t testing.TB, addr, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, addr, exec.Command(name, args...))
}

// startCmd is startMsgbus for a command prepared by the caller (its
// working directory or environment set).
func startCmd(t testing.TB, addr string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{}), addr: addr}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := probe(addr)
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("msgbus exited before accepting: %v\n%s", p.err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("msgbus not accepting on %s after 10s: %v\n%s", addr, err, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// probe makes one request that the server answers and closes, and reads
// to the end, so the server has let go of the connection when it returns
// (a later test counting the server's descriptors must not see it close).
func probe(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 404 ")) {
		return fmt.Errorf("probe answered %q, want 404", b)
	}
	return nil
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("msgbus still running %v later\n%s", d, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("waiting for msgbus: %v", p.err)
	}
	return 0
}

// subscribeRaw opens an HTTP/1.1 stream on path and reads its head.
func subscribeRaw(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head strings.Builder
	for !strings.HasSuffix(head.String(), "\r\n\r\n") {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream's head: %v (got %q)", err, head.String())
		}
		head.WriteString(line)
	}
	h := head.String()
	if !strings.HasPrefix(h, "HTTP/1.1 200 ") || !strings.Contains(h, "Transfer-Encoding: chunked\r\n") ||
		!strings.Contains(h, "multipart/x-mixed-replace;boundary=00MsgBus00") {
		t.Fatalf("stream head %q, want a chunked multipart 200", h)
	}
	return c, r
}

// publishRaw POSTs body to path on a new connection and returns the status
// code, or an error when the server does not answer within timeout.
func publishRaw(addr, path, body string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	req := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	return strconv.Atoi(f[1])
}

func TestSIGTERMEndsStreamsWithClosingBoundaryAndExitsZero(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startMsgbus(t, addr, binary, "-l", "127.0.0.1", "-p", strconv.Itoa(port))
	c, r := subscribeRaw(t, addr, "/msgbus/news")
	// The stream is live: a message published now arrives first.
	status, err := 0, errors.New("no subscriber yet")
	for i := 0; i < 100 && (err != nil || status != 204); i++ {
		status, err = publishRaw(addr, "/msgbus/news", "hello", 5*time.Second)
	}
	if err != nil || status != 204 {
		t.Fatalf("publish: %d, %v; want 204", status, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var first strings.Builder
	for !strings.HasSuffix(first.String(), "hello\r\n\r\n") {
		line, err := r.ReadString('\n')
		first.WriteString(line)
		if err != nil {
			t.Fatalf("first part %q, %v", first.String(), err)
		}
	}
	p1 := regexp.MustCompile(`^([0-9a-f]+)\r\n(--00MsgBus00\r\nMsgbus-Id: [0-9]+-[0-9]+\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n)\r\n$`).FindStringSubmatch(first.String())
	if p1 == nil || p1[1] != strconv.FormatInt(int64(len(p1[2])), 16) {
		t.Fatalf("first part %q, want one chunk: boundary, Msgbus-Id, Content-Type, Content-Length, hello", first.String())
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading to the end of the stream: %v (got %q)", err, rest)
	}
	if end := "10\r\n--00MsgBus00--\r\n\r\n0\r\n\r\n"; string(rest) != end {
		t.Errorf("stream after SIGTERM %q, want %q", rest, end)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
}

func TestHelpMentionsEveryFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("msgbus --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-l", "-p", "-d", "-s", "-v", "--max-message-bytes", "--max-queue-bytes",
		"--max-subscribers", "--log-format", "--log-level", "--tls-cert", "--tls-key"} {
		// A whole flag, not a piece of a longer one ("-l" in "--log-level").
		re := regexp.MustCompile(`(^|[\s,])` + regexp.QuoteMeta(flag) + `([\s,=]|$)`)
		if !re.Match(out) {
			t.Errorf("--help does not mention %s:\n%s", flag, out)
		}
	}
}

func TestBadFlagsExitNonZeroNamingTheFlag(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		mention string
	}{
		{"unknown log format", []string{"--log-format", "xml"}, "--log-format"},
		{"unknown log level", []string{"--log-level", "loud"}, "--log-level"},
		{"port out of range", []string{"-p", "70000"}, "-p"},
		{"port not a number", []string{"-p", "eighty"}, "p"},
		{"listen scheme", []string{"-l", "ftp://x"}, "-l"},
		{"listen address", []string{"-l", "a:b:c"}, "-l"},
		{"certificate without key", []string{"--tls-cert", "cert.pem"}, "--tls-key"},
		{"missing web root", []string{"-d", "/nonexistent/msgbus-test-root"}, "-d"},
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"message size not a number", []string{"--max-message-bytes", "lots"}, "max-message-bytes"},
		{"stray argument", []string{"extra"}, "extra"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Should a bad flag be taken, the server would listen here,
			// out of every other test's way, until the timeout.
			args := append([]string{"-l", "127.0.0.1", "-p", "0"}, tc.args...)
			if tc.args[0] == "-l" || tc.args[0] == "-p" {
				args = tc.args
			}
			out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("msgbus %v still running after 5s, want it to refuse the flag:\n%s", args, out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("msgbus %v: %v, want a non-zero exit\n%s", args, err, out)
			}
			if !strings.Contains(string(out), tc.mention) {
				t.Errorf("msgbus %v says %q, want it to name %s", args, out, tc.mention)
			}
		})
	}
}

// cpuSeconds is the CPU time pid has used, from /proc/<pid>/stat.
func cpuSeconds(t *testing.T, pid int, ticksPerSecond float64) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parsing /proc/%d/stat %q: %v %v", pid, b, err1, err2)
	}
	return (utime + stime) / ticksPerSecond
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

func TestOutOfFileDescriptorsRefusesLogsOnceDoesNotSpinAndRecovers(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startMsgbus(t, addr, "bash", "-c", `ulimit -n 64 && exec "$0" "$@"`, binary, "-l", "127.0.0.1", "-p", strconv.Itoa(port))
	const logLine = "out of file descriptors"

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() {
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			conns = append(conns, c)
		}
	}
	for range 100 {
		dial()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), logLine) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q log after 100 connections under ulimit -n 64:\n%s", logLine, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// While exhausted, with connections still arriving, the server must
	// not spin on accept.
	ticks := clockTicks()
	start, cpu0 := time.Now(), cpuSeconds(t, p.cmd.Process.Pid, ticks)
	for i := 0; i < 50 && time.Since(start) < time.Second; i++ {
		dial()
		time.Sleep(20 * time.Millisecond)
	}
	if rest := time.Second - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	elapsed, cpu1 := time.Since(start).Seconds(), cpuSeconds(t, p.cmd.Process.Pid, ticks)
	share := (cpu1 - cpu0) / elapsed
	t.Logf("CPU while out of file descriptors: %.1f%% of a core over %.2fs", 100*share, elapsed)
	if share > 0.5 {
		t.Errorf("msgbus used %.0f%% of a core while out of file descriptors, want well under 50%%", 100*share)
	}
	select {
	case <-p.done:
		t.Fatalf("msgbus exited while out of file descriptors: %v\n%s", p.err, p.stderr)
	default:
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	status, err := 0, errors.New("not tried")
	deadline = time.Now().Add(10 * time.Second)
	for (err != nil || status != 204) && time.Now().Before(deadline) {
		status, err = publishRaw(addr, "/msgbus/flood", "back", time.Second)
		if err != nil || status != 204 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err != nil || status != 204 {
		t.Fatalf("publish after the connections closed: %d, %v; want 204\n%s", status, err, p.stderr)
	}
	// The logs are complete once the process has exited.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
	logs := p.stderr.String()
	if n := strings.Count(logs, logLine); n != 1 {
		t.Errorf("%q logged %d times, want once:\n%s", logLine, n, logs)
	}
	if !strings.Contains(logs, "file descriptors available again") {
		t.Errorf("no recovery logged:\n%s", logs)
	}
}

func TestStartupLogSaysWhichURLToOpen(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startMsgbus(t, addr, binary, "-l", addr, "-m", "production")
	want := "open=http://localhost:" + strconv.Itoa(port) + "/"
	if got := p.stderr.String(); !strings.Contains(got, want) || !strings.Contains(got, "curl -N http://localhost:"+strconv.Itoa(port)+"/msgbus/news") {
		t.Fatalf("start-up log does not say %q and how to watch a channel:\n%s", want, got)
	}
}
