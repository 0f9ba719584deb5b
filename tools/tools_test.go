package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/server"
)

// TestMain fails the package if a test's server leaves a goroutine behind,
// letting go fasthttp's two process-wide ones as the server package does.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// build compiles the named tools into a temporary folder and returns the
// path of each.
func build(t *testing.T, tools ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, tool := range tools {
		args = append(args, "./"+tool)
	}
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	bins := map[string]string{}
	for _, tool := range tools {
		bins[tool] = filepath.Join(dir, tool)
	}
	return bins
}

type testServer struct {
	*server.Server
	URL  string
	done chan error
}

func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, URL: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-ts.done
	})
	return ts
}

// syncBuffer is a bytes.Buffer a running command writes while the test
// may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Bytes() []byte { return []byte(b.String()) }

func (ts *testServer) waitSubscribers(t *testing.T, n int64, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ts.Hub().Stats().Subscribers != n {
		if time.Now().After(deadline) {
			t.Fatalf("subscribers = %d, want %d; %s said: %s", ts.Hub().Stats().Subscribers, n, cmd.Path, stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start starts a tool in the background, killed at the end of the test.
func start(t *testing.T, ctx context.Context, bin string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stdout, &stderr
}

// runTool runs a tool to its end with stdin, within a minute.
func runTool(t *testing.T, stdin string, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestMsgsendAndMsgdumpRoundTrip(t *testing.T) {
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{Secret: "hunter2"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump, dumpOut, dumpErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "--user", "watcher", "-s", "hunter2", "-c", "news", "-n", "4")
	hexDump, hexOut, hexErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "-s", "hunter2", "-c", "news/photos", "-x", "-n", "1")
	ts.waitSubscribers(t, 2, hexDump, hexErr)

	send := func(stdin string, args ...string) {
		t.Helper()
		args = append([]string{"-u", ts.URL, "--user", "alice", "-s", "hunter2"}, args...)
		if _, stderr, err := runTool(t, stdin, bins["msgsend"], args...); err != nil {
			t.Fatalf("msgsend %q: %v: %s", args, err, stderr)
		}
	}
	send("", "-c", "news", "hello,", "world")
	send("from stdin\n", "-c", "news", "-t", "text/x-note")
	file := filepath.Join(t.TempDir(), "pixel.png")
	os.WriteFile(file, []byte("\x89PNG\r\n\x1a\n\x00\x01"), 0o644)
	send("", "-c", "news/photos", "-f", file)
	send("", "-c", "news", "-f", "-") // empty stdin: an empty message

	for _, c := range []*exec.Cmd{dump, hexDump} {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s%s", c.Path, err, dumpErr, hexErr)
		}
	}
	want := "news text/plain; charset=utf-8 alice 12 bytes\nhello, world\n\n" +
		"news text/x-note alice 11 bytes\nfrom stdin\n\n" +
		"news/photos image/png alice 10 bytes\n\x89PNG\r\n\x1a\n\x00\x01\n\n" +
		"news text/plain; charset=utf-8 alice 0 bytes\n\n"
	if dumpOut.String() != want {
		t.Fatalf("msgdump printed\n%q\nwant\n%q", dumpOut, want)
	}
	wantHex := "news/photos image/png alice 10 bytes\n" +
		"00000000  89 50 4e 47 0d 0a 1a 0a  00 01                    |.PNG......|\n\n"
	if hexOut.String() != wantHex {
		t.Fatalf("msgdump -x printed\n%q\nwant\n%q", hexOut, wantHex)
	}

	// Failures exit non-zero with the server's reason.
	_, stderr, err := runTool(t, "", bins["msgsend"], "-u", ts.URL, "-s", "wrong", "-c", "news", "hi")
	if err == nil || !strings.Contains(stderr, "msgsend: client: publish /msgbus/news: 401 Unauthorized (unauthorized:") {
		t.Fatalf("msgsend with a wrong secret: %v, %q", err, stderr)
	}
	_, stderr, err = runTool(t, "", bins["msgdump"], "-u", ts.URL, "-c", "news")
	if err == nil || !strings.Contains(stderr, "msgdump: client: subscribe /msgbus/news: 401 Unauthorized") {
		t.Fatalf("msgdump without a secret: %v, %q", err, stderr)
	}
}

func TestEveryToolsHelpShowsAnExample(t *testing.T) {
	tools := []string{"msgsend", "msgdump", "test-pub", "test-sub"}
	bins := build(t, tools...)
	for _, tool := range tools {
		out, _, err := runTool(t, "", bins[tool], "--help")
		if err != nil || !strings.Contains(out, "   "+tool+" -") || !strings.Contains(out, "--url URL, -u URL") {
			t.Errorf("%s --help: %v\n%s", tool, err, out)
		}
	}
}

func TestTestPubAndTestSubReportNoLossWithHundredSubscribers(t *testing.T) {
	const subscribers, messages = 100, 10000
	bins := build(t, "test-pub", "test-sub")
	ts := startServer(t, server.Config{MaxQueueBytes: 64 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sub, subOut, subErr := start(t, ctx, bins["test-sub"], "-u", ts.URL, "-N", "100", "-n", "10000", "-d", "150s", "--json")
	ts.waitSubscribers(t, subscribers, sub, subErr)

	out, stderr, err := runTool(t, "", bins["test-pub"], "-u", ts.URL, "-n", "10000", "-P", "4", "--size", "100", "--json")
	if err != nil {
		t.Fatalf("test-pub: %v\n%s", err, stderr)
	}
	var pub struct {
		Sent, Errors, Reached int64
	}
	if err := json.Unmarshal([]byte(out), &pub); err != nil || pub.Sent != messages || pub.Errors != 0 || pub.Reached != subscribers*messages {
		t.Fatalf("test-pub reported %+v (%v): %s", pub, err, out)
	}

	if err := sub.Wait(); err != nil {
		t.Fatalf("test-sub: %v\n%s%s", err, subOut, subErr)
	}
	var rep struct {
		Subscribers                            int
		Delivered, Lost, Duplicated, Reordered uint64
		Foreign                                uint64
		Reconnects                             int64
		PerSecond                              float64                    `json:"deliveries_per_second"`
		Latency                                struct{ P50, P99 float64 } `json:"latency_ms"`
	}
	if err := json.Unmarshal(subOut.Bytes(), &rep); err != nil {
		t.Fatalf("test-sub -json: %v: %q", err, subOut)
	}
	if rep.Subscribers != subscribers || rep.Delivered != subscribers*messages || rep.Lost != 0 ||
		rep.Duplicated != 0 || rep.Reordered != 0 || rep.Foreign != 0 || rep.Reconnects != 0 {
		t.Fatalf("test-sub reported %+v", rep)
	}
	t.Logf("%d deliveries/s, latency p50 %.2fms p99 %.2fms", int(rep.PerSecond), rep.Latency.P50, rep.Latency.P99)
}
