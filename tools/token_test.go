package tools_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/token"
)

// A JWT-shaped token; the raw listener below does not check it.
const fakeToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

// refuseTokens is a raw HTTP server on a 127.0.0.1 socket that keeps the
// Authorization header of every request and answers each with the 401 of
// an expired token.
func refuseTokens(t *testing.T) (url string, auths func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				mu.Lock()
				seen = append(seen, req.Header.Get("Authorization"))
				mu.Unlock()
				body := "unauthorized: token has expired: get a new token\n"
				io.WriteString(conn, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n"+
					"Connection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// runToolEnv runs a tool to its end, within a minute, with env added to
// the environment.
func runToolEnv(t *testing.T, env []string, bin string, args ...string) (stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var e strings.Builder
	cmd.Stderr = &e
	err = cmd.Run()
	return e.String(), err
}

// TestEveryToolSendsTheTokenAndStopsWhenItIsRefused runs each tool with
// --token and with $MSGBUS_TOKEN against a server that refuses it: each
// sends it as a bearer token, says to get a new one, and exits 1 after a
// single request (a 401 is not retried).
func TestEveryToolSendsTheTokenAndStopsWhenItIsRefused(t *testing.T) {
	bins := build(t, allTools...)
	args := map[string][]string{
		"msgsend":  {"-c", "x", "hi"},
		"msgdump":  {"-c", "x"},
		"test-pub": {"-c", "x", "-n", "1"},
		"test-sub": {"-c", "x", "-n", "1"},
	}
	for _, tool := range allTools {
		for _, how := range []string{"flag", "env"} {
			url, auths := refuseTokens(t)
			var env []string
			a := []string{"-u", url}
			if how == "flag" {
				a = append(a, "--token", fakeToken) // before msgsend's message
			} else {
				env = []string{"MSGBUS_TOKEN=" + fakeToken + "\n"} // as read from a file
			}
			stderr, err := runToolEnv(t, env, bins[tool], append(a, args[tool]...)...)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("%s (token by %s): %v, want exit status 1; stderr: %s", tool, how, err, stderr)
			}
			if !strings.Contains(stderr, "401 Unauthorized (unauthorized: token has expired: get a new token)") {
				t.Errorf("%s (token by %s) does not say the token was refused: %s", tool, how, stderr)
			}
			if got := auths(); len(got) != 1 || got[0] != "Bearer "+fakeToken {
				t.Errorf("%s (token by %s) sent Authorization %q, want once Bearer <token>", tool, how, got)
			}
		}
	}
}

func TestTokenExcludesUserAndSecret(t *testing.T) {
	bins := build(t, "msgsend")
	for _, a := range [][]string{
		{"--token", fakeToken, "--user", "alice"},
		{"--token", fakeToken, "-s", "hunter2"},
	} {
		stderr, err := runToolEnv(t, nil, bins["msgsend"], append(a, "-u", "http://127.0.0.1:1", "-c", "x", "hi")...)
		if err == nil || !strings.Contains(stderr, "--token and --user or -s are both given") {
			t.Errorf("msgsend %q: %v, %q; want a refusal naming both", a, err, stderr)
		}
	}
}

// TestMsgsendAndMsgdumpUseTheTokensSub runs the tools against a real
// server with tokens: what msgsend publishes with a token arrives from
// the token's sub, and msgdump with a token receives it.
func TestMsgsendAndMsgdumpUseTheTokensSub(t *testing.T) {
	const secret = "the tools tests' secret, 32+ bytes long"
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{TokenSecret: secret})
	v, err := token.NewVerifier(token.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(req token.Request) string {
		tok, _, err := v.Mint(req, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	reader := mint(token.Request{Sub: "watcher", Subscribe: []string{"news"}})
	writer := mint(token.Request{Sub: "alice", Publish: []string{"news"}})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump, dumpOut, dumpErr := start(t, ctx, bins["msgdump"], "-u", ts.URL, "--token", reader, "-c", "news", "-n", "1", "--json")
	ts.waitSubscribers(t, 1, dump, dumpErr)
	if stderr, err := runToolEnv(t, []string{"MSGBUS_TOKEN=" + writer}, bins["msgsend"], "-u", ts.URL, "-c", "news", "hello"); err != nil {
		t.Fatalf("msgsend: %v: %s", err, stderr)
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("msgdump: %v: %s", err, dumpErr)
	}
	if out := dumpOut.String(); !strings.Contains(out, `"from":"alice"`) || !strings.Contains(out, `"body":"hello"`) {
		t.Fatalf("msgdump printed %s, want hello from alice", out)
	}

	// The reader's token has no right to publish.
	stderr, err := runToolEnv(t, nil, bins["msgsend"], "-u", ts.URL, "--token", reader, "-c", "news", "hi")
	if err == nil || !strings.Contains(stderr, "403 Forbidden (forbidden: the token may not publish to news)") {
		t.Fatalf("msgsend without the right: %v, %q", err, stderr)
	}
}
