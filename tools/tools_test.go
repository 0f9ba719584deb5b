package tools_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/msgbus/msgbus/server/message"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/bustest"
)

// TestMain fails the package if a test's server leaves a goroutine behind,
// letting go fasthttp's two process-wide ones as the server package does,
// and removes the tools built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// allTools are the commands under tools/, built once for all the tests.
var allTools = []string{"msgsend", "msgdump", "test-pub", "test-sub"}

var (
	buildOnce sync.Once
	binDir    string // where the tools were built
	buildOut  string // what go build said when it failed
	buildErr  error
)

// build returns the path of each named tool, compiled (once per test
// binary) from the current sources.
func build(t *testing.T, tools ...string) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "msgbus-tools-"); buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + string(filepath.Separator)}
		for _, tool := range allTools {
			args = append(args, "./"+tool)
		}
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildOut, buildErr = string(out), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
	})
	if buildErr != nil {
		t.Fatalf("%v\n%s", buildErr, buildOut)
	}
	bins := map[string]string{}
	for _, tool := range tools {
		bins[tool] = filepath.Join(binDir, tool)
	}
	return bins
}

type testServer struct {
	*server.Server
	URL string // the base URL the tools are given
	run *bustest.Running
	t   *testing.T
}

func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", cfg)
}

// startServerAt starts a server on addr, which may be a port a stopped
// server just left, and stops it at the end of the test.
func startServerAt(t *testing.T, addr string, cfg server.Config) *testServer {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := bustest.Serve(t, srv, addr)
	return &testServer{Server: srv, URL: run.URL(""), run: run, t: t}
}

// stop shuts the server down and waits for Serve to return; again, it
// does nothing.
func (ts *testServer) stop() { ts.run.Stop(ts.t) }

// Addr is the server's host:port.
func (ts *testServer) Addr() string { return ts.run.Addr }

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

// waitSubscribers waits until the server has n subscribers, saying what
// the tool cmd wrote on stderr if it never gets them.
func (ts *testServer) waitSubscribers(t *testing.T, n int64, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	bustest.Until(t, func() string {
		return fmt.Sprintf("subscribers = %d, want %d; %s said: %s", ts.Stats().Subscribers, n, cmd.Path, stderr)
	}, func() bool { return ts.Stats().Subscribers == n })
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

// subscribe subscribes with the client package, to see what a tool
// published.
func subscribe(t *testing.T, ts *testServer, channel string) *client.Subscription {
	t.Helper()
	c, err := client.New(client.Config{URL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sub, err := c.Subscribe(context.Background(), channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// next returns sub's next message, failing the test after 10s.
func next(t *testing.T, sub *client.Subscription) client.Message {
	t.Helper()
	type result struct {
		m   client.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := sub.Next(context.Background())
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Next: %v", r.err)
		}
		return r.m
	case <-time.After(10 * time.Second):
		sub.Close()
		<-ch
		t.Fatal("no message within 10s")
		return client.Message{}
	}
}

// forged is a body that holds the stream's delimiter line and a part
// header after it: the server may send it as Content-Transfer-Encoding:
// base64, and every tool must still see these bytes.
const forged = "before\r\n--00MsgBus00\r\nFrom: mallory\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nforged\r\n--00MsgBus00--\r\n"

func TestMsgsendAndMsgdumpRoundTrip(t *testing.T) {
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{Secret: "hunter2"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump, dumpOut, dumpErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "--user", "watcher", "-s", "hunter2", "-c", "news", "-n", "6")
	hexDump, hexOut, hexErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "-s", "hunter2", "-c", "news/photos", "-x", "-n", "1")
	ts.waitSubscribers(t, 2, hexDump, hexErr)

	send := func(user, stdin string, args ...string) {
		t.Helper()
		args = append([]string{"-u", ts.URL, "--user", user, "-s", "hunter2"}, args...)
		if _, stderr, err := runTool(t, stdin, bins["msgsend"], args...); err != nil {
			t.Fatalf("msgsend %q: %v: %s", args, err, stderr)
		}
	}
	send("alice", "", "-c", "news", "hello,", "world")
	send("alice", "from stdin\n", "-c", "news", "-t", "text/x-note")
	file := filepath.Join(t.TempDir(), "pixel.png")
	os.WriteFile(file, []byte("\x89PNG\r\n\x1a\n\x00\x01"), 0o644)
	send("alice", "", "-c", "news/photos", "-f", file)
	send("alice", "", "-c", "news", "--empty")
	send("zoë 100%", "spaces\n", "-c", "news/a b")
	send("alice", forged, "-c", "news")

	for _, c := range []*exec.Cmd{dump, hexDump} {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s%s", c.Path, err, dumpErr, hexErr)
		}
	}
	want := "channel=news type=text/plain;%20charset=utf-8 from=alice size=12\nhello, world\n\n" +
		"channel=news type=text/x-note from=alice size=11\nfrom stdin\n\n" +
		"channel=news/photos type=image/png from=alice size=10\n\x89PNG\r\n\x1a\n\x00\x01\n\n" +
		"channel=news type=text/plain;%20charset=utf-8 from=alice size=0\n\n" +
		"channel=news/a%20b type=text/plain;%20charset=utf-8 from=zo%C3%AB%20100%25 size=7\nspaces\n\n" +
		"channel=news type=text/plain;%20charset=utf-8 from=alice size=" + strconv.Itoa(len(forged)) + "\n" + forged + "\n"
	if dumpOut.String() != want {
		t.Fatalf("msgdump printed\n%q\nwant\n%q", dumpOut, want)
	}
	wantHex := "channel=news/photos type=image/png from=alice size=10\n" +
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

// TestEveryToolHasTheSharedFlags checks what the README promises: the same
// names in every tool.
func TestEveryToolHasTheSharedFlags(t *testing.T) {
	tools := []string{"msgsend", "msgdump", "test-pub", "test-sub"}
	shared := []string{"--url URL, -u URL", "--channel CHANNEL, -c CHANNEL", "--type ", "--count N, -n N", "--json ",
		"--user NAME", "--secret SECRET, -s SECRET", "--token TOKEN"}
	bins := build(t, tools...)
	for _, tool := range tools {
		out, _, err := runTool(t, "", bins[tool], "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", tool, err)
		}
		for _, flag := range shared {
			if !strings.Contains(out, "\n   "+flag) {
				t.Errorf("%s --help does not list %q:\n%s", tool, flag, out)
			}
		}
		if !strings.Contains(out, "   "+tool+" -") {
			t.Errorf("%s --help shows no example:\n%s", tool, out)
		}
	}
}

func TestMsgsendInfersTheTypeUnlessGivenOne(t *testing.T) {
	bins := build(t, "msgsend")
	ts := startServer(t, server.Config{})
	sub := subscribe(t, ts, "typed")
	dir := t.TempDir()
	for name, body := range map[string]string{"data.json": `{"a":1}`, "blob": "\x00\x01\x02", "notes.txt": "hi"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	tests := []struct {
		stdin    string
		args     []string
		wantType string
	}{
		{`{"a":1}` + "\n", nil, "application/json"},
		{`[1, 2]`, nil, "application/json"},
		{"hello\n", nil, "text/plain; charset=utf-8"},
		{"", []string{`{"a":1}`}, "application/json"},
		{"", []string{"hello,", "world"}, "text/plain; charset=utf-8"},
		{"", []string{"42"}, "text/plain; charset=utf-8"},
		{png, nil, "image/png"},
		{"<!DOCTYPE html><p>hi</p>", nil, "text/html; charset=utf-8"},
		{"\x00\x01\x02", nil, "application/octet-stream"},
		{"caf\xe9", nil, "application/octet-stream"},
		{`{"a":1}`, []string{"-t", "text/x-json-ish"}, "text/x-json-ish"},
		{"", []string{"-f", filepath.Join(dir, "data.json")}, "application/json"},
		{"", []string{"-f", filepath.Join(dir, "blob")}, "application/octet-stream"},
		{"", []string{"-f", filepath.Join(dir, "notes.txt")}, "text/plain; charset=utf-8"},
		{`{"a":1}`, []string{"-f", "-"}, "application/json"},
	}
	for _, tt := range tests {
		args := append([]string{"-u", ts.URL, "-c", "typed"}, tt.args...)
		if _, stderr, err := runTool(t, tt.stdin, bins["msgsend"], args...); err != nil {
			t.Fatalf("msgsend %q <%q: %v: %s", tt.args, tt.stdin, err, stderr)
		}
		if m := next(t, sub); m.Type != tt.wantType {
			t.Errorf("msgsend %q <%q published %q, want %q", tt.args, tt.stdin, m.Type, tt.wantType)
		}
	}
}

func TestMsgsendRefusesAnEmptyMessageUnlessAsked(t *testing.T) {
	bins := build(t, "msgsend")
	ts := startServer(t, server.Config{})
	sub := subscribe(t, ts, "quiet")
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	tests := []struct {
		args       []string
		wantStderr string // "" when it succeeds
	}{
		{nil, "msgsend: the message is empty (standard input held nothing): nothing sent; to send an empty message, use --empty\n"},
		{[]string{"-f", "-"}, "(standard input held nothing)"},
		{[]string{"-f", empty}, "(" + empty + " held nothing)"},
		{[]string{""}, "(the arguments held nothing)"},
		{[]string{"--empty", "hi"}, "msgsend: --empty sends an empty message: give no message, -f or input with it\n"},
		{[]string{"--empty"}, ""},
	}
	for _, tt := range tests {
		args := append([]string{"-u", ts.URL, "-c", "quiet"}, tt.args...)
		_, stderr, err := runTool(t, "", bins["msgsend"], args...)
		if tt.wantStderr == "" {
			if err != nil {
				t.Fatalf("msgsend %q: %v: %s", tt.args, err, stderr)
			}
			continue
		}
		if err == nil || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("msgsend %q: %v, %q; want a failure saying %q", tt.args, err, stderr, tt.wantStderr)
		}
	}
	// Only --empty published, and what it published is empty.
	if _, stderr, err := runTool(t, "", bins["msgsend"], "-u", ts.URL, "-c", "quiet", "marker"); err != nil {
		t.Fatalf("msgsend marker: %v: %s", err, stderr)
	}
	if m := next(t, sub); len(m.Body) != 0 || m.Type != "text/plain; charset=utf-8" {
		t.Fatalf("first message %q of %q, want the empty one", m.Body, m.Type)
	}
	if m := next(t, sub); string(m.Body) != "marker" {
		t.Fatalf("second message %q, want the marker: a refused empty message was published", m.Body)
	}
}

func TestMsgsendSaysHowManySubscribersInGoodEnglish(t *testing.T) {
	bins := build(t, "msgsend")
	ts := startServer(t, server.Config{})
	tests := []struct {
		subscribers int
		args        []string
		want        string
	}{
		{0, []string{"hi"}, "msgsend: published 2 bytes of text/plain; charset=utf-8 to ch0 as id ID, reaching 0 subscribers\n"},
		{1, []string{"x"}, "msgsend: published 1 byte of text/plain; charset=utf-8 to ch1 as id ID, reaching 1 subscriber\n"},
		{2, []string{"hi"}, "msgsend: published 2 bytes of text/plain; charset=utf-8 to ch2 as id ID, reaching 2 subscribers\n"},
		{1, []string{"-n", "3", "hi"}, "msgsend: published 3 messages of 2 bytes each, of text/plain; charset=utf-8, to ch1 as ids ID to ID, 3 deliveries in all\n"},
		{1, []string{"-n", "1", "hi"}, "msgsend: published 2 bytes of text/plain; charset=utf-8 to ch1 as id ID, reaching 1 subscriber\n"},
	}
	ids := regexp.MustCompile(`\b(ids?) [^ ,]+( to )?[^ ,]*,`) // opaque tokens
	for i := range 3 {
		for range i {
			subscribe(t, ts, fmt.Sprintf("ch%d", i))
		}
	}
	for _, tt := range tests {
		args := append([]string{"-u", ts.URL, "-c", fmt.Sprintf("ch%d", tt.subscribers)}, tt.args...)
		stdout, stderr, err := runTool(t, "", bins["msgsend"], args...)
		stderr = ids.ReplaceAllStringFunc(stderr, func(s string) string {
			if strings.HasPrefix(s, "ids ") {
				return "ids ID to ID,"
			}
			return "id ID,"
		})
		if err != nil || stderr != tt.want || stdout != "" {
			t.Errorf("msgsend %q: %v, stdout %q, stderr %q; want stderr %q", tt.args, err, stdout, stderr, tt.want)
		}
	}
	_, stderr, err := runTool(t, "", bins["msgsend"], "-u", ts.URL, "-c", "ch1", "-n", "0", "hi")
	if err == nil || stderr != "msgsend: -n 0: send the message at least once\n" {
		t.Errorf("msgsend -n 0: %v, %q", err, stderr)
	}
}

func TestMsgsendJSONPrintsEachPublishOnStdout(t *testing.T) {
	bins := build(t, "msgsend")
	ts := startServer(t, server.Config{})
	sub := subscribe(t, ts, "sensors")
	stdout, stderr, err := runTool(t, `{"temp": 21.5}`, bins["msgsend"], "-u", ts.URL, "-c", "sensors/kitchen", "--json", "-n", "3")
	if err != nil || stderr != "" {
		t.Fatalf("msgsend --json: %v, stderr %q", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("msgsend --json -n 3 printed %q, want 3 lines", stdout)
	}
	var prev message.ID
	for _, line := range lines {
		var r struct {
			ID          string
			Channel     string
			Type        string
			Size        int
			Subscribers *int
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		id, err := message.ParseID(r.ID)
		if err != nil || !prev.Less(id) || r.Channel != "sensors/kitchen" || r.Type != "application/json" || r.Size != 14 ||
			r.Subscribers == nil || *r.Subscribers != 1 {
			t.Fatalf("line %q, want an increasing id, the channel, application/json, 14 bytes, 1 subscriber", line)
		}
		prev = id
		// --json is about the output: the message is sent as it is.
		if m := next(t, sub); string(m.Body) != `{"temp": 21.5}` || m.Type != "application/json" {
			t.Fatalf("published %q of %q", m.Body, m.Type)
		}
	}
}

func TestMsgdumpJSONPrintsOneHistoryShapedObjectPerMessage(t *testing.T) {
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{Secret: "hunter2"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump, dumpOut, dumpErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "-s", "hunter2", "-c", "j", "--json", "-n", "4")
	ts.waitSubscribers(t, 1, dump, dumpErr)
	bin := "\x89PNG\r\n\x1a\n\xff\x00"
	sends := []struct {
		user, stdin string
		args        []string
	}{
		{"alice", "", []string{"-c", "j/a b", "héllo", "<wörld>"}},
		{"", bin, []string{"-c", "j"}},
		{"bob", forged, []string{"-c", "j", "-t", "text/x-forged"}},
		{"", `{"a":1}`, []string{"-c", "j"}},
	}
	before := time.Now().Add(-time.Second)
	for _, s := range sends {
		args := append([]string{"-u", ts.URL, "-s", "hunter2", "--user", s.user}, s.args...)
		if _, stderr, err := runTool(t, s.stdin, bins["msgsend"], args...); err != nil {
			t.Fatalf("msgsend %q: %v: %s", args, err, stderr)
		}
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("msgdump --json: %v: %s", err, dumpErr)
	}
	want := []map[string]string{
		{"channel": "j/a b", "type": "text/plain; charset=utf-8", "from": "alice", "body": "héllo <wörld>", "encoding": "utf-8"},
		{"channel": "j", "type": "image/png", "body": base64.StdEncoding.EncodeToString([]byte(bin)), "encoding": "base64"},
		{"channel": "j", "type": "text/x-forged", "from": "bob", "body": forged, "encoding": "utf-8"},
		{"channel": "j", "type": "application/json", "body": `{"a":1}`, "encoding": "utf-8"},
	}
	lines := strings.Split(strings.TrimSuffix(dumpOut.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("msgdump --json printed %q, want %d lines", dumpOut, len(want))
	}
	for i, line := range lines {
		var got map[string]string
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		at, err := time.Parse(time.RFC3339, got["time"])
		if err != nil || at.Before(before) || at.After(time.Now()) || len(got["time"]) != len("2006-01-02T15:04:05.000Z") {
			t.Errorf("line %d time %q (%v), want now in RFC 3339 UTC with ms", i, got["time"], err)
		}
		delete(got, "time")
		delete(got, "id") // present once the stream carries ids
		if !maps.Equal(got, want[i]) {
			t.Errorf("line %d = %v, want %v", i, got, want[i])
		}
	}
	_, stderr, err := runTool(t, "", bins["msgdump"], "-u", ts.URL, "--json", "-x")
	if err == nil || stderr != "msgdump: --json prints every message whole; leave out -x and -q\n" {
		t.Errorf("msgdump --json -x: %v, %q", err, stderr)
	}
}

func TestMsgdumpSaysWhenItHasReconnected(t *testing.T) {
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump, dumpOut, dumpErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "-c", "news", "-n", "1")
	ts.waitSubscribers(t, 1, dump, dumpErr)

	ts.stop()
	bustest.Until(t, func() string { return "msgdump did not try to reconnect: " + dumpErr.String() },
		func() bool { return strings.Contains(dumpErr.String(), "reconnecting in") }) // at least one attempt
	ts2 := startServerAt(t, ts.Addr(), server.Config{})
	ts2.waitSubscribers(t, 1, dump, dumpErr)
	if _, stderr, err := runTool(t, "", bins["msgsend"], "-u", ts2.URL, "-c", "news", "back"); err != nil {
		t.Fatalf("msgsend: %v: %s", err, stderr)
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("msgdump: %v: %s", err, dumpErr)
	}
	logs := dumpErr.String()
	re := regexp.MustCompile(`(?m)^msgdump: reconnected to ` + regexp.QuoteMeta(ts2.URL) +
		`/msgbus/news after (1 attempt|[0-9]+ attempts), [0-9.]+m?s without a stream$`)
	if n := len(re.FindAllString(logs, -1)); n != 1 || strings.LastIndex(logs, "reconnecting in") > strings.Index(logs, "reconnected") {
		t.Fatalf("msgdump logged %d reconnected lines, want one after the attempts:\n%s", n, logs)
	}
	if !strings.HasSuffix(dumpOut.String(), "\nback\n\n") {
		t.Fatalf("msgdump printed %q", dumpOut)
	}
}

func TestTestPubAndTestSubPrintTheirSummaryOnStdout(t *testing.T) {
	bins := build(t, "test-pub", "test-sub")
	ts := startServer(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, subOut, subErr := start(t, ctx, bins["test-sub"], "-u", ts.URL, "-n", "5", "-d", "50s", "-q")
	ts.waitSubscribers(t, 1, sub, subErr)
	out, stderr, err := runTool(t, "", bins["test-pub"], "-u", ts.URL, "-n", "5", "-q")
	if err != nil {
		t.Fatalf("test-pub: %v: %s", err, stderr)
	}
	if !strings.HasPrefix(out, "test-pub: sent 5 messages of 128 bytes to flood in ") ||
		!strings.Contains(out, "from 1 publisher; 0 errors\n") || !strings.Contains(out, "; 5 deliveries queued\n") ||
		strings.Contains(stderr, "sent") {
		t.Fatalf("test-pub stdout %q, stderr %q: want the summary on stdout", out, stderr)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("test-sub: %v: %s", err, subErr)
	}
	if o := subOut.String(); !strings.HasPrefix(o, "test-sub: 1 subscriber on flood: 5 deliveries in ") ||
		!strings.Contains(o, "lost 0, duplicated 0, reordered 0") || strings.Contains(subErr.String(), "deliveries") {
		t.Fatalf("test-sub stdout %q, stderr %q: want the report on stdout", o, subErr)
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
